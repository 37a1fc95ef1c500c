"""What Snakemake reads of the hyper-parameter search when it builds the DAG (docs/search.md): the search space
(:func:`parse_space`, config validation), the rungs of the successive halving (:func:`rung_schedule`), the trials
a rung's promotion sends on (:func:`read_promoted`), a trial job's params (:func:`trial_params`) and a selection's
settings (:func:`read_selection`). Standard library and yaml only, like ``pipeline.runs``; the search's jobs are
``pipeline.tuning``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

KINDS = ("log", "int", "choice")
BUDGET_KEYS = ("epochs", "patience")  # a trial's training budget: never searched, never carried to the final runs


# --- the search space ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dimension:
    """One searched setting: ``kind`` in :data:`KINDS`, ``values`` its bounds (log, int) or its choices."""

    name: str
    kind: str
    values: tuple

    def value(self, u: float):
        """The setting at ``u`` in [0, 1): equal sub-intervals of [0, 1) map to the choices / integers."""
        if self.kind == "choice":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        lo, hi = self.values
        if self.kind == "int":
            return int(lo + min(int(u * (hi - lo + 1)), hi - lo))
        # log-uniform, rounded to 3 significant digits so that settings read (and compare) cleanly
        return float(f"{math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))):.3g}")


def parse_space(space: dict) -> list[Dimension]:
    """``config['tuning']['space']`` as dimensions, in config order; a wrong entry raises naming its key.
    A ``null`` entry (a preset's way to drop a dimension of config.yaml's space) is left out."""
    dims = []
    known = known_settings()
    for name, spec in space.items():
        if spec is None:
            continue
        where = f"config['tuning']['space'][{name!r}]"
        if name in BUDGET_KEYS:
            raise ValueError(f"{where}: {name} is the trial budget (config['tuning']['budget']), not searched")
        if name not in known:
            raise ValueError(f"{where}: no training setting or model hyper-parameter is called {name!r}; "
                             f"expected one of {', '.join(sorted(known))}")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise ValueError(f"{where}: expected one of {{log: [lo, hi]}}, {{int: [lo, hi]}}, {{choice: [...]}}, "
                             f"got {spec!r}")
        kind, values = next(iter(spec.items()))
        values = tuple(values)
        if kind == "choice" and not values:
            raise ValueError(f"{where}: an empty choice")
        if kind in ("log", "int"):
            if len(values) != 2 or not values[0] <= values[1]:
                raise ValueError(f"{where}: {kind} needs [lo, hi] with lo <= hi, got {list(values)}")
            if kind == "log" and values[0] <= 0:
                raise ValueError(f"{where}: log bounds must be positive, got {list(values)}")
            if kind == "int" and not all(isinstance(v, int) for v in values):
                raise ValueError(f"{where}: int bounds must be integers, got {list(values)}")
        dims.append(Dimension(name, kind, values))
    return dims


def known_settings() -> set[str]:
    """Every name a search dimension may have: a training setting or a hyper-parameter any model may be given."""
    from .models import SHARED_HYPERPARAMETERS
    from .runs import TRAINING_KEYS

    return (set(TRAINING_KEYS) | set(SHARED_HYPERPARAMETERS)) - set(BUDGET_KEYS) - {"in_frames", "frame_size"}


# --- the rungs (successive halving) --------------------------------------------------------------------------

def rung_schedule(tuning_cfg: dict) -> list[dict]:
    """The rungs of the search: ``[{"rung": k, "epochs": total epochs at its end, "trials": trials in it}]``.

    With ``n`` trials, ``E`` budget epochs and ``halving: {eta, rungs: R}``, rung ``k`` (0 .. R-1) trains up to
    ``max(1, round(E / eta^(R-1-k)))`` epochs (halves rounded up), the last rung exactly ``E``, and holds the best
    ``ceil(n / eta^k)`` trials of the rung before (so at least one). A rung that would train no epoch beyond the
    one before (a small budget) is left out, the later rungs keep their trial counts; a rung that would keep every
    trial of the one before (few trials) is merged into it (it trains to the later end). ``rungs: 1``: no halving,
    every trial trains ``E`` epochs in one rung. Examples: 16 trials, 20 epochs, eta 3, 3 rungs:
    16 x 2, 6 x 7, 2 x 20 epochs; 2 trials, 3 epochs: 2 x 1, 1 x 3 (the rung at 1 epoch is left out).
    """
    n, epochs = int(tuning_cfg["trials"]), int(tuning_cfg["budget"]["epochs"])
    halving = tuning_cfg.get("halving") or {}
    eta, count = int(halving.get("eta", 3)), int(halving.get("rungs", 3))  # the schema's defaults
    if eta < 2 or count < 1:
        raise ValueError(f"config['tuning']['halving']: expected eta >= 2 and rungs >= 1, got eta={eta}, "
                         f"rungs={count}")
    schedule = []
    for k in range(count):
        rung_epochs, trials = max(1, math.floor(epochs / eta ** (count - 1 - k) + 0.5)), math.ceil(n / eta ** k)
        if schedule and trials == schedule[-1]["trials"]:  # every trial goes on: one rung
            schedule[-1]["epochs"] = rung_epochs
        elif not schedule or rung_epochs > schedule[-1]["epochs"]:
            schedule.append({"rung": len(schedule), "epochs": rung_epochs, "trials": trials})
    return schedule


def trial_epochs(schedule: list[dict]) -> int:
    """Trial-epochs the schedule trains at most (every trial to its rung's end; early stopping only lowers it)."""
    done, total = 0, 0
    for rung in schedule:
        total += rung["trials"] * (rung["epochs"] - done)
        done = rung["epochs"]
    return total


def read_promoted(path: str | os.PathLike) -> list[int]:
    """The trials a promotion file (the ``tune_promote`` rule's) sends on to the next rung."""
    return [int(t) for t in yaml.safe_load(Path(path).read_text())["promoted"]]


# --- a trial job's params, a selection ----------------------------------------------------------------------

def trial_params(config: dict, dataset: str, trial: dict, rung: int = 0, model: str | None = None) -> dict:
    """What a trial job of ``rung`` reads (its rule's params, built when the DAG is): the trial's entry of
    ``trials.yaml``, its run params in the shape of ``pipeline.runs.train_params`` (the windows with the scored
    horizon and the test-future range that bounds the selection windows; ``epochs``: the rung's end,
    :func:`rung_schedule`), the rung and the seed. ``model``: the tuned model, whose builder a model of one's own
    adds to the run params."""
    from .runs import TRAIN_WINDOW_KEYS, run_params

    schedule = rung_schedule(config["tuning"])[rung]
    run = run_params(config, dataset, {**trial["settings"], "epochs": schedule["epochs"]},
                     (*TRAIN_WINDOW_KEYS, "rollout", "test_future"), model=model)
    return {"trial": {k: trial[k] for k in ("trial", "draw", "parameters", "tuned")}, "run": run,
            "rung": {"rung": rung, "epochs": schedule["epochs"]}, "seed": int(config["tuning"]["seed"])}


def read_selection(path: str | os.PathLike) -> dict:
    """The searched settings of ``best.yaml``, which the final runs put over the config's."""
    return yaml.safe_load(Path(path).read_text())["settings"]
