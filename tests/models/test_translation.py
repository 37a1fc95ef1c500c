"""Translation family: equivariance of conv / rgroup, the shared relaxed and locally connected layers,
shapes, training, regularisers and parameter budgets. Everything is tiny (16x16 frames, hidden 4-8)."""
from __future__ import annotations

import math

import pytest
import torch

from helpers import assert_equivariant, equivariance_gap
from pipeline.models import build, count_parameters, names
from pipeline.models.common import LocallyConnected2d, RelaxedConv2d, pairwise_abs_difference
from pipeline.symmetry import translate

SIZE = (16, 16)
TINY = dict(in_frames=2, frame_size=SIZE, hidden=6, layers=3, kernel_size=3, banks=2, rank=2, alpha=1e-3)
ALL = ["mlp", "conv", "rpp", "combo", "clcnn", "lift", "rgroup", "sbi", "gmcnn"]
RELAXED = {"rpp", "clcnn", "rgroup"}   # models whose regulariser depends on the weights
SHIFT = (2, -3)
TRAIN_ALPHA = {"rgroup": 1e-6}


def shift(t):
    return translate(t, *SHIFT)


def crop_for(layers, kernel_size):
    """Border pixels to drop: the zero-padding reaches ``layers * (k // 2)`` in, the periodic roll ``max |shift|``."""
    return layers * (kernel_size // 2) + max(abs(s) for s in SHIFT)


def frames(batch=2, t=2, size=SIZE):
    return torch.randn(batch, t, 2, *size)


def perturb_relaxed(model, scale=0.5):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, RelaxedConv2d):
                m.relaxed_weights.add_(scale * torch.randn_like(m.relaxed_weights))


def test_all_names_registered():
    assert sorted(names("translation")) == sorted(ALL)


# --- equivariance -------------------------------------------------------------------------------------------

def test_conv_commutes_with_shifts():
    model = build("conv", "translation", **TINY).eval()
    assert_equivariant(model, frames(), shift, crop=crop_for(3, 3))


@pytest.mark.parametrize("weighting", ["input", "output"])
def test_rgroup_equivariant_at_init_and_not_after_perturbation(weighting):
    model = build("rgroup", "translation", weighting=weighting, **TINY).eval()
    x, crop = frames(), crop_for(3, 3)
    assert_equivariant(model, x, shift, crop=crop)
    assert float(model.regularizer().detach()) == 0.0
    perturb_relaxed(model)
    err, scale = equivariance_gap(model, x, shift, crop=crop)
    assert err > 1e-3 * scale, f"perturbed rgroup still equivariant: gap {err:.2e}, scale {scale:.2e}"
    assert float(model.regularizer().detach()) > 0.0


def test_relaxed_conv_equals_conv_of_weighted_kernels_at_equal_weights():
    layer = RelaxedConv2d(3, 4, 3, SIZE, banks=3)
    x = torch.randn(2, 3, *SIZE)
    kernel = (layer.kernel * layer.relaxed_weights[:, 0, 0, None, None, None, None]).sum(0)
    ref = torch.nn.functional.conv2d(x, kernel, layer.bias, padding=1)
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weighting", ["input", "output"])
def test_relaxed_conv_matches_paper_formula(weighting):
    """Direct evaluation of eq. 5 (input weighting) or of its output-weighted variant, bank by bank."""
    layer = RelaxedConv2d(2, 3, 3, (6, 7), banks=2, weighting=weighting)
    perturb_relaxed(layer)
    x = torch.randn(1, 2, 6, 7)
    ref = layer.bias[:, None, None].expand(3, 6, 7).clone()
    for bank in range(2):
        w = layer.relaxed_weights[bank]
        if weighting == "input":
            ref = ref + torch.nn.functional.conv2d(x * w, layer.kernel[bank], padding=1)[0]
        else:
            ref = ref + w * torch.nn.functional.conv2d(x, layer.kernel[bank], padding=1)[0]
    torch.testing.assert_close(layer(x)[0], ref, rtol=1e-5, atol=1e-5)


def test_pairwise_abs_difference_matches_brute_force():
    w = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    flat = w.reshape(3, -1)
    brute = (flat[:, :, None] - flat[:, None, :]).abs().sum()
    fast = pairwise_abs_difference(w)
    torch.testing.assert_close(fast, brute)
    g_fast, = torch.autograd.grad(fast, w)
    g_brute, = torch.autograd.grad((flat[:, :, None] - flat[:, None, :]).abs().sum(), w)
    torch.testing.assert_close(g_fast, g_brute)
    assert float(pairwise_abs_difference(torch.ones(2, 4, 4))) == 0.0


