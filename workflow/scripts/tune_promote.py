import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import jobs, tuning  # noqa: E402

jobs.setup_logging(snakemake.log[0])
tuning.promote_job(list(snakemake.input), snakemake.params.next_rung, snakemake.output[0])
