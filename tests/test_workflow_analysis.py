"""The analysis targets in the DAG (dry runs; the rules' work is tested in test_metrics, test_tables, test_figures and
test_symmetry_breaking)."""
from __future__ import annotations

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


def test_persistence_needs_only_its_store(tmp_path):
    jobs = _jobs(tmp_path, CONFIG, TINY,
                 target="results/runs/rotation/persistence/metrics.json")
    assert jobs == {"simulate_shard": 2, "assemble_dataset": 1, "evaluate_persistence": 1, "total": 4}


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
