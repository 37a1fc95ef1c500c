import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import logs, tables  # noqa: E402

logs.setup(snakemake.log[0])
if snakemake.params.kind == "table1":
    tables.write_table1(list(snakemake.input), snakemake.output.csv, snakemake.output.md, snakemake.output.tex,
                        own=dict(snakemake.params.own))
elif snakemake.params.kind == "table1_vrmse":
    tables.write_table1_vrmse(list(snakemake.input), snakemake.output.csv, snakemake.output.md,
                              own=dict(snakemake.params.own))
else:
    tables.write(snakemake.params.kind, list(snakemake.input), snakemake.output[0])
