"""Where and how much trained relaxed C4 models break rotation symmetry, measured on what each relaxed layer applies:
its assembled convolution kernel (the test of Wang et al., ICML 2024, "Discovering Symmetry Breaking in Physical
Systems with Relaxed Group Convolution", on our data; docs/symmetry-breaking.md).

A convolution ``out(x) = sum_y K(y) f(x + y)`` from fields of representation ``rho_in`` to ``rho_out`` is
C4-equivariant if and only if ``K = g . K`` for every quarter turn ``g``, where ``(g . K)(y) = rho_out(g) K(R_g^-1 y)
rho_in(g)^T`` (``R_g`` turns the kernel's pixel grid; the representations are orthogonal). The group average
``P K = mean_g g . K`` is the orthogonal projection (Frobenius inner product) onto the equivariant kernels, so a
layer's departure ``||K - P K|| / ||K||`` is 0 exactly when the layer is equivariant and at most 1. On a periodic
domain the layer's linear map is the convolution itself and its departure, measured the same way on the map, is the
same number (the test checks it).

The relaxed weights are not measured themselves: many weight settings assemble the same kernel (a filter bank
whose filter is zero, a coefficient at a pixel where its basis kernel vanishes), so a weight-space distance can be
large for an exactly equivariant layer.

- RGroup (:class:`pipeline.models.rotation.RelaxedGroupConv`, ``RelaxedGroupProjection``): kernels in our frame,
  regular fields ``(g . f)(x, i) = f(R^-g x, i - g)`` and vector fields turned by ``R^g``. The lifting layer has no
  relaxed weights and is exact, so it is not listed.
- RSteer (:class:`pipeline.models.rotation.RelaxedSteerableConv`): its layers work in escnn's frame (``vy``
  reversed), which is our frame reflected; the kernel is written in our frame first (``vy`` negated for vector
  fields, the regular index ``i`` read as ``-i``), then measured as above.

Per layer the table holds ``departure = ||D|| / ||K||`` with ``D = K - P K`` (element ``all``) and, per group element
``h``, ``departure_h = ||D_h|| / ||K||`` over the kernel entries of element ``h`` (``sum_h departure_h^2 <=
departure^2``) and ``signed_h = sum sign(P K) D_h / ||K||``, positive where element ``h``'s entries are amplified
against the equivariant kernel. Element ``h`` of a kernel entry: for RGroup the input's regular index ``h`` (the
channel that answers to the input turned by ``h`` quarter turns: on the rotation family, the channel through which
sims on side ``h`` act as sims on side 0 do on channel 0); for RSteer the kernel pixels whose direction from the
centre lies in ``[45, 135)`` degrees (counter-clockwise from ``+x``, ``y`` up as in the data) turned by ``h`` quarter
turns: ``h = 0`` up, 1 left, 2 down, 3 right, the flow direction of rotation-family side ``h`` (the centre pixel
belongs to no element). The rotation family breaks C4 on side 2 (buoyancy 0.011 instead of 0.01).

Beside the relaxed kernels, the models that learn their degree of symmetry breaking as a number per layer
(:data:`pipeline.models.GAMMA_MODELS`: ACE's ``gamma_i``, the weight of each layer's non-equivariant part) are
tabulated from their runs' metrics.json (:func:`write_gamma_table`, ``results/tables/ace_gamma.csv``).
"""
from __future__ import annotations

import json
import math
import os

import torch

from . import files
from .models import GAMMA_MODELS  # noqa: F401  (the models whose gamma_i this module tabulates)
from .models.rotation import (N_ROT, RelaxedGroupConv, RelaxedGroupProjection, RelaxedSteerableConv, RGroup, RSteer,
                              _kernel_rotation_index, _rep_matrices)

COLUMNS = ["dataset", "level", "data_equivariance_error", "model", "seed", "layer", "element", "departure", "signed"]
FIELD_KINDS = {2: "vector", N_ROT: "regular"}   # a field's size -> its representation (RSteer's basis shape)


