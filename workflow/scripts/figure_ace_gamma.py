import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import figures, logs  # noqa: E402

logs.setup(snakemake.log[0])
figures.ace_gamma_figure(snakemake.input.gamma, snakemake.output[0], departure_table=snakemake.input.get("departure"),
                         dpi=snakemake.params.dpi)
