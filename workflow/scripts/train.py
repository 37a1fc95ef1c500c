import os
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import gpus, logs  # noqa: E402

logs.setup(snakemake.log[0])
wc = snakemake.wildcards
# Before anything starts CUDA: the GPU slot (config['gpus'], not a param: it changes where a job runs, not its result)
device = gpus.job_device(snakemake.params.run["device"], snakemake.config.get("gpus"), gpus.job_name(snakemake))

import torch  # noqa: E402

from pipeline import train  # noqa: E402

torch.set_num_threads(snakemake.threads)
alpha = wc.get("alpha")
train.train_run(snakemake.params.run, wc.dataset, snakemake.input[0], wc.model, int(wc.seed),
                out_dir=os.path.dirname(snakemake.output.model), alpha=None if alpha is None else float(alpha),
                device=device, cache_mb=snakemake.resources.cache_mb, scratch=snakemake.resources.get("scratch"))
