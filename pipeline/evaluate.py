"""The metrics of a trained run (``metrics.json``): for each split, from one rollout of its samples, the RMSE
(overall and per step) and the benchmark metrics of ``pipeline.metrics`` (VRMSE, nRMSE, correlation and its time,
fRMSE per spectral band, binned spectral MSE); and the model equivariance error (Definition 3.1). The rollout and
its errors are ``pipeline.rollout``'s; docs/metrics.md defines every metric.

Persistence (:class:`Persistence`, :func:`evaluate_persistence`), the last input frame repeated for every step,
is scored by the same functions on the same samples, so its numbers compare with the models' one for one.
"""
from __future__ import annotations

import logging
import math

import torch

from . import datasets, gpus, metrics, numerics
from .files import write_json
from .models import count_parameters
from .loader import Samples, SampleSource
from .gpus import resolve_device
from .rollout import load_model, rollout, split_rmse
from .runs import PERSISTENCE
from .train import model_report

log = logging.getLogger("pipeline")

TEST_SPLITS = ("test_future", "test_domain")


@torch.no_grad()
def split_scores(model: torch.nn.Module, samples: Samples, batch: int, prefix: str, steps: int | None = None,
                 thresholds=metrics.CORRELATION_THRESHOLDS) -> dict:
    """Every metric of a split from one rollout of its samples, as ``{prefix}_{name}`` entries: the RMSE (overall
    and per step, as :func:`split_rmse`) and the benchmark metrics of :func:`pipeline.metrics.summarise_rollout`
    (every name of :data:`pipeline.metrics.PER_STEP_METRICS` per step and over the rollout, the correlation time at
    each of ``thresholds``: ``{prefix}_correlation_time_0.8``, ...).
    Each per-step score is a mean over samples, so the batch-size weighted mean of the batches' scores is the
    split's: the split is scored as one batch whatever ``batch`` is."""
    steps = steps or samples.out_length
    total, n, frame = {}, 0, None
    for x, y in samples.batches(batch):
        frame = tuple(y.shape[-2:])
        for name, v in metrics.rollout_scores_per_step(rollout(model, x, steps), y[:, :steps]).items():
            total[name] = total.get(name, 0.0) + v * x.shape[0]
        n += x.shape[0]
    if n == 0:
        raise ValueError("split_scores: the split has no samples")
    scores = {name: v / n for name, v in total.items()}
    rmse, rmse_per_step = split_rmse(scores["mse"])
    out = {"rmse": rmse, "rmse_per_step": rmse_per_step, **metrics.summarise_rollout(scores, frame, thresholds)}
    return {f"{prefix}_{name}": v for name, v in out.items()}


@torch.no_grad()
def mean_rotation_equivariance_error(model: torch.nn.Module, samples: Samples, batch: int) -> float:
    """Definition 3.1 (C4, k = 1, 2, 3) averaged over all samples of ``samples`` (inputs only)."""
    total, n = 0.0, 0
    for x, _ in samples.batches(batch):
        total += float(metrics.rotation_equivariance_error(model, x)) * x.shape[0]
        n += x.shape[0]
    return total / n


