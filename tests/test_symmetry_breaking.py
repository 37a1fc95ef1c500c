"""The relaxed weights' departure from the equivariant point, on models whose weights are set by hand."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from pipeline import metrics, symmetry_breaking as sb
from pipeline.models import build
from pipeline.symmetry import rotate_scalar

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


@pytest.mark.parametrize("name", sb.RELAXED_MODELS)
def test_zero_at_the_equivariant_point(name):
    model = _model(name)
    rows = sb.analyse(model)
    assert {r["layer"] for r in rows} == ({"conv1", "projection"} if name == "rgroup" else {"conv0", "conv1", "conv2"})
    assert all(r["departure"] == 0.0 and r["signed"] == 0.0 for r in rows)


def test_rgroup_perturbed_element_stands_out():
    model = _model("rgroup")
    with torch.no_grad():
        model.convs[0].w[1, 2] += 0.5
    assert _equivariance_error(model) > 1e-4
    rows = _rows(model, "conv1")
    # bank 1 = (1, 1, 1.5, 1): deviations -1/8 x3 and 3/8; ||w|| = sqrt(7 + 1.5^2)
    norm = (7 + 1.5 ** 2) ** 0.5
    assert rows["2"]["departure"] == pytest.approx(0.375 / norm)
    assert rows["0"]["departure"] == pytest.approx(0.125 / norm)
    assert rows["all"]["departure"] == pytest.approx(sum(rows[str(h)]["departure"] ** 2 for h in range(4)) ** 0.5)
    assert rows["2"]["signed"] > 0 > rows["0"]["signed"]
    assert sum(rows[str(h)]["signed"] for h in range(4)) == pytest.approx(0.0, abs=1e-12)
    assert _rows(model, "projection")["all"]["departure"] == 0.0


def test_rsteer_radial_profile_is_equivariant_and_one_pixel_stands_out():
    model = _model("rsteer")
    conv = model.convs[1]
    with torch.no_grad():  # centre, edges and corners weighted differently: still exactly equivariant
        conv.delta += torch.tensor([[0.3, -0.2, 0.3], [-0.2, 0.5, -0.2], [0.3, -0.2, 0.3]])
    assert _equivariance_error(model) < 1e-5
    assert all(r["departure"] < 1e-12 for r in sb.analyse(model))
    with torch.no_grad():  # the pixel below the centre (dy = -1, element 2) amplified by 1.4
        conv.delta[..., 0, 1] += 0.4 * conv.weight[..., 0, 1]
    assert _equivariance_error(model) > 1e-4
    rows = _rows(model, "conv1")
    assert max(range(4), key=lambda h: rows[str(h)]["departure"]) == 2
    assert rows["2"]["departure"] == pytest.approx(3 * rows["0"]["departure"])
    assert rows["2"]["signed"] > 0
    assert _rows(model, "conv0")["all"]["departure"] == 0.0


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
    assert proj.loc["3", "signed"] < 0 and proj.loc["3", "departure"] == proj.loc[["0", "1", "2", "3"], "departure"].max()
