"""Metrics shared by training, evaluation and the tests: RMSE, equivariance error and the benchmark metrics of
The Well (VRMSE, binned spectral MSE and normalised MSE), PDEBench (nRMSE, fRMSE) and PDEArena (per-step Pearson
correlation, correlation time), each computing exactly the definition of its benchmark's published code, and our
own vector-field nRMSE. docs/metrics.md gives every definition, its source file and the differences.

RMSE of a rollout (docs/protocol.md): the square root of the mean squared error over every rolled-out step,
sample, component and pixel. Per-step RMSE averages over everything but the step axis.

Model equivariance error (paper Definition 3.1): the mean absolute difference ``|f(g x) - g f(x)|`` over
samples, pixels, components and the non-trivial elements ``g`` of the group.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from .runs import CORRELATION_THRESHOLDS


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


# ---------------------------------------------------------------------------------------------------------
# The benchmark metrics. Every function takes a prediction and a target of shape ``(B, steps, C, H, W)``
# (samples, rollout steps, velocity components, rows, columns; torch tensors or numpy arrays) and returns a
# ``(steps,)`` curve, the value of each rollout step over the B samples; the mean over the steps is the value of
# the whole rollout (each benchmark's own reduction over time). The evaluation applies them to a whole split as one
# batch: :func:`rollout_scores_per_step` gives per-step means over samples, which combine exactly across batches,
# and :func:`summarise_rollout` turns them into the metrics.
# ---------------------------------------------------------------------------------------------------------

WELL_EPS = 1e-7           # The Well's epsilon (VRMSE denominator, binned spectral NMSE denominator)
VECTOR_NRMSE_EPS = 1e-12  # guards ||t|| = 0 in our vector-field nRMSE
PDEBENCH_BANDS = (4, 12)  # PDEBench's fRMSE: shells [0, 4) low, [4, 12) mid, [12, N/2) high (iLow, iHigh)
BANDS = ("low", "mid", "high")


def _pair(pred, target, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"{who}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.ndim != 5:
        raise ValueError(f"{who}: expected (B, steps, C, H, W), got {tuple(pred.shape)}")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype)


def vrmse_per_step(pred, target, eps: float = WELL_EPS) -> torch.Tensor:
    """VRMSE (The Well, ``the_well/benchmark/metrics/spatial.py``: ``VRMSE`` = ``NRMSE`` with ``norm_mode="std"``):
    for each sample, step and component (field) ``c``, ``sqrt(mean_x (p - t)^2 / (var_x(t) + eps))`` over the pixels
    ``x``, with the Bessel-corrected variance (``torch.std``, N - 1) and ``eps = 1e-7``; then the mean over components
    and samples. Predicting the target's spatial mean scores ``sqrt((N - 1) / N)`` (just under 1); a perfect
    prediction 0."""
    pred, target = _pair(pred, target, "vrmse_per_step")
    mse = ((pred - target) ** 2).mean(dim=(-2, -1))
    var = target.var(dim=(-2, -1), correction=1)
    return torch.sqrt(mse / (var + eps)).mean(dim=(0, 2))


def nrmse_per_step(pred, target) -> torch.Tensor:
    """nRMSE (PDEBench, ``pdebench/models/metrics.py``: ``err_nMSE`` of ``metric_func``): for each sample, step and
    channel (velocity component) ``c``, ``sqrt(mean_x (p - t)^2) / sqrt(mean_x t^2)`` over the pixels; the mean over
    samples, then over channels. No epsilon, as in PDEBench: a channel whose target is zero everywhere gives an
    infinite value."""
    pred, target = _pair(pred, target, "nrmse_per_step")
    num = torch.sqrt(((pred - target) ** 2).mean(dim=(-2, -1)))
    den = torch.sqrt((target ** 2).mean(dim=(-2, -1)))
    return (num / den).mean(dim=(0, 2))


def vector_nrmse_per_step(pred, target, eps: float = VECTOR_NRMSE_EPS) -> torch.Tensor:
    """Our vector-field nRMSE (not a benchmark's): ``||p - t||_2 / ||t||_2`` for each sample and step with the norms
    over the pixels and both velocity components together, then the mean over samples. Kept beside PDEBench's
    per-channel nRMSE because it does not depend on the frame's axes: rotating prediction and target together
    leaves it unchanged (PDEBench's changes when one component is much smaller than the other)."""
    pred, target = _pair(pred, target, "vector_nrmse_per_step")
    num = torch.linalg.vector_norm((pred - target).flatten(2), dim=-1)
    den = torch.linalg.vector_norm(target.flatten(2), dim=-1)
    return (num / (den + eps)).mean(dim=0)


def well_spectral_bins(h: int, w: int) -> torch.Tensor:
    """The Well's default bin edges of ``binned_spectral_mse`` (``the_well/benchmark/metrics/spectral.py``), in its
    unit, the angular wavenumber per pixel ``|k| = 2 pi sqrt(f_y^2 + f_x^2)`` (``f``: ``torch.fft.fftfreq``): four
    edges log-spaced from ``2 pi / max(h, w)`` to ``pi sqrt(2) + 1e-6``, the first set to 0. At 64 x 64, in cycles per
    frame side: 0, 3.56, 12.70, 45.25."""
    import math
    edges = torch.logspace(math.log10(2 * math.pi / max(h, w)), math.log10(math.pi * math.sqrt(2) + 1e-6), 4,
                           dtype=torch.float64)
    edges[0] = 0.0
    return edges


def well_wavenumber(h: int, w: int) -> torch.Tensor:
    """``(h, w)``: The Well's isotropic angular wavenumber of each 2-D FFT coefficient
    (see :func:`well_spectral_bins`)."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, dtype=torch.float64)
    return 2 * torch.pi * torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def well_bin_masks(h: int, w: int) -> dict[str, torch.Tensor]:
    """Boolean ``(h, w)`` masks of The Well's three bins (``low, mid, high``): ``edges[i] <= |k| < edges[i + 1]``.
    Together they cover the whole spectrum (the top edge is above the corner ``pi sqrt(2)``)."""
    k, edges = well_wavenumber(h, w), well_spectral_bins(h, w)
    return {band: (k >= edges[i]) & (k < edges[i + 1]) for i, band in enumerate(BANDS)}


def binned_spectral_per_step(pred, target, eps: float = WELL_EPS) -> dict[str, torch.Tensor]:
    """The Well's ``binned_spectral_mse`` (``spectral.py``): for each sample, step, component and bin ``b`` of
    :func:`well_bin_masks`, ``mse_b = sum_{k in b} |FFT(p - t)(k)|^2 / (H W)^2`` (Plancherel: the three bins sum to
    the MSE) and ``nmse_b = mse_b / (sum_{k in b} |FFT(t)(k)|^2 / (H W)^2 + 1e-7)``; then the mean over components
    and samples: ``{binned_spectral_mse_{band}, binned_spectral_nmse_{band}: (steps,)}``."""
    pred, target = _pair(pred, target, "binned_spectral_per_step")
    h, w = pred.shape[-2:]
    scale = float(h * w) ** 2
    err = torch.fft.fft2(pred - target).abs() ** 2 / scale
    true = torch.fft.fft2(target).abs() ** 2 / scale
    out = {}
    for band, mask in well_bin_masks(h, w).items():
        mask = mask.to(device=err.device, dtype=err.dtype)
        mse, energy = (err * mask).sum(dim=(-2, -1)), (true * mask).sum(dim=(-2, -1))
        out[f"binned_spectral_mse_{band}"] = mse.mean(dim=(0, 2))
        out[f"binned_spectral_nmse_{band}"] = (mse / (energy + eps)).mean(dim=(0, 2))
    return out


def pdebench_shells(h: int, w: int) -> torch.Tensor:
    """``(h // 2, w // 2)``: PDEBench's shell ``floor(sqrt(i^2 + j^2))`` of the first-quadrant FFT coefficients
    ``(i, j)``, ``0 <= i < h // 2``, ``0 <= j < w // 2``; ``-1`` for the corners beyond the last shell
    ``min(h // 2, w // 2) - 1``, which PDEBench drops."""
    i = torch.arange(h // 2, dtype=torch.float64)[:, None]
    j = torch.arange(w // 2, dtype=torch.float64)[None, :]
    shell = torch.floor(torch.sqrt(i ** 2 + j ** 2)).long()
    return torch.where(shell <= min(h // 2, w // 2) - 1, shell, torch.full_like(shell, -1))


def shell_power_per_step(pred, target) -> torch.Tensor:
    """``(steps, C, n_shells)``: for each step, component and PDEBench shell (:func:`pdebench_shells`), the mean over
    samples of ``sum_{(i, j) in shell} |FFT(p - t)(i, j)|^2`` (unnormalised FFT): what :func:`frmse_from_shells`
    needs, a mean over samples so that batches combine."""
    pred, target = _pair(pred, target, "shell_power_per_step")
    h, w = pred.shape[-2:]
    shells = pdebench_shells(h, w).to(pred.device)
    n = min(h // 2, w // 2)
    power = (torch.fft.fft2(pred - target).abs() ** 2)[..., : h // 2, : w // 2]   # first quadrant
    keep = shells >= 0
    flat = power[..., keep]                                                       # (B, steps, C, kept)
    out = torch.zeros(*flat.shape[:-1], n, dtype=flat.dtype, device=flat.device)
    out.index_add_(-1, shells[keep], flat)
    return out.mean(dim=0)


def frmse_from_shells(shell_power: torch.Tensor, h: int, w: int,
                      bands=PDEBENCH_BANDS) -> dict[str, torch.Tensor | None]:
    """PDEBench's fRMSE (``err_F`` of ``metric_func``, ``Lx = Ly = 1``) per step from :func:`shell_power_per_step`
    over all the samples: each shell's RMSE ``sqrt(mean_samples shell power) / (H W)``, averaged over the shells of a
    band (low ``[0, 4)``, mid ``[4, 12)``, high ``[12, min(H, W) / 2)``), then over components. ``None`` for a band
    with no shell (frames smaller than 26 x 26 have no high band; PDEBench gives NaN there)."""
    lo, hi = bands
    rmse = torch.sqrt(shell_power) / float(h * w)                                # (steps, C, n_shells)
    n = rmse.shape[-1]
    out = {}
    for band, (a, b) in zip(BANDS, ((0, lo), (lo, hi), (hi, n))):
        b = min(b, n)
        out[band] = rmse[..., a:b].mean(dim=-1).mean(dim=-1) if b > a else None
    return out


def frmse_per_step(pred, target, bands=PDEBENCH_BANDS) -> dict[str, torch.Tensor | None]:
    """PDEBench's fRMSE per band and step of one batch (all of it as one sample set): ``{band: (steps,) or None}``."""
    pred, target = _pair(pred, target, "frmse_per_step")
    return frmse_from_shells(shell_power_per_step(pred, target), *pred.shape[-2:], bands=bands)


def correlation_per_step(pred, target) -> torch.Tensor:
    """Pearson correlation (PDEArena, ``pdearena/modules/loss.py``: ``pearson_correlation``) for each sample and step
    over the pixels and all components flattened together: ``mean((p - p_bar)(t - t_bar)) / (std(p) std(t))`` with
    population standard deviations, the denominator clamped below at float32's smallest normal number; then the mean
    over samples. 1 for a perfect prediction (or any positive affine map of it), 0 for a constant one."""
    pred, target = _pair(pred, target, "correlation_per_step")
    p, t = pred.flatten(2), target.flatten(2)
    cov = ((p - p.mean(dim=-1, keepdim=True)) * (t - t.mean(dim=-1, keepdim=True))).mean(dim=-1)
    std = p.std(dim=-1, correction=0) * t.std(dim=-1, correction=0)
    return (cov / std.clamp(min=torch.finfo(torch.float32).tiny)).mean(dim=0)


def correlation_time(correlation, threshold: float) -> int:
    """Correlation time (PDEArena, ``pdearena/models/pderefiner.py``: ``time_till_corr_lower_{threshold}``): the
    number of rollout steps whose mean correlation (a per-step curve such as :func:`correlation_per_step`'s) is
    strictly above ``threshold``, counted over the whole rollout (a step after a dip counts too)."""
    return int((torch.as_tensor(correlation) > threshold).sum())


def correlation_time_name(threshold: float) -> str:
    """The metrics.json name of the correlation time at ``threshold``: ``correlation_time_0.8``, ``..._0.95``
    (the shortest decimal that reads back as the same float, so distinct thresholds get distinct names)."""
    return f"correlation_time_{float(threshold)!r}"


def correlation_times(correlation, thresholds=CORRELATION_THRESHOLDS) -> dict[str, int]:
    """PDEArena's correlation time at each of ``thresholds`` (default 0.8, 0.9, 0.95, as PDEArena logs them):
    ``{correlation_time_name(t): correlation_time(correlation, t)}``."""
    return {correlation_time_name(t): correlation_time(correlation, t) for t in thresholds}


# The per-step metrics of a split (metrics.json ``{split}_{name}`` and ``{split}_{name}_per_step``; the columns of
# results/tables/metrics_long.csv), in this order. ``rmse`` is pipeline.rollout's.
PER_STEP_METRICS = ("vrmse", "nrmse", "vector_nrmse", "correlation",
                    *(f"frmse_{b}" for b in BANDS), *(f"binned_spectral_mse_{b}" for b in BANDS),
                    *(f"binned_spectral_nmse_{b}" for b in BANDS))


def rollout_scores_per_step(pred, target) -> dict[str, torch.Tensor]:
    """Every per-step score of one batch, each a mean over the batch's samples (so that the batch-size weighted mean
    of the batches' scores is the split's): ``mse``, ``vrmse``, ``nrmse``, ``vector_nrmse``, ``correlation``,
    ``binned_spectral_{mse,nmse}_{band}``, each ``(steps,)``, and ``shell_power`` ``(steps, C, shells)`` for fRMSE."""
    pred, target = _pair(pred, target, "rollout_scores_per_step")
    out = {"mse": ((pred - target) ** 2).mean(dim=(0, 2, 3, 4)),
           "vrmse": vrmse_per_step(pred, target), "nrmse": nrmse_per_step(pred, target),
           "vector_nrmse": vector_nrmse_per_step(pred, target), "correlation": correlation_per_step(pred, target),
           "shell_power": shell_power_per_step(pred, target), **binned_spectral_per_step(pred, target)}
    return out


def summarise_rollout(scores: dict[str, torch.Tensor], frame_size: tuple[int, int],
                      thresholds=CORRELATION_THRESHOLDS) -> dict:
    """The metrics.json entries of one split from per-step scores over all its samples
    (:func:`rollout_scores_per_step`): for every name of :data:`PER_STEP_METRICS`, the per-step list and the value of
    the rollout (the mean over steps); the correlation time at each of ``thresholds`` (:func:`correlation_times`).
    An fRMSE band that the frame does not have is ``None``."""
    h, w = frame_size
    curves = {name: scores[name] for name in PER_STEP_METRICS if name in scores}
    curves.update({f"frmse_{b}": v for b, v in frmse_from_shells(scores["shell_power"], h, w).items()})
    out = {}
    for name in PER_STEP_METRICS:
        curve = curves[name]
        out[name] = None if curve is None else float(curve.mean())
        out[f"{name}_per_step"] = None if curve is None else [float(v) for v in curve]
    out.update(correlation_times(scores["correlation"], thresholds))
    return out