def kernel_elements(kernel_size: int) -> torch.Tensor:
    """``(k, k)`` long: the group element of each kernel pixel (see the module docstring), -1 at the centre."""
    c = kernel_size // 2
    dy, dx = torch.meshgrid(torch.arange(kernel_size) - c, torch.arange(kernel_size) - c, indexing="ij")
    angle = torch.rad2deg(torch.atan2(dy.double(), dx.double()))          # dy up: row index grows with y
    h = torch.div(torch.remainder(angle - 45.0, 360.0), 90.0, rounding_mode="floor").long()
    return torch.where((dy == 0) & (dx == 0), torch.full_like(h, -1), h)


def group_average(kernel: torch.Tensor, rho_out: torch.Tensor, rho_in: torch.Tensor) -> torch.Tensor:
    """``P K = mean_g rho_out(g) K(R_g^-1 y) rho_in(g)^T`` of a kernel ``(n_out, n_in, k, k)`` in our frame, with the
    representations ``rho_* (4, n, n)`` (orthogonal): the nearest C4-equivariant kernel."""
    n_out, n_in, k, _ = kernel.shape
    flat = kernel.reshape(n_out, n_in, k * k)
    idx = _kernel_rotation_index(k).to(kernel.device)                   # flat[..., idx[g]]: K(R_g^-1 y)
    turned = [torch.einsum("ab,bcp,dc->adp", rho_out[g], flat[..., idx[g]], rho_in[g]) for g in range(N_ROT)]
    return torch.stack(turned).mean(dim=0).reshape(kernel.shape)


def escnn_to_our_frame(kind: str, count: int) -> torch.Tensor:
    """``(n, n)``: our-frame features from escnn-frame ones of ``count`` fields: a vector field's ``vy`` negated
    (``pipeline.models.rotation.to_escnn_frame``); a regular field's index ``i`` read as ``-i mod 4`` (escnn's quarter
    turn is ours backwards)."""
    if kind == "vector":
        block = torch.diag(torch.tensor([1.0, -1.0]))
    elif kind == "regular":
        block = torch.zeros(N_ROT, N_ROT)
        block[torch.arange(N_ROT), (-torch.arange(N_ROT)) % N_ROT] = 1.0
    else:
        raise ValueError(f"no frame change for {kind!r} fields")
    return torch.block_diag(*[block] * count)


