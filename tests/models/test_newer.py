"""The approximately equivariant models published since 2022 (docs/newer-models.md): each one's claimed property,
at tiny sizes."""
from __future__ import annotations

import math

import pytest
import torch

from helpers import assert_equivariant, equivariance_gap
from pipeline import train
from pipeline.models import build, common
from pipeline.symmetry import rotate

SIZE = (12, 12)
ROT = dict(in_frames=2, hidden=2, layers=3, kernel_size=3)
SCALE = dict(in_frames=2, hidden=3, layers=3, kernel_size=5, scales=(1.0, 1.5))


def frames(batch=2, t=2, size=SIZE):
    return torch.randn(batch, t, 2, *size)


def rot(k):
    return lambda u: rotate(u, k)


def perturb_(module: torch.nn.Module, scale: float = 0.3) -> None:
    """Move every parameter away from its initial value (relaxed terms included), as training would."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


# ------------------------------------------------------------------------------------ relax-then-project

def test_schedules_start_peak_and_reach_zero():
    tri, lin = common.triangle_schedule, common.linear_schedule
    assert [tri(p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert [lin(p) for p in (0.0, 0.5, 1.0)] == [1.0, 0.5, 0.0]
    assert tri(1.7) == 0.0 and lin(-1.0) == 1.0  # clamped to [0, 1]


def test_relaxed_penalty_of_known_kernels():
    """``||W|| + ||W - g W||``: a quarter-turn-invariant kernel pays only ``||W||``; a dilation of a constant kernel
    is the same constant (bilinear weights sum to 1)."""
    m = build("crelax", "rotation", **ROT)
    w = torch.ones(1, 1, 3, 3)
    w[0, 0, 1, 1] = 5.0
    assert float(common.relaxation_penalty_of_kernel(w, m.moved_kernel(w))) == pytest.approx(math.sqrt(8 + 25))
    v = torch.zeros(1, 1, 3, 3)
    v[0, 0, 0, 2] = 1.0  # one corner: a quarter turn moves it to another corner
    assert float(common.relaxation_penalty_of_kernel(v, m.moved_kernel(v))) == pytest.approx(1 + math.sqrt(2))
    s = build("crelax", "scaling", **SCALE)
    c = torch.full((2, 3, 5, 5), 0.7)
    torch.testing.assert_close(s.moved_kernel(c), c)


@pytest.mark.parametrize("symmetry, hp", [("rotation", ROT), ("scaling", SCALE)])
def test_projection_is_the_equivariant_model(symmetry, hp):
    """In evaluation the relaxed terms are gone: the same seed gives exactly the E2CNN / SESN output (both build
    their equivariant layers first, in the same order), whatever the relaxed weights and the schedule."""
    x = frames()
    torch.manual_seed(0)
    equiv = build("equiv", symmetry, **hp).eval()
    torch.manual_seed(0)
    model = build("crelax", symmetry, **hp)
    with torch.no_grad():
        for r in model.relaxed:
            r.weight.normal_()
    model.on_training_step(0.5)
    assert model.mix == 1.0
    with torch.no_grad():
        on = model.train()(x)
        off = model.eval()(x)
        torch.testing.assert_close(off, equiv(x), rtol=0, atol=1e-6)
    assert (on - off).abs().max() > 1e-2  # in training the relaxed terms do act


@pytest.mark.parametrize("k", (1, 2, 3))
def test_crelax_rotation_eval_is_equivariant_and_training_is_not(k):
    torch.manual_seed(1)
    model = build("crelax", "rotation", **ROT)
    perturb_(model)
    model.on_training_step(0.5)
    x = frames()
    err, scale = equivariance_gap(model.train(), x, rot(k))
    assert err > 1e-2 * scale  # relaxed: not equivariant while the terms are on
    assert_equivariant(model.eval(), x, rot(k))


def test_crelax_trained_by_the_loop_reaches_zero_weight_and_is_equivariant():
    """The training loop tells the model its progress before every step; the schedule's weight rises and falls back
    to (almost) zero by the last step, the relaxed terms are trained, and the final model is equivariant."""
    from test_train import samples, settings

    tr, va, _ = samples()
    torch.manual_seed(0)
    model = build("crelax", "rotation", in_frames=2, hidden=2, layers=2, kernel_size=3, alpha=1e-3)
    before = [r.weight.detach().clone() for r in model.relaxed]
    seen, hook = [], model.on_training_step

    def record(progress):
        hook(progress)
        seen.append((progress, model.mix))

    model.on_training_step = record
    cfg = settings(epochs=4, batch=4)
    result = train.fit(model, tr, va, cfg, seed=0, run="crelax", progress=False)
    steps = math.ceil(len(tr) / cfg.batch)
    expected = [(e + s / steps) / cfg.epochs for e in range(cfg.epochs) for s in range(steps)]
    assert [p for p, _ in seen] == pytest.approx(expected)
    mixes = [m for _, m in seen]
    assert mixes[0] == 0.0 and max(mixes) == pytest.approx(1.0, abs=2 / len(mixes))
    assert mixes[-1] == pytest.approx(2 / (cfg.epochs * steps))  # one step before the schedule's zero at p = 1
    assert common.triangle_schedule(1.0) == 0.0
    assert any(not torch.equal(b, r.weight) for b, r in zip(before, model.relaxed))
    model.load_state_dict(result.best_state)
    for k in (1, 2, 3):
        assert_equivariant(model.eval(), torch.randn(2, 2, 2, 16, 16), rot(k))


def test_crelax_rejects_an_unknown_schedule():
    with pytest.raises(ValueError, match="schedule must be one of triangle, linear, got 'cosine'"):
        build("crelax", "rotation", schedule="cosine", **ROT)


# ------------------------------------------------------------------------------------ symmetry-breaking inputs

SBI = {"translation": dict(in_frames=2, frame_size=(20, 20), hidden=4, layers=3, kernel_size=3),
       "rotation": dict(in_frames=2, frame_size=SIZE, hidden=2, layers=3, kernel_size=3),
       "scaling": dict(in_frames=2, frame_size=SIZE, **{k: v for k, v in SCALE.items() if k != "in_frames"})}


def sbi(symmetry, **kw):
    torch.manual_seed(2)
    model = build("sbi", symmetry, **SBI[symmetry], **kw)
    perturb_(model)  # fields and weights away from their (equivariant) start
    return model.eval()


@pytest.mark.parametrize("k", (1, 2, 3))
def test_sbi_rotation_zeroed_fields_give_exact_equivariance(k):
    model = sbi("rotation")
    x = frames()
    zeroed = model.evaluation_variants()["fields_zeroed"]
    assert_equivariant(zeroed, x, rot(k))
    err, scale = equivariance_gap(model, x, rot(k))
    assert err > 1e-2 * scale  # with the fields on the symmetry is broken


def test_sbi_translation_zeroed_fields_give_the_cnn():
    """Zeroed: translation-equivariant away from the borders (a CNN); on: not."""
    from pipeline.symmetry import translate

    model = sbi("translation")
    zeroed = model.evaluation_variants()["fields_zeroed"]
    x = frames(size=(20, 20))
    shift = lambda u: translate(u, 2, -1)  # noqa: E731
    crop = 3 + 3  # receptive field (3 layers of kernel 3) plus the shift
    assert_equivariant(zeroed, x, shift, crop=crop)
    err, scale = equivariance_gap(model, x, shift, crop=crop)
    assert err > 1e-2 * scale


def test_sbi_scaling_zeroed_fields_give_a_sesn():
    """Zeroed, the model is the SESN whose lifting layer has only the frames' input channels: copy the weights into
    ``equiv`` and the outputs agree exactly; with the fields on they differ."""
    model = sbi("scaling")
    torch.manual_seed(0)
    equiv = build("equiv", "scaling", **SCALE).eval()
    state = {k: (v[:, :4] if k == "net.convs.0.weight" else v) for k, v in model.state_dict().items()
             if k.startswith("net.")}
    equiv.load_state_dict(state)
    x = frames()
    with torch.no_grad():
        torch.testing.assert_close(model(x, zero_fields=True), equiv(x), rtol=0, atol=1e-6)
        assert (model(x) - equiv(x)).abs().max() > 1e-3


def test_sbi_fields_start_at_zero_and_dropout_zeroes_whole_samples():
    torch.manual_seed(0)
    model = build("sbi", "rotation", **SBI["rotation"], field_dropout=0.5)
    assert float(model.fields.detach().abs().max()) == 0.0  # starts as the equivariant model
    perturb_(model)
    x = frames(batch=1).expand(32, -1, -1, -1, -1)
    with torch.no_grad():
        on, off = model.eval()(x[:1]), model(x[:1], zero_fields=True)
        out = model.train()(x)
    is_on = [torch.allclose(o, on[0], atol=1e-6) for o in out]
    is_off = [torch.allclose(o, off[0], atol=1e-6) for o in out]
    assert all(a != b for a, b in zip(is_on, is_off))  # every sample has all its fields on or all off
    assert 4 <= sum(is_off) <= 28  # about half dropped (P(outside) < 1e-3 for Binomial(32, 1/2))


def test_sbi_rejects_bad_settings():
    with pytest.raises(ValueError, match="field_dropout must be in \\[0, 1\\), got 1.0"):
        build("sbi", "translation", **SBI["translation"], field_dropout=1.0)
    with pytest.raises(ValueError, match="fields must be at least 1, got 0"):
        build("sbi", "rotation", **SBI["rotation"], fields=0)


# ------------------------------------------------------------------------------------------------------ ACE

@pytest.mark.parametrize("k", (1, 2, 3))
def test_ace_gamma_zero_gives_exact_equivariance(k):
    torch.manual_seed(3)
    model = build("ace", "rotation", **ROT)
    perturb_(model)
    x = frames()
    err, scale = equivariance_gap(model.eval(), x, rot(k))
    assert err > 1e-2 * scale  # gamma starts at 1: the flexible model
    with torch.no_grad():
        model.gamma.zero_()
    for mode in (model.train(), model.eval()):
        assert_equivariant(mode, x, rot(k))


@pytest.mark.parametrize("symmetry, hp", [("rotation", ROT), ("scaling", SCALE)])
def test_ace_gamma_zero_is_the_equivariant_model(symmetry, hp):
    """Same seed: the equivariant layers are E2CNN's / SESN's; with gamma = 0 the outputs agree exactly."""
    x = frames()
    torch.manual_seed(0)
    equiv = build("equiv", symmetry, **hp).eval()
    torch.manual_seed(0)
    model = build("ace", symmetry, **hp).eval()
    assert model.gamma.tolist() == [1.0] * hp["layers"] and model.slack.tolist() == [0.0] * hp["layers"]
    with torch.no_grad():
        assert (model(x) - equiv(x)).abs().max() > 1e-3
        model.gamma.zero_()
        torch.testing.assert_close(model(x), equiv(x), rtol=0, atol=1e-6)


def test_ace_dual_step_sign_and_clamp():
    """``lambda <- max(0, lambda + dual_lr (|gamma| - u))`` with ``u`` projected onto ``u >= 0`` first: a violated
    constraint raises its multiplier, a satisfied one lowers it, never below zero (numbers by hand)."""
    model = build("ace", "rotation", **ROT, dual_lr=0.1)
    with torch.no_grad():
        model.gamma.copy_(torch.tensor([0.5, -0.5, 0.1]))
        model.slack.copy_(torch.tensor([0.2, -0.3, 0.3]))  # the negative slack is projected to 0
        model.multipliers.copy_(torch.tensor([0.0, 0.05, 0.01]))
    model.on_training_step(0.3)
    assert model.slack.tolist() == pytest.approx([0.2, 0.0, 0.3])
    # 0 + 0.1 * 0.3; 0.05 + 0.1 * 0.5; max(0, 0.01 + 0.1 * (0.1 - 0.3)) = 0
    assert model.multipliers.tolist() == pytest.approx([0.03, 0.10, 0.0])
    model.on_training_step(0.4)
    assert model.multipliers.tolist() == pytest.approx([0.06, 0.15, 0.0])


def test_ace_lagrangian_gradients_push_gamma_down_and_slack_up():
    """``d/dgamma = lambda sign(gamma)`` (descent shrinks |gamma|), ``d/du = -lambda + rho u``."""
    model = build("ace", "rotation", **ROT, slack_penalty=2.0)
    with torch.no_grad():
        model.gamma.copy_(torch.tensor([0.5, -0.5, 0.0]))
        model.slack.copy_(torch.tensor([0.1, 0.0, 0.2]))
        model.multipliers.copy_(torch.tensor([0.3, 0.4, 0.0]))
    reg = model.regularizer()
    assert float(reg.detach()) == pytest.approx(0.3 * 0.4 + 0.4 * 0.5 + 0.0 + 0.5 * 2.0 * (0.01 + 0.04))
    reg.backward()
    assert model.gamma.grad.tolist()[:2] == pytest.approx([0.3, -0.4])
    assert model.slack.grad.tolist() == pytest.approx([-0.3 + 0.2, -0.4, 0.4])


def test_ace_trained_by_the_loop_logs_gamma_per_layer(tmp_path):
    """Through ``train_run``: the dual steps move the multipliers, gamma moves from 1, and ``log.csv`` has each
    layer's gamma, slack and multiplier at every epoch (the saved model's in its best epoch's row)."""
    import csv

    from test_train import tiny_config, write_synthetic_store

    from pipeline import runs

    cfg = tiny_config(epochs=2)
    store = write_synthetic_store(tmp_path / "rotation.zarr", "rotation")
    params = runs.train_params(cfg, "rotation", "ace")
    params["model"].update(hidden=2, layers=2)
    train.train_run(params, "rotation", store, "ace", 0, str(tmp_path / "run"), progress=False)
    with open(tmp_path / "run" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert set(rows[0]) == {*train.LOG_COLUMNS, "gamma_1", "gamma_2", "slack_1", "slack_2", "multiplier_1",
                            "multiplier_2"}
    last = rows[-1]
    assert float(last["multiplier_1"]) > 0 and float(last["gamma_1"]) != 1.0
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    best = rows[saved["best_epoch"] - 1]
    assert saved["state_dict"]["gamma"].tolist() == pytest.approx([float(best["gamma_1"]), float(best["gamma_2"])])
    assert saved["state_dict"]["multipliers"].tolist() == pytest.approx([float(best["multiplier_1"]),
                                                                         float(best["multiplier_2"])])


# --------------------------------------------------------------------------------------------------- GM-CNN

def naive_gmconv(layer: common.GMConv2d, x: torch.Tensor) -> torch.Tensor:
    """The layer's formula by loops: ``m(p)/||m|| sum_d w[o,d]/||w[o]|| sum_i x[i](p + d mod n) + b[o]``."""
    b, _, h, w = x.shape
    r = layer.k // 2
    mask = layer.mask / layer.mask.norm()
    out = torch.zeros(b, layer.weight.shape[0], h, w, dtype=torch.float64)
    for o in range(layer.weight.shape[0]):
        kern = layer.weight[o, 0] / layer.weight[o].norm()
        for py in range(h):
            for px in range(w):
                acc = torch.zeros(b, dtype=torch.float64)
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        acc += float(kern[dy + r, dx + r]) * x[:, :, (py + dy) % h, (px + dx) % w].sum(1).double()
                out[:, o, py, px] = float(mask[py, px]) * acc + float(layer.bias[o])
    return out


def test_gmconv_matches_its_formula_by_loops():
    torch.manual_seed(0)
    layer = common.GMConv2d(3, (5, 6), neighbourhood=1)
    with torch.no_grad():
        layer.bias.normal_()
        x = torch.randn(2, 4, 5, 6)
        torch.testing.assert_close(layer(x).double(), naive_gmconv(layer, x), rtol=1e-5, atol=1e-6)


def test_gmconv_kernel_is_shared_across_input_channels():
    torch.manual_seed(0)
    layer = common.GMConv2d(3, (6, 6))
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer(x[:, [2, 0, 3, 1]]))
        torch.testing.assert_close(layer(x), layer(x.sum(1, keepdim=True)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("symmetry", ["translation", "rotation", "scaling"])
def test_gmcnn_uniform_mask_is_shift_equivariant_and_a_learned_one_is_not(symmetry):
    """Periodic shifts (``pipeline.symmetry.translate``, the grid's translation group): exact with uniform masks, at
    every pixel (the group matrix wraps around, so no border is lost); broken by non-uniform masks."""
    from pipeline.symmetry import translate

    torch.manual_seed(0)
    model = build("gmcnn", symmetry, in_frames=2, frame_size=(10, 10), hidden=3, layers=2)
    x = torch.randn(2, 2, 2, 10, 10)
    shift = lambda u: translate(u, 3, -2)  # noqa: E731
    err, scale = equivariance_gap(model, x, shift)
    assert err > 1e-2 * scale
    with torch.no_grad():
        for block in model.blocks:
            block.mask.fill_(0.37)
    assert_equivariant(model, x, shift)


def test_gmcnn_parameter_count_follows_the_formula():
    """``(2 T + 1) C + blocks (C (2 r + 1)^2 + C + H W + 1) + 2 C + 2``, by hand at two settings, and the authors'
    plume settings (C 120, 2 blocks, r = 1, 64 x 64, 10 frames): 2520 + 2 (1080 + 120 + 4096 + 1) + 242 = 13356."""
    from pipeline.models import count_parameters

    small = build("gmcnn", "rotation", in_frames=2, frame_size=(6, 8), hidden=3, layers=2, neighbourhood=2)
    assert (count_parameters(small) == 5 * 3 + 2 * (3 * 25 + 3 + 48 + 1) + 6 + 2
            == common.GMCNN.count(2, (6, 8), 3, 2, 2))
    paper = build("gmcnn", "scaling", in_frames=10, frame_size=(64, 64), hidden=120, layers=2, neighbourhood=1)
    assert count_parameters(paper) == 13356 == common.GMCNN.count(10, (64, 64), 120, 2, 1)
