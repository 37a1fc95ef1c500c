"""Bring your own model (pipeline/models/custom.py): registration, the refusals before training, tuning, display
names, and the worked example (examples/own_model) end to end through Snakemake."""
from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from helpers import CONFIG, ROOT, TINY, config, snakemake
from pipeline import config as pipeline_config
from pipeline import runs, search, tables, tuning
from pipeline.models import PARAMETER_BUDGET, build, custom

EXAMPLE = ROOT / "examples" / "own_model"
HP = {"in_frames": 2, "frame_size": [8, 8], "hidden": 2, "layers": 2, "kernel_size": 3, "alpha": 0.0, "banks": 2}


def config_with(*overlays: dict) -> dict:
    return config("tiny", *overlays)


def example_config() -> dict:
    return config_with(yaml.safe_load((EXAMPLE / "overlay.yaml").read_text()))


# --- DAG time: the registration's shape --------------------------------------------------------------------

def test_registered_model_is_a_model_of_its_symmetry():
    cfg = pipeline_config.validate(example_config())
    assert custom.names(cfg, "rotation") == ["smallnet"] and custom.names(cfg, "translation") == []
    assert custom.display_names(cfg) == {"smallnet": "SmallNet"}
    params = runs.train_params(cfg, "rotation", "smallnet")
    assert params["builder"] == "mynets.nets:build" and params["model"]["alpha"] == 1e-3
    assert "builder" not in runs.train_params(cfg, "rotation", "conv")  # our models' params are unchanged
    trial = {"trial": 0, "draw": None, "parameters": 1, "tuned": {},
             "settings": {**params["training"], **params["model"]}}
    assert search.trial_params(cfg, "rotation", trial, model="smallnet")["run"]["builder"] == "mynets.nets:build"


@pytest.mark.parametrize("overlay, message", [
    ({"custom_models": {"mine": {"symmetries": ["rotation"], "builder": "mypkg.nets"}}},
     r"config\['custom_models'\]\['mine'\]\['builder'\]: 'mypkg.nets' does not match"),
    ({"custom_models": {"mine": {"symmetries": ["reflection"], "builder": "m:b"}}},
     r"config\['custom_models'\]\['mine'\]\['symmetries'\]\[0\]: 'reflection' is not one of"),
    ({"custom_models": {"mine": {"builder": "m:b"}}},
     r"config\['custom_models'\]\['mine'\]: 'symmetries' is a required property"),
    ({"custom_models": {"rsteer": {"symmetries": ["rotation"], "builder": "m:b"}}},
     r"config\['custom_models'\]\['rsteer'\]: the name is taken by the pipeline's own model 'rsteer' \(rotation\)"),
    ({"custom_models": {"mine": {"symmetries": ["rotation"], "builder": "m:b"}}, "models": {"translation": ["mine"]}},
     r"config\['models'\]\['translation'\]: the model 'mine' of config\['custom_models'\] is registered for "
     r"\['rotation'\], not for 'translation'"),
    ({"models": {"rotation": ["mine"]}}, r"config\['models'\]\['rotation'\]: no model 'mine' for symmetry 'rotation'.*"
                                         r"or a model of your own registered in config\['custom_models'\]"),
])
def test_bad_registration_is_refused_naming_the_key(overlay, message):
    with pytest.raises(pipeline_config.ConfigError, match=message):
        pipeline_config.validate(config_with(overlay))


# --- job time: the refusals, on real modules in a working directory ----------------------------------------

GOOD = """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, in_frames, hidden):
            super().__init__()
            self.conv = nn.Conv2d(2 * in_frames, 2, 3, padding=1)

        def forward(self, x):
            b, t, c, h, w = x.shape
            return {forward}

        {regularizer}
"""


def write_module(folder: Path, name: str, body: str) -> str:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))
    return name


def net_module(folder: Path, name: str, forward: str = "self.conv(x.reshape(b, t * c, h, w))",
               regularizer: str = "",
               builder: str = "def build(in_frames, hidden):\n    return Net(in_frames, hidden)"):
    text = textwrap.dedent(GOOD).format(forward=forward, regularizer=regularizer) + "\n" + builder + "\n"
    (folder / f"{name}.py").write_text(text)
    return name


