"""The training loop: loss, regulariser, best-weight copy, early stopping, determinism, resume, errors."""
from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import synthetic_velocity, tiny_config, write_synthetic_store
from pipeline import datasets, runs, train
from pipeline.rollout import Samples, frames_tensor
from pipeline.models import build
from pipeline.models.common import Model

WINDOWS = {"offset": 0, "input_length": 2, "rollout": 3, "train": [0, 8], "valid": [8, 11],
           "test_future": [11, 14], "test_domain": [0, 14]}


def samples(out_length: int = 2):
    ds = datasets.Dataset("synthetic", synthetic_velocity(), {"dataset": "translation",
                                                              "sims": [{"role": r} for r in ("train", "train",
                                                                                             "test_domain")]})
    frames = frames_tensor(ds, "cpu")
    return (Samples(frames, datasets.split_windows(ds, "train", WINDOWS, out_length)),
            Samples(frames, datasets.split_windows(ds, "valid", WINDOWS, out_length)), ds)


def settings(**kw) -> runs.Settings:
    base = dict(epochs=3, patience=10, batch=4, lr=1e-2, decay=0.95, weight_decay=0.0, out_length=2)
    return runs.Settings(**{**base, **kw})


def conv():
    torch.manual_seed(0)
    return build("conv", "translation", in_frames=2, hidden=4, layers=2, kernel_size=3)


def test_samples_match_window_arrays():
    tr, _, ds = samples()
    x, y = tr.get(torch.tensor([0, 5, 9]))
    xs, ys = datasets.window_arrays(ds, tr.windows, [0, 5, 9])
    assert torch.equal(x, torch.from_numpy(xs)) and torch.equal(y, torch.from_numpy(ys))


def test_loss_falls_on_a_learnable_problem():
    tr, va, _ = samples()
    result = train.fit(conv(), tr, va, settings(epochs=12), seed=0, run="synthetic", progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["train_rmse"] < 0.5 * first["train_rmse"]
    assert result.best_valid_rmse < first["valid_rmse"]
    assert [h["lr"] for h in result.history[:2]] == pytest.approx([1e-2, 1e-2 * 0.95])


class KnownRegulariser(Model):
    """Identity dynamics with a weight ``p`` that only enters the regulariser ``3 p``."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.tensor(0.7))
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return self.scale * x[:, -1]

    def regularizer(self):
        return 3.0 * self.p


def test_regulariser_is_added_linearly():
    tr, _, _ = samples()
    model = KnownRegulariser()
    x, y = tr.get(torch.arange(4))
    loss, data = train.batch_loss(model, x, y)
    expected_data = sum(torch.mean((x[:, -1] - y[:, k]) ** 2) for k in range(y.shape[1]))
    assert float(data) == pytest.approx(float(expected_data), rel=1e-6)
    assert float((loss - data).detach()) == pytest.approx(3.0 * 0.7, rel=1e-6)
    loss.backward()
    assert float(model.p.grad) == pytest.approx(3.0)  # linear: d(alpha R)/dp, not d(alpha R)^2/dp


def scripted_validation(monkeypatch, values):
    """Make ``fit`` see ``values`` as validation RMSEs and record a copy of the weights at each epoch."""
    seen = []

    def fake(model, samples, batch):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return values[len(seen) - 1]

    monkeypatch.setattr(train, "validation_rmse", fake)
    return seen


def test_best_weights_are_a_copy_not_the_last_epoch(monkeypatch):
    tr, va, _ = samples()
    seen = scripted_validation(monkeypatch, [1.0, 0.5, 0.9, 0.8])
    result = train.fit(conv(), tr, va, settings(epochs=4), seed=0, run="synthetic", progress=False)
    assert (result.best_epoch, result.best_valid_rmse, result.epochs_run) == (2, 0.5, 4)
    for k, v in result.best_state.items():
        assert torch.equal(v, seen[1][k])
    assert any(not torch.equal(v, seen[3][k]) for k, v in result.best_state.items())


def test_early_stopping_after_patience(monkeypatch):
    tr, va, _ = samples()
    scripted_validation(monkeypatch, [1.0, 0.5, 0.9, 0.8, 0.4, 0.3])
    result = train.fit(conv(), tr, va, settings(epochs=6, patience=2), seed=0, run="synthetic", progress=False)
    assert result.epochs_run == 4 and result.best_epoch == 2


class Slow(Model):
    """Identity dynamics whose every step takes 10 ms of a clock of its own (``ms``), which the training loop reads
    in the test below: an epoch of ``samples()`` (10 steps) takes exactly 0.1 s of it, whatever the machine's load."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))
        self.ms = 0

    def forward(self, x):
        self.ms += 10
        return self.scale * x[:, -1]


def test_max_seconds_stops_after_the_epoch_that_passes_it(monkeypatch):
    tr, va, _ = samples()  # 4 training batches x 2 steps + 1 validation batch x 2 steps: 10 steps an epoch

    def fit(**kw):
        model = Slow()
        monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=lambda: model.ms / 1000))
        return train.fit(model, tr, va, settings(epochs=5), seed=0, run="s", progress=False, **kw)

    assert fit().epochs_run == 5
    assert fit(max_seconds=0).epochs_run == 1  # the first epoch always runs
    assert fit(max_seconds=0.15).epochs_run == 2  # 0.1 s after the first epoch, 0.2 after the second: none starts
    assert fit(max_seconds=0.2).epochs_run == 2  # the time is up when the clock reaches it
    assert fit(max_seconds=0.25).epochs_run == 3
    history = fit(max_seconds=0.15).history
    assert [round(h["seconds"], 6) for h in history] == [0.1, 0.1], "an epoch's seconds come from the same clock"


