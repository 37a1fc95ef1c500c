import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import logs, symmetry_breaking  # noqa: E402

logs.setup(snakemake.log[0])
symmetry_breaking.write_table(list(snakemake.input.models), list(snakemake.input.metrics), snakemake.output[0])
