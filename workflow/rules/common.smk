# Config validation, the wildcard values derived from the config, and the constraints that make a typo in
# a target fail at once. Building the DAG needs only Snakemake: the modules imported here (pipeline.config,
# catalogue, runs, external and the models' name list) use the standard library, yaml and jsonschema; numpy, torch and
# escnn are imported inside the jobs.
import sys

sys.path.insert(0, workflow.basedir)

from pipeline import config as pipeline_config
from pipeline.catalogue import SYMMETRY_FAMILIES, family_shards

pipeline_config.validate(config)

FAMILY_DATASETS = list(SYMMETRY_FAMILIES)
LEVELS = list(range(config["data"]["equivariance"]["levels"]))
LEVEL_DATASETS = [f"equivariance_{n}" for n in LEVELS]
# Datasets of your own (config['external'], pipeline/external.py): each a family of its own.
EXTERNAL_DATASETS = list(config.get("external", {}))
DATASETS = FAMILY_DATASETS + LEVEL_DATASETS + EXTERNAL_DATASETS
DATASETS_ALL = expand("results/data/{dataset}.zarr", dataset=DATASETS)


def n_shards(family):
    return len(family_shards(family, config["data"]))


def grow(amount):
    """A resource (runtime, mem_mb) that grows with each try of a job: `--retries` (profiles/slurm) reruns a
    failed job, on a cluster typically one killed at its time or memory limit, asking for `attempt` times more."""
    return lambda wildcards, attempt: amount * attempt


# The data jobs' params: what each reads of config["data"], so that editing a family's section reruns that
# family's data and what depends on it, and nothing else.
SIMULATION_KEYS = ("grid", "inflow_radius", "sims_per_job")
STORE_KEYS = SIMULATION_KEYS + ("chunk_frames",)


def data_params(family, shared=SIMULATION_KEYS):
    return {k: config["data"][k] for k in (*shared, family)}


wildcard_constraints:
    family="|".join(FAMILY_DATASETS + ["equivariance"]),
    dataset="|".join(DATASETS),
    level="|".join(map(str, LEVELS)),
    shard=r"\d+",


# --- training, evaluation and tables (workflow/rules/learn.smk, tables.smk) ---------------------------------
import re

import yaml

from pipeline import runs, search
from pipeline.models import custom
from pipeline.runs import alpha_tag, family_of

SEEDS = config["seeds"]
SWEEP = config["alpha_sweep"]
ALPHAS = [alpha_tag(a) for a in SWEEP["values"]]
MODELS_ALL = sorted({m for ms in config["models"].values() for m in ms} | {SWEEP["model"]})
RUN = "results/runs/{dataset}/{model}/seed{seed}"
# Display names of the models of one's own (config['custom_models']), a param of every table and figure that
# names models: renaming one redraws those, and retrains nothing.
OWN_NAMES = custom.display_names(config)
SWEEP_RUN = "results/sweeps/alpha/{dataset}/{model}/alpha{alpha}/seed{seed}"


def train_params(wildcards):
    """Everything a training run reads besides its data and code (pipeline.runs.train_params), as rule params, so
    that a config change reruns exactly the runs it affects. The one place a run's settings are resolved: a tuned
    (dataset, model) takes its selection's settings (best.yaml) over the config's; the sweep's runs get their alpha
    from the wildcard."""
    alpha = wildcards.get("alpha")
    return runs.train_params(
        config,
        wildcards.dataset,
        wildcards.model,
        None if alpha is None else float(alpha),
        tuned=selected_settings(wildcards),
    )


def evaluate_params(wildcards):
    """What an evaluation reads besides the data and the trained model (pipeline.runs.evaluate_params)."""
    return runs.evaluate_params(config, wildcards.dataset)


def run_metrics(datasets):
    """metrics.json of every configured (model, seed) run of ``datasets``."""
    return [
        f"{RUN}/metrics.json".format(dataset=d, model=m, seed=s)
        for d in datasets
        for m in config["models"][family_of(d, config)]
        for s in SEEDS
    ]


# Persistence (pipeline.runs.PERSISTENCE: the last input frame repeated), evaluated once per dataset that trains a
# model, with no training job: a row of Table 1, of the rollout tables and of the rollout and correlation figures.
PERSISTENCE_RUN = f"results/runs/{{dataset}}/{runs.PERSISTENCE}"


def persistence_metrics(datasets):
    """metrics.json of persistence on each of ``datasets`` that trains at least one model."""
    return [
        f"{PERSISTENCE_RUN}/metrics.json".format(dataset=d) for d in datasets if config["models"][family_of(d, config)]
    ]


SWEEP_METRICS = expand(
    f"{SWEEP_RUN}/metrics.json", dataset=SWEEP["dataset"], model=SWEEP["model"], alpha=ALPHAS, seed=SEEDS
)
TABLES = [
    *expand("results/tables/table1.{ext}", ext=["csv", "md", "tex"]),
    "results/tables/equivariance.csv",
    *expand("results/tables/rollout_{dataset}.csv", dataset=FAMILY_DATASETS + EXTERNAL_DATASETS),
    "results/tables/alpha_sweep.csv",
    "results/tables/models.csv",
]


wildcard_constraints:
    model="|".join(MODELS_ALL),
    seed="|".join(map(str, SEEDS)),
    alpha="|".join(map(re.escape, ALPHAS)),


# --- hyper-parameter search (workflow/rules/tune.smk) -------------------------------------------------------
# (dataset, model) pairs searched, whose final runs take the selection's settings (train_params)
TUNED = [(d, m) for d in FAMILY_DATASETS for m in config["tuning"]["models"][d]]


