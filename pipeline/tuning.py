"""Hyper-parameter search, as the paper did it (Appendix A.1, Table 3), with successive halving over rungs.

For each tuned (family, model) the search space (``config['tuning']['space']``) is a set of dimensions: ``log``
(log-uniform between two bounds), ``int`` (uniform integers, bounds included) or ``choice`` (a list). A model
is searched only over the training settings and the hyper-parameters its builder accepts (a CNN has no
filter banks). Trials:

* trial 0 is the run's own setting from ``config['training']`` (the published one where the paper gives it);
* trials 1.. are points of one scrambled Sobol sequence (``scipy.stats.qmc``), seeded by the tuning seed and
  the (dataset, model) name: the same config gives the same trials, and a larger ``trials`` keeps the first
  ones. A draw whose model would have 10^7 trainable parameters or more, or that repeats an earlier trial, is
  rejected (and recorded) before any training; the next point of the sequence is taken instead.

The trials train in rungs (``pipeline.search.rung_schedule``, ``config['tuning']['halving']``): every trial
trains the first rung's epochs; the best ``1/eta`` by validation score (:func:`rank`) go on to the next rung, each
resuming from its checkpoint of the rung before (the training loop's own checkpoint: weights, optimiser,
learning-rate schedule, RNG and early-stopping state), so a trial that reaches the last rung has trained exactly
as one uninterrupted training of the full budget (``epochs``, ``patience``). ``halving: {rungs: 1}`` trains every
trial the full budget.

Every trial is scored by :func:`validation_score`: the RMSE over the test horizon (``windows[family]['rollout']``
steps), the same for every trial whatever its ``out_length``, on the validation windows none of whose frames is a
test-future target (``pipeline.runs.selection_starts``). The selection takes the lowest score of the last rung;
test splits are never read, and no frame they score is. ``best.yaml`` holds the winner's searched settings, which
the final runs put over the config's.

What Snakemake reads when it builds the DAG (the search space, the rungs, a trial's params) is
``pipeline.search``; this module holds the jobs, whose functions import numpy, scipy and torch inside (at its top
only the standard library and yaml). Every job reads only its params (the draw: the model's run params and the
tuning section; a trial: its settings and rung), never the whole config.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import zlib
from dataclasses import asdict
from pathlib import Path

import yaml

from .files import write_json, write_table, write_text, write_torch
from .search import Dimension, parse_space

log = logging.getLogger("pipeline")


# --- the search space ----------------------------------------------------------------------------------------

def model_dimensions(dims: list[Dimension], model: str, symmetry: str, custom: str | None = None) -> list[Dimension]:
    """The dimensions that change ``model``: every training setting, and the hyper-parameters its builder takes
    (``pipeline.models.hyperparameters_of``; ``custom``: the builder of a model of one's own)."""
    from .models import hyperparameters_of
    from .runs import TRAINING_KEYS

    accepted = hyperparameters_of(model, symmetry, custom)
    return [d for d in dims if d.name in TRAINING_KEYS or d.name in accepted]


def design(n: int, d: int, seed: int, dataset: str, model: str):
    """The first ``n`` points of the scrambled Sobol sequence in ``d`` dimensions of (seed, dataset, model)."""
    import numpy as np
    from scipy.stats import qmc

    stream = np.random.SeedSequence([seed, zlib.crc32(f"{dataset}/{model}".encode())])
    sobol = qmc.Sobol(d, scramble=True, seed=np.random.default_rng(stream))
    return sobol.random_base2(max(0, math.ceil(math.log2(max(n, 1)))))[:n]


# --- parameter budget ----------------------------------------------------------------------------------------

def parameter_count(model: str, symmetry: str, hyperparameters: dict, custom: str | None = None) -> int:
    """Trainable parameters of the model, without training and mostly without allocating it.

    Built on the meta device (no memory) when the model allows it. escnn's layers compute their bases from data
    at construction, which the meta device cannot hold; those models are built on the CPU at widths 2..5 and the
    count extrapolated as the quadratic in ``hidden`` through the first three (Newton's forward differences),
    accepted only if it predicts the fourth exactly; otherwise the model is built at full size. ``custom``: the
    builder of a model of one's own (``pipeline.models.build``).
    """
    import torch

    from .models import build, count_parameters

    try:
        with torch.device("meta"):
            return count_parameters(build(model, symmetry, custom, **hyperparameters))
    except (NotImplementedError, RuntimeError):  # escnn: "Cannot copy out of meta tensor", "... not on ... meta"
        pass
    hidden = int(hyperparameters["hidden"])
    if hidden > 5:
        c = [count_parameters(build(model, symmetry, custom, **{**hyperparameters, "hidden": w})) for w in (2, 3, 4, 5)]
        d1, d2 = c[1] - c[0], c[2] - c[1]
        if c[3] == c[2] + d2 + (d2 - d1):
            x = hidden - 2
            return c[0] + x * d1 + x * (x - 1) // 2 * (d2 - d1)
    return count_parameters(build(model, symmetry, custom, **hyperparameters))


# --- the trials ----------------------------------------------------------------------------------------------

def base_settings(run: dict, budget: dict) -> dict:
    """Trial 0: the run's own settings (``pipeline.runs.train_params`` of the config) with the tuning budget."""
    return {**run["training"], **run["model"], **budget}


def build_hyperparameters(settings: dict, input_length: int, frame_size) -> dict:
    """What ``pipeline.models.build`` receives for ``settings`` (as :func:`pipeline.train.train_run` builds it)."""
    from .runs import TRAINING_KEYS, build_arguments

    return build_arguments({k: v for k, v in settings.items() if k not in TRAINING_KEYS}, input_length, frame_size)


def draw_trials(run: dict, tuning_cfg: dict, dataset: str, model: str, frame_size, count=None) -> dict:
    """Trial 0 (the config's setting) and ``trials - 1`` accepted draws, with every rejected draw.

    ``run``: the model's run params without tuning (``pipeline.runs.train_params``); ``tuning_cfg``: the config's
    ``tuning`` section. ``count(model, symmetry, hyperparameters)`` gives a model's trainable parameters
    (default: :func:`parameter_count`, with the builder of a model of one's own from ``run``).
    """
    from functools import partial

    from .runs import family_of, symmetry_of
    from .models import PARAMETER_BUDGET

    family, symmetry = family_of(dataset), symmetry_of(dataset)
    count = count or partial(parameter_count, custom=run.get("builder"))
    dims = model_dimensions(parse_space(tuning_cfg["space"]), model, symmetry, run.get("builder"))
    n_trials, max_draws, seed = int(tuning_cfg["trials"]), int(tuning_cfg["max_draws"]), int(tuning_cfg["seed"])
    base = base_settings(run, tuning_cfg["budget"])

    def n_parameters(settings):
        hp = build_hyperparameters(settings, run["windows"]["input_length"], frame_size)
        return int(count(model, symmetry, hp))

    n0 = n_parameters(base)
    if n0 >= PARAMETER_BUDGET:
        raise ValueError(f"{dataset}/{model}: the config's own setting (trial 0) has {n0} trainable parameters, "
                         f"over the budget of {PARAMETER_BUDGET}; lower config['training']['models'][{family!r}]"
                         f"[{model!r}]['hidden']")
    trials = [{"trial": 0, "draw": None, "parameters": n0, "tuned": {d.name: base[d.name] for d in dims},
               "settings": base}]
    rejected = []
    seen = [trials[0]["tuned"]]
    if n_trials > 1:
        if not dims:
            raise ValueError(f"{dataset}/{model}: config['tuning']['space'] has no setting this model uses, so "
                             f"config['tuning']['trials'] must be 1")
        for j, point in enumerate(design(max_draws, len(dims), seed, dataset, model)):
            tuned = {d.name: d.value(float(u)) for d, u in zip(dims, point)}
            settings = {**base, **tuned}
            if tuned in seen:
                rejected.append({"draw": j, "reason": "duplicate", "parameters": None, "tuned": tuned})
                continue
            n = n_parameters(settings)
            if n >= PARAMETER_BUDGET:
                rejected.append({"draw": j, "reason": "over_budget", "parameters": n, "tuned": tuned})
                continue
            seen.append(tuned)
            trials.append({"trial": len(trials), "draw": j, "parameters": n, "tuned": tuned, "settings": settings})
            if len(trials) == n_trials:
                break
        else:
            raise ValueError(f"{dataset}/{model}: only {len(trials)} of config['tuning']['trials'] = {n_trials} "
                             f"draws are new and under {PARAMETER_BUDGET} parameters among the first "
                             f"config['tuning']['max_draws'] = {max_draws}; raise max_draws or narrow the space")
    for r in rejected:
        log.info("%s/%s: draw %d rejected (%s, %s parameters): %s", dataset, model, r["draw"], r["reason"],
                 r["parameters"], r["tuned"])
    return {"dataset": dataset, "model": model, "seed": seed, "dimensions": [asdict(d) for d in dims],
            "trials": trials, "rejected": rejected}


def write_yaml(data, path: str | os.PathLike) -> None:
    write_text(yaml.safe_dump(_plain(data), sort_keys=False), path)


def _plain(data):
    """Tuples as lists, numpy scalars as Python numbers: what ``yaml.safe_dump`` writes."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    return data.item() if hasattr(data, "item") else data


def draw_job(params: dict, dataset: str, model: str, store: str, output: str) -> dict:
    """The draw rule: the trials of (dataset, model) into ``trials.yaml`` (frame size read from the store).
    ``params``: ``{"run": the model's run params, "tuning": the config's tuning section}``."""
    from . import datasets

    frame_size = datasets.open_store(store).velocity.shape[-2:]  # lazily opened: no velocity read
    drawn = draw_trials(params["run"], params["tuning"], dataset, model, frame_size)
    write_yaml(drawn, output)
    return drawn


def validation_score(run: dict, store: str, model_path: str, device=None, cache_mb: float | None = None) -> float:
    """The selection score of a saved model (the one function that scores a trial): its RMSE on the selection
    windows (``pipeline.datasets.selection_windows``: validation windows none of whose frames is a test-future
    target) over the test horizon (``run['windows']['rollout']`` steps), read as the evaluation reads
    (``pipeline.loader``: in memory when the store fits ``cache_mb``). Promotion between rungs and the selection
    both rank by it."""
    from . import datasets
    from .loader import SampleSource
    from .gpus import resolve_device
    from .rollout import load_model, rollout_mse_per_step, split_rmse

    device = resolve_device(device or run["device"])
    wcfg = run["windows"]
    model, _ = load_model(model_path, device)
    source = SampleSource(store, device, cache_mb)
    valid = source.samples(datasets.selection_windows(source.dataset, wcfg))
    return split_rmse(rollout_mse_per_step(model, valid, run["eval_batch"]))[0]


def run_trial(params: dict, dataset: str, store: str, model: str, out_dir: str, output: str, device=None,
              cache_mb: float | None = None, previous: str | None = None) -> dict:
    """Train one trial to the end of its rung (``params``: ``pipeline.search.trial_params``) and write its
    ``result.json`` (score, size, epochs, time) and ``checkpoint.pt`` in ``out_dir``. ``cache_mb``: the memory for
    the velocity read, as for a training run. ``previous``: the trial's ``result.json`` of the rung before; the
    training then resumes from the ``checkpoint.pt`` beside it (copied, so that the earlier rung's files stay whole).

    A trial whose training diverges (non-finite loss, common at the largest learning rates) is recorded as
    ``diverged`` with an infinite score instead of failing the workflow (its checkpoint holds no training state:
    it is never promoted). The trial's best weights (``model.pt``) are deleted once scored: promotion and
    selection need only the score, the next rung the checkpoint, and the final runs train afresh.
    """
    from .train import Diverged, train_run

    trial, run, rung = params["trial"], params["run"], params["rung"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    start_epoch, seconds = 0, 0.0
    if previous is not None:
        before = json.loads(Path(previous).read_text())
        if before["status"] != "trained":
            raise ValueError(f"{previous}: trial {before['trial']} is {before['status']}; only a trained trial "
                             f"goes on to the next rung")
        start_epoch, seconds = int(before["epochs_run"]), float(before["seconds"])
        shutil.copyfile(Path(previous).parent / "checkpoint.pt", checkpoint)
    start = time.perf_counter()
    result = {"dataset": dataset, "model": model, **trial, "rung": rung["rung"], "rung_epochs": rung["epochs"],
              "settings": {**run["training"], **run["model"]}}
    try:
        fit = train_run(run, dataset, store, model, params["seed"], out_dir, device=device, progress=False,
                        cache_mb=cache_mb, keep_checkpoint=True)
    except Diverged as e:
        log.warning("%s/%s trial %d diverged in rung %d: %s", dataset, model, trial["trial"], rung["rung"], e)
        write_torch({"fingerprint": None, "diverged": str(e)}, checkpoint)
        result.update(status="diverged", valid_rmse=math.inf, best_epoch=None, epochs_run=None,
                      epochs_trained=e.epoch - start_epoch)
    else:
        model_path = out / "model.pt"
        result.update(status="trained", valid_rmse=validation_score(run, store, model_path, device, cache_mb),
                      best_epoch=fit.best_epoch, epochs_run=fit.epochs_run,
                      epochs_trained=fit.epochs_run - start_epoch)
        model_path.unlink()
    result["seconds"] = seconds + time.perf_counter() - start  # the trial's time over its rungs so far
    write_json(result, output)
    log.info("%s/%s trial %d, rung %d (%d epochs): %s, %d epochs trained, validation RMSE %.5f, %.1fs", dataset,
             model, trial["trial"], rung["rung"], rung["epochs"], result["status"], result["epochs_trained"],
             result["valid_rmse"], result["seconds"])
    return result


# --- promotion and selection --------------------------------------------------------------------------------

def rank(results: list[dict]) -> list[dict]:
    """Trials best first by validation score (the lower trial index on a tie), diverged ones left out. Only
    ``valid_rmse`` is read: whatever else a result holds (a test score, say) cannot change the order."""
    return sorted((r for r in results if math.isfinite(r["valid_rmse"])), key=lambda r: (r["valid_rmse"], r["trial"]))


def _all_diverged(results: list[dict], what: str) -> ValueError:
    where = sorted({(r["dataset"], r["model"]) for r in results})
    return ValueError(f"no trial of {where or what} has a finite validation RMSE (all diverged); lower the "
                      f"learning-rate bounds of config['tuning']['space']")


def promote(results: list[dict], count: int) -> list[int]:
    """The trials of one rung that go on to the next: the ``count`` best by :func:`rank`, never a diverged one
    (fewer than ``count`` when fewer trained)."""
    ranked = rank(results)
    if not ranked:
        raise _all_diverged(results, "this rung")
    return sorted(r["trial"] for r in ranked[:count])


def promote_job(result_files, next_rung: dict, output: str) -> dict:
    """The promote rule: ``promoted.yaml``, the trials of a rung that train on in ``next_rung``
    (an entry of ``pipeline.search.rung_schedule``), with every trial's score."""
    results = [json.loads(Path(p).read_text()) for p in result_files]
    promoted = promote(results, next_rung["trials"])
    first = results[0]
    out = {"dataset": first["dataset"], "model": first["model"], "rung": first["rung"],
           "epochs": first["rung_epochs"], "next_epochs": next_rung["epochs"], "promoted": promoted,
           "scores": {r["trial"]: r["valid_rmse"] for r in sorted(results, key=lambda r: r["trial"])}}
    write_yaml(out, output)
    log.info("%s/%s rung %d: trials %s of %d go on to %d epochs", out["dataset"], out["model"], out["rung"],
             promoted, len(results), next_rung["epochs"])
    return out


def select(results: list[dict]) -> dict:
    """The trial with the lowest validation RMSE (:func:`rank`) among the last rung's results."""
    ranked = rank(results)
    if not ranked:
        raise _all_diverged(results, "the last rung")
    return ranked[0]


def select_job(result_files, output: str) -> dict:
    """The select rule: ``best.yaml`` from the last rung's ``result.json``."""
    results = [json.loads(Path(p).read_text()) for p in result_files]
    best = select(results)
    selection = {"dataset": best["dataset"], "model": best["model"], "trial": best["trial"],
                 "valid_rmse": best["valid_rmse"], "parameters": best["parameters"], "trials": len(results),
                 "rung": best.get("rung", 0), "settings": best["tuned"]}
    write_yaml(selection, output)
    log.info("%s/%s: trial %d of %d in the last rung chosen, validation RMSE %.5f: %s", best["dataset"],
             best["model"], best["trial"], len(results), best["valid_rmse"], best["tuned"])
    return selection


# --- the table of every trial -------------------------------------------------------------------------------

def hyperparameters_table(drawn: list[dict], results: list[dict], selections: list[dict]):
    """Every trial and every rejected draw of every tuned (dataset, model): searched settings (blank where a
    model does not use one), parameters, status, validation RMSE, epochs and time at the last rung the trial
    reached (``rung``), the epochs it trained over all its rungs (``epochs_trained``, its share of the search's
    trial-epochs); ``chosen`` marks the selection. ``results``: every rung's results."""
    import pandas as pd

    chosen = {(s["dataset"], s["model"]): s["trial"] for s in selections}
    furthest, spent = {}, {}
    for r in results:
        key = (r["dataset"], r["model"], r["trial"])
        spent[key] = spent.get(key, 0) + r["epochs_trained"]
        if key not in furthest or r["rung"] > furthest[key]["rung"]:
            furthest[key] = r
    rows = []
    for key, r in furthest.items():
        rows.append({"dataset": r["dataset"], "model": r["model"], "trial": r["trial"], "draw": r["draw"],
                     "status": r["status"], "chosen": chosen.get((r["dataset"], r["model"])) == r["trial"],
                     "parameters": r["parameters"], "rung": r["rung"], "valid_rmse": r["valid_rmse"],
                     "seconds": r["seconds"], "epochs_run": r["epochs_run"], "best_epoch": r["best_epoch"],
                     "epochs_trained": spent[key], **r["tuned"]})
    for d in drawn:
        for r in d["rejected"]:
            rows.append({"dataset": d["dataset"], "model": d["model"], "trial": None, "draw": r["draw"],
                         "status": r["reason"], "chosen": False, "parameters": r["parameters"], "rung": None,
                         "valid_rmse": None, "seconds": None, "epochs_run": None, "best_epoch": None,
                         "epochs_trained": 0, **r["tuned"]})
    df = pd.DataFrame(rows)
    settings = {k for row in rows for k in row} - {"dataset", "model", "status", "chosen", "valid_rmse", "seconds"}
    for col in settings:  # integer columns stay integers where a blank (a model without the setting) is present
        if all(isinstance(row.get(col), (int, type(None))) for row in rows):
            df[col] = df[col].astype("Int64")
    return df.sort_values(["dataset", "model", "trial", "draw"], na_position="last").reset_index(drop=True)


def table_job(trials_files, result_files, selection_files, csv_path: str, figure_path: str, dpi: int,
              own: dict | None = None) -> None:
    """The table rule: ``hyperparameters.csv`` and the figure of validation RMSE over trials (``own``: the display
    names of the models of one's own)."""
    from . import figures

    drawn = [yaml.safe_load(Path(p).read_text()) for p in trials_files]
    results = [json.loads(Path(p).read_text()) for p in result_files]
    selections = [yaml.safe_load(Path(p).read_text()) for p in selection_files]
    df = hyperparameters_table(drawn, results, selections)
    write_table(df, csv_path)
    figures.save(figures.plot_tuning(df, own), figure_path, dpi=dpi)
