import os
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
import torch  # noqa: E402

from pipeline import jobs, tuning  # noqa: E402

jobs.setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
wc = snakemake.wildcards
tuning.run_trial(snakemake.params.run, wc.dataset, snakemake.input.store, wc.model,
                 out_dir=os.path.dirname(snakemake.output.result), output=snakemake.output.result,
                 cache_mb=snakemake.resources.cache_mb, previous=snakemake.input.get("previous"))
