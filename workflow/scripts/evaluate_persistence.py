import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
import torch  # noqa: E402

from pipeline import evaluate, logs  # noqa: E402

logs.setup(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
evaluate.evaluate_persistence(snakemake.params.run, snakemake.wildcards.dataset, snakemake.input.store,
                              snakemake.output[0], device="cpu", cache_mb=snakemake.resources.cache_mb)  # asks no GPU
