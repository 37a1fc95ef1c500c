"""The metrics of a trained run (``metrics.json``): for each split, from one rollout of its samples, the RMSE
(overall and per step) and the benchmark metrics of ``pipeline.metrics`` (VRMSE, nRMSE, correlation and its time,
RMSE per spectral band); and the model equivariance error (Definition 3.1). The rollout and its errors are
``pipeline.rollout``'s.
"""
from __future__ import annotations

import logging
import math

import torch

from . import datasets, metrics, numerics
from .files import write_json
from .models import count_parameters
from .loader import SampleSource
from .rollout import Samples, load_model, resolve_device, rollout, split_rmse

log = logging.getLogger("pipeline")

TEST_SPLITS = ("test_future", "test_domain")


@torch.no_grad()
def split_scores(model: torch.nn.Module, samples: Samples, batch: int, prefix: str, steps: int | None = None,
                 threshold: float = metrics.CORRELATION_THRESHOLD) -> dict:
    """Every metric of a split from one rollout of its samples, as ``{prefix}_{name}`` entries: the RMSE (overall
    and per step, as :func:`split_rmse`) and the benchmark metrics of :func:`pipeline.metrics.summarise_rollout`
    (VRMSE, nRMSE, correlation per step and over the rollout, correlation time, RMSE per spectral band). Each
    per-step score is a mean over samples, so the batch-size weighted mean of the batches' scores is the split's."""
    steps = steps or samples.out_length
    total, n = {}, 0
    for x, y in samples.batches(batch):
        for name, v in metrics.rollout_scores_per_step(rollout(model, x, steps), y[:, :steps]).items():
            total[name] = total.get(name, 0.0) + v * x.shape[0]
        n += x.shape[0]
    if n == 0:
        raise ValueError("split_scores: the split has no samples")
    scores = {name: v / n for name, v in total.items()}
    rmse, rmse_per_step = split_rmse(scores["mse"])
    out = {"rmse": rmse, "rmse_per_step": rmse_per_step, **metrics.summarise_rollout(scores, threshold)}
    return {f"{prefix}_{name}": v for name, v in out.items()}


@torch.no_grad()
def mean_rotation_equivariance_error(model: torch.nn.Module, samples: Samples, batch: int) -> float:
    """Definition 3.1 (C4, k = 1, 2, 3) averaged over all samples of ``samples`` (inputs only)."""
    total, n = 0.0, 0
    for x, _ in samples.batches(batch):
        total += float(metrics.rotation_equivariance_error(model, x)) * x.shape[0]
        n += x.shape[0]
    return total / n


def evaluate_run(params: dict, dataset_name: str, store: str, model_path: str, output: str, device=None,
                 cache_mb: float | None = None, scratch: str | None = None) -> dict:
    """Write ``metrics.json`` of one trained run; returns its contents. ``params``: the rule's
    (``pipeline.runs.evaluate_params``); ``device`` overrides its device; ``cache_mb``: the memory for the velocity
    read (``pipeline.loader``; ``None``: the whole store in memory); ``scratch``: as for training (``train_run``).

    Family datasets: RMSE over the ``windows["rollout"]``-step rollout of both test splits, overall and per step.
    Every dataset: validation RMSE over the same number of steps. Rotation-symmetric datasets (rotation and the
    equivariance levels): the model equivariance error on the validation inputs. Beside each split's RMSE, from the
    same rollout, the benchmark metrics of :func:`split_scores` (correlation time at the params'
    ``correlation_threshold``, ``evaluation.correlation_threshold`` of the config).
    """
    numerics_state = numerics.configure("fp32", deterministic=True)
    device = resolve_device(device or params["device"])
    wcfg, batch = params["windows"], params["eval_batch"]
    model, saved = load_model(model_path, device)
    source = SampleSource(store, device, cache_mb, scratch)  # in memory when the store fits the cache
    ds = source.dataset
    family = ds.attrs["family"]
    steps = int(wcfg["rollout"])
    out = {
        "dataset": dataset_name, "model": saved["name"], "seed": saved["seed"], "symmetry": saved["symmetry"],
        "alpha": saved["hyperparameters"].get("alpha"), "parameters": count_parameters(model),
        "best_epoch": saved["best_epoch"], "epochs_run": saved["epochs_run"], "rollout_steps": steps,
        "training_precision": saved["training"].get("precision", "fp32"),
        "training_deterministic": saved["training"].get("deterministic", True),
        "evaluation_numerics": numerics_state, "device": str(device),
    }
    threshold = params["correlation_threshold"]
    valid = source.samples(datasets.split_windows(ds, "valid", wcfg, steps))
    out.update(split_scores(model, valid, batch, "valid", threshold=threshold))
    for split in TEST_SPLITS:
        if split in wcfg:
            samples = source.samples(datasets.split_windows(ds, split, wcfg))
            out.update(split_scores(model, samples, batch, split, threshold=threshold))
    if saved["symmetry"] == "rotation":
        out["equivariance_error"] = mean_rotation_equivariance_error(model, valid, batch)
    if family == "equivariance":
        out["level"] = ds.attrs["level"]
        out["data_equivariance_error"] = ds.attrs["data_equivariance_error"]
    bad = [k for k, v in out.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"{dataset_name}/{saved['name']}/seed{saved['seed']}: non-finite {', '.join(bad)}")
    write_json(out, output)
    log.info("%s/%s/seed%s: %s", dataset_name, saved["name"], saved["seed"],
             ", ".join(f"{k} {v:.4f}" for k, v in out.items() if k.endswith(("_rmse", "_error")) and isinstance(v, float)))
    return out