def selection_input(wildcards):
    """best.yaml of a tuned (dataset, model), an input of its runs. Asked of the checkpoint, so that Snakemake
    decides whether a run is to rerun only once the selection exists; ancient, so that it reruns when the settings
    it holds change (train_params), not when the file is rewritten."""
    if (wildcards.dataset, wildcards.model) not in TUNED:
        return []
    return ancient(checkpoints.tune_select.get(dataset=wildcards.dataset, model=wildcards.model).output[0])


def selected_settings(wildcards):
    """The searched settings chosen for a tuned (dataset, model) (its best.yaml), else none."""
    if (wildcards.dataset, wildcards.model) not in TUNED:
        return {}
    path = checkpoints.tune_select.get(dataset=wildcards.dataset, model=wildcards.model).output[0]
    return search.read_selection(path)


TUNE = "results/tuning/{dataset}/{model}"
TRIAL = "results/tuning/{dataset}/{model}/rung{rung}/trial{trial}"
TRIAL_INDICES = list(range(config["tuning"]["trials"]))
# The rungs of the successive halving (pipeline.search.rung_schedule): epochs at each rung's end, trials in it
RUNGS = search.rung_schedule(config["tuning"])
LAST_RUNG = len(RUNGS) - 1
TUNING_TABLES = ["results/tables/hyperparameters.csv", "results/figures/tuning.png"] if TUNED else []
TUNING_OUTPUTS = [f"{TUNE}/best.yaml".format(dataset=d, model=m) for d, m in TUNED] + TUNING_TABLES


def trials_input(wildcards):
    """trials.yaml of the trial's (dataset, model), asked of the checkpoint (as in selection_input)."""
    return ancient(checkpoints.tune_draw.get(dataset=wildcards.dataset, model=wildcards.model).output[0])


def trial_params(wildcards):
    """What a trial of a rung reads (pipeline.search.trial_params): its entry of trials.yaml, as run params."""
    with open(checkpoints.tune_draw.get(dataset=wildcards.dataset, model=wildcards.model).output[0]) as fh:
        trial = yaml.safe_load(fh)["trials"][int(wildcards.trial)]
    return search.trial_params(config, wildcards.dataset, trial, int(wildcards.rung), model=wildcards.model)


def rung_trials(dataset, model, rung):
    """The trials of a rung: every trial in rung 0, then those the rung before promoted (its promoted.yaml, asked
    of the tune_promote checkpoint: which jobs the next rung has is known once the rung before is scored)."""
    if rung == 0:
        return TRIAL_INDICES
    promoted = checkpoints.tune_promote.get(dataset=dataset, model=model, rung=rung - 1).output[0]
    return search.read_promoted(promoted)


def rung_results(dataset, model, rung):
    """result.json of every trial of a rung."""
    return [
        f"{TRIAL}/result.json".format(dataset=dataset, model=model, rung=rung, trial=t)
        for t in rung_trials(dataset, model, rung)
    ]


def previous_rung(wildcards):
    """A promoted trial's files of the rung before, which it resumes from; none in rung 0."""
    rung = int(wildcards.rung)
    if rung == 0:
        return {}
    before = TRIAL.format(dataset=wildcards.dataset, model=wildcards.model, rung=rung - 1, trial=wildcards.trial)
    return {"previous": f"{before}/result.json", "checkpoint": f"{before}/checkpoint.pt"}


def table_results(wildcards):
    """result.json of every rung of every tuned (dataset, model) (the tune_table rule's)."""
    return [f for d, m in TUNED for rung in range(len(RUNGS)) for f in rung_results(d, m, rung)]


wildcard_constraints:
    trial="|".join(map(str, TRIAL_INDICES)),
    rung="|".join(str(r["rung"]) for r in RUNGS),


# --- figures (workflow/rules/figures.smk) --------------------------------------------------------------------
FIGURES_CFG = config["figures"]
FIG3_CFG = FIGURES_CFG["fig3"]

# Families that train at least one model get a rollout figure and (when listed) a Figure 3.
TRAINED_FAMILIES = [f for f in FAMILY_DATASETS + EXTERNAL_DATASETS if config["models"][f]]
FIG3_DATASETS = [d for d in FIG3_CFG["datasets"] if d in TRAINED_FAMILIES]
FIGURES = (
    ["results/figures/fig2_heat.png"]
    + expand("results/figures/fig3_{dataset}.{ext}", dataset=FIG3_DATASETS, ext=["png", "pdf"])
    + expand("results/figures/rollout_{dataset}.png", dataset=TRAINED_FAMILIES)
    + (["results/figures/fig4_equivariance.png"] if config["models"]["equivariance"] else [])
    + (["results/figures/fig7_alpha.png"] if config["alpha_sweep"]["values"] else [])
)


def fig3_model_list(dataset):
    """The configured models of Figure 3; an external dataset, absent from Table 1, shows every model trained on it."""
    return FIG3_CFG["models"].get(dataset) or (config["models"][dataset] if dataset in EXTERNAL_DATASETS else None)


def fig3_models(wildcards):
    """Every model Figure 3 may show: the configured list, else every model trained on the dataset (table1
    picks among them), at the configured seed."""
    models = fig3_model_list(wildcards.dataset) or config["models"][wildcards.dataset]
    return expand(
        "results/runs/{dataset}/{model}/seed{seed}/model.pt",
        dataset=wildcards.dataset,
        model=models,
        seed=FIG3_CFG["seed"],
    )
