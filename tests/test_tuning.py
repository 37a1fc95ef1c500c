"""The hyper-parameter search (pipeline/tuning.py): deterministic draws, the parameter budget, the rungs of the
successive halving and their promotion, a promoted trial resumed exactly, selection by validation only, a trial on a
store whose test frames are poisoned, the table and its figure."""
from __future__ import annotations

import copy
import csv
import json
import logging
import math

import pytest
import torch
import yaml
from helpers import CONFIG, synthetic_velocity, tiny_config, write_synthetic_store

from pipeline import config as pipeline_config
from pipeline import figures, runs, search, train, tuning
from pipeline.models import build, count_parameters


def tuned(cfg: dict, family: str, *models: str, **tuning_cfg) -> dict:
    cfg = copy.deepcopy(cfg)
    cfg["tuning"]["models"][family] = list(models)
    cfg["tuning"].update(tuning_cfg)
    return cfg


def draw(cfg: dict, dataset: str, model: str, frame_size, **kw) -> dict:
    """The draw job's call: the model's run params and the tuning section, as the rule passes them."""
    return tuning.draw_trials(runs.train_params(cfg, dataset, model), cfg["tuning"], dataset, model, frame_size, **kw)


def paper_config() -> dict:
    return pipeline_config.validate(pipeline_config.load(CONFIG))


def test_draws_are_deterministic_and_extend_without_change():
    cfg = tuned(tiny_config(), "rotation", "rgroup", trials=5)
    a = draw(cfg, "rotation", "rgroup", (32, 32))
    assert a == draw(cfg, "rotation", "rgroup", (32, 32))
    assert [t["trial"] for t in a["trials"]] == [0, 1, 2, 3, 4]
    # trial 0 is the config's own setting with the tuning budget; the others differ from it and from each other
    base = tuning.base_settings(runs.train_params(cfg, "rotation", "rgroup"), cfg["tuning"]["budget"])
    assert a["trials"][0]["settings"] == base and base["epochs"] == cfg["tuning"]["budget"]["epochs"]
    assert len({json.dumps(t["tuned"], sort_keys=True) for t in a["trials"]}) == 5
    # only what the model uses is searched: rgroup has banks, no alpha (dropped by the tiny preset)
    assert set(a["trials"][1]["tuned"]) == {"lr", "batch", "hidden", "layers", "banks", "out_length"}
    conv = draw(tuned(cfg, "rotation", "conv"), "rotation", "conv", (32, 32))
    assert "banks" not in conv["trials"][1]["tuned"]
    # a larger budget keeps the first trials; another seed draws others
    more = draw({**cfg, "tuning": {**cfg["tuning"], "trials": 7}}, "rotation", "rgroup", (32, 32))
    assert more["trials"][:5] == a["trials"]
    other = draw({**cfg, "tuning": {**cfg["tuning"], "seed": 1}}, "rotation", "rgroup", (32, 32))
    assert other["trials"][0] == a["trials"][0] and other["trials"][1:] != a["trials"][1:]


def test_space_values_cover_the_bounds():
    lr = search.Dimension("lr", "log", (1e-5, 1e-2))
    assert lr.value(0.0) == 1e-5 and lr.value(0.999999) == 1e-2 and lr.value(0.5) == 3.16e-4
    layers = search.Dimension("layers", "int", (3, 6))
    assert [layers.value(u) for u in (0.0, 0.26, 0.5, 0.99)] == [3, 4, 5, 6]
    alpha = search.Dimension("alpha", "choice", (0.0, 1e-6, 1e-4, 1e-2))
    assert [alpha.value(u) for u in (0.0, 0.3, 0.6, 0.9)] == [0.0, 1e-6, 1e-4, 1e-2]


