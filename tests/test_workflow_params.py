"""A config edit reruns exactly what it changes: every job's params carry the config it reads (pipeline.runs,
workflow/rules/common.smk), so Snakemake's params trigger picks the jobs. Outputs are created empty and marked
up to date with `--touch` (which records their params), then a dry run with an edited config lists the jobs.
(`--list-changes params` is no check in Snakemake 9.27: it lists every output that has recorded params, because
an empty ParamsChange or-ed with another returns the other, files and all.)"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import TINY, planned_jobs, snakemake


def run_all(workdir: Path, *args: str, configs=()) -> str:
    """Snakemake on ``all`` with presets/tiny.yaml (over config.yaml, the Snakefile's default) and ``configs``."""
    done = snakemake(["all"], workdir, [TINY, *configs], *args, timeout=300)
    return done.stdout + done.stderr


def planned(workdir: Path, *configs: str) -> set[tuple[str, str]]:
    """``(rule, wildcards)`` of every job a dry run of ``all`` would run (``all`` itself left out)."""
    return {(rule, w) for rule, w in planned_jobs(run_all(workdir, "-n", configs=configs)) if rule != "all"}


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    """A workdir where every output of the tiny preset exists and is up to date."""
    work = tmp_path_factory.mktemp("params")
    summary = run_all(work, "--summary")
    for line in summary.splitlines()[1:]:
        path = work / line.split("\t")[0]
        if not line.startswith("results/"):
            continue
        if path.suffix == ".zarr":
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    run_all(work, "--touch", "--forceall", "--cores", "1")
    assert planned(work) == set(), "a touched run should be up to date"
    return work


def edited(tmp_path: Path, edit: dict) -> str:
    path = tmp_path / "edit.yaml"
    path.write_text(yaml.safe_dump(edit))
    return str(path)


def test_rotation_data_edit_reruns_rotation_data_and_what_uses_it(done_run, tmp_path):
    jobs = planned(done_run, edited(tmp_path, {"data": {"rotation": {"test_domain": [[3, 2]]}}}))
    rules = {rule for rule, _ in jobs}
    assert {w for r, w in jobs if r in ("simulate_shard", "assemble_dataset")} == {
        "family=rotation, shard=0", "family=rotation, shard=1", "family=rotation"}
    assert {w.split(",")[0] for r, w in jobs if r in ("train", "evaluate", "train_alpha", "evaluate_alpha")} == \
        {"dataset=rotation"}
    assert "equivariance_level" not in rules and "figure_heat" not in rules
    assert ("rollout_table", "dataset=rotation") in jobs and ("rollout_table", "dataset=translation") not in jobs


def test_test_window_edit_reruns_evaluations_not_training(done_run, tmp_path):
    jobs = planned(done_run, edited(tmp_path, {"windows": {"rotation": {"test_future": [9, 11]}}}))
    rules = {rule for rule, _ in jobs}
    assert not rules & {"simulate_shard", "assemble_dataset", "train", "train_alpha"}
    assert {w.split(",")[0] for r, w in jobs if r in ("evaluate", "evaluate_alpha")} == {"dataset=rotation"}


def test_train_window_edit_reruns_training_of_that_family_only(done_run, tmp_path):
    jobs = planned(done_run, edited(tmp_path, {"windows": {"translation": {"train": [0, 4]}}}))
    assert not {rule for rule, _ in jobs} & {"simulate_shard", "assemble_dataset"}
    assert {w.split(",")[0] for r, w in jobs if r == "train"} == {"dataset=translation"}


def test_model_setting_edit_reruns_that_model_only(done_run, tmp_path):
    edit = {"training": {"models": {"rotation": {"conv": {"kernel_size": 5}}}}}
    jobs = planned(done_run, edited(tmp_path, edit))
    assert {(r, w) for r, w in jobs if r.startswith("train")} == {("train", "dataset=rotation, model=conv, seed=0")}


def test_registering_a_model_of_ones_own_trains_it_and_reruns_no_other_run(done_run, tmp_path):
    edit = {"custom_models": {"mine": {"symmetries": ["rotation"], "builder": "mypkg.nets:build", "name": "Mine"}},
            "models": {"rotation": ["conv", "rsteer", "mine"]}}
    jobs = planned(done_run, edited(tmp_path, edit))
    assert {(r, w) for r, w in jobs if r.startswith(("train", "evaluate", "tune"))} == {
        ("train", "dataset=rotation, model=mine, seed=0"), ("evaluate", "dataset=rotation, model=mine, seed=0")}
    assert {"table1", "models_table", "figure_rollout", "figure_correlation"} <= {r for r, _ in jobs}
