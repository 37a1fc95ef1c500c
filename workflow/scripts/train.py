import os
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
import torch  # noqa: E402

from pipeline import jobs, train, tuning  # noqa: E402

jobs.setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
wc = snakemake.wildcards
# The run trains with exactly its rule's params (common.smk: train_params): the config's settings, with the
# hyper-parameter search's selection over them for a tuned model.
settings = {**snakemake.params.settings["training"], **snakemake.params.settings["model"]}
train.train_run(tuning.pinned_config(snakemake.config, settings), wc.dataset, snakemake.input[0], wc.model,
                int(wc.seed), out_dir=os.path.dirname(snakemake.output.model), alpha=snakemake.params.alpha)
