import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import jobs  # noqa: E402

jobs.setup_logging(snakemake.log[0])
jobs.equivariance_table(list(snakemake.input), snakemake.output[0])
