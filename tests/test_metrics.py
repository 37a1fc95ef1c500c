"""The benchmark metrics on fields with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline import metrics

H = W = 32


def _wave(kx=0, ky=0, amplitude=1.0):
    """``(1, 1, 2, H, W)``: a cosine of ``kx, ky`` cycles per side in both components."""
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    f = amplitude * torch.cos(2 * math.pi * (kx * x / W + ky * y / H))
    return torch.stack((f, f))[None, None]


def _fields(steps=3, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, steps, 2, H, W, generator=g, dtype=torch.float64)


def test_vrmse_is_one_for_the_target_mean_and_zero_for_the_target():
    t = _fields() * 3.0 + 5.0
    mean = t.mean(dim=(-2, -1), keepdim=True).expand_as(t)
    assert metrics.vrmse_per_step(mean, t).tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    assert metrics.vrmse_per_step(t, t).tolist() == pytest.approx([0.0] * 3)
    # per field: the second component's error is scaled by its own spread, not the first's
    t[:, :, 1] *= 100.0
    p = t.clone()
    p[:, :, 1] = t[:, :, 1].mean(dim=(-2, -1), keepdim=True)
    assert metrics.vrmse_per_step(p, t).tolist() == pytest.approx([0.5] * 3, abs=1e-6)


def test_nrmse_is_relative_to_the_target_norm():
    t = _fields()
    assert metrics.nrmse_per_step(torch.zeros_like(t), t).tolist() == pytest.approx([1.0] * 3)
    assert metrics.nrmse_per_step(1.1 * t, t).tolist() == pytest.approx([0.1] * 3)
    assert metrics.nrmse_per_step(np.asarray(3 * t), np.asarray(t)).tolist() == pytest.approx([2.0] * 3)


@pytest.mark.parametrize("kx, ky, band", [(0, 0, "low"), (1, 1, "low"), (1, 2, "mid"), (3, 0, "mid"), (0, 7, "mid"),
                                          (4, 3, "mid"), (8, 0, "high"), (12, 12, "high")])
def test_a_sinusoid_error_lands_in_its_band(kx, ky, band):
    # 32 x 32: Nyquist 16, low |k| < 2, mid 2 <= |k| < 8, high |k| >= 8
    t = _fields(steps=1, b=1)
    p = t + _wave(kx, ky, amplitude=0.5)
    got = metrics.spectral_rmse(p, t)
    rmse = float(metrics.rmse(p, t))
    assert got[band] == pytest.approx(rmse, rel=1e-9)
    assert all(got[b] < 1e-9 for b in metrics.BANDS if b != band)


def test_spectral_bands_partition_the_mse():
    t, p = _fields(seed=1), _fields(seed=2)
    per_step = metrics.spectral_mse_per_step(p, t)
    total = sum(per_step.values())
    assert total.tolist() == pytest.approx(metrics.rmse_per_step(p, t).pow(2).tolist(), rel=1e-9)
    assert sum(v ** 2 for v in metrics.spectral_rmse(p, t).values()) == pytest.approx(float(metrics.rmse(p, t)) ** 2)
    masks = metrics.band_masks(64, 64)
    assert int(sum(m.int() for m in masks.values()).max()) == 1 == int(sum(m.int() for m in masks.values()).min())
    assert bool(masks["low"][0, 3]) and bool(masks["mid"][0, 4]) and bool(masks["high"][0, 16])


def test_correlation_of_known_pairs():
    t = _fields()
    assert metrics.correlation_per_step(t, t).tolist() == pytest.approx([1.0] * 3)
    assert metrics.correlation_per_step(2 * t + 1, t).tolist() == pytest.approx([1.0] * 3)
    assert metrics.correlation_per_step(-t, t).tolist() == pytest.approx([-1.0] * 3)
    assert metrics.correlation_per_step(torch.zeros_like(t), t).tolist() == pytest.approx([0.0] * 3)
    # a cosine against a sine of the same wave: orthogonal over whole periods
    s = torch.roll(_wave(kx=2), shifts=W // 8, dims=-1)
    assert float(metrics.correlation_per_step(s, _wave(kx=2))[0]) == pytest.approx(0.0, abs=1e-12)


def test_correlation_time():
    assert metrics.correlation_time([0.99, 0.9, 0.81, 0.79, 0.95]) == 3
    assert metrics.correlation_time([0.7, 0.9]) == 0
    assert metrics.correlation_time([0.9, 0.85]) == 2
    assert metrics.correlation_time(torch.tensor([0.9, 0.6]), threshold=0.5) == 2
    assert metrics.correlation_time([0.9, 0.6], threshold=0.95) == 0


def test_summary_of_rollout_scores():
    t, p = _fields(seed=3), _fields(seed=4)
    s = metrics.summarise_rollout(metrics.rollout_scores_per_step(p, t))
    assert s["vrmse"] == pytest.approx(float(metrics.vrmse_per_step(p, t).mean()))
    assert len(s["correlation_per_step"]) == 3 and s["correlation_time"] == 0
    assert sum(s[f"spectral_rmse_{b}"] ** 2 for b in metrics.BANDS) == pytest.approx(float(metrics.rmse(p, t)) ** 2)
    with pytest.raises(ValueError):
        metrics.vrmse_per_step(p[0], t[0])
