import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import logs, symmetry_breaking  # noqa: E402

logs.setup(snakemake.log[0])
symmetry_breaking.write_gamma_table(list(snakemake.input), snakemake.output[0])