def layer_kernel(layer: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(K, rho_out, rho_in, element)`` of a relaxed layer, float64, in our frame: the assembled kernel
    ``(n_out, n_in, k, k)``, the representations of its output and input and the group element of each kernel entry
    (``(n_out, n_in, k, k)`` long; -1: none)."""
    with torch.no_grad():
        kernel = layer.kernel().detach().double().cpu()
    n_out, n_in, k, _ = kernel.shape
    if isinstance(layer, (RelaxedGroupConv, RelaxedGroupProjection)):
        out_kind = "regular" if isinstance(layer, RelaxedGroupConv) else "vector"
        rho_out = _rep_matrices(out_kind, n_out // (N_ROT if out_kind == "regular" else 2)).double()
        rho_in = _rep_matrices("regular", n_in // N_ROT).double()
        element = (torch.arange(n_in) % N_ROT)[None, :, None, None].expand_as(kernel)
        return kernel, rho_out, rho_in, element
    if isinstance(layer, RelaxedSteerableConv):
        if layer.a is not None:
            raise TypeError("symmetry_breaking: the translation-relaxed RSteer (rank) is not a C4 analysis case")
        d_out, d_in = layer.basis.shape[1:3]
        kinds = FIELD_KINDS[int(d_out)], FIELD_KINDS[int(d_in)]
        c_out = escnn_to_our_frame(kinds[0], n_out // d_out).double()
        c_in = escnn_to_our_frame(kinds[1], n_in // d_in).double()
        kernel = torch.einsum("ab,bcyx,dc->adyx", c_out, kernel, c_in)
        rho_out = _rep_matrices(kinds[0], n_out // d_out).double()
        rho_in = _rep_matrices(kinds[1], n_in // d_in).double()
        return kernel, rho_out, rho_in, kernel_elements(k).expand_as(kernel)
    raise TypeError(f"symmetry_breaking: {type(layer).__name__} is not a relaxed C4 layer")


def departure(kernel: torch.Tensor, rho_out: torch.Tensor, rho_in: torch.Tensor, element: torch.Tensor) -> list[dict]:
    """Rows ``element, departure, signed`` of one kernel: the layer (``all``), then each group element."""
    p = group_average(kernel, rho_out, rho_in)
    d, sign, norm = kernel - p, torch.sign(p), kernel.norm().clamp_min(1e-300)
    rows = [{"element": "all", "departure": float(d.norm() / norm), "signed": 0.0}]
    for h in range(N_ROT):
        m = element == h
        rows.append({"element": str(h), "departure": float(d[m].norm() / norm),
                     "signed": float((sign[m] * d[m]).sum() / norm)})
    return rows


def relaxed_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``(layer name, layer)`` of every relaxed layer of an RGroup (``conv1..``, ``projection``) or an RSteer
    (``conv0..``), input to output."""
    if isinstance(model, RGroup):
        return [(f"conv{i + 1}", c) for i, c in enumerate(model.convs)] + [("projection", model.proj)]
    if isinstance(model, RSteer):
        return [(f"conv{i}", c) for i, c in enumerate(model.convs)]
    raise TypeError(f"symmetry_breaking: no relaxed C4 layers in a {type(model).__name__}")


def analyse(model: torch.nn.Module) -> list[dict]:
    """Rows ``layer, element, departure, signed`` of a relaxed rotation model (RGroup or RSteer)."""
    return [{"layer": name, **row} for name, layer in relaxed_layers(model) for row in departure(*layer_kernel(layer))]


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


# --- ACE's learned degree of symmetry breaking (pipeline.models.common.ACE) ----------------------------------------
# Every ACE layer is ``f_eq,i + gamma_i f_noneq,i``; ``|gamma_i|`` is how much of its non-equivariant part layer ``i``
# keeps after primal-dual training (0: the layer is equivariant). The evaluation writes the evaluated weights'
# ``gamma_i``, slack ``u_i`` and multiplier ``lambda_i`` into metrics.json as ``model_gamma_i``, ``model_slack_i``,
# ``model_multiplier_i`` (``pipeline.evaluate``); nothing needs the weights themselves.

GAMMA_COLUMNS = ["dataset", "level", "data_equivariance_error", "model", "seed", "layer", "gamma", "abs_gamma",
                 "slack", "multiplier"]


def gamma_rows(metrics: dict, source: str = "metrics.json") -> list[dict]:
    """Rows of :data:`GAMMA_COLUMNS` of one ACE run's metrics.json (a dict; ``source`` names it in errors): one per
    layer ``layer1, layer2, ...`` (input to output), from the keys ``model_gamma_i``, ``model_slack_i`` and
    ``model_multiplier_i``, ``i = 1..n``."""
    for key in ("dataset", "model", "seed"):
        if key not in metrics:
            raise KeyError(f"symmetry_breaking: {source} has no {key!r}")
    n = 0
    while f"model_gamma_{n + 1}" in metrics:
        n += 1
    if n == 0:
        raise KeyError(f"symmetry_breaking: {source} ({metrics['model']}) has no model_gamma_1: ACE's gamma_i are "
                       "written by the evaluation of a model that reports them (pipeline.models.common.ACE)")
    run = {"dataset": metrics["dataset"], "level": metrics.get("level", math.nan),
           "data_equivariance_error": metrics.get("data_equivariance_error", math.nan), "model": metrics["model"],
           "seed": metrics["seed"]}
    rows = []
    for i in range(1, n + 1):
        missing = [k for k in (f"model_slack_{i}", f"model_multiplier_{i}") if k not in metrics]
        if missing:
            raise KeyError(f"symmetry_breaking: {source} has model_gamma_{i} but not {', '.join(missing)}")
        gamma = float(metrics[f"model_gamma_{i}"])
        rows.append({**run, "layer": f"layer{i}", "gamma": gamma, "abs_gamma": abs(gamma),
                     "slack": float(metrics[f"model_slack_{i}"]),
                     "multiplier": float(metrics[f"model_multiplier_{i}"])})
    return rows


def write_gamma_table(metrics_paths, output: str | os.PathLike):
    """``ace_gamma.csv``: :func:`gamma_rows` of every run's metrics.json, one row per run and layer."""
    import pandas as pd
    rows = []
    for path in metrics_paths:
        with open(path) as fh:
            rows += gamma_rows(json.load(fh), str(path))
    df = pd.DataFrame(rows, columns=GAMMA_COLUMNS)
    files.write_table(df, output)
    return df
