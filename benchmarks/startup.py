"""The CPU time a job spends before its first computation: starting Python and importing what the job's script
imports, each measured in fresh processes (the best of ``--repeats``, user + system time from ``getrusage``), and,
given a run's results folder, that floor summed over the run's jobs beside the run's own CPU time.

    python benchmarks/startup.py                                    # the floor of each kind of job
    python benchmarks/startup.py --run results --time-log run.log   # and its share of a finished run

A row is cumulative: "training" is everything an evaluation job imports plus torch's optimizer, whose first step
imports ``torch._dynamo``. escnn is imported only by the jobs of the models built on escnn's layers (``equiv`` and
``ace`` among the quick preset's; a run's model files say which, see ``--run``). ``--run DIR`` counts the run's jobs
by their benchmark and log files and reads which models import escnn by loading each trained model in a fresh
process; ``--time-log FILE`` is the output of ``/usr/bin/time -v snakemake ...`` of that run, whose user + system
time is the whole run's CPU (every job and Snakemake). Nothing here changes the run.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import jobs as benchmark_jobs  # noqa: E402  (benchmarks/jobs.py: a run's benchmark files and their rules)

# (label, code): each row's code runs after the previous rows' code, in a fresh process
STEPS = (
    ("Python and Snakemake's script preamble",
     "import pickle; from snakemake.logging import logger; from snakemake.iocontainers import Snakemake"),
    ("+ import torch (and pipeline.evaluate, what an evaluation job imports)",
     "from pipeline import gpus, logs; import torch; from pipeline import evaluate"),
    ("+ import zarr (opening the store)", "import zarr"),
    ("+ pipeline.train and torch's optimizer, first step (imports torch._dynamo)",
     "from pipeline import train; p = torch.nn.Parameter(torch.zeros(3)); o = torch.optim.Adam([p]); "
     "p.grad = torch.ones(3); o.step()"),
    ("+ import escnn.nn (models built on escnn's layers)", "import escnn.nn"),
)
EVALUATION, TRAINING, ESCNN = 2, 3, 4  # the row each kind of job ends at (0-based)
ESCNN_EVALUATION = "an evaluation job's imports + import escnn.nn"


def cpu_seconds(code: str) -> float:
    """User + system CPU seconds of a fresh ``python -c code`` run from the repository root."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def floors(repeats: int) -> list[float]:
    """Cumulative CPU seconds after each of :data:`STEPS`, then after an evaluation job's imports and escnn (each
    the best of ``repeats`` fresh processes)."""
    codes = ["; ".join(c for _, c in STEPS[:i + 1]) for i in range(len(STEPS))]
    codes.append("; ".join(c for _, c in STEPS[:EVALUATION + 1] + STEPS[ESCNN:]))
    return [min(cpu_seconds(code) for _ in range(repeats)) for code in codes]


def run_jobs(results: Path, imports_escnn=None) -> dict[str, int]:
    """Jobs of a finished run by kind: ``training`` (train, the alpha sweep's training, the search's trials),
    ``evaluation`` (evaluate, the sweep's, persistence), ``escnn_training`` and ``escnn_evaluation`` (those of them
    whose model imports escnn) and ``other`` (every other job: the run's log files count its jobs).
    ``imports_escnn(model_file)`` says whether loading a trained model imports escnn (default: load it in a fresh
    process and look). The benchmark files are listed, and their rules named, as ``benchmarks/jobs.py`` does."""
    imports_escnn = imports_escnn or _imports_escnn
    bench, logs = results / "benchmarks", results / "logs"
    kind = {"train": "training", "sweeps": "training", "tune": "training", "evaluate": "evaluation"}
    files = {"training": [], "evaluation": []}
    for rel in benchmark_jobs.job_files(bench):
        rule = benchmark_jobs.rule_of(bench / rel, bench)
        if rule in kind:
            files[kind[rule]].append(rel)
    persistence = sorted(logs.glob("evaluate/*/persistence.log"))
    # which models import escnn: each trained model loaded once in a fresh process; the search's trials are of
    # the same (family, model) as a run
    escnn_model = {tuple(m.parent.parent.relative_to(results / "runs").parts): imports_escnn(m)
                   for m in sorted(results.glob("runs/*/*/seed*/model.pt"))}

    def uses_escnn(rel: str) -> bool:
        rel = Path(rel).as_posix()
        for prefix in ("evaluate/sweeps/alpha/", "sweeps/alpha/", "train/", "evaluate/", "tune/"):
            if rel.startswith(prefix):
                dataset, model = rel[len(prefix):].split("/")[:2]
                return escnn_model.get((dataset, model), False)
        return False

    training, evaluation = files["training"], files["evaluation"]
    every = list(logs.rglob("*.log"))
    return {"training": len(training), "evaluation": len(evaluation) + len(persistence),
            "escnn_training": sum(map(uses_escnn, training)), "escnn_evaluation": sum(map(uses_escnn, evaluation)),
            "other": max(0, len(every) - len(training) - len(evaluation) - len(persistence))}


def _imports_escnn(model_file: Path) -> bool:
    code = ("import sys; from pipeline.rollout import load_model; "
            f"load_model({str(model_file)!r}); print('escnn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().endswith("True")


def whole_run_cpu(time_log: Path) -> float:
    """User + system seconds from the output of ``/usr/bin/time -v``."""
    text = time_log.read_text()
    found = {k: re.search(rf"{k} time \(seconds\): ([0-9.]+)", text) for k in ("User", "System")}
    if not all(found.values()):
        raise ValueError(f"{time_log}: no 'User time (seconds)' / 'System time (seconds)' lines of /usr/bin/time -v")
    return sum(float(m.group(1)) for m in found.values())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per row; the best counts")
    ap.add_argument("--run", type=Path, help="a finished run's results folder: its jobs' start-up floor")
    ap.add_argument("--time-log", type=Path, help="/usr/bin/time -v output of that run: its whole CPU time")
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    f = floors(args.repeats)
    print("| start-up of a job | CPU s (cumulative) |\n|---|---|")
    for label, seconds in zip([label for label, _ in STEPS] + [ESCNN_EVALUATION], f):
        print(f"| {label} | {seconds:.2f} |")
    if args.run is None:
        return
    jobs = run_jobs(args.run)
    rows = [("training jobs", jobs["training"], f[TRAINING]),
            ("evaluation jobs", jobs["evaluation"], f[EVALUATION]),
            ("every other job (Python and the preamble only)", jobs["other"], f[0]),
            ("escnn, in the training jobs of models built on it", jobs["escnn_training"], f[ESCNN] - f[TRAINING]),
            ("escnn, in their evaluation jobs", jobs["escnn_evaluation"], f[-1] - f[EVALUATION])]
    total = sum(n * s for _, n, s in rows)
    print(f"\n| {args.run}: jobs | count | floor CPU s each | floor CPU s |\n|---|---|---|---|")
    for label, n, s in rows:
        print(f"| {label} | {n} | {s:.2f} | {n * s:.0f} |")
    print(f"| **start-up floor of the run** | {sum(n for _, n, _ in rows[:3])} jobs | | **{total:.0f}** |")
    if args.time_log:
        cpu = whole_run_cpu(args.time_log)
        print(f"\nwhole run (user + system): {cpu:.0f} CPU-s; start-up floor {total:.0f} ({total / cpu:.0%}); "
              f"the rest, the jobs' computation and Snakemake: {cpu - total:.0f} ({(cpu - total) / cpu:.0%})")


if __name__ == "__main__":
    main()