def refused(tmp_path, monkeypatch, module: str, function: str = "build", hp: dict | None = None):
    """Build model ``mine`` from ``module:function`` in the working directory ``tmp_path`` and check it as a
    training job does; return the refusal's message."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    builder = f"{module}:{function}"
    with pytest.raises(custom.CustomModelError) as info:
        net = build("mine", "rotation", builder, **(hp or HP))
        custom.check_model("mine", builder, net, HP["in_frames"], HP["frame_size"])
    message = str(info.value)
    assert f"custom model 'mine' (builder '{builder}', module '{module}')" in message, message
    return message


def test_a_model_keeping_the_contract_builds_from_the_working_directory(tmp_path, monkeypatch):
    module = net_module(tmp_path, "good_net")
    monkeypatch.chdir(tmp_path)
    assert str(tmp_path) not in sys.path
    net = build("mine", "rotation", f"{module}:build", **HP)  # imported from the working directory
    custom.check_model("mine", f"{module}:build", net, 2, [8, 8])
    assert str(tmp_path) in sys.path
    assert float(net.regularizer()) == 0.0  # optional: none given, nothing added to the loss
    assert custom.hyperparameters("mine", f"{module}:build") == {"in_frames", "hidden"}
    assert tuple(net(torch.zeros(3, 2, 2, 8, 8)).shape) == (3, 2, 8, 8)
    sys.path.remove(str(tmp_path))


def test_a_module_that_does_not_import_is_refused(tmp_path, monkeypatch):
    write_module(tmp_path, "broken_net", "import torch\nraise RuntimeError('half-written')\n")
    message = refused(tmp_path, monkeypatch, "broken_net")
    assert "the module does not import (RuntimeError: half-written)" in message and "working directory" in message
    message = refused(tmp_path, monkeypatch, "no_such_net")
    assert "ModuleNotFoundError: No module named 'no_such_net'" in message


def test_a_missing_builder_is_refused(tmp_path, monkeypatch):
    module = net_module(tmp_path, "nobuild_net")
    message = refused(tmp_path, monkeypatch, module, "make")
    assert "has no function 'make'; expected a builder function returning a torch.nn.Module" in message


@pytest.mark.parametrize("builder, hp, expected", [
    ("def build(in_frames, hidden, dropout):\n    return Net(in_frames, hidden)", HP,
     "the builder takes argument(s) ['dropout'] that the run does not give"),
    ("def build(in_frames, **kw):\n    return Net(in_frames, 2)", HP,
     "the builder's argument **kw is not a named keyword"),
    ("def build(in_frames, hidden):\n    return Net(in_frames, hidden)", {**HP, "depth": 3},
     "the run gives hyper-parameter(s) ['depth'] that the builder does not take; expected them among its "
     "arguments ['hidden', 'in_frames']"),
    ("def build(in_frames, hidden):\n    return [Net(in_frames, hidden)]", HP,
     "the builder returned list; expected a torch.nn.Module"),
])
def test_a_builder_with_unknown_arguments_is_refused(tmp_path, monkeypatch, builder, hp, expected):
    module = net_module(tmp_path, f"args_net_{abs(hash(builder + str(sorted(hp)))) % 10 ** 8}", builder=builder)
    assert expected in refused(tmp_path, monkeypatch, module, hp=hp)


@pytest.mark.parametrize("forward, expected", [
    ("self.conv(x.reshape(b, t * c, h, w))[:, :1]",
     "to (2, 1, 8, 8); expected the next frame, shape (B, 2, H, W) = (2, 2, 8, 8)"),
    ("self.conv(x.reshape(b, t * c, h, w))[None]", "to (1, 2, 2, 8, 8); expected the next frame"),
    ("self.conv(x[:, -1])", "forward on a zero batch of shape (2, 2, 2, 8, 8) (B, T_in, 2, H, W) failed (RuntimeError"),
])
def test_a_wrong_output_shape_is_refused(tmp_path, monkeypatch, forward, expected):
    module = net_module(tmp_path, f"shape_net_{abs(hash(forward)) % 10 ** 8}", forward=forward)
    assert expected in refused(tmp_path, monkeypatch, module)


def test_a_model_over_the_budget_is_refused(tmp_path, monkeypatch):
    builder = (f"def build(in_frames, hidden):\n    net = Net(in_frames, hidden)\n"
               f"    net.extra = nn.Parameter(torch.zeros({PARAMETER_BUDGET} - 2 * in_frames * 2 * 9 - 2))\n"
               f"    return net")
    module = net_module(tmp_path, "big_net", builder=builder)
    message = refused(tmp_path, monkeypatch, module)
    assert f"{PARAMETER_BUDGET} trainable parameters; expected fewer than the budget of {PARAMETER_BUDGET}" in message
    # one parameter fewer is accepted
    module = net_module(tmp_path, "big_net_ok", builder=builder.replace(" - 2))", " - 3))"))
    net = build("mine", "rotation", f"{module}:build", **HP)
    custom.check_model("mine", f"{module}:build", net, 2, [8, 8])


@pytest.mark.parametrize("regularizer, expected", [
    ("def regularizer(self):\n            return self.conv.weight.pow(2).sum(dim=0)",
     "regularizer() returned a tensor of shape (4, 3, 3); expected a scalar"),
    ("def regularizer(self):\n            return [0.0]", "regularizer() returned list; expected a scalar"),
])
def test_a_regularizer_that_is_not_a_scalar_is_refused(tmp_path, monkeypatch, regularizer, expected):
    module = net_module(tmp_path, f"reg_net_{abs(hash(regularizer)) % 10 ** 8}", regularizer=regularizer)
    assert expected in refused(tmp_path, monkeypatch, module)


# --- tuning and display names --------------------------------------------------------------------------------

def test_search_varies_the_hyperparameters_the_builder_takes(monkeypatch):
    """The example's builder takes hidden, layers, kernel_size and alpha, not banks: the search drops banks, as it
    does for our models without filter banks (pipeline.models.hyperparameters_of)."""
    monkeypatch.chdir(EXAMPLE)
    cfg = example_config()
    run = runs.train_params(cfg, "rotation", "smallnet")
    drawn = tuning.draw_trials(run, cfg["tuning"], "rotation", "smallnet", (32, 32))
    names = [d["name"] for d in drawn["dimensions"]]
    assert names == ["lr", "batch", "hidden", "layers", "out_length"]  # tiny's space less banks (alpha: null)
    assert len(drawn["trials"]) == cfg["tuning"]["trials"]
    for t in drawn["trials"]:  # counted by building the example's model, as the training job does
        net = build("smallnet", "rotation", run["builder"], **tuning.build_hyperparameters(t["settings"], 3, (32, 32)))
        assert t["parameters"] == sum(p.numel() for p in net.parameters())


def test_tables_name_a_custom_model_by_its_registration():
    rows = [{"dataset": "rotation", "model": m, "seed": 0, "test_future_rmse": 1.0, "test_domain_rmse": 2.0}
            for m in ("smallnet", "equiv")]
    df = tables.table1(rows)
    md = tables.table1_markdown(df, own={"smallnet": "SmallNet"})
    assert "| | Equiv | SmallNet |" in md
    assert r"Equiv & Small\_Net" in tables.table1_latex(df, own={"smallnet": "Small_Net"})


# --- the worked example, end to end ----------------------------------------------------------------------------

def test_worked_example_trains_evaluates_and_tabulates(tmp_path):
    """examples/own_model on the tiny preset, in a copy of the example's folder as the working directory: SmallNet
    beside Conv on the rotation family and two equivariance levels, through training, evaluation, Table 1, the
    rollout table and figure and Figure 4. (One epoch; the tuning of the overlay is left out here: the search's
    handling of a custom model is tested above, and its trials are ordinary training jobs.)"""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("results", ".snakemake", "__pycache__"))
    test = {"models": {"rotation": ["conv", "smallnet"], "equivariance": ["smallnet"]},
            "tuning": {"models": {"rotation": []}}, "training": {"override": {"epochs": 1}},
            "alpha_sweep": {"values": []}, "data": {"equivariance": {"levels": 2}}}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    targets = ["results/tables/table1.md", "results/tables/rollout_rotation.csv", "results/tables/equivariance.csv",
               "results/figures/rollout_rotation.png", "results/figures/fig4_equivariance.png"]
    snakemake(targets, work, [CONFIG, TINY, work / "overlay.yaml", tmp_path / "test.yaml"], "--quiet", "rules",
              cores=2, timeout=900)

    run = work / "results" / "runs" / "rotation" / "smallnet" / "seed0"
    saved = torch.load(run / "model.pt", weights_only=True)
    assert saved["builder"] == "mynets.nets:build" and saved["hyperparameters"]["alpha"] == 1e-3
    assert any(k.startswith("lift.") for k in saved["state_dict"])  # the example's own module was trained
    m = json.loads((run / "metrics.json").read_text())
    assert (m["model"], m["epochs_run"]) == ("smallnet", 1)
    assert all(math.isfinite(m[k]) for k in ("test_future_rmse", "test_domain_rmse", "equivariance_error"))
    t1 = pd.read_csv(work / "results" / "tables" / "table1.csv")
    assert sorted(t1.model.unique()) == ["conv", "persistence", "smallnet"] and t1.rmse_mean.map(math.isfinite).all()
    assert t1[t1.model == "smallnet"].paper_mean.isna().all()  # no published number for one's own model
    assert "| | Persistence | Conv | SmallNet |" in (work / "results" / "tables" / "table1.md").read_text()
    eq = pd.read_csv(work / "results" / "tables" / "equivariance.csv")
    assert sorted(eq.level) == [0, 1] and (eq.model == "smallnet").all()
    assert (work / "results" / "figures" / "fig4_equivariance.png").stat().st_size > 0
    rollout = pd.read_csv(work / "results" / "tables" / "rollout_rotation.csv")
    assert set(rollout.model) == {"conv", "persistence", "smallnet"}
