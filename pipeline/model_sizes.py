"""What is compared: every configured model's size and cost at its run settings (``results/tables/models.csv``).

The config's ``hidden`` means different things to different models (channels of a CNN, regular C4 fields of four
channels each for the group-equivariant rotation models, channels per scale for the SESN models), so the table
measures the width instead of trusting the name: ``channels`` is the largest channel count of any feature map the
model computes on a real input (dimension 1 of every intermediate activation; for the MLP the width of its hidden
layers), and ``channels_per_hidden`` is that over the config's ``hidden``. Beside it: trainable parameters (the
paper keeps every model under 10^7), and the CPU time of one forward + backward pass of one step on a batch of the
run's training batch size.
"""
from __future__ import annotations

import logging
import statistics
import time

import torch

from .models import PARAMETER_BUDGET, build, count_parameters
from .runs import Settings, build_arguments, family_of, symmetry_of
from .train import write_log

log = logging.getLogger("pipeline")

COLUMNS = ("family", "model", "parameters", "under_budget", "hidden", "channels", "channels_per_hidden", "layers",
           "kernel_size", "batch", "fwd_bwd_ms_cpu")


def _tensors(out):
    if isinstance(out, torch.Tensor):
        yield out
    elif hasattr(out, "tensor") and isinstance(out.tensor, torch.Tensor):  # escnn GeometricTensor
        yield out.tensor
    elif isinstance(out, (tuple, list)):
        for o in out:
            yield from _tensors(o)


@torch.no_grad()
def feature_channels(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Largest dimension 1 of the feature maps (activations with spatial axes) ``model`` computes on ``x``; for a
    model without any (the MLP), of its flat activations, leaving out the input and the output (also flattened)."""
    seen: list[tuple[int, int]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.extend((t.ndim, t.shape[1]) for t in _tensors(out)
                                                                      if t.ndim >= 2))
             for m in model.modules() if m is not model]
    try:
        y = model(x)
    finally:
        for h in hooks:
            h.remove()
    ends = {x.shape[1], x[0].numel(), y.shape[1], y[0].numel()}
    maps = [c for ndim, c in seen if ndim >= 4 and c not in ends]
    flat = [c for ndim, c in seen if ndim == 2 and c not in ends]
    return max(maps or flat or [int(y.shape[1])])


def time_forward_backward(model: torch.nn.Module, x: torch.Tensor, warmup: int = 1, repeat: int = 3) -> float:
    """Median milliseconds of ``loss = mean(model(x)^2) + model.regularizer(); loss.backward()``."""
    times = []
    for i in range(warmup + repeat):
        model.zero_grad(set_to_none=True)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        start = time.perf_counter()
        (model(x).pow(2).mean() + model.regularizer()).backward()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        if i >= warmup:
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def model_row(run: dict, dataset: str, model_name: str, grid: int, repeat: int = 3) -> dict:
    """The row of ``models.csv`` for one model at the settings it trains with on ``dataset``; ``run`` is the
    run's ``pipeline.runs.train_params``."""
    train_cfg = Settings(**run["training"])
    hp = build_arguments(run["model"], run["windows"]["input_length"], (grid, grid))
    torch.manual_seed(0)
    model = build(model_name, symmetry_of(dataset), run.get("builder"), **hp)
    x = torch.randn(train_cfg.batch, hp["in_frames"], 2, grid, grid)
    n = count_parameters(model)
    channels = feature_channels(model, x[:1])
    return {"family": family_of(dataset), "model": model_name, "parameters": n, "under_budget": n < PARAMETER_BUDGET,
            "hidden": hp.get("hidden"), "channels": channels,
            "channels_per_hidden": round(channels / hp["hidden"], 3) if hp.get("hidden") else None,
            "layers": hp.get("layers"), "kernel_size": hp.get("kernel_size"), "batch": train_cfg.batch,
            "fwd_bwd_ms_cpu": round(time_forward_backward(model, x, repeat=repeat), 1)}


def write_models_table(params: dict, output: str, repeat: int = 3) -> list[dict]:
    """``models.csv``: a row per configured (family, model) (``pipeline.runs.models_table_params``; the
    equivariance levels as ``equivariance_0``), timed on this job's CPU threads."""
    rows = []
    for r in params["runs"]:
        rows.append(model_row(r["run"], r["dataset"], r["model"], params["grid"], repeat))
        log.info("%s", rows[-1])
    write_log(rows, output, COLUMNS)
    return rows
