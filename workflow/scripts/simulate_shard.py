import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import jobs, logs  # noqa: E402

logs.setup(snakemake.log[0])
jobs.run_simulation_shard(snakemake.wildcards.family, int(snakemake.wildcards.shard), snakemake.params.data,
                          snakemake.output[0], threads=snakemake.threads)
