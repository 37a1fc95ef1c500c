import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import jobs, logs  # noqa: E402

logs.setup(snakemake.log[0])
jobs.assemble_dataset(snakemake.wildcards.family, snakemake.params.data, list(snakemake.input), snakemake.output[0])
