"""benchmarks/gpu_check.py: its CPU smoke run (every section, tiny sizes) and the arithmetic behind (f) and (g)."""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT
from pipeline import datasets

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_smoke_runs_every_section(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--device", "cpu", "--smoke"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "gpu_check.csv")
    status = table[table.metric == "status"].set_index("section").value.to_dict()
    assert status == {s: "ok" for s in "abcdefg"}
    value = lambda s, m: table[(table.section == s) & (table.metric == m)].value.tolist()  # noqa: E731
    assert value("a", "runs trained and evaluated in a GPU slot") == ["2"]  # each in a slot of a stand-in GPU
    assert value("a", "slots used") == ["2"]
    assert value("d", "metrics.json keys that differ") == ["0"]
    assert value("f", "agrees with the DAG") == ["True"]
    assert len(value("e", "1 concurrent") + value("e", "2 concurrent") + value("e", "4 concurrent")) == 3
    assert float(value("g", "test_future RMSE")[0]) > 0  # persistence, then the two models
    assert len(value("g", "test_future RMSE")) == 3
    summary = (tmp_path / "gpu_check.md").read_text()
    assert all(f"## ({s})" in summary for s in "abcdefg") and "Failed" not in summary


def test_persistence_rmse_is_the_last_frame_repeated(check, tmp_path):
    store = check.synthetic_store(tmp_path / "translation.zarr", sims=3, frames=20, size=8)
    windows = {"offset": 1, "input_length": 3, "rollout": 4, "train": [0, 5], "valid": [5, 8],
               "test_future": [8, 12], "test_domain": [0, 12]}
    got = check.persistence_rmse(store, windows, "test_future", "cpu", batch=3)
    v = datasets.load(store).velocity.astype(np.float64)
    sq, n = 0.0, 0
    for sim in (0, 1):  # the train sims
        for start in range(8, 12):
            last = v[sim, start + 1 + 3 - 1]
            for k in range(4):
                sq += float(((v[sim, start + 1 + 3 + k] - last) ** 2).sum())
                n += last.size
    assert got == pytest.approx(math.sqrt(sq / n), rel=1e-5)


def test_costs_by_hand(check):
    """(f) on the tiny preset with one model, one seed, no sweep, a two-trial search and made-up timings."""
    cfg = check.load_config(ROOT / "presets" / "tiny.yaml", {
        "models": {"translation": ["conv"], "rotation": [], "scaling": [], "equivariance": []},
        "alpha_sweep": {"values": []},
        "tuning": {"models": {"translation": ["conv"], "rotation": [], "scaling": []}, "trials": 2,
                   "budget": {"epochs": 1, "patience": 1}}})
    # step 10 ms a batch of 8 with 2 rolled-out steps; forward 8 ms for those 16 sample-steps: 0.5 ms each
    timing = {("translation", "conv"): {"fp32": (10.0, None), "forward_ms": 8.0, "batch": 8, "out_length": 2}}
    # tiny translation: 4 sims, 1 held out; windows train [0, 5), valid [5, 8) (all three before test-future's first
    # target, so the search scores them all), test_future [11, 14), test_domain [0, 12); epochs 2, batch 8,
    # out_length 2, rollout 4
    epoch = math.ceil(3 * 5 / 8) * 0.010 + 3 * 3 * 2 * 0.0005
    evaluate = (3 * 3 + 3 * 3 + 1 * 12) * 4 * 0.0005
    score = 3 * 3 * 4 * 0.0005
    c = check.costs(cfg, timing)
    assert c["runs"] == 1 and c["trial_epochs"] == 2 and c["missing"] == []
    assert c["training_h"] * 3600 == pytest.approx(2 * epoch + evaluate)
    assert c["per_100_epochs_h"] * 3600 == pytest.approx(100 * epoch)
    assert c["search_h"] * 3600 == pytest.approx(2 * 1 * epoch + 2 * score)
    assert check.search_trial_epochs(cfg) == {("translation", "conv"): 2}


def test_paper_runs_match_the_documented_dag(check):
    cfg = check.load_config()
    # what `snakemake -n all` plans for config.yaml: 315 train + 12 train_alpha jobs, 560 tune_trial jobs of rung 0
    # (35 tuned models x 16 trials); the halving's rungs train 16 x 2, 6 x (7 - 2), 2 x (20 - 7) = 88 trial-epochs
    assert sum(n for *_, n in check.final_runs(cfg)) == 315 + 12
    assert sum(check.search_trial_epochs(cfg).values()) == 35 * (16 * 2 + 6 * 5 + 2 * 13)


def test_job_counts_reads_snakemakes_table(check):
    out = """Building DAG of jobs...
Job stats:
job               count
--------------  -------
train                11
tune_trial            2
all                   1
total                14

Reasons:
    (check individual jobs above for details)
"""
    assert check.job_counts(out) == {"train": 11, "tune_trial": 2, "all": 1}
