"""Where and how much trained relaxed C4 models break rotation symmetry, read off their relaxed weights
(the test of Wang et al., ICML 2024, "Discovering Symmetry Breaking in Physical Systems with Relaxed Group
Convolution", on our data).

Both relaxed rotation models are exactly equivariant on a linear subspace of their relaxed weights, and the
orthogonal projection ``P`` onto it is an average over the group; the distance from the equivariant point is
the size of ``D = w - P w`` relative to ``w``:

- RGroup (:class:`pipeline.models.rotation.RelaxedGroupConv` and ``RelaxedGroupProjection``): weights
  ``w_l(h)``, one per filter bank ``l`` and group element ``h`` of the input's regular representation
  (``(banks, 4)``). Equivariant iff every ``w_l`` is constant over ``h``: ``(P w)_l(h) = mean_h' w_l(h')``.
  Element ``h`` scales the input channel that answers to the input turned by ``h`` quarter turns, so on the
  rotation family it is the channel through which sims on side ``h`` act as sims on side 0 do on channel 0.
  The lifting layer has no relaxed weights (it is exact).
- RSteer (:class:`pipeline.models.rotation.RelaxedSteerableConv`): weights ``w_l(y)``, one per basis element
  ``l`` and kernel pixel ``y`` (``(..., n_basis, k, k)``). Equivariant iff every ``w_l`` is invariant under the
  quarter turns of ``y`` (a C4-invariant scalar function times a steerable kernel is steerable), so ``P``
  averages each C4 orbit of kernel pixels; a radial profile (centre, edges and corners weighted differently)
  keeps the layer equivariant and is not counted. The paper's ``L_sconv`` penalises every variation over ``y``,
  radial included. Element ``h`` holds the pixels whose direction from the kernel centre lies in
  ``[45, 135)`` degrees (measured counter-clockwise from ``+x``, ``y`` up as in the data) turned by ``h``
  quarter turns: ``h = 0`` up, 1 left, 2 down, 3 right, which is the flow direction of rotation-family side
  ``h`` (side 0 blows up from the bottom wall, side 2 down from the top).

Per layer: ``departure = ||D|| / ||w||`` (Frobenius norms; 0 at the equivariant point, at most 1), and per group
element ``h``: ``departure_h = ||D_h|| / ||w||`` over the entries of element ``h`` (``sum_h departure_h^2 =
departure^2``) and ``signed_h = sum sign(P w) D_h / ||w||``, positive where element ``h``'s weights are amplified
against the equivariant value (the ``signed_h`` sum to zero). The rotation family breaks C4 on side 2 (buoyancy
0.011 instead of 0.01): weights that single out the break have ``departure_2`` above the others.
"""
from __future__ import annotations

import json
import math
import os

import torch

from . import files
from .models.rotation import N_ROT, RGroup, RSteer, _kernel_rotation_index

RELAXED_MODELS = ("rgroup", "rsteer")
COLUMNS = ["dataset", "level", "data_equivariance_error", "model", "seed", "layer", "element", "departure", "signed"]


def rgroup_weights(model: RGroup) -> list[tuple[str, torch.Tensor]]:
    """``(layer name, w (banks, 4))`` of every relaxed layer of an RGroup, input to output."""
    layers = [(f"conv{i + 1}", c.w) for i, c in enumerate(model.convs)]
    return layers + [("projection", model.proj.w)]


def rsteer_weights(model: RSteer) -> list[tuple[str, torch.Tensor]]:
    """``(layer name, w (..., n_basis, k, k))`` of every layer of an RSteer, input to output."""
    return [(f"conv{i}", c.weight) for i, c in enumerate(model.convs)]


