# Config validation, the wildcard values derived from the config, and the constraints that make a typo in
# a target fail at once.
import sys

sys.path.insert(0, workflow.basedir)

from pipeline import config as pipeline_config
from pipeline.families import family_sims, shard_indices

pipeline_config.validate(config)

FAMILY_DATASETS = ["translation", "rotation", "scaling"]
LEVELS = list(range(config["data"]["equivariance"]["levels"]))
LEVEL_DATASETS = [f"equivariance_{n}" for n in LEVELS]
DATASETS = FAMILY_DATASETS + LEVEL_DATASETS
DATASETS_ALL = expand("results/data/{dataset}.zarr", dataset=DATASETS)


def n_shards(family):
    return len(shard_indices(len(family_sims(family, config["data"])), config["data"]["sims_per_job"]))


wildcard_constraints:
    family="|".join(FAMILY_DATASETS + ["equivariance"]),
    dataset="|".join(DATASETS),
    level="|".join(map(str, LEVELS)),
    shard=r"\d+",
