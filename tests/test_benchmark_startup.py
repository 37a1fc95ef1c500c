"""benchmarks/startup.py: the start-up floor of a job, and its share of a run, counted on a results tree."""
import importlib.util

import pytest

from helpers import ROOT

spec = importlib.util.spec_from_file_location("benchmark_startup", ROOT / "benchmarks" / "startup.py")
startup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(startup)


def touch(root, *rels):
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_a_runs_jobs_are_counted_by_kind(tmp_path):
    touch(tmp_path,
          "benchmarks/train/rotation/equiv/seed0.tsv", "benchmarks/train/rotation/conv/seed0.tsv",
          "benchmarks/sweeps/alpha/scaling/rsteer/alpha0/seed0.tsv", "benchmarks/tune/rotation/equiv/rung0/trial1.tsv",
          "benchmarks/evaluate/rotation/equiv/seed0.tsv", "benchmarks/evaluate/rotation/conv/seed0.tsv",
          "benchmarks/evaluate/sweeps/alpha/scaling/rsteer/alpha0/seed0.tsv",
          "runs/rotation/equiv/seed0/model.pt", "runs/rotation/conv/seed0/model.pt",
          "runs/scaling/rsteer/seed0/model.pt", "sweeps/alpha/scaling/rsteer/alpha0/seed0/model.pt")
    logs = ["train/rotation/equiv/seed0.log", "train/rotation/conv/seed0.log", "sweeps/alpha/s.log",
            "tune/rotation/equiv/rung0/trial1.log", "evaluate/rotation/equiv/seed0.log",
            "evaluate/rotation/conv/seed0.log", "evaluate/sweeps/alpha/s.log", "evaluate/rotation/persistence.log",
            "figures/fig3.log", "tables/table1.log", "simulate/rotation_0.log"]
    touch(tmp_path, *(f"logs/{rel}" for rel in logs))
    asked = []

    def imports_escnn(model_file):
        asked.append(model_file.relative_to(tmp_path).as_posix())
        return "/equiv/" in model_file.as_posix()

    jobs = startup.run_jobs(tmp_path, imports_escnn)
    # the trial of equiv counts as an escnn job (same family and model as a run), as do equiv's training and evaluation
    assert jobs == {"training": 4, "evaluation": 4, "escnn_training": 2, "escnn_evaluation": 1, "other": 3}
    assert sorted(asked) == ["runs/rotation/conv/seed0/model.pt", "runs/rotation/equiv/seed0/model.pt",
                             "runs/scaling/rsteer/seed0/model.pt"], "each run's model is loaded once"


def test_the_whole_runs_cpu_is_read_from_time_v(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("Finished job 0.\n\tCommand being timed: \"snakemake all\"\n\tUser time (seconds): 785.99\n"
                   "\tSystem time (seconds): 84.04\n\tPercent of CPU this job got: 196%\n")
    assert startup.whole_run_cpu(log) == pytest.approx(870.03)
    log.write_text("no timing here\n")
    with pytest.raises(ValueError, match="run.log"):
        startup.whole_run_cpu(log)
    with pytest.raises(FileNotFoundError, match="benchmarks"):
        startup.run_jobs(tmp_path)


def test_each_kind_of_job_starts_above_the_lighter_ones():
    f = startup.floors(repeats=1)
    assert len(f) == len(startup.STEPS) + 1
    assert f[startup.EVALUATION] < f[-1], "escnn on top of an evaluation job's imports"
    assert f[0] < f[startup.EVALUATION] < f[startup.TRAINING] < f[startup.ESCNN]
    assert f[startup.EVALUATION] - f[0] > 0.3, "importing torch costs a fresh process a noticeable CPU time"


# --- what a job imports: the start-up cuts stay cut ----------------------------------------------------------

JOB = r'''
import json, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from helpers import tiny_config, write_synthetic_store
from pipeline import runs
cfg = tiny_config(epochs=1)
if {kind!r} == "train":
    from pipeline import train
    store = write_synthetic_store({tmp!r} + "/translation.zarr")
    mark = set(sys.modules)  # the test's own helpers import more than a job: only the job's imports count
    train.train_run(runs.train_params(cfg, "translation", {model!r}), "translation", store, {model!r}, 0,
                    {tmp!r} + "/run", progress=False)
else:
    from pipeline import evaluate
    mark = set(sys.modules)
    evaluate.evaluate_run(runs.evaluate_params(cfg, "translation"), "translation", {tmp!r} + "/translation.zarr",
                          {tmp!r} + "/run/model.pt", {tmp!r} + "/metrics.json")
print(json.dumps(sorted(m for m in set(sys.modules) - mark if "." not in m or m.startswith("torch._"))))
'''
# what no training or evaluation job needs (each costs a fresh process tenths of a second to seconds); torch's
# optimizer imports torch._dynamo, and with it torch._inductor and sympy, so only an evaluation job goes without them
NEVER = {"phi", "phiml", "scipy", "xarray", "matplotlib", "pandas", "dask", "escnn"}
OPTIMIZER = {"torch._dynamo", "torch._inductor", "sympy"}


def _job_imports(tmp_path, kind, model="conv"):
    import json
    import subprocess
    import sys

    code = JOB.format(root=str(ROOT), tests=str(ROOT / "tests"), kind=kind, model=model, tmp=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_training_and_evaluation_jobs_import_only_what_they_use(tmp_path):
    # the helpers import torch, numpy and zarr before the mark, so a new top-level import of either job shows here
    trained = _job_imports(tmp_path, "train")
    assert not trained & NEVER, f"a training job imported {sorted(trained & NEVER)}"
    assert OPTIMIZER <= trained, "torch's optimizer imports torch._dynamo (if no longer, say so in docs/performance.md)"
    evaluated = _job_imports(tmp_path, "evaluate")
    assert not evaluated & (NEVER | OPTIMIZER), f"an evaluation job imported {sorted(evaluated & (NEVER | OPTIMIZER))}"
    assert (tmp_path / "metrics.json").exists(), "the evaluation ran"
