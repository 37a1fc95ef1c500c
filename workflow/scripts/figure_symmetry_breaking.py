import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import figures, logs  # noqa: E402

logs.setup(snakemake.log[0])
draw = figures.symmetry_breaking_rotation_figure if snakemake.params.per_element else figures.symmetry_breaking_figure
draw(snakemake.input[0], snakemake.output[0], dpi=snakemake.params.dpi)
