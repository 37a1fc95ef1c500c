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


# --- training, evaluation and tables (workflow/rules/learn.smk, tables.smk) ---------------------------------
import re

from pipeline.train import alpha_tag, check_config, family_of

check_config(config)

SEEDS = config["seeds"]
SWEEP = config["alpha_sweep"]
ALPHAS = [alpha_tag(a) for a in SWEEP["values"]]
MODELS_ALL = sorted({m for ms in config["models"].values() for m in ms} | {SWEEP["model"]})
RUN = "results/runs/{dataset}/{model}/seed{seed}"
SWEEP_RUN = "results/sweeps/alpha/{dataset}/{model}/alpha{alpha}/seed{seed}"


def run_metrics(datasets):
    """metrics.json of every configured (model, seed) run of ``datasets``."""
    return [f"{RUN}/metrics.json".format(dataset=d, model=m, seed=s)
            for d in datasets for m in config["models"][family_of(d)] for s in SEEDS]


SWEEP_METRICS = expand(f"{SWEEP_RUN}/metrics.json", dataset=SWEEP["dataset"], model=SWEEP["model"], alpha=ALPHAS,
                       seed=SEEDS)
TABLES = [
    *expand("results/tables/table1.{ext}", ext=["csv", "md", "tex"]),
    "results/tables/equivariance.csv",
    *expand("results/tables/rollout_{dataset}.csv", dataset=FAMILY_DATASETS),
    "results/tables/alpha_sweep.csv",
]


wildcard_constraints:
    model="|".join(MODELS_ALL),
    seed="|".join(map(str, SEEDS)),
    alpha="|".join(map(re.escape, ALPHAS)),
