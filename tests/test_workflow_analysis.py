"""The analysis targets in the DAG (dry runs; the rules' work is tested in test_metrics, test_tables, test_figures and
test_symmetry_breaking)."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from helpers import CONFIG, TINY, job_counts, preset, snakemake


def _jobs(tmp_path, *configfiles, target="all") -> dict[str, int]:
    return job_counts(snakemake([target], tmp_path, configfiles, "-n", cores=1, timeout=300).stdout)


def test_quick_preset_builds_every_analysis_target(tmp_path):
    jobs = _jobs(tmp_path, CONFIG, preset("quick"))
    for rule in ("metrics_long_table", "table1_vrmse", "symmetry_breaking_table", "figure_symmetry_breaking",
                 "figure_symmetry_breaking_rotation"):
        assert jobs.get(rule) == 1, rule
    assert jobs["figure_correlation"] == 3
    assert jobs["evaluate_persistence"] == 3  # one per family: no training job, no seed


def test_persistence_needs_only_its_store_and_no_gpu(tmp_path):
    done = snakemake(["results/runs/rotation/persistence/metrics.json"], tmp_path, [CONFIG, TINY], "-n", cores=1,
                     timeout=300)
    assert job_counts(done.stdout) == {"simulate_shard": 2, "assemble_dataset": 1, "evaluate_persistence": 1,
                                       "total": 4}
    # no model to run: it asks for no GPU, so neither a local GPU slot nor a cluster's GPU partition is spent on it
    # (config.yaml's training and evaluation jobs ask for one GPU each; the tiny preset asks for none)
    done = snakemake(["results/runs/rotation/persistence/metrics.json"], tmp_path, [CONFIG], "-n", cores=1,
                     timeout=300)
    assert re.search(r"rule evaluate:\n(?:.*\n)*?\s+resources: .*\bgpu=1\b", snakemake(
        ["results/runs/rotation/conv/seed0/metrics.json"], tmp_path, [CONFIG], "-n", cores=1, timeout=300).stdout)
    job = done.stdout[done.stdout.index("rule evaluate_persistence:"):]
    resources = re.search(r"resources: (.*)\n", job)[1]
    assert "gpu=0" in resources.split(", "), resources


def test_vrmse_view_only_when_asked_and_no_analysis_without_relaxed_models(tmp_path):
    off = {"tables": {"vrmse": False},
           "models": {"translation": ["conv"], "rotation": ["conv"], "scaling": [], "equivariance": ["conv"]}}
    (tmp_path / "off.yaml").write_text(yaml.safe_dump(off))
    jobs = _jobs(tmp_path, CONFIG, TINY, tmp_path / "off.yaml")
    assert jobs["metrics_long_table"] == 1 and jobs["figure_correlation"] == 2
    assert jobs["evaluate_persistence"] == 2  # the families that train a model (scaling trains none here)
    assert not {"table1_vrmse", "symmetry_breaking_table", "figure_symmetry_breaking"} & set(jobs)
    assert _jobs(tmp_path, CONFIG, TINY, tmp_path / "off.yaml",
                 target="results/tables/table1_vrmse.md")["table1_vrmse"] == 1


def test_ace_gamma_table_and_figure_when_ace_trains_on_the_levels(tmp_path):
    on = {"models": {"equivariance": ["conv", "rsteer", "ace"]}}
    (tmp_path / "on.yaml").write_text(yaml.safe_dump(on))
    jobs = _jobs(tmp_path, CONFIG, TINY, tmp_path / "on.yaml")
    levels = yaml.safe_load(TINY.read_text())["data"]["equivariance"]["levels"]
    assert jobs["ace_gamma_table"] == 1 and jobs["figure_ace_gamma"] == 1
    done = snakemake(["results/figures/ace_gamma.png"], tmp_path, [CONFIG, TINY, tmp_path / "on.yaml"], "-n",
                     cores=1, timeout=300)
    table_inputs = re.search(r"rule ace_gamma_table:\n\s+input: (.*)\n", done.stdout)[1].split(", ")
    assert sorted(table_inputs) == sorted(f"results/runs/equivariance_{n}/ace/seed0/metrics.json"
                                          for n in range(levels))
    figure_inputs = re.search(r"rule figure_ace_gamma:\n\s+input: (.*)\n", done.stdout)[1].split(", ")
    assert figure_inputs == ["results/tables/ace_gamma.csv", "results/tables/symmetry_breaking.csv"]
    # without a relaxed C4 model on the levels the figure is ACE's panel alone
    (tmp_path / "alone.yaml").write_text(yaml.safe_dump({"models": {"equivariance": ["conv", "ace"]}}))
    alone = _jobs(tmp_path, CONFIG, TINY, tmp_path / "alone.yaml")
    assert alone["figure_ace_gamma"] == 1 and "figure_symmetry_breaking" not in alone
    # and none of it without ACE on the levels
    assert not {"ace_gamma_table", "figure_ace_gamma"} & set(_jobs(tmp_path, CONFIG, TINY))


def test_ace_gamma_rules_run_on_written_metrics(tmp_path):
    """The two rules' scripts through Snakemake, on level runs' metrics.json written by hand (nothing upstream runs:
    the other rules are not allowed)."""
    (tmp_path / "alone.yaml").write_text(yaml.safe_dump({"models": {"equivariance": ["conv", "ace"]}}))
    levels = yaml.safe_load(TINY.read_text())["data"]["equivariance"]["levels"]
    for n in range(levels):
        run = tmp_path / f"results/runs/equivariance_{n}/ace/seed0"
        run.mkdir(parents=True)
        gammas = {f"model_gamma_{i}": -0.1 * n * i for i in (1, 2)}
        (run / "metrics.json").write_text(json.dumps({
            "dataset": f"equivariance_{n}", "model": "ace", "seed": 0, "level": n, "data_equivariance_error": 0.1 * n,
            **gammas, **{f"model_{k}_{i}": 0.5 for k in ("slack", "multiplier") for i in (1, 2)}}))
    snakemake(["results/figures/ace_gamma.png"], tmp_path, [CONFIG, TINY, tmp_path / "alone.yaml"],
              "--allowed-rules", "ace_gamma_table", "figure_ace_gamma", cores=1, timeout=300)
    table = pd.read_csv(tmp_path / "results/tables/ace_gamma.csv").sort_values(["level", "layer"])
    assert table["abs_gamma"].tolist() == pytest.approx([0.1 * n * i for n in range(levels) for i in (1, 2)])
    assert (tmp_path / "results/figures/ace_gamma.png").stat().st_size > 0
    assert not (tmp_path / "results" / "data").exists()              # nothing upstream was run
