"""Metrics shared by training, evaluation and the tests: RMSE and equivariance error.

RMSE of a rollout (PROTOCOL.md): the square root of the mean squared error over every rolled-out step,
sample, component and pixel. Per-step RMSE averages over everything but the step axis.

Model equivariance error (paper Definition 3.1): the mean absolute difference ``|f(g x) - g f(x)|`` over
samples, pixels, components and the non-trivial elements ``g`` of the group.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch


def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Root mean squared error over all elements."""
    if pred.shape != target.shape:
        raise ValueError(f"rmse: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return torch.sqrt(torch.mean((pred - target) ** 2))


def rmse_per_step(pred: torch.Tensor, target: torch.Tensor, step_dim: int = 1) -> torch.Tensor:
    """RMSE for each rollout step; ``pred`` and ``target`` are ``(B, steps, ...)`` by default."""
    if pred.shape != target.shape:
        raise ValueError(f"rmse_per_step: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    sq = (pred - target) ** 2
    dims = [d for d in range(sq.ndim) if d != step_dim % sq.ndim]
    return torch.sqrt(sq.mean(dim=dims))


def equivariance_error(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       actions: Iterable[tuple[Callable, Callable]]) -> torch.Tensor:
    """Mean ``|f(act_in(x)) - act_out(f(x))|`` over the given ``(act_in, act_out)`` pairs.

    ``act_in`` acts on the model input (e.g. every frame of ``(B, T, 2, H, W)``), ``act_out`` on its output.
    """
    fx = f(x)
    errors = [torch.mean(torch.abs(f(act_in(x)) - act_out(fx))) for act_in, act_out in actions]
    if not errors:
        raise ValueError("equivariance_error: no group elements given")
    return torch.stack(errors).mean()


def rotation_actions(ks: Iterable[int] = (1, 2, 3)):
    """``(act_in, act_out)`` pairs of the C4 quarter turns ``ks`` for models on velocity fields."""
    from .symmetry import rotate
    return [((lambda x, k=k: rotate(x, k)), (lambda y, k=k: rotate(y, k))) for k in ks]


def rotation_equivariance_error(model: Callable, x: torch.Tensor) -> torch.Tensor:
    """Definition 3.1 for C4: mean over the three non-trivial quarter turns."""
    return equivariance_error(model, x, rotation_actions((1, 2, 3)))
