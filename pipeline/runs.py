"""The settings of each training run (dataset, model, seed) and what its jobs read from the config.

Standard library only: Snakemake imports this to build its DAG, where torch is not installed. The rule params
of a training or evaluation job are :func:`train_params` and :func:`evaluate_params`, the jobs read nothing
else from the config, so a config edit reruns exactly the jobs whose params it changes.

Settings of a run resolve in this order (later wins, see config.yaml): ``training.defaults`` <
``training.datasets[family]`` < ``training.models[family][model]`` < ``training.override``;
:func:`settings` splits them into training settings and model hyper-parameters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from . import external
from .catalogue import FAMILIES
from .models import custom

# The floor under every model (pipeline.evaluate.Persistence): the last input frame repeated for every rollout
# step. No parameters and no training; evaluated like a model (``results/runs/{dataset}/persistence/metrics.json``)
# and shown beside the models in Table 1, the rollout tables and the rollout and correlation figures.
PERSISTENCE = "persistence"

# PDEArena's correlation-time thresholds (pdearena/models/pderefiner.py logs ``time_till_corr_lower_{threshold}`` for
# each): the default of ``evaluation.correlation_thresholds``, the one definition that pipeline.metrics and the
# figures import (the schema's default repeats it for the reader; tests/test_config.py checks that they agree).
CORRELATION_THRESHOLDS = (0.8, 0.9, 0.95)

TRAINING_KEYS = ("epochs", "patience", "batch", "lr", "decay", "weight_decay", "out_length", "precision",
                 "deterministic")
# The window keys each job reads (windows of the other splits do not change its result).
TRAIN_WINDOW_KEYS = ("offset", "input_length", "train", "valid")
EVALUATE_WINDOW_KEYS = ("offset", "input_length", "rollout", "valid", "test_future", "test_domain")


def family_of(dataset: str, config: dict | None = None) -> str:
    """``equivariance_3`` -> ``equivariance``; the three families name their own dataset, and so does an external
    dataset registered in ``config['external']`` (pipeline/external.py): it is a family of its own."""
    if config and dataset in config.get("external", {}):
        return dataset
    family = "equivariance" if dataset.startswith("equivariance_") else dataset
    if family not in FAMILIES:
        raise ValueError(f"unknown dataset {dataset!r}; expected translation, rotation, scaling, equivariance_<n> "
                         f"or an external dataset of config['external']")
    return family


def build_arguments(hyperparameters: dict, input_length, frame_size) -> dict:
    """The keyword arguments of ``pipeline.models.build`` for a run whose model hyper-parameters are
    ``hyperparameters`` (``train_params(...)["model"]``): those, with the input frames and the ``(H, W)`` frame size."""
    return {**hyperparameters, "in_frames": int(input_length), "frame_size": [int(s) for s in frame_size]}


def symmetry_of(dataset: str, config: dict | None = None) -> str:
    """The symmetry whose models a dataset trains: the equivariance levels are C4 (rotation) data; an external
    dataset's spec says its own."""
    if config and dataset in config.get("external", {}):
        return external.symmetry(config["external"][dataset])
    family = family_of(dataset)
    return "rotation" if family == "equivariance" else family


@dataclass(frozen=True)
class Settings:
    """Training settings of a run (docs/protocol.md)."""

    epochs: int
    patience: int
    batch: int
    lr: float
    decay: float
    weight_decay: float
    out_length: int
    precision: str = "fp32"      # pipeline.numerics.PRECISIONS
    deterministic: bool = True


def settings(config: dict, dataset: str, model: str, alpha: float | None = None) -> tuple[Settings, dict]:
    """``(training settings, model hyper-parameters)`` of a run; ``alpha`` overrides the config's (sweeps)."""
    family = family_of(dataset, config)
    tcfg = config["training"]
    layers = [tcfg["defaults"], tcfg["datasets"].get(family, {}), tcfg["models"].get(family, {}).get(model, {}),
              tcfg["override"]]
    merged, options = {}, {}
    for layer in layers:
        layer = dict(layer or {})
        options.update(layer.pop("options", None) or {})
        merged.update(layer)
    if alpha is not None:
        merged["alpha"] = float(alpha)
    train = Settings(**{k: merged.pop(k) for k in TRAINING_KEYS})
    return train, {**merged, **options}


def alpha_tag(alpha: float) -> str:
    """How an alpha of the sweep appears in paths: ``1e-06``, ``0.0001``, ``0``."""
    return f"{float(alpha):g}"


