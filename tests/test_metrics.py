"""The benchmark metrics against their benchmarks' definitions: values worked out by hand, or by a deliberately
naive loop over the definition (plain Python and numpy, not the code path under test)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline import metrics

H = W = 32


def _wave(kx=0, ky=0, amplitude=1.0, size=H):
    """``(1, 1, 2, size, size)``: a cosine of ``kx, ky`` cycles per side in both components."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    f = amplitude * torch.cos(2 * math.pi * (kx * x / size + ky * y / size))
    return torch.stack((f, f))[None, None]


def _fields(steps=3, b=2, seed=0, size=H):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, steps, 2, size, size, generator=g, dtype=torch.float64)


def _pair(seed=0, size=H, steps=3, b=2):
    t = _fields(steps, b, seed, size)
    return t + 0.5 * _fields(steps, b, seed + 1, size) + 0.2, t


# --- VRMSE (The Well) ------------------------------------------------------------------------------------------

def test_vrmse_is_the_wells_definition_by_a_naive_loop():
    p, t = _pair()
    b, steps, c, h, w = p.shape
    want = []
    for s in range(steps):
        vals = []
        for i in range(b):
            for k in range(c):
                pp, tt = p[i, s, k].flatten().tolist(), t[i, s, k].flatten().tolist()
                n = len(tt)
                mse = sum((u - v) ** 2 for u, v in zip(pp, tt)) / n
                mean = sum(tt) / n
                var = sum((v - mean) ** 2 for v in tt) / (n - 1)     # Bessel-corrected, as torch.std
                vals.append(math.sqrt(mse / (var + 1e-7)))
        want.append(sum(vals) / len(vals))
    assert metrics.vrmse_per_step(p, t).tolist() == pytest.approx(want, rel=1e-12)


def test_vrmse_of_the_target_mean_is_just_under_one():
    t = _fields(size=64)
    mean = t.mean(dim=(-2, -1), keepdim=True).expand_as(t)
    # mean squared deviation over N pixels / unbiased variance = (N - 1) / N: at 64 x 64 the old population-variance
    # VRMSE (exactly 1 here) was larger by sqrt(4096 / 4095) = 1.000122
    assert metrics.vrmse_per_step(mean, t).tolist() == pytest.approx([math.sqrt(4095 / 4096)] * 3, rel=1e-6)
    assert metrics.vrmse_per_step(t, t).tolist() == pytest.approx([0.0] * 3)


# --- nRMSE (PDEBench) and our vector-field nRMSE ---------------------------------------------------------------

def test_nrmse_averages_the_ratio_per_channel_and_the_vector_nrmse_takes_one_ratio():
    """By hand: target 1 in component 0 and 0.01 in component 1, error 0.1 in both: PDEBench's per-channel
    ratios are 0.1 and 10 (mean 5.05); the vector field's is sqrt(2 * 0.01) / sqrt(1 + 1e-4)."""
    t = torch.ones(1, 2, 2, 8, 8, dtype=torch.float64)
    t[:, :, 1] = 0.01
    p = t + 0.1
    assert metrics.nrmse_per_step(p, t).tolist() == pytest.approx([5.05, 5.05], rel=1e-12)
    assert metrics.vector_nrmse_per_step(p, t).tolist() == pytest.approx([math.sqrt(0.02 / 1.0001)] * 2, rel=1e-9)


def test_nrmse_is_pdebenchs_definition_by_a_naive_loop():
    p, t = _pair(size=8)
    b, steps, c = p.shape[:3]
    want = []
    for s in range(steps):
        per_channel = []
        for k in range(c):
            ratios = []
            for i in range(b):
                pp, tt = p[i, s, k].flatten().tolist(), t[i, s, k].flatten().tolist()
                err = math.sqrt(sum((u - v) ** 2 for u, v in zip(pp, tt)) / len(tt))
                ratios.append(err / math.sqrt(sum(v * v for v in tt) / len(tt)))
            per_channel.append(sum(ratios) / b)
        want.append(sum(per_channel) / c)
    assert metrics.nrmse_per_step(p, t).tolist() == pytest.approx(want, rel=1e-12)


