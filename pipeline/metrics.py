"""Metrics shared by training, evaluation and the tests: RMSE, equivariance error and the benchmark metrics of
The Well, PDEBench and PDEArena (VRMSE, nRMSE, RMSE per spectral band, per-step correlation, correlation time).

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


# ---------------------------------------------------------------------------------------------------------
# The benchmark metrics of The Well, PDEBench and PDEArena. Every function takes a prediction and a target of
# shape ``(B, steps, C, H, W)`` (samples, rollout steps, velocity components, rows, columns; torch tensors or
# numpy arrays), computes a value per sample and step, and returns its mean over the samples for each step:
# a ``(steps,)`` tensor. The mean over the steps is the value of the whole rollout. Each is a mean over samples
# of a per-sample quantity, so a split's value is the batch-size weighted mean of its batches' values.
# ---------------------------------------------------------------------------------------------------------

VRMSE_EPS = 1e-7          # The Well's epsilon in the VRMSE denominator
NRMSE_EPS = 1e-12         # guards ||t|| = 0 in nRMSE and zero variance in the correlation
BAND_EDGES = (1 / 8, 1 / 2)  # spectral bands: edges of |k| as fractions of the Nyquist wavenumber
BANDS = ("low", "mid", "high")
CORRELATION_THRESHOLD = 0.8  # PDEArena's correlation-time threshold


def _pair(pred, target, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"{who}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.ndim != 5:
        raise ValueError(f"{who}: expected (B, steps, C, H, W), got {tuple(pred.shape)}")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype)


def vrmse_per_step(pred, target, eps: float = VRMSE_EPS) -> torch.Tensor:
    """Variance-scaled RMSE (The Well): for each sample, step and component (field) ``c``,
    ``sqrt(mean_x (p - t)^2) / sqrt(var_x(t) + eps)`` over the pixels ``x`` (population variance of the target
    over space), then the mean over components and samples. A prediction equal to the target's spatial mean scores
    1 (up to ``eps``); a perfect one 0."""
    pred, target = _pair(pred, target, "vrmse_per_step")
    mse = ((pred - target) ** 2).mean(dim=(-2, -1))
    var = target.var(dim=(-2, -1), unbiased=False)
    return (torch.sqrt(mse) / torch.sqrt(var + eps)).mean(dim=(0, 2))


def nrmse_per_step(pred, target, eps: float = NRMSE_EPS) -> torch.Tensor:
    """Normalised RMSE (PDEBench): ``||p - t||_2 / ||t||_2`` for each sample and step, the norms over pixels and
    both velocity components together (the vector field's norm), then the mean over samples. PDEBench divides per
    channel; we take the velocity field as one field so that the score does not depend on the frame's axes."""
    pred, target = _pair(pred, target, "nrmse_per_step")
    num = torch.linalg.vector_norm((pred - target).flatten(2), dim=-1)
    den = torch.linalg.vector_norm(target.flatten(2), dim=-1)
    return (num / (den + eps)).mean(dim=0)


def radial_wavenumber(h: int, w: int) -> torch.Tensor:
    """``(h, w)``: ``|k| = sqrt(k_y^2 + k_x^2)`` of each coefficient of the 2-D FFT, in cycles per frame side
    (``k_y`` in ``-h/2 .. h/2``, ``k_x`` in ``-w/2 .. w/2``)."""
    ky = torch.fft.fftfreq(h, d=1.0 / h)
    kx = torch.fft.fftfreq(w, d=1.0 / w)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def band_masks(h: int, w: int, edges=BAND_EDGES) -> dict[str, torch.Tensor]:
    """Boolean ``(h, w)`` masks of the bands ``low, mid, high`` of the 2-D FFT: with the Nyquist wavenumber
    ``N = min(h, w) / 2`` and ``edges = (a, b)``, low is ``|k| < a N``, mid ``a N <= |k| < b N``, high ``|k| >= b N``
    (the corners beyond ``N`` included). Default ``(1/8, 1/2)``: on a 64 x 64 frame low ``|k| < 4`` (the mean flow
    and the plume's scale), mid ``4 <= |k| < 16``, high ``|k| >= 16``. The bands partition the spectrum."""
    lo, hi = edges
    if not 0 < lo < hi:
        raise ValueError(f"band edges must satisfy 0 < low < high, got {edges}")
    k = radial_wavenumber(h, w) / (min(h, w) / 2)
    return {"low": k < lo, "mid": (k >= lo) & (k < hi), "high": k >= hi}


def spectral_mse_per_step(pred, target, edges=BAND_EDGES) -> dict[str, torch.Tensor]:
    """Each band's share of the MSE, ``{band: (steps,)}``: for each sample, step and component, the error's
    2-D FFT ``E(k)`` (unnormalised, over the pixels), ``sum_{k in band} |E(k)|^2 / (H W)^2``, averaged over the
    components and samples. By Parseval the three bands sum to the MSE of the step; the square root of a band's
    mean over steps is that band's RMSE (:func:`spectral_rmse`), and their squares sum to the RMSE's square."""
    pred, target = _pair(pred, target, "spectral_mse_per_step")
    h, w = pred.shape[-2:]
    power = torch.fft.fft2(pred - target).abs() ** 2 / float(h * w) ** 2
    return {band: (power * mask.to(power.device)).sum(dim=(-2, -1)).mean(dim=(0, 2))
            for band, mask in band_masks(h, w, edges).items()}


def spectral_rmse(pred, target, edges=BAND_EDGES) -> dict[str, float]:
    """RMSE of each band over the whole rollout: ``sqrt`` of the band's MSE averaged over steps."""
    return {band: float(torch.sqrt(v.mean())) for band, v in spectral_mse_per_step(pred, target, edges).items()}


def correlation_per_step(pred, target, eps: float = NRMSE_EPS) -> torch.Tensor:
    """Pearson correlation (PDEArena) of prediction and target for each sample and step, over the pixels and both
    components together (one mean each), then the mean over samples: ``sum (p - p_bar)(t - t_bar) /
    sqrt(sum (p - p_bar)^2 sum (t - t_bar)^2)``. 1 for a perfect prediction (or any positive affine map of it),
    0 for a constant one."""
    pred, target = _pair(pred, target, "correlation_per_step")
    p = pred.flatten(2) - pred.flatten(2).mean(dim=-1, keepdim=True)
    t = target.flatten(2) - target.flatten(2).mean(dim=-1, keepdim=True)
    corr = (p * t).sum(dim=-1) / torch.sqrt((p ** 2).sum(dim=-1) * (t ** 2).sum(dim=-1) + eps)
    return corr.mean(dim=0)


def correlation_time(correlation, threshold: float = CORRELATION_THRESHOLD) -> int:
    """Correlation time (PDEArena): the number of leading rollout steps whose mean correlation (a per-step curve
    such as :func:`correlation_per_step`'s) is at least ``threshold``, i.e. the first step (counted from 1) where
    it drops below ``threshold``, minus one; the rollout length if it never does."""
    below = torch.as_tensor(correlation) < threshold
    return int(below.int().argmax()) if bool(below.any()) else int(below.numel())


def rollout_scores_per_step(pred, target, edges=BAND_EDGES) -> dict[str, torch.Tensor]:
    """Every per-step score above of one batch: ``mse, vrmse, nrmse, correlation, spectral_mse_{band}``, each a
    ``(steps,)`` mean over the batch's samples (MSE rather than RMSE: means of squares combine across batches)."""
    pred, target = _pair(pred, target, "rollout_scores_per_step")
    out = {"mse": ((pred - target) ** 2).mean(dim=(0, 2, 3, 4)),
           "vrmse": vrmse_per_step(pred, target), "nrmse": nrmse_per_step(pred, target),
           "correlation": correlation_per_step(pred, target)}
    out.update({f"spectral_mse_{b}": v for b, v in spectral_mse_per_step(pred, target, edges).items()})
    return out


def summarise_rollout(scores: dict[str, torch.Tensor], threshold: float = CORRELATION_THRESHOLD) -> dict:
    """The metrics.json entries of one split from per-step scores over all its samples (see
    :func:`rollout_scores_per_step`): per-step lists and rollout values of ``vrmse, nrmse, correlation`` (means over
    steps), ``correlation_time``, and ``spectral_rmse_{band}`` (square roots of the band MSEs; per step and over the
    rollout)."""
    out = {}
    for name in ("vrmse", "nrmse", "correlation"):
        out[name] = float(scores[name].mean())
        out[f"{name}_per_step"] = [float(v) for v in scores[name]]
    out["correlation_time"] = correlation_time(scores["correlation"], threshold)
    for band in BANDS:
        mse = scores[f"spectral_mse_{band}"]
        out[f"spectral_rmse_{band}"] = float(torch.sqrt(mse.mean()))
        out[f"spectral_rmse_{band}_per_step"] = [float(v) for v in torch.sqrt(mse)]
    return out
