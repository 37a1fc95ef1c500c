"""The contents of metrics.json."""
from __future__ import annotations

import json
import math

import pytest
import torch
from test_rollout import AddOne
from helpers import tiny_config, write_synthetic_store

from pipeline import datasets, evaluate, metrics, runs, train
from pipeline.rollout import Samples, frames_tensor, rollout, rollout_mse_per_step, split_rmse


def test_split_scores_do_not_depend_on_the_batch_and_match_the_rmse(tmp_path):
    ds = datasets.load(write_synthetic_store(tmp_path / "translation.zarr"))
    windows = datasets.split_windows(ds, "test_domain", {"offset": 0, "input_length": 2, "rollout": 3,
                                                          "train": [0, 8], "valid": [8, 11], "test_domain": [0, 7]})
    samples = Samples(frames_tensor(ds, "cpu"), windows)
    by3 = evaluate.split_scores(AddOne(), samples, 3, "test_domain")
    whole = evaluate.split_scores(AddOne(), samples, len(samples), "test_domain")
    assert by3.keys() == whole.keys() and "test_domain_correlation_time_0.95" in by3
    for k, v in whole.items():
        assert by3[k] == (None if v is None else pytest.approx(v, rel=1e-5)), k
    rmse, per_step = split_rmse(rollout_mse_per_step(AddOne(), samples, batch=3))
    assert by3["test_domain_rmse"] == pytest.approx(rmse, rel=1e-6)
    assert by3["test_domain_rmse_per_step"] == pytest.approx(per_step, rel=1e-6)
    xs, ys = datasets.window_arrays(ds, windows)
    with torch.no_grad():
        pred = rollout(AddOne(), torch.from_numpy(xs), 3)
    ys = torch.from_numpy(ys)
    assert whole["test_domain_vrmse"] == pytest.approx(float(metrics.vrmse_per_step(pred, ys).mean()), rel=1e-5)
    # fRMSE takes the root of the mean over all the split's samples: scored in batches of 3, it is the whole split's
    assert whole["test_domain_frmse_mid_per_step"] == pytest.approx(metrics.frmse_per_step(pred, ys)["mid"].tolist(),
                                                                    rel=1e-5)


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
    for split in ("valid", "test_future", "test_domain"):
        for name in metrics.PER_STEP_METRICS:
            if name == "frmse_high":  # 16 x 16 frames: PDEBench's shells 0..7, no high band (12 and above)
                assert m[f"{split}_{name}"] is None and m[f"{split}_{name}_per_step"] is None
                continue
            assert math.isfinite(m[f"{split}_{name}"]) and len(m[f"{split}_{name}_per_step"]) == steps, name
        # PDEArena's correlation time at 0.8, 0.9 and 0.95 (config.yaml's): the steps strictly above, by a naive loop
        times = {k: v for k, v in m.items() if k.startswith(f"{split}_correlation_time")}
        assert times == {f"{split}_correlation_time_{t}": sum(1 for v in m[f"{split}_correlation_per_step"] if v > t)
                         for t in (0.8, 0.9, 0.95)}
        assert -1 <= m[f"{split}_correlation"] <= 1 and m[f"{split}_vrmse"] > 0
        bins = sum(m[f"{split}_binned_spectral_mse_{b}"] for b in metrics.BANDS)
        assert bins == pytest.approx(m[f"{split}_rmse"] ** 2, rel=1e-4)  # The Well's bins partition the MSE
    assert {"training_precision", "evaluation_numerics"} <= set(m)


def test_the_configured_correlation_thresholds_name_the_correlation_times(tmp_path):
    cfg, m = _trained(tmp_path, "rotation")
    params = runs.evaluate_params({**cfg, "evaluation": {"correlation_thresholds": [-0.5, 0.99]}}, "rotation")
    again = evaluate.evaluate_run(params, "rotation", str(tmp_path / "rotation.zarr"),
                                  str(tmp_path / "run" / "model.pt"),
                                  str(tmp_path / "again.json"))
    steps = cfg["windows"]["rotation"]["rollout"]
    for split in ("valid", "test_future", "test_domain"):
        assert {k: v for k, v in again.items() if k.startswith(f"{split}_correlation_time")} == {
            f"{split}_correlation_time_-0.5": sum(1 for v in m[f"{split}_correlation_per_step"] if v > -0.5),
            f"{split}_correlation_time_0.99": sum(1 for v in m[f"{split}_correlation_per_step"] if v > 0.99)}
        assert again[f"{split}_correlation_per_step"] == m[f"{split}_correlation_per_step"]  # only the times change
        assert 0 <= again[f"{split}_correlation_time_-0.5"] <= steps


