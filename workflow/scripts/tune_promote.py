import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import logs, tuning  # noqa: E402

logs.setup(snakemake.log[0])
tuning.promote_job(list(snakemake.input), snakemake.params.next_rung, snakemake.output[0])
