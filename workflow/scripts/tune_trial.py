import os
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import gpus, logs  # noqa: E402

logs.setup(snakemake.log[0])
# Before anything starts CUDA: the GPU slot (config['gpus'], not a param: it changes where a job runs, not its result)
device = gpus.job_device(snakemake.params.run["run"]["device"], snakemake.config.get("gpus"), gpus.job_name(snakemake))

import torch  # noqa: E402

from pipeline import tuning  # noqa: E402

torch.set_num_threads(snakemake.threads)
wc = snakemake.wildcards
tuning.run_trial(snakemake.params.run, wc.dataset, snakemake.input.store, wc.model,
                 out_dir=os.path.dirname(snakemake.output.result), output=snakemake.output.result, device=device,
                 cache_mb=snakemake.resources.cache_mb, previous=snakemake.input.get("previous"))
