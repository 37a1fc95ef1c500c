"""benchmarks/jobs.py: the per-rule table of a run's Snakemake benchmark files, totals worked out by hand."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("benchmark_jobs", ROOT / "benchmarks" / "jobs.py")
jobs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(jobs)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write(root: Path, rel: str, *rows: tuple) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n" for s, rss, cpu in rows))


def test_rules_add_up_their_jobs(tmp_path):
    write(tmp_path, "train/translation/conv/seed0.tsv", (12.0, 500.0, 8.0))
    write(tmp_path, "train/rotation/rsteer/seed0.tsv", (20.0, 700.0, 10.0))
    write(tmp_path, "evaluate/rotation/rsteer/seed0.tsv", (4.0, 400.0, 3.0))
    write(tmp_path, "evaluate/sweeps/alpha/scaling/rsteer/alpha0/seed0.tsv", (6.0, 450.0, 5.0), (8.0, 470.0, 7.0))
    write(tmp_path, "sweeps/alpha/scaling/rsteer/alpha0/seed0.tsv", (9.0, 600.0, "NA"))
    write(tmp_path, "tables/models.tsv", (1.0, 300.0, 1.0))
    t = jobs.table(tmp_path)
    assert t["train"] == {"jobs": 2, "cpu_s": 18.0, "wall_s": 32.0, "max_rss_mb": 700.0}
    # the sweep's evaluations count with evaluate; a file of two repeats is one job, their mean
    assert t["evaluate"] == {"jobs": 2, "cpu_s": 3.0 + 6.0, "wall_s": 4.0 + 7.0, "max_rss_mb": 460.0}
    assert t["sweeps"] == {"jobs": 1, "cpu_s": 0.0, "wall_s": 9.0, "max_rss_mb": 600.0}  # NA: no CPU sample
    assert t["total"] == {"jobs": 6, "cpu_s": 28.0, "wall_s": 53.0, "max_rss_mb": 700.0}
    assert list(t)[:2] == ["train", "evaluate"], "rules by CPU time, most first"
    assert jobs.table(tmp_path, depth=2)["evaluate/sweeps"]["jobs"] == 1
    lines = jobs.markdown(t, jobs.table(tmp_path)).splitlines()
    assert lines[2].startswith("| train | 2 | 2 | 18 | 18 | 1.00 | 32 | 32 | 1.00 |")


def test_a_folder_without_benchmarks_is_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}: no benchmark files")):
        jobs.table(tmp_path)
    (tmp_path / "x.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"x.tsv: not a Snakemake benchmark file"):
        jobs.table(tmp_path)
