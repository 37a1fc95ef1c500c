"""Shared test helpers (e3nn's ``assert_equivariant`` in spirit), used by every model test."""
from __future__ import annotations

from typing import Callable

import torch


def equivariance_gap(f: Callable, x: torch.Tensor, act_in: Callable, act_out: Callable | None = None,
                     crop: int = 0) -> tuple[float, float]:
    """``(max |f(act_in(x)) - act_out(f(x))|, max |act_out(f(x))|)`` after an optional border crop."""
    act_out = act_out or act_in
    with torch.no_grad():
        lhs, rhs = f(act_in(x)), act_out(f(x))
    if crop:
        lhs, rhs = lhs[..., crop:-crop, crop:-crop], rhs[..., crop:-crop, crop:-crop]
    return float((lhs - rhs).abs().max()), float(rhs.abs().max())


def assert_equivariant(f: Callable, x: torch.Tensor, act_in: Callable, act_out: Callable | None = None,
                       rtol: float | None = None, crop: int = 0) -> float:
    """Assert ``f(act_in(x)) == act_out(f(x))`` to ``rtol`` times the output scale; return the max error.

    ``act_out`` defaults to ``act_in``. ``crop`` drops that many border pixels before comparing (for
    actions exact only away from the borders). The default tolerance is round-off for the dtype.
    """
    err, scale = equivariance_gap(f, x, act_in, act_out, crop)
    if rtol is None:
        rtol = 1e-5 if x.dtype == torch.float32 else 1e-10
    atol = rtol * (scale or 1.0)
    assert err <= atol, f"not equivariant: max |f(gx) - g f(x)| = {err:.3e} > {atol:.3e} (output scale {scale:.3e})"
    return err
