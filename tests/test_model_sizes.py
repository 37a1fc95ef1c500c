"""The models table measures what the config's ``hidden`` means for each model, and every model's size."""
from __future__ import annotations

import csv

import pytest
import torch

from pipeline import model_sizes
from pipeline.models import build, count_parameters
from pipeline import runs
from pipeline.runs import settings, symmetry_of
from helpers import tiny_config

X = torch.randn(1, 2, 2, 16, 16)


@pytest.mark.parametrize("symmetry, name, hp, channels", [
    ("rotation", "conv", {}, 6),                                  # channels
    ("rotation", "equiv", {}, 4 * 6),                             # regular C4 fields of 4 channels
    ("scaling", "equiv", {"scales": [1.0, 1.5, 2.0]}, 3 * 6),     # channels per scale
    ("translation", "mlp", {"frame_size": [16, 16]}, 6),          # the width of the hidden layers
    ("translation", "lift", {"frame_size": [16, 16]}, 6),         # the lift encoder's flat layers do not count
])
def test_channels_measure_what_hidden_means(symmetry, name, hp, channels):
    model = build(name, symmetry, in_frames=2, hidden=6, layers=3, kernel_size=3, **hp)
    assert model_sizes.feature_channels(model, X) == channels


def test_models_table_has_a_row_per_configured_model(tmp_path):
    cfg = tiny_config()
    out = tmp_path / "models.csv"
    rows = model_sizes.write_models_table(runs.models_table_params(cfg), str(out), repeat=1)
    expected = [(f, m) for f, ms in cfg["models"].items() for m in ms]
    assert [(r["family"], r["model"]) for r in rows] == expected
    with open(out) as fh:
        read = list(csv.DictReader(fh))
    assert [r["model"] for r in read] == [m for _, m in expected] and list(read[0]) == list(model_sizes.COLUMNS)
    grid = cfg["data"]["grid"]
    for r in rows:
        dataset = "equivariance_0" if r["family"] == "equivariance" else r["family"]
        _, hp = settings(cfg, dataset, r["model"])
        in_frames = cfg["windows"][r["family"]]["input_length"]
        model = build(r["model"], symmetry_of(dataset), **hp, in_frames=in_frames, frame_size=[grid, grid])
        assert r["parameters"] == count_parameters(model) and r["under_budget"]
        assert r["fwd_bwd_ms_cpu"] > 0 and r["batch"] == cfg["training"]["override"]["batch"]
    by = {(r["family"], r["model"]): r for r in rows}
    assert by[("rotation", "rsteer")]["channels_per_hidden"] == 4
    assert by[("rotation", "conv")]["channels_per_hidden"] == 1
