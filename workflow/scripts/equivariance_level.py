import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import jobs, logs  # noqa: E402

logs.setup(snakemake.log[0])
jobs.build_equivariance_level(int(snakemake.wildcards.level), snakemake.params.data, list(snakemake.input),
                              snakemake.output[0])