def _windows(config: dict, dataset: str, keys: tuple[str, ...]) -> dict:
    w = config["windows"][family_of(dataset, config)]
    return {k: w[k] for k in keys if k in w}


def train_params(config: dict, dataset: str, model: str, alpha: float | None = None, tuned: dict | None = None) -> dict:
    """Everything a training run reads besides its data and code: the one place a run's settings are resolved
    (the ``train`` rules' params; ``pipeline.train.train_run`` takes this dict). ``tuned``: the settings that the
    hyper-parameter search selected (``best.yaml``), put over the config's; a sweep's ``alpha`` goes over both."""
    train, hyper = settings(config, dataset, model)
    merged = {**asdict(train), **hyper, **(tuned or {})}
    if alpha is not None:
        merged["alpha"] = float(alpha)
    return run_params(config, dataset, merged, model=model)


def run_params(config: dict, dataset: str, resolved: dict, window_keys: tuple[str, ...] = TRAIN_WINDOW_KEYS,
               model: str | None = None) -> dict:
    """A training job's params (what ``pipeline.train.train_run`` takes) from its resolved settings, training keys
    and model hyper-parameters in one dict, with the window keys it reads. A model of one's own (``model`` registered
    in ``config['custom_models']``) adds its ``builder`` (``module:function``), which the job imports."""
    hyper = dict(resolved)
    training = {k: hyper.pop(k) for k in TRAINING_KEYS}
    params = {"training": training, "model": hyper, "windows": _windows(config, dataset, window_keys),
              "device": config["training"]["device"], "eval_batch": config["training"]["eval_batch"]}
    builder = custom.builder_of(config, model) if model else None
    if builder:
        params["builder"] = builder
    return params


def selection_starts(windows: dict) -> tuple[int, ...]:
    """The window starts whose validation score selects a model in the hyper-parameter search (one family's
    ``windows`` config; the one definition, used by the search and by the config check).

    The rule: no frame that a test split scores is read by the selection for the same sim. ``test_domain`` uses the
    held-out sims, which validation never reads; ``test_future`` uses the train sims, so a selection window is a
    ``valid`` start whose frames, its inputs and its ``rollout`` targets alike, are none of the target frames of
    ``test_future``. The selection keeps the test horizon (``rollout`` steps, the same yardstick for every
    ``out_length``) and drops the late validation windows instead. Without a ``test_future`` range every ``valid``
    start is kept. An empty result is the caller's error to report."""
    offset, length, rollout = int(windows["offset"]), int(windows["input_length"]), int(windows["rollout"])
    lo, hi = (int(v) for v in windows["valid"])
    if "test_future" not in windows:
        return tuple(range(lo, hi))
    t_lo, t_hi = (int(v) for v in windows["test_future"])
    first_target, last_target = t_lo + offset + length, t_hi - 1 + offset + length + rollout - 1
    return tuple(s for s in range(lo, hi)
                 if s + offset + length + rollout - 1 < first_target or s + offset > last_target)


def evaluate_params(config: dict, dataset: str) -> dict:
    """Everything an evaluation reads besides the data and the trained model (``pipeline.evaluate.evaluate_run``)."""
    return {"windows": _windows(config, dataset, EVALUATE_WINDOW_KEYS), "device": config["training"]["device"],
            "eval_batch": config["training"]["eval_batch"],
            "correlation_thresholds": correlation_thresholds(config)}


def correlation_thresholds(config: dict) -> list[float]:
    """``evaluation.correlation_thresholds`` (:data:`CORRELATION_THRESHOLDS`, PDEArena's 0.8, 0.9 and 0.95, when the
    key is absent): the evaluation writes a correlation time for each; the correlation figure draws each and gives
    the first one's time in its legend."""
    return [float(t) for t in config.get("evaluation", {}).get("correlation_thresholds", CORRELATION_THRESHOLDS)]


def models_table_params(config: dict) -> dict:
    """What ``results/tables/models.csv`` depends on (``pipeline.model_sizes``): every configured run's settings
    on the paper's datasets (the equivariance levels as ``equivariance_0``; not external ones) and the frame size."""
    rows = [{"dataset": "equivariance_0" if family == "equivariance" else family, "model": name}
            for family, models in config["models"].items() if family in FAMILIES for name in models]
    return {"runs": [{**r, "run": train_params(config, r["dataset"], r["model"])} for r in rows],
            "grid": int(config["data"]["grid"])}
