import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
import torch  # noqa: E402

from pipeline import logs, model_sizes  # noqa: E402

logs.setup(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
model_sizes.write_models_table(snakemake.params.table, snakemake.output[0])
