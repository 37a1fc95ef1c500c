import os
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
import torch  # noqa: E402

from pipeline import jobs, train  # noqa: E402

jobs.setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
wc = snakemake.wildcards
alpha = wc.get("alpha")
train.train_run(snakemake.params.run, wc.dataset, snakemake.input[0], wc.model, int(wc.seed),
                out_dir=os.path.dirname(snakemake.output.model), alpha=None if alpha is None else float(alpha),
                cache_mb=snakemake.resources.cache_mb, scratch=snakemake.resources.get("scratch"))
