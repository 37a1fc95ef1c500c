import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import figures, logs  # noqa: E402

logs.setup(snakemake.log[0])
figures.equivariance_figure(snakemake.input[0], snakemake.output[0], dpi=snakemake.params.dpi,
                            own=dict(snakemake.params.own))
