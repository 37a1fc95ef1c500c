import logging
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import figures, jobs  # noqa: E402

jobs.setup_logging(snakemake.log[0])
cfg, dataset = snakemake.params.fig3, snakemake.wildcards.dataset
shown = figures.predictions_figure(
    dataset, snakemake.input.store, dict(snakemake.params.windows), snakemake.input.table1, snakemake.params.runs,
    snakemake.output.png, snakemake.output.pdf, sample=cfg["sample"], seed=cfg["seed"], steps=cfg["steps"],
    baselines=cfg["baselines"], models=cfg["models"].get(dataset), split=cfg["split"], dpi=snakemake.params.dpi)
logging.getLogger("pipeline").info("fig3 %s: %s", dataset, ", ".join(shown))