def test_over_budget_draws_are_rejected_before_training():
    # the paper's translation MLP: 11.6 M parameters at width 128, so wider draws must be rejected
    cfg = tuned(paper_config(), "translation", "mlp", trials=6)
    counted = []

    def count(model, symmetry, hp):
        counted.append(hp["hidden"])
        return tuning.parameter_count(model, symmetry, hp)

    drawn = draw(cfg, "translation", "mlp", (64, 64), count=count)
    assert len(drawn["trials"]) == 6
    assert all(t["parameters"] < train.PARAMETER_BUDGET for t in drawn["trials"])
    over = [r for r in drawn["rejected"] if r["reason"] == "over_budget"]
    assert over and all(r["parameters"] >= train.PARAMETER_BUDGET and r["tuned"]["hidden"] >= 128 for r in over)
    assert len(counted) == 6 + len(drawn["rejected"]) - sum(r["reason"] == "duplicate" for r in drawn["rejected"])
    # the config's own setting over the budget is an error naming the key to change
    cfg["training"]["models"]["translation"]["mlp"]["hidden"] = 512
    with pytest.raises(ValueError, match=r"config\['training'\]\['models'\]\['translation'\]\['mlp'\]"):
        draw(cfg, "translation", "mlp", (64, 64))


def test_search_that_cannot_fill_its_trials_names_the_keys():
    cfg = tuned(paper_config(), "translation", "mlp", trials=6, max_draws=4)
    cfg["tuning"]["space"] = {"hidden": {"choice": [256, 512]}}  # every draw over budget
    with pytest.raises(ValueError, match=r"config\['tuning'\]\['max_draws'\] = 4"):
        draw(cfg, "translation", "mlp", (64, 64))


def test_parameter_count_of_escnn_models_equals_a_full_build():
    hp = dict(in_frames=3, hidden=7, layers=3, kernel_size=3, alpha=0.0)
    for name in ("equiv", "rsteer"):  # built on the CPU (escnn cannot use the meta device), count extrapolated
        assert tuning.parameter_count(name, "rotation", hp) == count_parameters(build(name, "rotation", **hp))
    hp = dict(in_frames=3, frame_size=[16, 16], hidden=7, layers=3, kernel_size=3, banks=2, alpha=0.0)
    assert tuning.parameter_count("rgroup", "translation", hp) == count_parameters(build("rgroup", "translation", **hp))


def _result(trial, valid, test=None, rung=0):
    return {"dataset": "rotation", "model": "conv", "trial": trial, "draw": trial - 1 if trial else None,
            "parameters": 10, "tuned": {"lr": 10.0 ** -trial}, "settings": {}, "status": "trained", "rung": rung,
            "rung_epochs": rung + 1, "valid_rmse": valid, "best_epoch": 1, "epochs_run": rung + 1,
            "epochs_trained": 1, "seconds": 1.0,
            **({} if test is None else {"test_future_rmse": test, "test_domain_rmse": test})}


def schedule(trials, epochs, eta=3, rungs=3):
    rs = search.rung_schedule({"trials": trials, "budget": {"epochs": epochs}, "halving": {"eta": eta, "rungs": rungs}})
    return [(r["epochs"], r["trials"]) for r in rs], search.trial_epochs(rs)


def test_rung_schedule_rounding_and_small_counts():
    # the paper's search: 20/9 = 2.2 -> 2 epochs, 20/3 = 6.7 -> 7; ceil(16/3) = 6, ceil(16/9) = 2 trials;
    # 16*2 + 6*(7-2) + 2*(20-7) = 88 trial-epochs instead of 16*20 = 320
    assert schedule(16, 20) == ([(2, 16), (7, 6), (20, 2)], 88)
    assert schedule(16, 20, rungs=1) == ([(20, 16)], 320)  # halving off: the same trials, the full budget
    # the quick preset: 3/9 -> 1 epoch (at least one), 3/3 -> 1 again: that rung is left out
    assert schedule(2, 3) == ([(1, 2), (3, 1)], 2 * 1 + 1 * 2)
    assert schedule(9, 9) == ([(1, 9), (3, 3), (9, 1)], 9 + 3 * 2 + 6)
    # one trial: nothing to halve; eta 2 halves; a 1-epoch budget is one rung
    assert schedule(1, 20) == ([(20, 1)], 20)
    assert schedule(8, 8, eta=2, rungs=4) == ([(1, 8), (2, 4), (4, 2), (8, 1)], 8 + 4 + 2 * 2 + 4)
    assert schedule(2, 1) == ([(1, 2)], 2)
    with pytest.raises(ValueError, match=r"config\['tuning'\]\['halving'\]: expected eta >= 2"):
        schedule(4, 4, eta=1)
    # config.yaml's search is at most a third of the trial-epochs without halving
    cfg = paper_config()["tuning"]
    assert search.trial_epochs(search.rung_schedule(cfg)) * 3 <= cfg["trials"] * cfg["budget"]["epochs"]


