"""Running a model on a dataset, shared by training, evaluation and the figures: the velocity as one tensor (its
windows are ``pipeline.loader.Samples``), the autoregressive rollout and its per-step errors, and the trained
model rebuilt from its file (the device a job computes on is chosen by ``pipeline.gpus``).

A model maps ``(B, L, 2, H, W)`` input frames to the next frame; :func:`rollout` feeds each prediction back
as the newest input frame. RMSE of a split (docs/protocol.md) is over every rolled-out step, sample, component and
pixel; it is assembled from :func:`pipeline.metrics.rmse_per_step` over batches. Every sample and step has the
same number of elements, so the batch-size weighted mean of squared per-step RMSEs is the per-step MSE of the
whole split, and the mean over steps of that is its MSE: the result equals ``metrics.rmse`` on the whole split.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from . import datasets, metrics
from .loader import Samples
from .models import build


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


def frames_tensor(dataset: datasets.Dataset, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(dataset.velocity, dtype=np.float32)).to(device)


@torch.no_grad()
def rollout_mse_per_step(model: torch.nn.Module, samples: Samples, batch: int,
                         steps: int | None = None) -> torch.Tensor:
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


def load_model(path: str | os.PathLike, device="cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the model saved by :func:`pipeline.train.train_run` and load its best weights (a model of one's own
    from the builder it was trained with, imported as the training job did)."""
    saved = torch.load(path, map_location=device, weights_only=True)
    model = build(saved["name"], saved["symmetry"], saved.get("builder"), **saved["hyperparameters"]).to(device)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved
