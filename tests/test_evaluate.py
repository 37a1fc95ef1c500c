"""The contents of metrics.json."""
from __future__ import annotations

import json
import math

import pytest
from test_train import tiny_config, write_synthetic_store

from pipeline import evaluate, runs, train


def _trained(tmp_path, dataset, model="conv", **store_attrs):
    cfg = tiny_config(epochs=1)
    roles = ("train",) * 4 if dataset.startswith("equivariance") else ("train", "train", "test_domain")
    store = write_synthetic_store(tmp_path / f"{dataset}.zarr", dataset, roles, **store_attrs)
    run = tmp_path / "run"
    train.train_run(runs.train_params(cfg, dataset, model), dataset, store, model, 0, str(run), progress=False)
    out = evaluate.evaluate_run(runs.evaluate_params(cfg, dataset), dataset, store, str(run / "model.pt"),
                                str(run / "metrics.json"))
    assert json.loads((run / "metrics.json").read_text()) == out
    return cfg, out


def test_metrics_of_a_rotation_run(tmp_path):
    cfg, m = _trained(tmp_path, "rotation")
    steps = cfg["windows"]["rotation"]["rollout"]
    for split in ("valid", "test_future", "test_domain"):
        assert math.isfinite(m[f"{split}_rmse"]) and len(m[f"{split}_rmse_per_step"]) == steps
        assert m[f"{split}_rmse"] == pytest.approx(math.sqrt(sum(v * v for v in m[f"{split}_rmse_per_step"]) / steps))
    assert (m["dataset"], m["model"], m["seed"], m["rollout_steps"]) == ("rotation", "conv", 0, steps)
    assert m["parameters"] > 0 and m["equivariance_error"] > 0  # a plain CNN is not C4-equivariant


def test_metrics_of_a_translation_run_have_no_equivariance_error(tmp_path):
    _, m = _trained(tmp_path, "translation")
    assert "equivariance_error" not in m and math.isfinite(m["test_domain_rmse"])


def test_metrics_of_an_equivariance_level(tmp_path):
    _, m = _trained(tmp_path, "equivariance_2", "equiv", level=2, data_equivariance_error=0.25)
    assert "test_future_rmse" not in m and "test_domain_rmse" not in m
    assert (m["level"], m["data_equivariance_error"]) == (2, 0.25)
    assert 0 <= m["equivariance_error"] < 1e-5  # E2CNN: exactly C4-equivariant, so the metric is round-off