def test_promotion_by_validation_only_never_a_diverged_trial(tmp_path):
    diverged = {**_result(4, math.inf), "status": "diverged"}
    # trial 1 has the best test score but the worst validation score of the trained ones
    results = [_result(0, 0.9, 0.9), _result(1, 0.95, 0.01), _result(2, 0.7), _result(3, 0.8), diverged]
    assert tuning.promote(results, 2) == [2, 3]
    assert tuning.promote([_result(0, 0.5), _result(1, 0.5), _result(2, 0.6)], 1) == [0]  # a tie: lower trial
    assert tuning.promote([_result(0, 0.5), diverged], 2) == [0]  # fewer trained than places: fewer go on
    with pytest.raises(ValueError, match="all diverged"):
        tuning.promote([diverged], 1)
    files = []
    for r in results:
        files.append(tmp_path / f"r{r['trial']}.json")
        files[-1].write_text(json.dumps(r))
    out = tuning.promote_job(files, {"rung": 1, "epochs": 3, "trials": 2}, tmp_path / "promoted.yaml")
    assert search.read_promoted(tmp_path / "promoted.yaml") == [2, 3] == out["promoted"]
    assert out["next_epochs"] == 3 and out["scores"][4] == math.inf


def test_selection_by_validation_only(tmp_path):
    # trial 1 has the best test scores but trial 2 the best validation score: trial 2 is chosen
    results = [_result(0, 0.9, 0.9), _result(1, 0.8, 0.1), _result(2, 0.7, 0.95),
               {**_result(3, math.inf), "status": "diverged"}]
    assert tuning.select(results)["trial"] == 2
    assert tuning.select([_result(0, 0.5), _result(1, 0.5)])["trial"] == 0  # a tie keeps the lower trial
    files = []
    for r in results:
        files.append(tmp_path / f"r{r['trial']}.json")
        files[-1].write_text(json.dumps(r))
    best = tuning.select_job(files, tmp_path / "best.yaml")
    assert best["trial"] == 2 and search.read_selection(tmp_path / "best.yaml") == {"lr": 0.01}
    with pytest.raises(ValueError, match="all diverged"):
        tuning.select([{**_result(0, math.inf), "status": "diverged"}])


def test_space_errors_name_the_key():
    for space, message in [({"lr": {"log": [0.0, 1.0]}}, r"\['lr'\]: log bounds must be positive"),
                           ({"layers": {"int": [6, 3]}}, r"\['layers'\]: int needs \[lo, hi\]"),
                           ({"widht": {"choice": [1]}}, r"\['widht'\]: no training setting"),
                           ({"epochs": {"int": [1, 2]}}, r"\['epochs'\]: epochs is the trial budget")]:
        with pytest.raises(ValueError, match=r"config\['tuning'\]\['space'\]" + message):
            search.parse_space(space)
    cfg = paper_config()
    cfg["tuning"]["models"]["rotation"] = ["rsteer_tr"]
    with pytest.raises(pipeline_config.ConfigError,
                       match=r"config\['tuning'\]\['models'\]\['rotation'\]: \['rsteer_tr'\] are not trained"):
        pipeline_config.validate(cfg)
    cfg = paper_config()
    cfg["tuning"]["space"]["lr"] = {"log": [1e-2, 1e-5]}
    with pytest.raises(pipeline_config.ConfigError, match=r"config\['tuning'\]\['space'\]\['lr'\]"):
        pipeline_config.validate(cfg)


POISON = 1e6


@pytest.fixture(scope="module")
def poisoned_store(tmp_path_factory):
    """A translation store whose frames outside the train and validation windows are 10^6 (the store refuses
    NaN): any read of a test window (test-future frames of the train sims, the held-out sim) makes a score huge."""
    velocity = synthetic_velocity(3)
    velocity[:2, 16:] = POISON   # tiny windows: the first test-future target is frame 16
    velocity[2] = POISON         # the held-out sim
    return write_synthetic_store(tmp_path_factory.mktemp("data") / "translation.zarr", velocity=velocity)


