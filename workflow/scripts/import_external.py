import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import external, logs  # noqa: E402

logs.setup(snakemake.log[0])
name = snakemake.wildcards.external
external.import_dataset(name, dict(snakemake.params.entry), snakemake.output[0], snakemake.params.chunk_frames,
                        dict(snakemake.params.windows))
