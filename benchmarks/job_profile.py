"""Where a training and an evaluation job spend their time: each runs as the workflow runs it (a fresh Python
process, the run's params from the config, ``pipeline.train.train_run`` / ``pipeline.evaluate.evaluate_run``)
under cProfile, and the profile is cut into the parts named below (CPU seconds of the job, cumulative, so
that a part inside another is not counted twice: ``import torch`` is the interpreter's import of torch, the other
imports happen inside the parts that first need them and are listed on their own).

    python benchmarks/job_profile.py results/data/equivariance_4.zarr rsteer --configfile presets/quick.yaml

The dataset is the store's (its ``dataset`` attribute). ``--profile FILE`` keeps the raw cProfile statistics of
each job (``FILE.train``, ``FILE.evaluate``; read them with ``python -m pstats``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# (label, file suffix, function name): the cumulative time of that function in the job's profile
PARTS = {
    "train": [
        ("import torch", "torch/__init__.py", "<module>"),
        ("import torch._dynamo (torch's optimizer wraps its methods with it)", "torch/_dynamo/__init__.py", "<module>"),
        ("import zarr", "zarr/__init__.py", "<module>"),
        ("open the store, read the velocity", "pipeline/loader.py", "__init__"),
        ("import escnn", "escnn/__init__.py", "<module>"),
        ("build the model (escnn bases included)", "pipeline/models/__init__.py", "build"),
        ("training loop (forward, backward, validation)", "pipeline/train.py", "fit"),
        ("  forward and backward of the training batches", "pipeline/train.py", "batch_loss"),
        ("  backward", "torch/autograd/__init__.py", "backward"),
        ("  validation", "pipeline/train.py", "validation_rmse"),
    ],
    "evaluate": [
        ("import torch", "torch/__init__.py", "<module>"),
        ("import torch._dynamo", "torch/_dynamo/__init__.py", "<module>"),
        ("import zarr", "zarr/__init__.py", "<module>"),
        ("numerics.configure (deterministic algorithms)", "pipeline/numerics.py", "configure"),
        ("load the model (escnn bases included)", "pipeline/rollout.py", "load_model"),
        ("import escnn", "escnn/__init__.py", "<module>"),
        ("open the store, read the velocity", "pipeline/loader.py", "__init__"),
        ("rollouts and metrics of the splits", "pipeline/evaluate.py", "split_scores"),
        ("equivariance error", "pipeline/evaluate.py", "mean_rotation_equivariance_error"),
    ],
}

JOB = r"""
import cProfile, sys, time
start = time.perf_counter()
profile = cProfile.Profile(time.process_time)  # CPU seconds: a loaded machine stretches wall time
profile.enable()
import torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
import yaml
from pipeline import runs
cfg = yaml.safe_load(open({config!r}))
if {job!r} == "train":
    from pipeline import train
    train.train_run(runs.train_params(cfg, {dataset!r}, {model!r}), {dataset!r}, {store!r}, {model!r}, 0, {out!r},
                    progress=False)
else:
    from pipeline import evaluate
    evaluate.evaluate_run(runs.evaluate_params(cfg, {dataset!r}), {dataset!r}, {store!r}, {out!r} + "/model.pt",
                          {out!r} + "/metrics.json")
profile.disable()
profile.dump_stats({stats!r})
print("TOTAL", time.process_time(), time.perf_counter() - start)
"""


def merged_config(overlays: list[str]) -> dict:
    """config.yaml with the overlays merged over it, as Snakemake merges --configfile."""
    import yaml

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    cfg = yaml.safe_load(open(os.path.join(ROOT, "config.yaml")))
    for path in overlays:
        cfg = merge(cfg, yaml.safe_load(open(path)) or {})
    return cfg


def cumulative(stats_path: str, suffix: str, name: str) -> float | None:
    import pstats

    stats = pstats.Stats(stats_path).stats
    found = [ct for (file, _, func), (_, _, _, ct, _) in stats.items() if file.endswith(suffix) and func == name]
    return max(found) if found else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("model")
    ap.add_argument("--configfile", nargs="*", default=[], help="overlays merged over config.yaml")
    ap.add_argument("--profile", help="keep the raw statistics as FILE.train and FILE.evaluate")
    args = ap.parse_args()
    import yaml

    from pipeline import datasets

    dataset = datasets.open_store(args.store).attrs["dataset"]
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.yaml")
        with open(config, "w") as fh:
            yaml.safe_dump(merged_config(args.configfile), fh)
        print("| job | part | CPU s | share |\n|---|---|---|---|")
        for job in ("train", "evaluate"):
            stats = f"{args.profile}.{job}" if args.profile else os.path.join(tmp, f"{job}.prof")
            code = JOB.format(root=ROOT, config=config, job=job, dataset=dataset, model=args.model,
                              store=os.path.abspath(args.store), out=os.path.join(tmp, "run"), stats=stats)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp)
            if done.returncode:
                sys.exit(f"{job} failed:\n{done.stderr}")
            cpu, wall = map(float, done.stdout.split("TOTAL")[-1].split())
            for label, suffix, name in PARTS[job]:
                t = cumulative(stats, suffix, name)
                if t is not None:
                    print(f"| {job} {dataset}/{args.model} | {label} | {t:.2f} | {t / cpu:.0%} |")
            print(f"| {job} {dataset}/{args.model} | **whole job** (wall {wall:.1f} s) | {cpu:.2f} | 100% |")


if __name__ == "__main__":
    main()