def test_trial_trains_and_scores_without_reading_test_windows(poisoned_store, tmp_path):
    cfg = tuned(tiny_config(), "translation", "conv", trials=2)
    trial = draw(cfg, "translation", "conv", (16, 16))["trials"][1]
    params = search.trial_params(cfg, "translation", trial)
    # the trial trains with exactly its drawn settings, whatever the override of the preset says
    assert {**params["run"]["training"], **params["run"]["model"]} == trial["settings"]
    out = tmp_path / "trial1"
    result = tuning.run_trial(params, "translation", poisoned_store, "conv", str(out), str(out / "result.json"))
    assert result["status"] == "trained" and 0 < result["valid_rmse"] < 10  # the fields are of order 1
    assert json.loads((out / "result.json").read_text())["valid_rmse"] == result["valid_rmse"]
    assert result["epochs_run"] == cfg["tuning"]["budget"]["epochs"] and result["tuned"] == trial["tuned"]
    assert not (out / "model.pt").exists() and (out / "log.csv").exists() and (out / "checkpoint.pt").exists()


def _log_rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_promoted_trial_resumes_and_ends_as_an_uninterrupted_training(poisoned_store, tmp_path, caplog):
    halved = tuned(tiny_config(), "translation", "conv", trials=3, budget={"epochs": 3, "patience": 3},
                   halving={"eta": 3, "rungs": 2})
    whole = tuned(halved, "translation", "conv", halving={"eta": 3, "rungs": 1})
    assert [(r["epochs"], r["trials"]) for r in search.rung_schedule(halved["tuning"])] == [(1, 3), (3, 1)]
    trial = draw(halved, "translation", "conv", (16, 16))["trials"][1]
    assert draw(whole, "translation", "conv", (16, 16))["trials"][1] == trial  # halving does not change the draws

    def run(cfg, rung, name, previous=None):
        out = tmp_path / name
        return tuning.run_trial(search.trial_params(cfg, "translation", trial, rung), "translation", poisoned_store,
                                "conv", str(out), str(out / "result.json"), previous=previous)

    first = run(halved, 0, "rung0")
    with caplog.at_level(logging.INFO, logger="pipeline"):
        second = run(halved, 1, "rung1", previous=str(tmp_path / "rung0" / "result.json"))
    assert "resuming from" in caplog.text and "after epoch 1" in caplog.text
    full = run(whole, 0, "whole")
    assert (first["epochs_run"], first["epochs_trained"], second["epochs_trained"],
            full["epochs_trained"]) == (1, 1, 2, 3)
    assert (second["rung"], second["rung_epochs"], full["rung"]) == (1, 3, 0)
    for key in ("status", "valid_rmse", "best_epoch", "epochs_run"):
        assert second[key] == full[key], key
    # bit for bit: weights, best weights, optimiser moments, learning rate, early-stopping count
    a = torch.load(tmp_path / "rung1" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    for name in b["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
        assert torch.equal(a["loop"]["best_state"][name], b["loop"]["best_state"][name]), name
    for i, moments in b["optimizer"]["state"].items():
        assert all(torch.equal(a["optimizer"]["state"][i][k], v) for k, v in moments.items())
    assert a["scheduler"] == b["scheduler"] and a["loop"]["bad_epochs"] == b["loop"]["bad_epochs"]
    rung0, rung1, uninterrupted = (_log_rows(tmp_path / d / "log.csv") for d in ("rung0", "rung1", "whole"))
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(rung1) == drop(uninterrupted) and len(rung1) == 3
    # rung 1 continued rung 0's history (its epoch 1, timing included, is rung 0's), it did not train it again
    assert rung1[0] == rung0[0]
    # the rung before is left whole; a checkpoint that trained further than the budget is not resumed
    assert (tmp_path / "rung0" / "checkpoint.pt").exists()
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "checkpoint.pt").write_bytes((tmp_path / "whole" / "checkpoint.pt").read_bytes())
    again = run(halved, 0, "again")
    assert again["epochs_run"] == 1 and again["valid_rmse"] == first["valid_rmse"]


def test_diverging_trial_is_recorded_not_fatal(poisoned_store, tmp_path):
    cfg = tuned(tiny_config(), "translation", "conv", trials=2)
    trial = draw(cfg, "translation", "conv", (16, 16))["trials"][1]
    trial = {**trial, "settings": {**trial["settings"], "lr": 1e30}}
    result = tuning.run_trial(search.trial_params(cfg, "translation", trial), "translation", poisoned_store, "conv",
                              str(tmp_path), str(tmp_path / "r.json"))
    assert result["status"] == "diverged" and result["valid_rmse"] == math.inf and result["epochs_trained"] == 1
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["fingerprint"] is None  # nothing to resume
    with pytest.raises(ValueError, match="trial 1 is diverged"):  # and it cannot be promoted
        tuning.run_trial(search.trial_params(cfg, "translation", trial), "translation", poisoned_store, "conv",
                         str(tmp_path / "next"), str(tmp_path / "next.json"), previous=str(tmp_path / "r.json"))


def test_table_marks_the_choice_and_lists_rejected_draws(tmp_path):
    # trial 1 went on to rung 1 (one more epoch) and was chosen there
    results = [_result(0, 0.9), _result(1, 0.8), _result(1, 0.7, rung=1),
               {**_result(2, math.inf), "status": "diverged"}]
    drawn = [{"dataset": "rotation", "model": "conv",
              "rejected": [{"draw": 5, "reason": "over_budget", "parameters": 2 * 10 ** 7, "tuned": {"lr": 1e-3}}]}]
    selections = [{"dataset": "rotation", "model": "conv", "trial": 1}]
    df = tuning.hyperparameters_table(drawn, results, selections)
    assert df["status"].tolist() == ["trained", "trained", "diverged", "over_budget"]
    assert df["chosen"].tolist() == [False, True, False, False]
    assert df["rung"].tolist()[:3] == [0, 1, 0] and df["valid_rmse"][1] == 0.7  # each trial at its last rung
    assert df["epochs_trained"].tolist() == [1, 2, 1, 0]  # its epochs over every rung
    assert {"parameters", "valid_rmse", "seconds", "lr"} <= set(df.columns)
    fig = figures.plot_tuning(df)
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"
    figures.save(fig, tmp_path / "tuning.png", dpi=50)
    assert (tmp_path / "tuning.png").stat().st_size > 0
    yaml.safe_dump(json.loads(df.to_json(orient="records")))  # plain values only


def test_selection_goes_over_the_config_and_under_a_sweeps_alpha():
    cfg = paper_config()
    params = runs.train_params(cfg, "scaling", "rsteer", alpha=1e-2, tuned={"lr": 1e-3, "hidden": 128, "alpha": 0.0})
    assert (params["training"]["lr"], params["model"]["hidden"], params["model"]["alpha"]) == (1e-3, 128, 1e-2)
    assert params["model"]["kernel_size"] == 5  # untouched settings stay the config's
    assert runs.train_params(cfg, "scaling", "rsteer", tuned={}) == runs.train_params(cfg, "scaling", "rsteer")


def test_dag_time_tuning_code_imports_without_numpy_or_torch():
    from test_runs import NOT_STDLIB, run_blocked

    done = run_blocked(NOT_STDLIB, """
        from pipeline import config, search, tuning
        cfg = config.validate(config.load("config.yaml"))
        assert [d.name for d in search.parse_space(cfg["tuning"]["space"])][:2] == ["lr", "batch"]
        trial = {"trial": 3, "draw": 2, "parameters": 10, "tuned": {"lr": 0.01},
                 "settings": {"epochs": 2, "patience": 1, "batch": 8, "lr": 0.01, "decay": 0.9, "weight_decay": 0.0,
                              "out_length": 3, "precision": "fp32", "deterministic": True, "hidden": 4}}
        params = search.trial_params(cfg, "rotation", trial)
        assert params["run"]["model"] == {"hidden": 4} and params["run"]["windows"]["rollout"] == 20
        # rung 1 of config.yaml's halving trains to 7 of the budget's 20 epochs
        assert search.trial_params(cfg, "rotation", trial, 1)["run"]["training"]["epochs"] == 7
    """)
    assert done.returncode == 0, done.stderr[-3000:]
