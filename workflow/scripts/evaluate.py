import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import gpus, logs  # noqa: E402

logs.setup(snakemake.log[0])
# Before anything starts CUDA: the GPU slot (config['gpus'], not a param: it changes where a job runs, not its result)
device = gpus.job_device(snakemake.params.run["device"], snakemake.config.get("gpus"), gpus.job_name(snakemake))

import torch  # noqa: E402

from pipeline import evaluate  # noqa: E402

torch.set_num_threads(snakemake.threads)
evaluate.evaluate_run(snakemake.params.run, snakemake.wildcards.dataset, snakemake.input.store, snakemake.input.model,
                      snakemake.output[0], device=device, cache_mb=snakemake.resources.cache_mb,
                      scratch=snakemake.resources.get("scratch"))
