import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import logs, tuning  # noqa: E402

logs.setup(snakemake.log[0])
wc = snakemake.wildcards
tuning.draw_job({"run": snakemake.params.run, "tuning": snakemake.params.tuning}, wc.dataset, wc.model,
                snakemake.input[0], snakemake.output[0])