class Exploding(Model):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float("nan")))

    def forward(self, x):
        return self.w * x[:, -1]


def test_non_finite_loss_names_the_run_and_epoch():
    tr, va, _ = samples()
    with pytest.raises(FloatingPointError, match=r"translation/exploding/seed3: non-finite training loss .* epoch 1"):
        train.fit(Exploding(), tr, va, settings(), seed=3, run="translation/exploding/seed3", progress=False)


# --- whole runs on a store (train_run) -----------------------------------------------------------------------

def _run(cfg, store, out):
    train.train_run(runs.train_params(cfg, "translation", "conv"), "translation", store, "conv", 0, str(out),
                    progress=False)
    saved = torch.load(Path(out) / "model.pt", weights_only=True)
    with open(Path(out) / "log.csv") as fh:
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]
    return saved, rows


def _same(a, b):
    assert a[1] == b[1]
    assert a[0]["state_dict"].keys() == b[0]["state_dict"].keys()
    for k in a[0]["state_dict"]:
        assert torch.equal(a[0]["state_dict"][k], b[0]["state_dict"][k]), k


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("data") / "translation.zarr")


def test_run_outputs_and_determinism(store, tmp_path):
    cfg = tiny_config(epochs=3, patience=5)
    a, b = _run(cfg, store, tmp_path / "a"), _run(cfg, store, tmp_path / "b")
    _same(a, b)
    saved, rows = a
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == ["epoch", "train_rmse", "valid_rmse", "lr"]
    assert saved["name"] == "conv" and saved["symmetry"] == "translation" and saved["seed"] == 0
    assert saved["hyperparameters"]["in_frames"] == 3 and saved["hyperparameters"]["frame_size"] == [16, 16]
    assert saved["best_valid_rmse"] == min(float(r["valid_rmse"]) for r in rows)
    assert not (tmp_path / "a" / "checkpoint.pt").exists()


def test_killed_run_resumes_to_the_same_result(store, tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3, patience=5)
    whole = _run(cfg, store, tmp_path / "whole")

    original = train._save_checkpoint
    calls = []

    def killed_after_first_epoch(path, state):
        original(path, state)
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(train, "_save_checkpoint", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, store, tmp_path / "resumed")
    monkeypatch.setattr(train, "_save_checkpoint", original)
    assert (tmp_path / "resumed" / "checkpoint.pt").exists() and not (tmp_path / "resumed" / "model.pt").exists()
    _same(whole, _run(cfg, store, tmp_path / "resumed"))


def test_checkpoint_of_other_settings_is_not_resumed(store, tmp_path):
    (tmp_path / "r").mkdir()
    torch.save({"fingerprint": {"run": "other"}}, tmp_path / "r" / "checkpoint.pt")
    _, rows = _run(tiny_config(epochs=2), store, tmp_path / "r")
    assert [int(r["epoch"]) for r in rows] == [1, 2]


def test_no_progress_bar_off_a_terminal(capsys):
    """A job's stderr is its log file, shared with nothing that redraws: tqdm draws only on a terminal."""
    tr, va, _ = samples()
    train.fit(conv(), tr, va, settings(epochs=1), seed=0, run="synthetic", progress=True)
    assert "synthetic:" not in capsys.readouterr().err
