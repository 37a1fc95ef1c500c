"""Rollouts and their errors: the autoregressive rollout shared by training, evaluation and the figures, the
in-memory sample windows, and the metrics of a trained run (``metrics.json``).

A model maps ``(B, L, 2, H, W)`` input frames to the next frame; :func:`rollout` feeds each prediction back
as the newest input frame. RMSE of a split (PROTOCOL.md) is over every rolled-out step, sample, component and
pixel; it is assembled from :func:`pipeline.metrics.rmse_per_step` over batches. Every sample and step has the
same number of elements, so the batch-size weighted mean of squared per-step RMSEs is the per-step MSE of the
whole split, and the mean over steps of that is its MSE: the result equals ``metrics.rmse`` on the whole split.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from . import datasets, metrics, numerics
from .models import count_parameters

log = logging.getLogger("pipeline")

TEST_SPLITS = ("test_future", "test_domain")


def rollout(model: torch.nn.Module, inputs: torch.Tensor, steps: int) -> torch.Tensor:
    """Roll ``model`` out ``steps`` frames from ``inputs`` ``(B, L, 2, H, W)``: returns ``(B, steps, 2, H, W)``.

    Gradients flow through the whole rollout when enabled (training backpropagates through it).
    """
    if inputs.ndim != 5:
        raise ValueError(f"rollout: inputs must be (B, L, 2, H, W), got {tuple(inputs.shape)}")
    x, preds = inputs, []
    for _ in range(steps):
        y = model(x)
        preds.append(y)
        x = torch.cat((x[:, 1:], y[:, None]), dim=1)
    return torch.stack(preds, dim=1)


class Samples:
    """The windows of one split, gathered from the in-memory velocity tensor by indexing (no store reads).

    ``frames`` is the whole dataset ``(sims, frames, 2, H, W)`` as one tensor (on the training device), shared
    by every split; ``get(idx)`` returns inputs ``(B, L, 2, H, W)`` and targets ``(B, out_length, 2, H, W)``.
    """

    def __init__(self, frames: torch.Tensor, windows: datasets.Windows):
        self.frames, self.windows = frames, windows
        n = len(windows)
        self.sim = torch.tensor([windows.index(i)[0] for i in range(n)], device=frames.device)
        self.first = torch.tensor([windows.slices(i)[0].start for i in range(n)], device=frames.device)
        self.input_length, self.out_length = windows.input_length, windows.out_length
        self._span = torch.arange(self.input_length + self.out_length, device=frames.device)

    def __len__(self) -> int:
        return len(self.windows)

    def get(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = idx.to(self.frames.device)
        w = self.frames[self.sim[idx, None], self.first[idx, None] + self._span]
        return w[:, :self.input_length], w[:, self.input_length:]

    def batches(self, size: int):
        """Every sample once, in order, ``size`` at a time."""
        for lo in range(0, len(self), size):
            yield self.get(torch.arange(lo, min(lo + size, len(self))))


def frames_tensor(dataset: datasets.Dataset, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(dataset.velocity, dtype=np.float32)).to(device)


@torch.no_grad()
def rollout_mse_per_step(model: torch.nn.Module, samples: Samples, batch: int, steps: int | None = None) -> torch.Tensor:
    """Mean squared error of each rolled-out step over the whole split (see the module docstring)."""
    steps = steps or samples.out_length
    total, n = None, 0
    for x, y in samples.batches(batch):
        sq = metrics.rmse_per_step(rollout(model, x, steps), y[:, :steps]) ** 2 * x.shape[0]
        total = sq if total is None else total + sq
        n += x.shape[0]
    if n == 0:
        raise ValueError("rollout_mse_per_step: the split has no samples")
    return total / n


def split_rmse(mse_per_step: torch.Tensor) -> tuple[float, list[float]]:
    """``(rmse over all steps, [rmse of each step])`` from per-step MSEs."""
    return math.sqrt(float(mse_per_step.mean())), [math.sqrt(float(v)) for v in mse_per_step]


@torch.no_grad()
def mean_rotation_equivariance_error(model: torch.nn.Module, samples: Samples, batch: int) -> float:
    """Definition 3.1 (C4, k = 1, 2, 3) averaged over all samples of ``samples`` (inputs only)."""
    total, n = 0.0, 0
    for x, _ in samples.batches(batch):
        total += float(metrics.rotation_equivariance_error(model, x)) * x.shape[0]
        n += x.shape[0]
    return total / n


def load_model(path: str | os.PathLike, device="cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model saved by :func:`pipeline.train.train_run` and load its best weights."""
    from .models import build
    saved = torch.load(path, map_location=device, weights_only=True)
    model = build(saved["name"], saved["symmetry"], **saved["hyperparameters"]).to(device)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved


def evaluate_run(config: dict, dataset_name: str, store: str, model_path: str, output: str, device=None) -> dict:
    """Write ``metrics.json`` of one trained run; returns its contents.

    Family datasets: RMSE over the ``windows["rollout"]``-step rollout of both test splits, overall and per step.
    Every dataset: validation RMSE over the same number of steps. Rotation-symmetric datasets (rotation and the
    equivariance levels): the model equivariance error on the validation inputs.
    """
    from .loader import SampleSource
    from .train import family_of, resolve_device, symmetry_of

    numerics_state = numerics.configure("fp32", deterministic=True)
    device = resolve_device(config, device)
    family = family_of(dataset_name, config)
    wcfg = config["windows"][family]
    batch = config["training"]["eval_batch"]
    model, saved = load_model(model_path, device)
    source = SampleSource(store, device, config["training"]["cache_mb"])  # in memory when the store fits the cache
    ds = source.dataset
    steps = int(wcfg["rollout"])
    out = {
        "dataset": dataset_name, "model": saved["name"], "seed": saved["seed"], "symmetry": saved["symmetry"],
        "alpha": saved["hyperparameters"].get("alpha"), "parameters": count_parameters(model),
        "best_epoch": saved["best_epoch"], "epochs_run": saved["epochs_run"], "rollout_steps": steps,
        "training_precision": saved["training"].get("precision", "fp32"),
        "training_deterministic": saved["training"].get("deterministic", True),
        "evaluation_numerics": numerics_state, "device": str(device),
    }
    valid = source.samples(datasets.split_windows(ds, "valid", wcfg, steps))
    out["valid_rmse"], out["valid_rmse_per_step"] = split_rmse(rollout_mse_per_step(model, valid, batch))
    for split in TEST_SPLITS:
        if split in wcfg:
            samples = source.samples(datasets.split_windows(ds, split, wcfg))
            out[f"{split}_rmse"], out[f"{split}_rmse_per_step"] = split_rmse(rollout_mse_per_step(model, samples, batch))
    if symmetry_of(dataset_name, config) == "rotation":
        out["equivariance_error"] = mean_rotation_equivariance_error(model, valid, batch)
    if family == "equivariance":
        out["level"] = ds.attrs["level"]
        out["data_equivariance_error"] = ds.attrs["data_equivariance_error"]
    bad = [k for k, v in out.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"{dataset_name}/{saved['name']}/seed{saved['seed']}: non-finite {', '.join(bad)}")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{output}.partial"
    with open(tmp, "w") as fh:
        json.dump(out, fh, indent=1)
    os.replace(tmp, output)
    log.info("%s/%s/seed%s: %s", dataset_name, saved["name"], saved["seed"],
             ", ".join(f"{k} {v:.4f}" for k, v in out.items() if k.endswith(("_rmse", "_error")) and isinstance(v, float)))
    return out
