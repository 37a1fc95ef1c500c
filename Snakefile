# Approximately equivariant networks for imperfectly symmetric dynamics (Wang, Walters, Yu, ICML 2022):
# simulations -> zarr datasets -> hyper-parameter search -> training -> evaluation -> tables and figures.
import os

from snakemake.utils import min_version

min_version("8.0")


# The paper's settings, found beside this file from any working directory (--directory); presets and other
# --configfile overlays are merged over it.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/learn.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        DATASETS_ALL,
        "results/data/equivariance_levels.csv",
        TUNING_OUTPUTS,
        TABLES,
        FIGURES,
        ANALYSIS,
