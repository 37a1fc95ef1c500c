"""End to end: the hyper-parameter search stage of the real Snakemake rules on the tiny preset, in two rungs of
successive halving (the better trial resumed from its checkpoint), its selection read by the final runs, and a
changed selection rerunning exactly the runs it changes (a dry run lists them)."""
from __future__ import annotations

import json

import pandas as pd
import torch
import yaml
from helpers import CONFIG, TINY, planned_jobs, snakemake
MODELS = ["conv", "rgroup"]
TARGETS = ["tune_all", *[f"results/runs/translation/{m}/seed0/metrics.json" for m in MODELS]]


def run(tmp_path, *args) -> str:
    """Snakemake on TARGETS with the tiny preset and the test's overlay (test.yaml)."""
    done = snakemake(TARGETS, tmp_path, [CONFIG, TINY, tmp_path / "test.yaml"], *args, cores=2, timeout=900)
    return done.stdout + done.stderr


def planned(tmp_path) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    return planned_jobs(run(tmp_path, "--dry-run"))


def test_tiny_search_selects_and_final_runs_follow_the_selection(tmp_path):
    # two trials of 1 epoch each, the better one resumed to 2 epochs (rung 1)
    override = {"models": {"translation": MODELS, "rotation": [], "scaling": [], "equivariance": []},
                "tuning": {"models": {"translation": MODELS, "rotation": [], "scaling": []},
                           "budget": {"epochs": 2, "patience": 2}, "halving": {"eta": 2, "rungs": 2}},
                "training": {"override": {"epochs": 1}}}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(override))
    run(tmp_path, "--quiet", "rules")
    tune = tmp_path / "results" / "tuning" / "translation"

    table = pd.read_csv(tmp_path / "results" / "tables" / "hyperparameters.csv")
    trained = table[table.status == "trained"]
    assert sorted(zip(trained.model, trained.trial)) == [(m, t) for m in MODELS for t in (0, 1)]
    assert trained.valid_rmse.gt(0).all() and trained.parameters.lt(10 ** 7).all() and trained.seconds.gt(0).all()
    assert (tmp_path / "results" / "figures" / "tuning.png").stat().st_size > 0
    for model in MODELS:
        best = yaml.safe_load((tune / model / "best.yaml").read_text())
        rows = trained[trained.model == model]
        assert rows.loc[rows.chosen, "trial"].tolist() == [best["trial"]]
        # rung 0 ranked both trials by validation RMSE after 1 epoch; the better one went on, and won
        scores = {t: json.loads((tune / model / "rung0" / f"trial{t}" / "result.json").read_text())["valid_rmse"]
                  for t in (0, 1)}
        promoted = yaml.safe_load((tune / model / "rung0" / "promoted.yaml").read_text())["promoted"]
        assert promoted == [min(scores, key=lambda t: (scores[t], t))] == [best["trial"]] and best["rung"] == 1
        last = json.loads((tune / model / "rung1" / f"trial{best['trial']}" / "result.json").read_text())
        assert (last["epochs_run"], last["epochs_trained"], last["tuned"]) == (2, 1, best["settings"])
        assert best["valid_rmse"] == last["valid_rmse"] == rows.loc[rows.chosen, "valid_rmse"].item()
        assert sorted(rows.epochs_trained) == [1, 2]
        assert not (tune / model / "rung1" / f"trial{1 - best['trial']}").exists()
        # the final run trained with the selection's settings
        saved = torch.load(tmp_path / "results" / "runs" / "translation" / model / "seed0" / "model.pt",
                           weights_only=True)
        used = {**saved["training"], **saved["hyperparameters"]}
        assert {k: used[k] for k in best["settings"]} == best["settings"]
        assert saved["training"]["epochs"] == 1  # the final runs keep their own budget, not the trials'

    assert planned(tmp_path) == set()
    # a changed selection for conv reruns exactly conv's run (and what reads it); a rewritten but equal
    # selection for rgroup reruns nothing
    conv = tune / "conv" / "best.yaml"
    best = yaml.safe_load(conv.read_text())
    best["settings"]["lr"] = best["settings"]["lr"] * 2
    conv.write_text(yaml.safe_dump(best, sort_keys=False))
    rgroup = tune / "rgroup" / "best.yaml"
    rgroup.write_text(rgroup.read_text())
    assert planned(tmp_path) == {("train", "dataset=translation, model=conv, seed=0"),
                                      ("evaluate", "dataset=translation, model=conv, seed=0"),
                                      ("tune_table", ""), ("tune_all", "")}