@pytest.mark.parametrize("rank", [None, 2])
def test_locally_connected_layer(rank):
    """Tied LC == convolution (equivariant, zero penalty); untied LC is not; forward matches the kernels;
    the low-rank Gram penalty equals the one on materialised kernels."""
    size = (7, 8)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    tied = LocallyConnected2d(3, 4, 3, size, rank=rank, init="tied").double()
    assert float(tied.neighbour_penalty().detach()) == pytest.approx(0.0, abs=1e-20)
    kern = tied.kernels()[..., 0, 0]
    ref = torch.nn.functional.conv2d(x, kern, tied.bias[:, 0, 0], padding=1)
    torch.testing.assert_close(tied(x), ref)

    lc = LocallyConnected2d(3, 4, 3, size, rank=rank).double()
    k = lc.kernels()                                                   # (o, i, 3, 3, H, W)
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    ref = torch.zeros(2, 4, *size, dtype=torch.float64)
    for py in range(size[0]):
        for px in range(size[1]):
            patch = xp[:, :, py:py + 3, px:px + 3]
            ref[:, :, py, px] = torch.einsum("bikl,oikl->bo", patch, k[..., py, px])
    torch.testing.assert_close(lc(x), ref + lc.bias)
    brute = ((k[..., 1:, :] - k[..., :-1, :]) ** 2).sum() + ((k[..., 1:] - k[..., :-1]) ** 2).sum()
    brute = (brute + ((lc.bias[:, 1:] - lc.bias[:, :-1]) ** 2).sum()
             + ((lc.bias[..., 1:] - lc.bias[..., :-1]) ** 2).sum())
    torch.testing.assert_close(lc.neighbour_penalty(), brute)
    err, scale = equivariance_gap(lc, x, lambda t: translate(t, 1, 1), crop=2)
    assert err > 1e-3 * scale


@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("weight_init", ["uniform", "he"])
def test_locally_connected_layer_options(rank, bias, weight_init):
    """The one LocallyConnected2d of all three families: ``position_kernels()`` ``(H W, o, i, k, k)`` is
    ``kernels()`` ``(o, i, k, k, H, W)`` position-major; the forward pass matches the kernels with or without
    bias; ``count`` is the parameter count; ``he`` starts with a zero bias; ``tied`` is a convolution."""
    size = (5, 6)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    lc = LocallyConnected2d(3, 4, 3, size, rank=rank, bias=bias, weight_init=weight_init).double()
    assert count_parameters(lc) == LocallyConnected2d.count(3, 4, 3, size, rank=rank, bias=bias)
    k, pk = lc.kernels(), lc.position_kernels()
    assert pk.shape == (30, 4, 3, 3, 3)
    torch.testing.assert_close(pk, k.permute(4, 5, 0, 1, 2, 3).reshape(30, 4, 3, 3, 3))
    if rank is None:
        assert pk is lc.weight
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    ref = torch.zeros(2, 4, *size, dtype=torch.float64)
    for py in range(size[0]):
        for px in range(size[1]):
            patch = xp[:, :, py:py + 3, px:px + 3]
            ref[:, :, py, px] = torch.einsum("bikl,oikl->bo", patch, pk[py * size[1] + px])
    if bias:
        ref = ref + lc.bias
        if weight_init == "he":
            assert float(lc.bias.detach().abs().sum()) == 0.0
    else:
        assert lc.bias is None
    torch.testing.assert_close(lc(x), ref)
    tied = LocallyConnected2d(3, 4, 3, size, rank=rank, bias=bias, weight_init=weight_init, init="tied").double()
    conv_bias = tied.bias[:, 0, 0] if bias else None
    ref = torch.nn.functional.conv2d(x, tied.kernels()[..., 0, 0], conv_bias, padding=1)
    torch.testing.assert_close(tied(x), ref)
    assert float(tied.neighbour_penalty().detach()) == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError, match="odd"):
        LocallyConnected2d(3, 4, 2, size)


# --- every model: shape, finiteness, regulariser, training ----------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_shape_finite_regularizer(name):
    model = build(name, "translation", **TINY)
    y = model(frames())
    assert y.shape == (2, 2, *SIZE)
    assert torch.isfinite(y).all()
    reg = model.regularizer()
    assert isinstance(reg, torch.Tensor) and reg.ndim == 0 and torch.isfinite(reg)
    if name in RELAXED:
        assert reg.requires_grad
        if name != "rgroup":       # rgroup starts at the equivariant point (checked above)
            assert float(reg.detach()) > 0.0
    else:
        assert float(reg.detach()) == 0.0


@pytest.mark.parametrize("name", ALL)
def test_trains(name):
    # rgroup's constraint is the paper's unnormalised sum over all ordered pairs of positions (~n^2 terms):
    # alpha must be tiny, or the L1 penalty dominates the first steps.
    model = build(name, "translation", **{**TINY, "alpha": TRAIN_ALPHA.get(name, TINY["alpha"])})
    x, target = frames(), torch.randn(2, 2, *SIZE)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = torch.mean((model(x) - target) ** 2) + model.regularizer()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.95 * losses[0], losses


def test_frame_size_mismatch_raises():
    model = build("rgroup", "translation", **TINY)
    with pytest.raises(ValueError, match="frames"):
        model(frames(size=(8, 8)))
    with pytest.raises(ValueError, match="frame_size"):
        build("clcnn", "translation", in_frames=2)


# --- parameter budget at the paper's hyper-parameters (docs/protocol.md; construction only, no forward) ---------

PAPER_SETTINGS = dict(in_frames=10, frame_size=(64, 64), hidden=128, layers=5, kernel_size=3, banks=2)
# The MLP cannot have hidden 128 at 64x64 within the budget (2*10*64*64*128 = 10.5M weights in its first
# layer alone); the paper tuned hidden per model, so its budget is checked at hidden 64.
PAPER_OVERRIDES = {"mlp": dict(hidden=64)}


@pytest.mark.parametrize("name", ALL)
def test_parameter_budget(name):
    model = build(name, "translation", **{**PAPER_SETTINGS, **PAPER_OVERRIDES.get(name, {})})
    assert count_parameters(model) < 10 ** 7


def test_mlp_at_hidden_128_exceeds_budget():
    """Documents why PAPER_OVERRIDES exists."""
    assert count_parameters(build("mlp", "translation", **PAPER_SETTINGS)) > 10 ** 7