class Persistence(torch.nn.Module):
    """The next frame is the last input frame: rolled out, every step repeats the window's last input frame.
    No parameters; exactly equivariant to every symmetry of the data (it commutes with any action on frames)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1]


def _split_metrics(model: torch.nn.Module, source: SampleSource, params: dict,
                   variants: dict[str, torch.nn.Module] | None = None) -> tuple[dict, Samples]:
    """Every split's scores of ``model`` (validation over the test rollout length, then the test splits the windows
    have) and the validation samples. ``variants`` (``{prefix: module}``): modules whose test splits are scored too,
    their keys prefixed."""
    ds, wcfg, batch = source.dataset, params["windows"], params["eval_batch"]
    steps, thresholds = int(wcfg["rollout"]), params["correlation_thresholds"]
    valid = source.samples(datasets.split_windows(ds, "valid", wcfg, steps))
    out = split_scores(model, valid, batch, "valid", thresholds=thresholds)
    tests = {split: source.samples(datasets.split_windows(ds, split, wcfg)) for split in TEST_SPLITS if split in wcfg}
    for prefix, scored in {"": model, **(variants or {})}.items():
        for split, samples in tests.items():
            out.update(split_scores(scored, samples, batch, prefix + split, thresholds=thresholds))
    return out, valid


def _check_finite(out: dict, name: str) -> None:
    bad = [k for k, v in out.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"{name}: non-finite {', '.join(bad)}")


def evaluate_run(params: dict, dataset_name: str, store: str, model_path: str, output: str, device=None,
                 cache_mb: float | None = None, scratch: str | None = None) -> dict:
    """Write ``metrics.json`` of one trained run; returns its contents. ``params``: the rule's
    (``pipeline.runs.evaluate_params``); ``device`` overrides its device; ``cache_mb``: the memory for the velocity
    read (``pipeline.loader``; ``None``: the whole store in memory); ``scratch``: as for training (``train_run``).

    Family datasets: RMSE over the ``windows["rollout"]``-step rollout of both test splits, overall and per step.
    Every dataset: validation RMSE over the same number of steps. Rotation-symmetric datasets (rotation and the
    equivariance levels): the model equivariance error on the validation inputs. Beside each split's RMSE, from the
    same rollout, the benchmark metrics of :func:`split_scores` (a correlation time at each of the params'
    ``correlation_thresholds``, ``evaluation.correlation_thresholds`` of the config). ``gpu`` and ``training_gpu``:
    where the evaluation and the training ran (``pipeline.gpus.record``: device name, GPU index, slot). A model with
    ``evaluation_variants()`` (``{name: module}``) has each variant's test scores and equivariance error written too,
    as ``{name}_{key}`` (``fields_zeroed_test_future_rmse``: symmetry-breaking inputs zeroed).
    """
    numerics_state = numerics.configure("fp32", deterministic=True)
    device = resolve_device(device or params["device"])
    batch = params["eval_batch"]
    model, saved = load_model(model_path, device)
    source = SampleSource(store, device, cache_mb, scratch)  # in memory when the store fits the cache
    ds = source.dataset
    family = ds.attrs["family"]
    steps = int(params["windows"]["rollout"])
    out = {
        "dataset": dataset_name, "model": saved["name"], "seed": saved["seed"], "symmetry": saved["symmetry"],
        "alpha": saved["hyperparameters"].get("alpha"), "parameters": count_parameters(model),
        "best_epoch": saved["best_epoch"], "epochs_run": saved["epochs_run"], "rollout_steps": steps,
        "training_precision": saved["training"].get("precision", "fp32"),
        "training_deterministic": saved["training"].get("deterministic", True),
        "evaluation_numerics": numerics_state, "device": str(device),
        "gpu": gpus.record(device), "training_gpu": saved.get("gpu"),
    }
    out.update({f"model_{k}": v for k, v in model_report(model).items()})  # ACE's gamma_i ...: model_gamma_1, ...
    # a model may name variants of itself to be scored beside it (symmetry-breaking inputs zeroed, say): the keys
    # of variant v are v's own prefixed by "v_" (v_test_future_rmse, ..., v_equivariance_error)
    variants = {f"{name}_": m for name, m in getattr(model, "evaluation_variants", dict)().items()}
    scores, valid = _split_metrics(model, source, params, variants)
    out.update(scores)
    if saved["symmetry"] == "rotation":
        for prefix, scored in {"": model, **variants}.items():
            out[prefix + "equivariance_error"] = mean_rotation_equivariance_error(scored, valid, batch)
    if family == "equivariance":
        out["level"] = ds.attrs["level"]
        out["data_equivariance_error"] = ds.attrs["data_equivariance_error"]
    _check_finite(out, f"{dataset_name}/{saved['name']}/seed{saved['seed']}")
    write_json(out, output)
    log.info("%s/%s/seed%s: %s", dataset_name, saved["name"], saved["seed"],
             ", ".join(f"{k} {v:.4f}" for k, v in out.items()
                       if k.endswith(("_rmse", "_error")) and isinstance(v, float)))
    return out


def evaluate_persistence(params: dict, dataset_name: str, store: str, output: str, device=None,
                         cache_mb: float | None = None) -> dict:
    """Write the ``metrics.json`` of persistence on ``dataset_name`` (:class:`Persistence`): the entries of
    :func:`evaluate_run` that apply (every split's scores from the same functions and samples; ``seed`` null,
    ``parameters`` 0, no training keys). ``params``: the evaluation's (``pipeline.runs.evaluate_params``)."""
    numerics_state = numerics.configure("fp32", deterministic=True)
    device = resolve_device(device or params["device"])
    source = SampleSource(store, device, cache_mb)
    out = {"dataset": dataset_name, "model": PERSISTENCE, "seed": None, "parameters": 0,
           "rollout_steps": int(params["windows"]["rollout"]), "evaluation_numerics": numerics_state,
           "device": str(device)}
    out.update(_split_metrics(Persistence(), source, params)[0])
    _check_finite(out, f"{dataset_name}/{PERSISTENCE}")
    write_json(out, output)
    log.info("%s/%s: %s", dataset_name, PERSISTENCE,
             ", ".join(f"{k} {v:.4f}" for k, v in out.items() if k.endswith("_rmse") and isinstance(v, float)))
    return out
