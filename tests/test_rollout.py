"""The rollout and the RMSE of a split assembled over batches."""
from __future__ import annotations

import pytest
import torch
from helpers import write_synthetic_store

from pipeline import datasets, metrics
from pipeline.models.common import Model
from pipeline.rollout import Samples, frames_tensor, rollout, rollout_mse_per_step, split_rmse


class AddOne(Model):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * x[:, -1] + 1.0


def test_rollout_feeds_predictions_back():
    x = torch.zeros(2, 3, 2, 4, 4)
    x[:, -1] = 5.0
    out = rollout(AddOne(), x, 4)
    assert out.shape == (2, 4, 2, 4, 4)
    assert [float(out[0, k, 0, 0, 0].detach()) for k in range(4)] == [6.0, 7.0, 8.0, 9.0]


def test_split_rmse_equals_rmse_of_the_whole_split(tmp_path):
    ds = datasets.load(write_synthetic_store(tmp_path / "translation.zarr"))
    windows = datasets.split_windows(ds, "test_domain", {"offset": 0, "input_length": 2, "rollout": 3,
                                                          "train": [0, 8], "valid": [8, 11], "test_domain": [0, 7]})
    samples = Samples(frames_tensor(ds, "cpu"), windows)
    model = AddOne()
    total, per_step = split_rmse(rollout_mse_per_step(model, samples, batch=3))
    xs, ys = datasets.window_arrays(ds, windows)
    with torch.no_grad():
        pred = rollout(model, torch.from_numpy(xs), 3)
    assert total == pytest.approx(float(metrics.rmse(pred, torch.from_numpy(ys))), rel=1e-5)
    assert per_step == pytest.approx(metrics.rmse_per_step(pred, torch.from_numpy(ys)).tolist(), rel=1e-5)
