import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import figures, logs  # noqa: E402

logs.setup(snakemake.log[0])
figures.heat_figure(snakemake.output[0], dict(snakemake.params.heat), dpi=snakemake.params.dpi)
