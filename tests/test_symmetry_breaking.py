"""The relaxed weights' departure from the equivariant point, on models whose weights are set by hand."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from pipeline import metrics, symmetry_breaking as sb
from pipeline.models import RELAXED_C4, build
from pipeline.symmetry import rotate, rotate_scalar

HYPER = dict(in_frames=2, hidden=2, layers=3, kernel_size=3, alpha=0.0)


def _model(name):
    return build(name, "rotation", **HYPER, **({"banks": 2} if name == "rgroup" else {}))


def _rows(model, layer):
    return {r["element"]: r for r in sb.analyse(model) if r["layer"] == layer}


def _equivariance_error(model):
    x = torch.randn(2, HYPER["in_frames"], 2, 12, 12)
    with torch.no_grad():
        return float(metrics.rotation_equivariance_error(model, x))


def test_kernel_elements_follow_the_quarter_turns():
    assert sb.kernel_elements(3).tolist() == [[2, 2, 3], [1, -1, 3], [1, 0, 0]]  # row 0 is dy = -1 (down)
    for k in (3, 5):
        h = sb.kernel_elements(k)
        assert [int((h == e).sum()) for e in range(4)] == [(k * k - 1) // 4] * 4
        turned = rotate_scalar(h, 1)                      # the pixel of element e lands on one of element e + 1
        assert torch.equal(torch.where(turned >= 0, (turned + 1) % 4, turned), h)


RSTEER_TOL = 1e-6  # escnn's basis is stored in float32: an exactly steerable RSteer kernel departs by ~1e-7


@pytest.mark.parametrize("name", RELAXED_C4)
def test_zero_at_initialisation_and_growing_as_the_relaxed_weights_move(name):
    model = _model(name)
    rows = sb.analyse(model)
    assert {r["layer"] for r in rows} == ({"conv1", "projection"} if name == "rgroup" else {"conv0", "conv1", "conv2"})
    tol = 1e-12 if name == "rgroup" else RSTEER_TOL  # RGroup's kernels are exact; RSteer's basis is escnn's float32
    assert all(r["departure"] < tol and abs(r["signed"]) < tol for r in rows)
    relaxed = [layer.w if name == "rgroup" else layer.delta for _, layer in sb.relaxed_layers(model)]
    direction = [torch.randn(w.shape, generator=torch.Generator().manual_seed(i)) for i, w in enumerate(relaxed)]
    start = [w.detach().clone() for w in relaxed]
    curves = []
    for step in (0.01, 0.05, 0.2):
        with torch.no_grad():
            for w, w0, d in zip(relaxed, start, direction):
                w.copy_(w0 + step * d)
        curves.append([r["departure"] for r in sb.analyse(model) if r["element"] == "all"])
    for layer in range(len(curves[0])):
        small, mid, large = (c[layer] for c in curves)
        assert 1e-4 < small < mid < large <= 1


def _weight_space_departure(w: torch.Tensor, orbit) -> float:
    """The old measure, written out: ||w - mean over the orbit|| / ||w|| of the relaxed weights themselves."""
    w = w.detach().double()
    return float((w - orbit(w)).norm() / w.norm())


def test_equivariant_rgroup_layer_with_unequal_bank_weights_scores_zero():
    model = _model("rgroup")
    conv = model.convs[0]
    with torch.no_grad():  # bank 1's filter is zero, so its weights w_1(h) change nothing: free, and unequal
        conv.psi[1].zero_()
        conv.w[1] = torch.tensor([0.1, 3.0, -2.0, 5.0])
    old = _weight_space_departure(conv.w, lambda w: w.mean(dim=1, keepdim=True).expand_as(w))
    assert old > 0.5                                   # the weights look far from equivariant ...
    assert _equivariance_error(model) < 1e-5           # ... but the model is equivariant
    assert _rows(model, "conv1")["all"]["departure"] < 1e-12


def test_equivariant_rsteer_layer_with_non_invariant_coefficients_scores_zero():
    """At each kernel pixel, coefficient vectors in the null space of that pixel's basis values change no kernel
    entry: drawn independently per pixel they are far from C4-invariant, and the layer stays exactly steerable."""
    model = _model("rsteer")
    conv = model.convs[1]
    L, d_out, d_in, k, _ = conv.basis.shape
    before = conv.kernel().detach().clone()
    g = torch.Generator().manual_seed(3)
    free = torch.zeros(L, k, k, dtype=torch.float64)
    for y in range(k):
        for x in range(k):
            values = conv.basis[:, :, :, y, x].double().reshape(L, d_out * d_in)   # (L, entries)
            _, sv, vh = torch.linalg.svd(values.T)
            null = vh[int((sv > 1e-6 * sv.max()).sum()):]  # coefficient vectors c, c @ values = 0
            if len(null):
                free[:, y, x] = null.T @ torch.randn(len(null), generator=g, dtype=torch.float64)
    with torch.no_grad():
        conv.delta += 3.0 * free.float()
    assert torch.allclose(conv.kernel(), before, atol=1e-5), "the null-space coefficients changed the kernel"

    def orbit(w):
        return torch.stack([torch.rot90(w, t, dims=(-1, -2)) for t in range(4)]).mean(dim=0)

    assert _weight_space_departure(conv.weight, orbit) > 0.5   # the old measure: far from invariant
    assert _equivariance_error(model) < 1e-5
    assert _rows(model, "conv1")["all"]["departure"] < RSTEER_TOL


def _periodic_operator_departure(layer, in_kind: str, out_kind: str, n_in: int, escnn: bool, size: int = 5) -> float:
    """Independent computation: the layer's linear map on a periodic ``size x size`` grid as a matrix (the circular
    convolution with its assembled kernel, in our frame), and its distance to the group average of that matrix,
    with the fields turned by pipeline.symmetry (vector fields ``rotate``; regular fields ``rotate_scalar`` and the
    index rolled, ``(g . f)(x, i) = f(R^-g x, i - g)``)."""
    width = {"vector": 2, "regular": 4}
    kernel = layer.kernel().detach().double()
    k = kernel.shape[-1]

    def frame(f, kind):  # escnn frame <-> ours (both involutions): vy negated; regular index i read as -i
        if not escnn:
            return f
        f = f.reshape(f.shape[0], -1, width[kind], size, size)
        f = f * torch.tensor([1.0, -1.0], dtype=f.dtype)[:, None, None] if kind == "vector" else f[:, :, [0, 3, 2, 1]]
        return f.reshape(f.shape[0], -1, size, size)

    def apply(f):  # f: (batch, channels, size, size) in our frame
        y = torch.nn.functional.conv2d(torch.nn.functional.pad(frame(f, in_kind), (k // 2,) * 4, mode="circular"),
                                       kernel)
        return frame(y, out_kind)

    def act(f, kind, g):
        f = f.reshape(f.shape[0], -1, width[kind], size, size)
        if kind == "vector":
            out = rotate(f, g)
        else:
            out = torch.roll(rotate_scalar(f, g), g, dims=2)
        return out.reshape(f.shape[0], -1, size, size)

    n = n_in * width[in_kind] * size * size
    basis = torch.eye(n, dtype=torch.float64).reshape(n, n_in * width[in_kind], size, size)
    m = apply(basis).reshape(n, -1).T                                  # (out dim, in dim)
    avg = torch.zeros_like(m)
    for g in range(4):
        t_in = act(basis, in_kind, g).reshape(n, -1).T                 # columns: turned unit inputs
        turned_out = act(m.T.reshape(n, -1, size, size), out_kind, g).reshape(n, -1).T
        avg += turned_out @ t_in.T / 4                                 # T_out M T_in^-1 (T_in orthogonal)
    return float((m - avg).norm() / m.norm())


@pytest.mark.parametrize("name", RELAXED_C4)
def test_a_random_layer_scores_what_its_periodic_linear_map_gives(name):
    model = _model(name)
    torch.manual_seed(7)
    with torch.no_grad():
        for _, layer in sb.relaxed_layers(model):
            if name == "rgroup":
                layer.w.add_(torch.randn_like(layer.w))
            else:
                layer.delta.add_(0.5 * torch.randn_like(layer.delta))
    got = {r["layer"]: r["departure"] for r in sb.analyse(model) if r["element"] == "all"}
    if name == "rgroup":
        cases = {"conv1": (model.convs[0], "regular", "regular", HYPER["hidden"]),
                 "projection": (model.proj, "regular", "vector", HYPER["hidden"])}
    else:
        cases = {"conv0": (model.convs[0], "vector", "regular", HYPER["in_frames"]),
                 "conv1": (model.convs[1], "regular", "regular", HYPER["hidden"]),
                 "conv2": (model.convs[2], "regular", "vector", HYPER["hidden"])}
    for layer, (module, kind_in, kind_out, n_in) in cases.items():
        want = _periodic_operator_departure(module, kind_in, kind_out, n_in, escnn=name == "rsteer")
        assert 0.05 < want and got[layer] == pytest.approx(want, rel=1e-6), layer


def test_rgroup_perturbed_element_stands_out():
    model = _model("rgroup")
    with torch.no_grad():
        model.convs[0].w[1, 2] += 0.5
    assert _equivariance_error(model) > 1e-4
    rows = _rows(model, "conv1")
    assert max(range(4), key=lambda h: rows[str(h)]["departure"]) == 2
    assert rows["2"]["departure"] > 2 * max(rows[str(h)]["departure"] for h in (0, 1, 3))
    # every RGroup kernel entry has an element: the elements' squares sum to the layer's
    assert rows["all"]["departure"] == pytest.approx(sum(rows[str(h)]["departure"] ** 2 for h in range(4)) ** 0.5)
    assert rows["2"]["signed"] > 0
    assert _rows(model, "projection")["all"]["departure"] == 0.0


def test_rsteer_radial_profile_is_equivariant_and_one_pixel_stands_out():
    model = _model("rsteer")
    conv = model.convs[1]
    with torch.no_grad():  # centre, edges and corners weighted differently: still exactly equivariant
        conv.delta += torch.tensor([[0.3, -0.2, 0.3], [-0.2, 0.5, -0.2], [0.3, -0.2, 0.3]])
    assert _equivariance_error(model) < 1e-5
    assert all(r["departure"] < RSTEER_TOL for r in sb.analyse(model))
    with torch.no_grad():  # the pixel below the centre (dy = -1, element 2) amplified by 1.4
        conv.delta[..., 0, 1] += 0.4 * conv.weight[..., 0, 1]
    assert _equivariance_error(model) > 1e-4
    rows = _rows(model, "conv1")
    assert max(range(4), key=lambda h: rows[str(h)]["departure"]) == 2
    assert rows["2"]["signed"] > 0
    assert _rows(model, "conv0")["all"]["departure"] < RSTEER_TOL


def test_table_of_saved_runs(tmp_path):
    model = _model("rgroup")
    with torch.no_grad():
        model.proj.w[0, 3] -= 0.2
    paths = []
    for level in (0, 3):
        run = tmp_path / f"equivariance_{level}"
        run.mkdir()
        torch.save({"name": "rgroup", "symmetry": "rotation", "hyperparameters": {**HYPER, "banks": 2},
                    "state_dict": model.state_dict()}, run / "model.pt")
        (run / "metrics.json").write_text(json.dumps({"dataset": f"equivariance_{level}", "model": "rgroup", "seed": 0,
                                                      "level": level, "data_equivariance_error": 0.1 * level}))
        paths.append((run / "model.pt", run / "metrics.json"))
    df = sb.write_table([p for p, _ in paths], [m for _, m in paths], tmp_path / "sb.csv")
    back = pd.read_csv(tmp_path / "sb.csv")
    assert list(back.columns) == sb.COLUMNS and len(back) == len(df) == 2 * 2 * 5
    proj = back[(back.layer == "projection") & (back.level == 3)].set_index("element")
    assert proj.loc["3", "signed"] < 0 and proj.loc["3", "departure"] == proj.loc[["0", "1", "2", "3"],
                                                                                  "departure"].max()


# --- ACE's gamma_i (pipeline.models.common.ACE), read from the runs' metrics.json ------------------------------------

def _ace_metrics(level: int, seed: int, gamma: list[float]) -> dict:
    """A level run's metrics.json as the evaluation writes it: a real ACE model's report() under ``model_``."""
    model = build("ace", "rotation", in_frames=2, hidden=2, layers=len(gamma), kernel_size=3)
    with torch.no_grad():
        model.gamma.copy_(torch.tensor(gamma))
        model.slack.copy_(torch.tensor(gamma).abs() / 2)
        model.multipliers.copy_(torch.arange(1.0, len(gamma) + 1))
    return {"dataset": f"equivariance_{level}", "model": "ace", "seed": seed, "level": level,
            "data_equivariance_error": 0.1 * level, **{f"model_{k}": v for k, v in model.report().items()}}


def test_ace_gamma_table_of_written_metrics(tmp_path):
    paths = []
    for level, seed, gamma in ((0, 0, [0.5, -0.25, 0.0]), (3, 0, [1.0, -0.5, 0.125]), (3, 1, [0.75, 0.25, -2.0])):
        path = tmp_path / f"e{level}s{seed}.json"
        path.write_text(json.dumps(_ace_metrics(level, seed, gamma)))
        paths.append(path)
    sb.write_gamma_table(paths, tmp_path / "ace_gamma.csv")
    back = pd.read_csv(tmp_path / "ace_gamma.csv")
    assert list(back.columns) == sb.GAMMA_COLUMNS and len(back) == 3 * 3
    assert back["layer"].tolist() == ["layer1", "layer2", "layer3"] * 3
    assert back["gamma"].tolist() == [0.5, -0.25, 0.0, 1.0, -0.5, 0.125, 0.75, 0.25, -2.0]
    assert back["abs_gamma"].tolist() == [0.5, 0.25, 0.0, 1.0, 0.5, 0.125, 0.75, 0.25, 2.0]
    assert back["slack"].tolist() == (back["abs_gamma"] / 2).tolist()
    assert back["multiplier"].tolist() == [1.0, 2.0, 3.0] * 3
    assert back["level"].tolist() == [0] * 3 + [3] * 6 and back["seed"].tolist() == [0] * 6 + [1] * 3
    assert back["data_equivariance_error"].tolist() == pytest.approx([0.0] * 3 + [0.3] * 6)


def test_ace_gamma_table_refuses_runs_without_gamma(tmp_path):
    metrics = _ace_metrics(1, 0, [0.5, 0.5])
    no_gamma = {k: v for k, v in metrics.items() if not k.startswith("model_")} | {"model": "rgroup"}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(no_gamma))
    with pytest.raises(KeyError, match=r"metrics\.json \(rgroup\) has no model_gamma_1"):
        sb.write_gamma_table([path], tmp_path / "out.csv")
    del metrics["model_multiplier_2"]
    with pytest.raises(KeyError, match="model_gamma_2 but not model_multiplier_2"):
        sb.gamma_rows(metrics, "run/metrics.json")
    assert not (tmp_path / "out.csv").exists()