def kernel_elements(kernel_size: int) -> torch.Tensor:
    """``(k, k)`` long: the group element of each kernel pixel (see the module docstring), -1 at the centre."""
    c = kernel_size // 2
    dy, dx = torch.meshgrid(torch.arange(kernel_size) - c, torch.arange(kernel_size) - c, indexing="ij")
    angle = torch.rad2deg(torch.atan2(dy.double(), dx.double()))          # dy up: row index grows with y
    h = torch.div(torch.remainder(angle - 45.0, 360.0), 90.0, rounding_mode="floor").long()
    return torch.where((dy == 0) & (dx == 0), torch.full_like(h, -1), h)


def _orbit_average(w: torch.Tensor) -> torch.Tensor:
    """Mean of ``w (..., k, k)`` over the C4 orbit of each kernel pixel: the projection onto invariant weights."""
    k = w.shape[-1]
    flat = w.reshape(*w.shape[:-2], k * k)
    idx = _kernel_rotation_index(k).to(w.device)                           # flat[idx[g]]: turned by g
    return torch.stack([flat[..., idx[g]] for g in range(N_ROT)]).mean(dim=0).reshape(w.shape)


def _summary(d: torch.Tensor, sign: torch.Tensor, norm: torch.Tensor, element: torch.Tensor) -> list[dict]:
    """Rows ``element, departure, signed``: the layer (``all``), then each group element."""
    rows = [{"element": "all", "departure": float(d.norm() / norm), "signed": 0.0}]
    for h in range(N_ROT):
        m = element == h
        rows.append({"element": str(h), "departure": float(d[m].norm() / norm),
                     "signed": float((sign[m] * d[m]).sum() / norm)})
    return rows


def group_departure(w: torch.Tensor) -> list[dict]:
    """Departure of RGroup weights ``w (banks, 4)`` from the equivariant point, per layer and element."""
    w = w.detach().double()
    p = w.mean(dim=1, keepdim=True).expand_as(w)
    element = torch.arange(N_ROT).expand_as(w)
    return _summary(w - p, torch.sign(p), w.norm().clamp_min(1e-300), element)


def kernel_departure(w: torch.Tensor) -> list[dict]:
    """Departure of RSteer weights ``w (..., k, k)`` from the equivariant point, per layer and element."""
    w = w.detach().double()
    p = _orbit_average(w)
    element = kernel_elements(w.shape[-1]).to(w.device).expand_as(w)
    return _summary(w - p, torch.sign(p), w.norm().clamp_min(1e-300), element)


def analyse(model: torch.nn.Module) -> list[dict]:
    """Rows ``layer, element, departure, signed`` of a relaxed rotation model (RGroup or RSteer)."""
    if isinstance(model, RGroup):
        layers, measure = rgroup_weights(model), group_departure
    elif isinstance(model, RSteer):
        layers, measure = rsteer_weights(model), kernel_departure
    else:
        raise TypeError(f"symmetry_breaking: no relaxed C4 weights in a {type(model).__name__}")
    return [{"layer": name, **row} for name, w in layers for row in measure(w)]


def analyse_run(model_path: str | os.PathLike, metrics_path: str | os.PathLike) -> list[dict]:
    """Rows of :data:`COLUMNS` for one trained run (its ``model.pt`` and ``metrics.json``)."""
    from .rollout import load_model
    model, _ = load_model(model_path, "cpu")
    with open(metrics_path) as fh:
        m = json.load(fh)
    run = {"dataset": m["dataset"], "level": m.get("level", math.nan),
           "data_equivariance_error": m.get("data_equivariance_error", math.nan), "model": m["model"],
           "seed": m["seed"]}
    return [{**run, **row} for row in analyse(model)]


def write_table(model_paths, metrics_paths, output: str | os.PathLike):
    """``symmetry_breaking.csv``: :func:`analyse_run` of every run, one row per run, layer and element."""
    import pandas as pd
    if len(model_paths) != len(metrics_paths):
        raise ValueError("symmetry_breaking: one metrics.json per model.pt")
    rows = [r for mp, jp in zip(model_paths, metrics_paths) for r in analyse_run(mp, jp)]
    df = pd.DataFrame(rows, columns=COLUMNS)
    files.write_table(df, output)
    return df
