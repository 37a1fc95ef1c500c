import logging
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import figures, logs  # noqa: E402

logs.setup(snakemake.log[0])
cfg, dataset = snakemake.params.fig3, snakemake.wildcards.dataset
table1 = snakemake.input.table1 or None  # an external dataset's models are configured, not chosen from Table 1
shown = figures.predictions_figure(
    dataset, snakemake.input.store, dict(snakemake.params.windows), table1, snakemake.params.runs,
    snakemake.output.png, snakemake.output.pdf, sample=cfg["sample"], seed=cfg["seed"], steps=cfg["steps"],
    baselines=cfg["baselines"], models=snakemake.params.models, split=cfg["split"], dpi=snakemake.params.dpi,
    own=dict(snakemake.params.own))
logging.getLogger("pipeline").info("fig3 %s: %s", dataset, ", ".join(shown))
