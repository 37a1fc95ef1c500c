import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import jobs, logs  # noqa: E402

logs.setup(snakemake.log[0])
jobs.equivariance_table(list(snakemake.input), snakemake.output[0])
