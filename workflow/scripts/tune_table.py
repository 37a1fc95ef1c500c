import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import logs, tuning  # noqa: E402

logs.setup(snakemake.log[0])
tuning.table_job(list(snakemake.input.trials), list(snakemake.input.results), list(snakemake.input.selections),
                 snakemake.output.csv, snakemake.output.png, snakemake.params.dpi, own=dict(snakemake.params.own))