def test_metrics_of_a_translation_run_have_no_equivariance_error(tmp_path):
    _, m = _trained(tmp_path, "translation")
    assert "equivariance_error" not in m and math.isfinite(m["test_domain_rmse"])


def test_metrics_of_an_equivariance_level(tmp_path):
    _, m = _trained(tmp_path, "equivariance_2", "equiv", level=2, data_equivariance_error=0.25)
    assert "test_future_rmse" not in m and "test_domain_rmse" not in m
    assert (m["level"], m["data_equivariance_error"]) == (2, 0.25)
    assert 0 <= m["equivariance_error"] < 1e-5  # E2CNN: exactly C4-equivariant, so the metric is round-off


def test_persistence_scores_the_last_input_frame_repeated(tmp_path):
    """Known answer: each test window's error against its last input frame, by a naive loop over windows, steps
    and elements; through the store, whole and chunk by chunk."""
    import numpy as np

    store = write_synthetic_store(tmp_path / "translation.zarr")
    params = runs.evaluate_params(tiny_config(), "translation")
    w = params["windows"]
    v = datasets.load(store).velocity.astype(np.float64)
    for cache_mb in (None, 1e-6):
        out = evaluate.evaluate_persistence(params, "translation", store, str(tmp_path / "p.json"), cache_mb=cache_mb)
        assert json.loads((tmp_path / "p.json").read_text()) == out
        assert (out["model"], out["seed"], out["parameters"]) == ("persistence", None, 0)
        for split, sims in (("test_future", [0, 1]), ("test_domain", [2])):
            steps = w["rollout"]
            sq, n = [0.0] * steps, [0] * steps
            for sim in sims:
                for start in range(*w[split]):
                    last = start + w["offset"] + w["input_length"] - 1
                    for k in range(steps):
                        for value_t, value_p in zip(v[sim, last + 1 + k].ravel(), v[sim, last].ravel()):
                            sq[k] += (value_t - value_p) ** 2
                            n[k] += 1
            per_step = [math.sqrt(sq[k] / n[k]) for k in range(steps)]
            assert out[f"{split}_rmse_per_step"] == pytest.approx(per_step, rel=1e-5)
            assert out[f"{split}_rmse"] == pytest.approx(math.sqrt(sum(sq) / sum(n)), rel=1e-5)
            assert out[f"{split}_rmse"] > 0.1  # the fields drift one cell a frame: persistence is far off
    x = torch.randn(2, 3, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(rollout(evaluate.Persistence(), x, 4), x[:, -1:].expand(2, 4, 2, 4, 4))
    assert not list(evaluate.Persistence().parameters())


def test_metrics_of_a_model_with_variants_score_each_variant(tmp_path):
    """Symmetry-breaking inputs: metrics.json scores the model and, beside it, the model with its fields zeroed, which
    is exactly C4-equivariant."""
    cfg, m = _trained(tmp_path, "rotation", "sbi")
    steps = cfg["windows"]["rotation"]["rollout"]
    for split in ("test_future", "test_domain"):
        assert math.isfinite(m[f"fields_zeroed_{split}_rmse"])
        assert len(m[f"fields_zeroed_{split}_rmse_per_step"]) == steps
        # a real difference, not round-off: the fields are a part of the model's input that zeroing removes
        assert abs(m[f"fields_zeroed_{split}_rmse"] - m[f"{split}_rmse"]) > 1e-4 * m[f"{split}_rmse"]
    assert "fields_zeroed_valid_rmse" not in m
    assert 0 <= m["fields_zeroed_equivariance_error"] < 1e-5 < m["equivariance_error"]


def test_metrics_hold_the_model_report(tmp_path):
    """ACE: metrics.json has each layer's gamma, slack and multiplier of the evaluated weights (model_gamma_1 ...)."""
    _, m = _trained(tmp_path, "rotation", "ace")
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    gammas = [m[f"model_gamma_{i + 1}"] for i in range(len(saved["state_dict"]["gamma"]))]
    assert gammas == pytest.approx(saved["state_dict"]["gamma"].tolist())
    assert f"model_gamma_{len(gammas) + 1}" not in m and "model_multiplier_1" in m and "model_slack_1" in m
