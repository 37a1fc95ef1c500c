import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
import torch  # noqa: E402

from pipeline import evaluate, jobs  # noqa: E402

jobs.setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
evaluate.evaluate_run(snakemake.params.run, snakemake.wildcards.dataset, snakemake.input.store, snakemake.input.model,
                      snakemake.output[0], cache_mb=snakemake.resources.cache_mb,
                      scratch=snakemake.resources.get("scratch"))
