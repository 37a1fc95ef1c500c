"""End to end: the real Snakemake rules on the tiny preset, from simulation to Table 1, in a temporary folder."""
from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest
import torch
import yaml
from helpers import CONFIG, TINY, snakemake
MODELS = ["conv", "rgroup"]


def test_tiny_workflow_trains_evaluates_and_tabulates(tmp_path):
    # Translation only, two models, one epoch: the other families train nothing. Two stand-in GPUs (pipeline.gpus):
    # every training and evaluation claims a slot of one, as on a GPU machine, and computes on the CPU.
    override = {"models": {"translation": MODELS, "rotation": [], "scaling": [], "equivariance": []},
                "training": {"override": {"epochs": 1}}, "gpus": {"ids": "all", "jobs_per_gpu": 1}}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(override))
    targets = ["results/tables/table1.csv", "results/tables/table1.md", "results/tables/rollout_translation.csv",
               "results/tables/models.csv"]
    env = {**{k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}, "PIPELINE_STANDIN_GPUS": "0,1"}
    snakemake(targets, tmp_path, [CONFIG, TINY, tmp_path / "test.yaml"], "--quiet", "rules", cores=2, env=env)

    tiny = yaml.safe_load(TINY.read_text())
    steps = tiny["windows"]["translation"]["rollout"]
    for model in MODELS:
        run = tmp_path / "results" / "runs" / "translation" / model / "seed0"
        m = json.loads((run / "metrics.json").read_text())
        assert (m["dataset"], m["model"], m["seed"], m["epochs_run"]) == ("translation", model, 0, 1)
        for split in ("test_future", "test_domain"):
            assert math.isfinite(m[f"{split}_rmse"]) and len(m[f"{split}_rmse_per_step"]) == steps
        saved = torch.load(run / "model.pt", weights_only=True)
        assert saved["name"] == model and saved["hyperparameters"]["hidden"] == tiny["training"]["override"]["hidden"]
        for where in (m["gpu"], m["training_gpu"]):  # each job held a slot of a stand-in GPU
            assert where["index"] in (0, 1) and where["slot"] == 0 and where["chosen_by"] == "slot"
            assert where["device"] == "cpu" and where["name"] == f"cpu (standing in for GPU {where['index']})"
        assert m["training_gpu"] == saved["gpu"]
        assert pd.read_csv(run / "log.csv").epoch.tolist() == [1]
        assert (tmp_path / "results" / "logs" / "train" / "translation" / model / "seed0.log").stat().st_size > 0
        assert (tmp_path / "results" / "benchmarks" / "train" / "translation" / model / "seed0.tsv").exists()

    # persistence: evaluated without training, a row of Table 1 per split, every model compared with it
    p = json.loads((tmp_path / "results" / "runs" / "translation" / "persistence" / "metrics.json").read_text())
    assert (p["model"], p["seed"], p["parameters"], p["rollout_steps"]) == ("persistence", None, 0, steps)
    t1 = pd.read_csv(tmp_path / "results" / "tables" / "table1.csv")
    assert len(t1) == 2 * (len(MODELS) + 1) and set(t1.model) == {"persistence", *MODELS}
    assert (t1.dataset == "translation").all() and (t1.n_seeds == 1).all() and t1.rmse_mean.map(math.isfinite).all()
    trained = t1[t1.model != "persistence"]
    assert trained.paper_mean.tolist() == [0.94, 0.71, 0.68, 0.62]
    for split in ("test_future", "test_domain"):
        assert t1[t1.split == split].persistence_rmse.tolist() == pytest.approx([p[f"{split}_rmse"]] * 3, rel=1e-6)
    assert (trained.below_persistence == (trained.rmse_mean < trained.persistence_rmse)).all()
    md = (tmp_path / "results" / "tables" / "table1.md").read_text()
    assert "| translation future |" in md and "| | Persistence | Conv | RGroup |" in md
    assert md.count("†") == 1 + int((~trained.below_persistence.astype(bool)).sum())  # the note's and each mark
    sizes = pd.read_csv(tmp_path / "results" / "tables" / "models.csv")
    assert sizes.model.tolist() == MODELS and (sizes.family == "translation").all()
    assert (sizes.parameters > 0).all() and (sizes.fwd_bwd_ms_cpu > 0).all() and sizes.under_budget.all()
    ro = pd.read_csv(tmp_path / "results" / "tables" / "rollout_translation.csv")
    assert len(ro) == (len(MODELS) + 1) * 2 * steps and ro.rmse_mean.map(math.isfinite).all()