def test_the_vector_nrmse_does_not_depend_on_the_frames_axes_and_pdebenchs_does():
    p, t = _pair(size=8)
    t = t * torch.tensor([1.0, 0.01], dtype=torch.float64)[None, None, :, None, None]
    p = t + 0.05 * _fields(size=8, seed=5)
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)

    def turn(v):  # the velocity components in axes turned by 45 degrees (same pixels)
        return torch.stack((c * v[:, :, 0] - s * v[:, :, 1], s * v[:, :, 0] + c * v[:, :, 1]), dim=2)

    assert metrics.vector_nrmse_per_step(turn(p), turn(t)).tolist() == pytest.approx(
        metrics.vector_nrmse_per_step(p, t).tolist(), rel=1e-9)
    assert metrics.nrmse_per_step(turn(p), turn(t))[0] < 0.5 * metrics.nrmse_per_step(p, t)[0]


# --- fRMSE (PDEBench) -----------------------------------------------------------------------------------------

def _frmse_naive(p, t, i_low=4, i_high=12):
    """PDEBench's fRMSE written out: per sample, channel and step the error's FFT, its power summed over the
    first-quadrant coefficients (i, j) of each shell floor(sqrt(i^2 + j^2)) (corners beyond the last shell dropped),
    sqrt of the mean over samples / (nx ny), the mean over a band's shells, then over channels: {band: [per step]}."""
    p, t = np.asarray(p), np.asarray(t)
    b, steps, c, nx, ny = p.shape
    n = min(nx // 2, ny // 2)
    out = {band: [] for band in metrics.BANDS}
    for s in range(steps):
        shells = np.zeros((b, c, n))
        for i_b in range(b):
            for k in range(c):
                f = np.abs(np.fft.fft2(p[i_b, s, k] - t[i_b, s, k])) ** 2
                for i in range(nx // 2):
                    for j in range(ny // 2):
                        it = math.floor(math.sqrt(i * i + j * j))
                        if it > n - 1:
                            continue
                        shells[i_b, k, it] += f[i, j]
        rmse = np.sqrt(shells.mean(axis=0)) / (nx * ny)      # (c, n)
        for band, (lo, hi) in zip(metrics.BANDS, ((0, i_low), (i_low, i_high), (i_high, n))):
            out[band].append(float(rmse[:, lo:hi].mean(axis=1).mean()) if hi > lo else None)
    return out


def test_frmse_is_pdebenchs_definition_by_a_naive_loop():
    p, t = _pair(size=32)
    got = metrics.frmse_per_step(p, t)
    for band, want in _frmse_naive(p, t).items():
        assert got[band].tolist() == pytest.approx(want, rel=1e-10), band


def test_frmse_of_a_wave_lands_in_its_shell_and_a_small_frame_has_no_high_band():
    # error cos(2 pi 5 x / 32) in both components: |FFT| = 32^2 / 2 at (0, 5) in the first quadrant (and at (0, 27),
    # outside it): shell 5, mid band (shells 4..11): each component's shell RMSE is (32^2 / 2) / 32^2 = 1/2,
    # averaged over the band's 8 shells: 1/16
    t = torch.zeros(1, 1, 2, H, W, dtype=torch.float64)
    got = metrics.frmse_per_step(_wave(kx=5), t)
    assert float(got["mid"][0]) == pytest.approx(1 / 16, rel=1e-12)
    assert float(got["low"][0]) == pytest.approx(0.0, abs=1e-12)
    assert float(got["high"][0]) == pytest.approx(0.0, abs=1e-12)
    small = metrics.frmse_per_step(*_pair(size=16))
    assert small["high"] is None and small["mid"] is not None   # shells 0..7: no shell 12 or above


# --- binned spectral MSE and NMSE (The Well) -------------------------------------------------------------------

def test_the_wells_bin_edges_at_64_in_cycles_per_frame():
    edges = metrics.well_spectral_bins(64, 64) * 64 / (2 * math.pi)
    # log-spaced from 1 cycle per frame (2 pi / 64 per pixel) to the corner 32 sqrt(2), the first edge set to 0
    r = (32 * math.sqrt(2)) ** (1 / 3)
    assert edges.tolist() == pytest.approx([0.0, r, r * r, 32 * math.sqrt(2)], rel=1e-6)
    assert edges.tolist() == pytest.approx([0.0, 3.564, 12.70, 45.25], abs=5e-3)


def test_binned_spectral_mse_is_the_wells_definition_by_a_naive_loop():
    p, t = _pair(size=16, steps=2)
    b, steps, c, h, w = p.shape
    lo = 2 * math.pi / max(h, w)
    hi = math.pi * math.sqrt(2) + 1e-6
    edges = [0.0] + [10 ** (math.log10(lo) + i * (math.log10(hi) - math.log10(lo)) / 3) for i in (1, 2, 3)]
    got = metrics.binned_spectral_per_step(p, t)
    pn, tn = np.asarray(p), np.asarray(t)
    for s in range(steps):
        mse = {band: [] for band in metrics.BANDS}
        nmse = {band: [] for band in metrics.BANDS}
        for i in range(b):
            for k in range(c):
                fe = np.abs(np.fft.fft2(pn[i, s, k] - tn[i, s, k])) ** 2 / (h * w) ** 2
                ft = np.abs(np.fft.fft2(tn[i, s, k])) ** 2 / (h * w) ** 2
                sums = {band: [0.0, 0.0] for band in metrics.BANDS}
                for u in range(h):
                    for v in range(w):
                        fy = (u if u < h / 2 else u - h) / h
                        fx = (v if v < w / 2 else v - w) / w
                        k_iso = 2 * math.pi * math.sqrt(fy * fy + fx * fx)
                        for j, band in enumerate(metrics.BANDS):
                            if edges[j] <= k_iso < edges[j + 1]:
                                sums[band][0] += fe[u, v]
                                sums[band][1] += ft[u, v]
                for band in metrics.BANDS:
                    mse[band].append(sums[band][0])
                    nmse[band].append(sums[band][0] / (sums[band][1] + 1e-7))
        for band in metrics.BANDS:
            assert float(got[f"binned_spectral_mse_{band}"][s]) == pytest.approx(np.mean(mse[band]), rel=1e-10)
            assert float(got[f"binned_spectral_nmse_{band}"][s]) == pytest.approx(np.mean(nmse[band]), rel=1e-10)


@pytest.mark.parametrize("kx, band", [(2, "low"), (6, "mid"), (14, "high")])
def test_a_wave_error_lands_in_its_well_bin_and_the_bins_sum_to_the_mse(kx, band):
    # at 32 x 32 the edges are 0, 2.83, 8.0, 22.6 cycles per frame side
    t = _wave(kx=3, ky=1, amplitude=2.0)
    p = t + _wave(kx=kx, amplitude=0.5)
    got = metrics.binned_spectral_per_step(p, t)
    assert float(got[f"binned_spectral_mse_{band}"][0]) == pytest.approx(0.125, rel=1e-9)  # (0.5)^2 / 2
    assert sum(float(got[f"binned_spectral_mse_{b}"][0]) for b in metrics.BANDS) == pytest.approx(
        float(metrics.rmse(p, t)) ** 2, rel=1e-9)
    others = [b for b in metrics.BANDS if b != band]
    assert all(float(got[f"binned_spectral_mse_{b}"][0]) < 1e-20 for b in others)


# --- correlation and correlation time (PDEArena) -----------------------------------------------------------------

def test_correlation_of_known_pairs_and_by_a_naive_loop():
    t = _fields()
    assert metrics.correlation_per_step(t, t).tolist() == pytest.approx([1.0] * 3)
    assert metrics.correlation_per_step(2 * t + 1, t).tolist() == pytest.approx([1.0] * 3)
    assert metrics.correlation_per_step(-t, t).tolist() == pytest.approx([-1.0] * 3)
    assert metrics.correlation_per_step(torch.zeros_like(t), t).tolist() == pytest.approx([0.0] * 3)
    p, t = _pair(size=8)
    want = []
    for s in range(p.shape[1]):
        vals = []
        for i in range(p.shape[0]):
            a, b = p[i, s].flatten().tolist(), t[i, s].flatten().tolist()   # all components together
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            cov = sum((u - ma) * (v - mb) for u, v in zip(a, b)) / len(a)
            sa = math.sqrt(sum((u - ma) ** 2 for u in a) / len(a))
            sb = math.sqrt(sum((v - mb) ** 2 for v in b) / len(b))
            vals.append(cov / (sa * sb))
        want.append(sum(vals) / len(vals))
    assert metrics.correlation_per_step(p, t).tolist() == pytest.approx(want, rel=1e-12)


def test_correlation_time_counts_every_step_strictly_above():
    assert metrics.correlation_time([0.99, 0.9, 0.81, 0.79, 0.95], 0.8) == 4   # the step after the dip counts
    assert metrics.correlation_time([0.8, 0.9], 0.8) == 1                      # strictly above: 0.8 does not count
    assert metrics.correlation_time([0.7, 0.9], 0.8) == 1
    assert metrics.correlation_time(torch.tensor([0.9, 0.6]), threshold=0.5) == 2
    assert metrics.correlation_time([0.99, 0.96, 0.95], threshold=0.95) == 2


def test_correlation_times_at_pdearenas_three_thresholds_by_hand():
    # steps:   1     2     3     4     5     6     7     8
    curve = [0.99, 0.96, 0.95, 0.90, 0.85, 0.80, 0.93, 0.70]
    # > 0.8: every step but 6 (= 0.8) and 8 -> 6; > 0.9: 1, 2, 3, 7 (4 is = 0.9) -> 4; > 0.95: 1, 2 (3 is = 0.95) -> 2
    assert metrics.correlation_times(curve) == {"correlation_time_0.8": 6, "correlation_time_0.9": 4,
                                                "correlation_time_0.95": 2}
    assert metrics.CORRELATION_THRESHOLDS == (0.8, 0.9, 0.95)               # PDEArena's, the default
    assert metrics.correlation_times(torch.tensor(curve, dtype=torch.float64), [0.95, 0.5]) \
        == {"correlation_time_0.95": 2, "correlation_time_0.5": 8}
    # a float32 curve (the evaluation's) is compared in float32, as PDEArena's torch comparison does: the steps at
    # float32(0.8), float32(0.9), float32(0.95) are not above their thresholds either (in float64 they would be)
    assert metrics.correlation_times(torch.tensor(curve, dtype=torch.float32)) == {
        "correlation_time_0.8": 6, "correlation_time_0.9": 4, "correlation_time_0.95": 2}
    assert [metrics.correlation_time_name(t) for t in (0.8, 0.9, 0.95, 1, -0.25)] == [
        "correlation_time_0.8", "correlation_time_0.9", "correlation_time_0.95", "correlation_time_1.0",
        "correlation_time_-0.25"]


# --- the split's summary -----------------------------------------------------------------------------------------

def test_summary_of_rollout_scores():
    p, t = _pair(size=32)
    s = metrics.summarise_rollout(metrics.rollout_scores_per_step(p, t), (H, W))
    assert set(metrics.PER_STEP_METRICS) <= set(s) and "correlation_time" not in s
    assert {k: s[k] for k in s if k.startswith("correlation_time")} \
        == {f"correlation_time_{t}": sum(1 for v in s["correlation_per_step"] if v > t) for t in (0.8, 0.9, 0.95)}
    assert s["vrmse"] == pytest.approx(float(metrics.vrmse_per_step(p, t).mean()))
    assert s["nrmse_per_step"] == pytest.approx(metrics.nrmse_per_step(p, t).tolist())
    naive = _frmse_naive(p, t)
    for band in metrics.BANDS:
        assert s[f"frmse_{band}_per_step"] == pytest.approx(naive[band], rel=1e-10)
        assert s[f"frmse_{band}"] == pytest.approx(np.mean(naive[band]), rel=1e-10)  # PDEBench: mean over time
    assert sum(s[f"binned_spectral_mse_{b}"] for b in metrics.BANDS) == pytest.approx(
        float(metrics.rmse_per_step(p, t).pow(2).mean()), rel=1e-9)
    with pytest.raises(ValueError, match="expected"):
        metrics.vrmse_per_step(p[0], t[0])
