"""Per-rule cost of a workflow run, from the benchmark files Snakemake writes (``results/benchmarks/**.tsv``): jobs,
CPU seconds, wall seconds and the largest peak resident memory of each rule, and their totals.

    python benchmarks/jobs.py results/benchmarks                      # one run
    python benchmarks/jobs.py results/benchmarks --before OTHER/results/benchmarks   # two runs side by side

Runnable on any results folder (a finished run, a run still going, a copy). Rules are named by the first folder
under ``benchmarks/`` (``--depth 2``: the first two), so ``evaluate`` includes the alpha sweep's evaluations and
``sweeps`` is the sweep's training. Caveats of the numbers: Snakemake samples a job's CPU time each second for its
first 30 s and then every 30 s, so a job longer than 30 s may lose up to 30 s of CPU time from its total (on a
loaded machine more jobs run that long); wall seconds count the time a job waited for a core. A file whose
statistics Snakemake could not collect (``NA``, a job faster than its first sample) counts as a job with no CPU
time. ``--before`` prints the ratio after/before of each column; ``--matched`` keeps only the jobs both runs have.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path

COLUMNS = ("jobs", "cpu_s", "wall_s", "max_rss_mb")


def _number(value: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def read_job(path: Path) -> dict:
    """One benchmark file: wall seconds (``s``), CPU seconds (``cpu_time``) and peak RSS (``max_rss``, MB), the mean
    over its rows (``--benchmark-repeats`` writes one row per repeat)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")

    def mean(key):
        values = [v for v in (_number(r.get(key)) for r in rows) if not math.isnan(v)]
        return sum(values) / len(values) if values else 0.0

    return {"wall_s": mean("s"), "cpu_s": mean("cpu_time"), "max_rss_mb": mean("max_rss")}


def rule_of(path: Path, root: Path, depth: int = 1) -> str:
    parts = path.relative_to(root).parts[:-1] or (path.stem,)
    return "/".join(parts[:depth])


def job_files(root: str | os.PathLike) -> list[str]:
    """The benchmark files under ``root``, relative to it."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no benchmark folder here (a run's results/benchmarks)")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tsv"))


def table(root: str | os.PathLike, depth: int = 1, only: set[str] | None = None) -> dict[str, dict]:
    """``{rule: {jobs, cpu_s, wall_s, max_rss_mb}}`` of the benchmark files under ``root`` (``only``: of these,
    relative to ``root``), and ``total``."""
    rules: dict[str, dict] = {}
    names = job_files(root)
    root = Path(root)
    for path in (root / n for n in names if only is None or n in only):
        job = read_job(path)
        row = rules.setdefault(rule_of(path, root, depth), dict.fromkeys(COLUMNS, 0.0))
        row["jobs"] += 1
        row["cpu_s"] += job["cpu_s"]
        row["wall_s"] += job["wall_s"]
        row["max_rss_mb"] = max(row["max_rss_mb"], job["max_rss_mb"])
    if not rules:
        raise FileNotFoundError(f"{root}: no benchmark files (*.tsv) here")
    total = dict.fromkeys(COLUMNS, 0.0)
    for row in rules.values():
        for key in ("jobs", "cpu_s", "wall_s"):
            total[key] += row[key]
        total["max_rss_mb"] = max(total["max_rss_mb"], row["max_rss_mb"])
    return {**dict(sorted(rules.items(), key=lambda kv: -kv[1]["cpu_s"])), "total": total}


def _fmt(key: str, value: float) -> str:
    return f"{int(value)}" if key == "jobs" else f"{value:.0f}"


def markdown(after: dict, before: dict | None = None) -> str:
    """The table as markdown; with ``before``, each column before, after and their ratio."""
    names = {"jobs": "jobs", "cpu_s": "CPU s", "wall_s": "wall s", "max_rss_mb": "max RSS MB"}
    if before is None:
        lines = ["| rule | " + " | ".join(names.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for rule, row in after.items():
            lines.append(f"| {rule} | " + " | ".join(_fmt(k, row[k]) for k in COLUMNS) + " |")
        return "\n".join(lines)
    header = ["rule"]
    for k in COLUMNS:
        header += [f"{names[k]} before", f"{names[k]} after"] + ([f"{names[k]} ratio"] if k != "jobs" else [])
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    empty = dict.fromkeys(COLUMNS, 0.0)
    rules = [r for r in before if r != "total"] + [r for r in after if r not in before and r != "total"] + ["total"]
    for rule in rules:
        b, a = before.get(rule, empty), after.get(rule, empty)
        cells = [rule]
        for k in COLUMNS:
            cells += [_fmt(k, b[k]), _fmt(k, a[k])]
            if k != "jobs":
                cells.append(f"{a[k] / b[k]:.2f}" if b[k] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benchmarks", nargs="?", default="results/benchmarks", help="a run's benchmark folder")
    ap.add_argument("--before", help="another run's benchmark folder, shown beside it")
    ap.add_argument("--depth", type=int, default=1, help="folders under benchmarks/ that name a rule")
    ap.add_argument("--matched", action="store_true",
                    help="with --before: only the jobs present in both runs (one of them unfinished, say)")
    args = ap.parse_args(argv)
    try:
        only = None
        if args.before and args.matched:
            only = set(job_files(args.benchmarks)) & set(job_files(args.before))
        after = table(args.benchmarks, args.depth, only)
        before = table(args.before, args.depth, only) if args.before else None
    except (OSError, ValueError) as e:
        sys.exit(f"benchmarks/jobs.py: {e}")
    print(markdown(after, before))


if __name__ == "__main__":
    main()
