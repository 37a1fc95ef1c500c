"""The GPU check: what a machine with one GPU does with this workflow, in at most 8 minutes.

    python benchmarks/gpu_check.py --out DIR                       # on a GPU machine (--device cuda)
    python benchmarks/gpu_check.py --out DIR --device cpu --smoke  # every section at tiny sizes, under a minute

Writes ``DIR/gpu_check.csv`` (one row per number: section, item, metric, value, unit, note) and
``DIR/gpu_check.md`` (the summary), and keeps its work files in ``DIR/work`` (emptied when the check starts).
Sections, each with a time budget (:data:`BUDGET_S`; a section that runs out stops and says what it left out):

(a) end to end: every rule of the tiny preset (with a one-model search) through Snakemake on the GPU, four jobs
    sharing it through GPU slots (``pipeline/gpus.py``); each metrics.json must say it ran on the GPU, in a slot.
    The smoke plans every rule (``snakemake -n``) and runs the training and evaluation rules for real, on a synthetic
    translation store, each job in a slot of a stand-in GPU (``PIPELINE_STANDIN_GPUS``).
(b) each model of the config at its run settings: one training step (the ``out_length``-step rollout, backward,
    Adam step) per batch, in fp32, tf32 and bf16 (``pipeline/numerics.py``): milliseconds and peak GPU memory; and
    the forward rollout without gradients, for the cost of validation and evaluation.
(c) E2CNN's equivariance error (Definition 3.1, C4) in fp32 and in tf32.
(d) resume: a training killed (SIGKILL) after epoch 2 and restarted ends with the same metrics.json as an
    uninterrupted one.
(e) packing: training throughput of 1, 2 and 4 concurrent training processes on the one GPU: the best
    ``gpus.jobs_per_gpu``.
(f) cost: from (b) and the jobs of ``snakemake -n all``, the GPU-hours of the training runs (with their evaluations)
    and of the hyper-parameter search, separately.
(g) learning: Conv and RGroup on the translation family at the paper's settings, each trained for a fixed wall time,
    then their 20-step test-future RMSE beside persistence (the last input frame repeated), computed from the data.

The full check uses ``config.yaml`` (the paper's settings) for (b), (c), (e), (f), (g) and the tiny preset for (a)
and (d); the smoke uses the tiny preset everywhere, so every code path runs, at sizes that say nothing about speed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline import config as pipeline_config  # noqa: E402
from pipeline import datasets, gpus, numerics, runs  # noqa: E402
from pipeline.catalogue import SYMMETRY_FAMILIES, frame_range, sim_roles  # noqa: E402

SECTIONS = {"a": "End to end", "b": "Each model: time and memory per batch", "c": "Equivariance in fp32 and tf32",
            "d": "Resume", "e": "Packing", "f": "Cost", "g": "Learning"}
# Seconds each section may take: 470 in all on a machine with one GPU (8 minutes, less the start-up).
BUDGET_S = {"a": 130, "b": 80, "c": 10, "d": 25, "e": 50, "f": 20, "g": 155}
# The smoke's are limits against a hang, not its time: it takes well under a minute on 2 idle cores.
SMOKE_BUDGET_S = {"a": 180, "b": 60, "c": 30, "d": 90, "e": 90, "f": 30, "g": 30}
PRECISIONS = numerics.PRECISIONS  # fp32, tf32, bf16
PACKING = (1, 2, 4)               # concurrent trainings of (e)
PACKING_GAIN = 1.10               # (e): more jobs per GPU only when they add at least 10% throughput
RESUME_EPOCHS, RESUME_KILL_AFTER = 4, 2
EQUIV_MODEL = ("rotation", "equiv")  # E2CNN
LEARN_MODELS = ("conv", "rgroup")
# metrics.json keys that say where a job ran, not what it computed: the only ones (d) lets differ
WHERE_KEYS = ("device", "gpu", "training_gpu")


# --- configs and data ----------------------------------------------------------------------------------------

def load_config(*overlays) -> dict:
    """config.yaml with overlays (files or dicts) merged over it, as Snakemake merges --configfile, validated."""
    from snakemake.utils import update_config

    cfg = pipeline_config.load(ROOT / "config.yaml")
    for o in overlays:
        update_config(cfg, o if isinstance(o, dict) else pipeline_config.load(o))
    return pipeline_config.validate(cfg)


def write_yaml(data: dict, path: Path) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def synthetic_store(path: Path, sims: int = 4, frames: int = 24, size: int = 16, seed: int = 0) -> str:
    """A small translation store of smooth drifting fields (the last sim held out), for the smoke's data."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    v = np.empty((sims, frames, 2, size, size), dtype=np.float32)
    for s in range(sims):
        a, b = rng.uniform(0.5, 1.5, 2)
        for t in range(frames):
            phase = 2 * np.pi * (x - 0.7 * t) / size
            v[s, t, 0] = a * np.sin(phase + y / size)
            v[s, t, 1] = b * np.cos(phase - y / size)
    roles = ["train"] * (sims - 1) + ["test_domain"]
    datasets.write_store(path, v, {"dataset": "translation", "family": "translation", "first_frame": 0,
                                   "sims": [{"index": i, "role": r} for i, r in enumerate(roles)]})
    return str(path)


def snakemake_cmd(workdir: Path, configs: list, *args) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args, "--snakefile", str(ROOT / "Snakefile"), "--directory",
            str(workdir), "--configfile", *map(str, configs)]


def run_limited(cmd: list[str], seconds: float, env: dict | None = None,
                log: Path | None = None) -> tuple[int | None, str, float]:
    """Run ``cmd`` for at most ``seconds`` (then its whole process group is stopped); ``(returncode or None on
    timeout, output, wall seconds)``."""
    start = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          start_new_session=True) as p:
        try:
            out, _ = p.communicate(timeout=max(1.0, seconds))
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                out, _ = p.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                out, _ = p.communicate()
            rc = None
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(out)
    return rc, out, time.perf_counter() - start


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Jobs per rule from the ``Job stats`` table that ``snakemake -n`` prints."""
    counts, inside = {}, False
    for line in dry_run_output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            inside, counts = True, {}
            continue
        if inside and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif inside and parts and not set(parts[0]) <= {"-"}:
            inside = False
    counts.pop("total", None)
    return counts


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- one training step, shared by (b) and (e) -----------------------------------------------------------------

def build_model(config: dict, dataset: str, model_name: str):
    """The model of ``dataset``/``model_name`` at its run settings, on the CPU: ``(model, settings, frame shape
    (in_frames, H, W))``."""
    from pipeline.models import build

    run = runs.train_params(config, dataset, model_name)
    s, grid = runs.Settings(**run["training"]), int(config["data"]["grid"])
    hp = runs.build_arguments(run["model"], run["windows"]["input_length"], (grid, grid))
    torch.manual_seed(0)
    return build(model_name, runs.symmetry_of(dataset), **hp), s, (hp["in_frames"], grid, grid)


def training_step(built: tuple, device: torch.device):
    """Moves a :func:`build_model` model to ``device`` with a random batch of its run's shape and an Adam optimiser:
    ``(step(precision), forward())``, the training step of ``pipeline.train.fit`` (rollout loss, backward, Adam) and
    the forward rollout without gradients. Dropping both (and moving the model back) frees the device's memory."""
    from pipeline.rollout import rollout
    from pipeline.train import batch_loss

    model, s, (frames, h, w) = built
    model.to(device)
    x = torch.randn(s.batch, frames, 2, h, w, device=device)
    y = torch.randn(s.batch, s.out_length, 2, h, w, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)

    def step(precision: str) -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with numerics.autocast(precision, device):
            loss, _ = batch_loss(model, x, y)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def forward() -> None:
        model.eval()
        rollout(model, x, s.out_length)

    return step, forward


def time_ms(fn, device: torch.device, warmup: int, repeat: int) -> float:
    """Median milliseconds of ``fn()`` (the GPU synchronised around each call)."""
    times = []
    for i in range(warmup + repeat):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


# --- the report -----------------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.rows: list[dict] = []
        self.sections: dict[str, dict] = {}

    def add(self, section: str, item: str, metric: str, value, unit: str = "", note: str = "") -> None:
        if isinstance(value, float):
            value = float(f"{value:.6g}")
        self.rows.append({"section": section, "item": item, "metric": metric, "value": value, "unit": unit,
                          "note": note})

    def value(self, section: str, item: str, metric: str):
        for r in self.rows:
            if (r["section"], r["item"], r["metric"]) == (section, item, metric):
                return r["value"]
        return None


def md_table(header: list[str], rows: list[list]) -> list[str]:
    fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(fmt(v) for v in r) + " |" for r in rows)]


class Budget:
    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


# --- (a) end to end ---------------------------------------------------------------------------------------------

def section_a(ctx, report: Report, budget: Budget) -> list[str]:
    work = ctx.work / "a"
    search = {"tuning": {"models": {"translation": ["conv"], "rotation": [], "scaling": []}}}
    if ctx.smoke:
        overlay = {"training": {"device": "cpu"}, "gpus": {"jobs_per_gpu": 1}}
        env = {**os.environ, gpus.STANDIN_ENV: "0,1"}
        slots = 2
    else:
        overlay = {"training": {"device": "cuda", "resources": {"gpu": 1}}, "gpus": {"jobs_per_gpu": 4}}
        env = dict(os.environ)
        slots = 4
    env.pop(gpus.SCHEDULER_ENV, None)  # claim slots even when the check runs inside a SLURM allocation
    tiny = [ROOT / "config.yaml", ROOT / "presets" / "tiny.yaml"]
    configs = [*tiny, write_yaml({**overlay, **search}, work / "overlay.yaml")]
    cores = str(os.cpu_count() or 2)
    rc, out, wall = run_limited(snakemake_cmd(work, configs, "all", "-n", "--quiet", "rules"), budget.left(),
                                env, work / "dry_run.log")
    if rc != 0:
        raise RuntimeError(f"snakemake -n all failed (rc {rc}); see {work / 'dry_run.log'}")
    planned = job_counts(out)
    ctx.dry_run = (load_config(ROOT / "presets" / "tiny.yaml", {**overlay, **search}), planned)
    report.add("a", "tiny preset", "jobs planned", sum(planned.values()), "jobs", f"{len(planned)} rules")
    lines = [f"`snakemake all` of the tiny preset with a one-model search plans {sum(planned.values())} jobs of "
             f"{len(planned)} rules."]
    if ctx.smoke:
        # the training and evaluation rules for real on a synthetic store (its own rules are not allowed to run)
        synthetic_store(work / "results" / "data" / "translation.zarr")
        targets = [f"results/runs/translation/{m}/seed0/metrics.json" for m in ("conv", "rgroup")]
        configs = [*tiny, write_yaml(overlay, work / "overlay_run.yaml")]  # no search: its rules may not run
        cmd = snakemake_cmd(work, configs, *targets, "--allowed-rules", "train", "evaluate", "--cores", "2",
                            "--resources", f"gpu={slots}", "--quiet", "rules")
        what = "training and evaluation rules (2 runs) on a synthetic store, on stand-in GPUs"
    else:
        cmd = snakemake_cmd(work, configs, "all", "--cores", cores, "--resources", f"gpu={slots}", "--quiet",
                            "rules")
        what = f"every rule, {slots} GPU jobs at once on one GPU (jobs_per_gpu 4)"
    rc, out, wall = run_limited(cmd, budget.left(), env, work / "run.log")
    metrics = sorted(work.glob("results/runs/*/*/seed*/metrics.json"))
    where = [json.load(open(p)) for p in metrics]
    on_device = [m for m in where if m["gpu"]["chosen_by"] == "slot" and m["training_gpu"]["chosen_by"] == "slot"
                 and (ctx.smoke or m["gpu"]["device"].startswith("cuda"))]
    used = sorted({(m["gpu"]["index"], m["gpu"]["slot"]) for m in where} |
                  {(m["training_gpu"]["index"], m["training_gpu"]["slot"]) for m in where}, key=str)
    report.add("a", what, "wall time", wall, "s", "timed out" if rc is None else f"exit {rc}")
    report.add("a", what, "runs evaluated", len(metrics), "runs")
    report.add("a", what, "runs trained and evaluated in a GPU slot", len(on_device), "runs")
    slots_used = ", ".join(f"GPU {g} slot {k}" for g, k in used) or "none"
    report.add("a", what, "slots used", len(used), "slots", slots_used)
    names = sorted({m["gpu"]["name"] for m in where})
    lines.append(f"Ran the {what}: exit {'timeout' if rc is None else rc} after {wall:.0f} s; {len(metrics)} runs "
                 f"evaluated, {len(on_device)} of them trained and evaluated in a GPU slot "
                 f"({', '.join(names) or '-'}), "
                 f"slots used: {slots_used}. Log: `{work / 'run.log'}`.")
    if rc != 0 or not metrics or len(on_device) != len(metrics):
        raise RuntimeError(" ".join(lines))
    ctx.tiny_store = work / "results" / "data" / "translation.zarr"
    return lines


# --- (b) each model ------------------------------------------------------------------------------------------

def section_b(ctx, report: Report, budget: Budget) -> list[str]:
    device, cfg = ctx.device, ctx.config
    pairs = [(r["dataset"], r["model"]) for r in runs.models_table_params(cfg)["runs"]]
    warmup, repeat = (0, 1) if ctx.smoke else (1, 3)
    built, rows, skipped = {}, {}, []
    # fp32 of every model first (what the cost needs), then tf32 and bf16 of the models built
    for precision in PRECISIONS:
        for dataset, name in pairs:
            key = (runs.family_of(dataset), name)
            if budget.left() < 2:
                skipped.append(f"{key[0]}/{name} {precision}")
                continue
            if key not in built:
                if precision != "fp32":
                    skipped.append(f"{key[0]}/{name} {precision}")
                    continue
                start = time.perf_counter()
                built[key] = build_model(cfg, dataset, name)  # on the CPU: one model on the GPU at a time
                report.add("b", f"{key[0]}/{name}", "build", time.perf_counter() - start, "s")
            model, s, _ = built[key]
            numerics.configure(precision, s.deterministic)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:  # peak memory: this model's weights, gradients, Adam state, batch and activations
                step, forward = training_step(built[key], device)
                ms = time_ms(lambda step=step, precision=precision: step(precision), device, warmup, repeat)
                peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
                fwd = time_ms(forward, device, warmup, repeat) if precision == "fp32" else None
            except torch.cuda.OutOfMemoryError:
                report.add("b", f"{key[0]}/{name}", f"step {precision}", "out of memory")
                continue
            finally:
                step = forward = None
                model.to("cpu")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            n = sum(p.numel() for p in model.parameters() if p.requires_grad)
            rows.setdefault(key, {"parameters": n, "batch": s.batch, "out_length": s.out_length})
            rows[key][precision] = (ms, peak)
            report.add("b", f"{key[0]}/{name}", f"step {precision}", ms, "ms/batch",
                       f"batch {s.batch}, {s.out_length}-step rollout, forward+backward+Adam")
            if peak is not None:
                report.add("b", f"{key[0]}/{name}", f"peak memory {precision}", peak, "MiB")
            if fwd is not None:
                rows[key]["forward_ms"] = fwd
                report.add("b", f"{key[0]}/{name}", "forward rollout fp32", fwd, "ms/batch", "no gradients")
    numerics.configure("fp32", True)
    ctx.timing = rows
    ctx.equiv_model = built.get(EQUIV_MODEL)  # (c) uses it
    for k in list(built):
        del built[k]
    if device.type == "cuda":
        torch.cuda.empty_cache()
    table = [[f"{f}/{m}", r["parameters"], r["batch"],
              *(r.get(p, (None,))[0] for p in PRECISIONS), *(r.get(p, (None, None))[1] for p in PRECISIONS),
              r.get("forward_ms")] for (f, m), r in rows.items()]
    lines = md_table(["model", "parameters", "batch", *(f"ms {p}" for p in PRECISIONS),
                      *(f"peak MiB {p}" for p in PRECISIONS), "forward ms fp32"], table)
    if skipped:
        by_precision = {p: [k.rsplit(" ", 1)[0] for k in skipped if k.endswith(" " + p)] for p in PRECISIONS}
        lines.append("Not measured (time budget): " + "; ".join(
            f"{p}: {len(ks)} of {len(pairs)} ({', '.join(ks) if len(ks) < len(pairs) else 'all'})"
            for p, ks in by_precision.items() if ks) + ".")
    if not rows:
        raise RuntimeError("no model measured")
    return lines


# --- (c) equivariance -------------------------------------------------------------------------------------------

def section_c(ctx, report: Report, budget: Budget) -> list[str]:
    from pipeline import metrics

    family, name = EQUIV_MODEL
    model = (ctx.equiv_model or build_model(ctx.config, family, name))[0].to(ctx.device)
    ctx.equiv_model = None
    model.eval()
    grid = int(ctx.config["data"]["grid"])
    torch.manual_seed(1)
    x = torch.randn(4, model_in_frames(ctx.config, family), 2, grid, grid, device=ctx.device)
    errors = {}
    for precision in ("fp32", "tf32"):
        numerics.configure(precision, True)
        with torch.no_grad():
            errors[precision] = float(metrics.rotation_equivariance_error(model, x))
        report.add("c", f"{family}/{name} (E2CNN)", f"equivariance error {precision}", errors[precision], "",
                   "random input, untrained weights, C4 quarter turns")
    numerics.configure("fp32", True)
    note = "" if ctx.device.type == "cuda" else " (on the CPU the TF32 setting has no effect: both are float32)"
    return [f"E2CNN ({family}/{name}), untrained, 4 random inputs: equivariance error {errors['fp32']:.3g} in fp32, "
            f"{errors['tf32']:.3g} in tf32{note}."]


def model_in_frames(config: dict, dataset: str) -> int:
    return int(config["windows"][runs.family_of(dataset)]["input_length"])


# --- (d) resume ---------------------------------------------------------------------------------------------------

KILLED_RUN = """
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from pipeline import train
spec = json.loads(sys.argv[2])
save = train._save_checkpoint
def save_then_die(path, state):  # the job is killed right after its checkpoint of epoch k is on disk
    save(path, state)
    if path.name == "checkpoint.pt" and state["loop"]["epoch"] == spec["kill_after"]:
        os.kill(os.getpid(), signal.SIGKILL)
train._save_checkpoint = save_then_die
train.train_run(spec["params"], "translation", spec["store"], spec["model"], 0, spec["out"], device=spec["device"],
                progress=False)
"""


def section_d(ctx, report: Report, budget: Budget) -> list[str]:
    from pipeline.evaluate import evaluate_run
    from pipeline.train import train_run

    work = ctx.work / "d"
    store = ctx.tiny_store if ctx.tiny_store and ctx.tiny_store.exists() else None
    if store is None:
        store = Path(synthetic_store(work / "translation.zarr"))
    cfg = load_config(ROOT / "presets" / "tiny.yaml", {"training": {
        "device": ctx.device.type, "override": {"epochs": RESUME_EPOCHS, "patience": RESUME_EPOCHS, "hidden": 8,
                                                "layers": 3}}})
    model = "rgroup"
    params, eval_params = runs.train_params(cfg, "translation", model), runs.evaluate_params(cfg, "translation")
    outcome = {}
    train_run(params, "translation", str(store), model, 0, str(work / "whole"), device=ctx.device, progress=False)
    outcome["whole"] = evaluate_run(eval_params, "translation", str(store), str(work / "whole" / "model.pt"),
                                    str(work / "whole" / "metrics.json"), device=ctx.device)
    spec = {"params": params, "store": str(store), "model": model, "out": str(work / "resumed"),
            "device": ctx.device.type, "kill_after": RESUME_KILL_AFTER}
    rc, out, _ = run_limited([sys.executable, "-c", KILLED_RUN, str(ROOT), json.dumps(spec)], budget.left(),
                             log=work / "killed.log")
    if rc is None:
        raise RuntimeError(f"the run to interrupt did not reach epoch {RESUME_KILL_AFTER} within the section's time")
    checkpoint = torch.load(work / "resumed" / "checkpoint.pt", map_location="cpu", weights_only=True)
    killed_at = checkpoint["loop"]["epoch"]
    if rc != -signal.SIGKILL or killed_at != RESUME_KILL_AFTER or (work / "resumed" / "model.pt").exists():
        raise RuntimeError(f"the run to interrupt was not killed after epoch {RESUME_KILL_AFTER} (exit {rc}, "
                           f"checkpoint at epoch {killed_at}); see {work / 'killed.log'}")
    train_run(params, "translation", str(store), model, 0, str(work / "resumed"), device=ctx.device, progress=False)
    outcome["resumed"] = evaluate_run(eval_params, "translation", str(store), str(work / "resumed" / "model.pt"),
                                      str(work / "resumed" / "metrics.json"), device=ctx.device)
    a, b = ({k: v for k, v in m.items() if k not in WHERE_KEYS} for m in (outcome["whole"], outcome["resumed"]))
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    report.add("d", f"translation/{model}", "metrics.json keys that differ", len(differ), "keys",
               ", ".join(differ) or f"identical; killed after epoch {killed_at} of {RESUME_EPOCHS}")
    report.add("d", f"translation/{model}", "test_future_rmse uninterrupted", a["test_future_rmse"])
    report.add("d", f"translation/{model}", "test_future_rmse resumed", b["test_future_rmse"])
    line = (f"translation/{model} ({RESUME_EPOCHS} epochs, fp32, deterministic) killed with SIGKILL after epoch "
            f"{killed_at} and restarted: its metrics.json is "
            + ("identical to the uninterrupted run's." if not differ else f"different in {', '.join(differ)}."))
    if differ:
        raise RuntimeError(line)
    return [line]


# --- (e) packing --------------------------------------------------------------------------------------------------

def packing_model(ctx) -> tuple[str, str]:
    dataset, model = ctx.args.packing_model.split("/")
    return dataset, model


def worker(spec: dict) -> None:
    """A training process of (e): builds its model, then trains for the seconds each ``run T`` line on stdin asks,
    answering with the steps done; ``quit`` ends it."""
    config = spec["config"]
    device = gpus.resolve_device(spec["device"])
    numerics.configure("fp32", True)
    built = build_model(config, spec["dataset"], spec["model"])
    s = built[1]
    step, _ = training_step(built, device)
    for _ in range(2):
        step(s.precision)
    sync(device)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        seconds, n = float(cmd[1]), 0
        sync(device)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            step(s.precision)
            n += 1
        sync(device)
        wall = time.perf_counter() - start
        print(json.dumps({"steps": n, "seconds": wall, "samples_per_s": n * s.batch / wall}), flush=True)


def section_e(ctx, report: Report, budget: Budget) -> list[str]:
    dataset, model = packing_model(ctx)
    spec = {"config": ctx.config, "device": str(ctx.device), "dataset": dataset, "model": model}
    logs = [ctx.work / "e" / f"worker{i}.log" for i in range(max(PACKING))]
    logs[0].parent.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=open(log, "w"), text=True) for log in logs]
    try:
        for p, log in zip(procs, logs):
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a training process of (e) failed to start (exit {p.wait()}); see {log}")
        left = budget.left()
        seconds = max(0.5, min(ctx.args.packing_seconds, (left - 5) / len(PACKING)))
        results = {}
        for n in PACKING:
            for p in procs[:n]:
                p.stdin.write(f"run {seconds}\n")
                p.stdin.flush()
            answers = [json.loads(p.stdout.readline()) for p in procs[:n]]
            results[n] = sum(a["samples_per_s"] for a in answers)
            report.add("e", f"{dataset}/{model}", f"{n} concurrent", results[n], "samples/s",
                       f"sum over {n} processes, {seconds:g} s each")
        for p in procs:
            p.stdin.write("quit\n")
            p.stdin.flush()
    finally:
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    best = 1
    for n in PACKING[1:]:
        if results[n] >= PACKING_GAIN * results[best]:
            best = n
    ctx.packing = (best, results[best] / results[1])
    report.add("e", f"{dataset}/{model}", "best jobs_per_gpu", best, "",
               f"throughput x{results[best] / results[1]:.2f} "
               f"of one job; more only for a gain of {PACKING_GAIN - 1:.0%}")
    return md_table(["concurrent trainings", "samples/s (all together)", "vs one"],
                    [[n, results[n], results[n] / results[1]] for n in PACKING]) + [
        f"Best `gpus.jobs_per_gpu` for {dataset}/{model} at its run settings: **{best}** (more jobs per GPU only "
        f"where they add at least {PACKING_GAIN - 1:.0%} throughput)."]


# --- (f) cost -------------------------------------------------------------------------------------------------------

def split_windows_count(config: dict, dataset: str, split: str, out_length: int | None = None) -> int:
    """Samples of ``split`` of a built-in dataset, from the config alone (no store); ``selection``: the search's."""
    family = runs.family_of(dataset)
    data = config["data"]
    first, last = frame_range(data[family])
    roles = ["train"] * 4 if family == "equivariance" else sim_roles(family, data)  # a level: 4 rotated sims
    stand_in = datasets.Dataset(dataset, np.empty((len(roles), last - first, 0, 0, 0), np.float32),
                                {"sims": [{"role": r} for r in roles]})
    if split == "selection":  # the windows that score a search trial (pipeline.runs.selection_starts)
        return len(datasets.selection_windows(stand_in, config["windows"][family]))
    if split not in config["windows"][family]:
        return 0
    return len(datasets.split_windows(stand_in, split, config["windows"][family], out_length))


def final_runs(config: dict) -> list[tuple[str, str, int]]:
    """``(dataset, model, runs)`` of every training job of ``snakemake all``: each family's, level's and external
    dataset's models times the seeds, and the alpha sweep."""
    seeds = len(config["seeds"])
    out = [(f, m, seeds) for f in (*SYMMETRY_FAMILIES, *config.get("external", {}))
           for m in config["models"][f]]
    out += [(f"equivariance_{n}", m, seeds) for n in range(config["data"]["equivariance"]["levels"])
            for m in config["models"]["equivariance"]]
    sweep = config["alpha_sweep"]
    if sweep["values"]:
        out.append((sweep["dataset"], sweep["model"], seeds * len(sweep["values"])))
    return out


def search_trial_epochs(config: dict) -> dict[tuple[str, str], int]:
    """Trial-epochs the hyper-parameter search spends on each tuned (dataset, model), at most: the rungs of its
    successive halving (``pipeline.search.rung_schedule``, every trial to its rung's end; patience may stop it
    earlier), counted by ``pipeline.search.trial_epochs``, the one definition the search itself uses."""
    from pipeline import search
    from pipeline.catalogue import FAMILIES

    epochs = search.trial_epochs(search.rung_schedule(config["tuning"]))
    return {(d, m): epochs for d in FAMILIES if d in config["tuning"]["models"] for m in config["tuning"]["models"][d]}


def run_costs(config: dict, dataset: str, model: str, timing: dict) -> dict:
    """Seconds of one epoch, one evaluation and one validation scoring of ``dataset``/``model`` on this GPU, from
    (b)'s step and forward times at the run's settings (the config's, not a search's selection)."""
    s, _ = runs.settings(config, dataset, model)
    t = timing[(runs.family_of(dataset), model)]
    step_s = t[s.precision][0] / 1e3 if s.precision in t else t["fp32"][0] / 1e3
    per_sample_step = t["forward_ms"] / 1e3 / (t["batch"] * t["out_length"])  # forward, no gradients
    rollout = int(config["windows"][runs.family_of(dataset)]["rollout"])
    n_train = split_windows_count(config, dataset, "train", s.out_length)
    n_valid = split_windows_count(config, dataset, "valid", s.out_length)
    epoch = math.ceil(n_train / s.batch) * step_s + n_valid * s.out_length * per_sample_step
    scored = sum(split_windows_count(config, dataset, split) for split in ("valid", "test_future", "test_domain"))
    return {"epoch": epoch, "epochs": s.epochs, "evaluate": scored * rollout * per_sample_step,
            "score": split_windows_count(config, dataset, "selection") * rollout * per_sample_step}


def costs(config: dict, timing: dict) -> dict:
    """GPU-hours of the training runs (every epoch up to ``epochs``, and their evaluations) and of the search
    (:func:`search_trial_epochs`, and each trial's validation score); pairs (b) did not time are listed."""
    training = searching = per_100 = 0.0
    missing = set()
    for dataset, model, n in final_runs(config):
        if (runs.family_of(dataset, config), model) not in timing:  # (b) times the paper's datasets only
            missing.add(f"{runs.family_of(dataset, config)}/{model}")
            continue
        c = run_costs(config, dataset, model, timing)
        training += n * (c["epochs"] * c["epoch"] + c["evaluate"])
        per_100 += n * 100 * c["epoch"]
    from pipeline import search
    scorings = sum(rung["trials"] for rung in search.rung_schedule(config["tuning"]))  # one score per trial and rung
    for (dataset, model), epochs in search_trial_epochs(config).items():
        if (dataset, model) not in timing:
            missing.add(f"{dataset}/{model}")
            continue
        c = run_costs(config, dataset, model, timing)
        searching += epochs * c["epoch"] + scorings * c["score"]
    return {"training_h": training / 3600, "search_h": searching / 3600, "per_100_epochs_h": per_100 / 3600,
            "missing": sorted(missing),
            "trial_epochs": sum(search_trial_epochs(config).values()),
            "runs": sum(n for *_, n in final_runs(config))}


def section_f(ctx, report: Report, budget: Budget) -> list[str]:
    if ctx.smoke and ctx.dry_run:
        config, planned = ctx.dry_run  # the config (a) planned
    else:
        config = ctx.config
        work = ctx.work / "f"
        configs = [ROOT / "config.yaml", *ctx.overlays]
        rc, out, _ = run_limited(snakemake_cmd(work, configs, "all", "-n", "--quiet", "rules"), budget.left(),
                                 log=work / "dry_run.log")
        planned = job_counts(out) if rc == 0 else {}
    c = costs(config, ctx.timing)
    hours = "GPU-hours" if ctx.device.type == "cuda" else f"{ctx.device.type.upper()}-hours"
    dag = {"train": planned.get("train", 0) + planned.get("train_alpha", 0),
           "tune_trial": planned.get("tune_trial", 0)}
    trials = sum(len(config["tuning"]["models"][f]) for f in SYMMETRY_FAMILIES) * int(config["tuning"]["trials"])
    agree = dag["train"] == c["runs"] and dag["tune_trial"] == trials
    note = f"{c['runs']} training runs and {trials} trials; snakemake -n plans {dag['train']} and {dag['tune_trial']}"
    report.add("f", "training runs + evaluations", f"{hours}, at most", c["training_h"], "h",
               "every run to its maximum epochs (early stopping ends most sooner)")
    report.add("f", "training runs + evaluations", f"{hours} per 100 epochs of every run", c["per_100_epochs_h"], "h")
    report.add("f", "hyper-parameter search", f"{hours}, at most", c["search_h"], "h",
               f"{c['trial_epochs']} trial-epochs at the config's settings")
    report.add("f", "jobs", "agrees with the DAG", agree, "", note)
    lines = [f"Training (with evaluations): **{c['training_h']:.3g} {hours}** at most, every run trained to its "
             f"maximum epochs ({c['runs']} runs; {c['per_100_epochs_h']:.3g} per 100 epochs of every run); the "
             f"search: **{c['search_h']:.3g} {hours}** at most ({c['trial_epochs']} trial-epochs, "
             f"`search_trial_epochs`). One job at a time on one {ctx.device.type.upper()}, from (b)'s step times at "
             f"the config's settings (a search's selection may differ in width and batch). {note}."]
    if ctx.packing and ctx.packing[0] > 1:
        k, gain = ctx.packing
        lines.append(f"With {k} jobs per GPU ((e), throughput x{gain:.2f}): training {c['training_h'] / gain:.3g}, "
                     f"search {c['search_h'] / gain:.3g} {hours}.")
    if c["missing"]:
        lines.append(f"Not counted (not timed in (b)): {', '.join(c['missing'])}.")
    if not agree:
        raise RuntimeError(" ".join(lines) + " The job counts disagree with the DAG.")
    return lines


# --- (g) learning ----------------------------------------------------------------------------------------------------

class Persistence(torch.nn.Module):
    """The last input frame, repeated: the floor a model must beat."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1]


def persistence_rmse(store: str, windows: dict, split: str, device, batch: int = 64) -> float:
    from pipeline.loader import SampleSource
    from pipeline.rollout import rollout_mse_per_step, split_rmse

    source = SampleSource(store, device)
    samples = source.samples(datasets.split_windows(source.dataset, split, windows))
    return split_rmse(rollout_mse_per_step(Persistence(), samples, batch))[0]


def section_g(ctx, report: Report, budget: Budget) -> list[str]:
    from pipeline.evaluate import evaluate_run
    from pipeline.train import train_run

    work = ctx.work / "g"
    config = ctx.config
    if ctx.args.translation_store:
        store = ctx.args.translation_store
    elif ctx.smoke:
        store = str(ctx.tiny_store) if ctx.tiny_store and ctx.tiny_store.exists() else \
            synthetic_store(work / "translation.zarr")
    else:  # the paper's translation data (35 sims of 310 frames), simulated here
        configs = [ROOT / "config.yaml", *ctx.overlays]
        cmd = snakemake_cmd(work, configs, "results/data/translation.zarr", "--cores", str(os.cpu_count() or 2),
                            "--quiet", "rules")
        rc, _, wall = run_limited(cmd, min(budget.left() - 20, 90), log=work / "data.log")
        report.add("g", "translation data", "simulated", wall, "s", f"exit {rc}")
        if rc != 0:
            raise RuntimeError(f"simulating the translation data failed (exit {rc}); see {work / 'data.log'}")
        store = str(work / "results" / "data" / "translation.zarr")
    windows = config["windows"]["translation"]
    steps = int(windows["rollout"])
    floor = persistence_rmse(store, windows, "test_future", ctx.device)
    report.add("g", "persistence", "test_future RMSE", floor, "", f"{steps}-step rollout, last input frame repeated")
    seconds = ctx.args.learn_seconds
    rows = [["persistence", "-", "-", floor, 1.0]]
    eval_params = runs.evaluate_params(config, "translation")
    for model in LEARN_MODELS:
        params = runs.train_params(config, "translation", model)
        fit = train_run(params, "translation", store, model, 0, str(work / model), device=ctx.device, progress=False,
                        max_seconds=seconds)
        m = evaluate_run(eval_params, "translation", store, str(work / model / "model.pt"),
                         str(work / model / "metrics.json"), device=ctx.device)
        rmse = m["test_future_rmse"]
        rows.append([model, fit.epochs_run, fit.best_valid_rmse, rmse, rmse / floor])
        report.add("g", f"translation/{model}", "epochs", fit.epochs_run, "", f"trained for {seconds:g} s")
        report.add("g", f"translation/{model}", "test_future RMSE", rmse, "", f"vs persistence {rmse / floor:.3f}")
    lines = md_table(["model", "epochs", "best valid RMSE", f"test-future RMSE ({steps} steps)", "vs persistence"],
                     rows)
    moved = [r[0] for r in rows[1:] if r[4] < 0.95]
    lines.append(f"Each model trained for {seconds:g} s at the config's settings. "
                 + (f"Off the persistence floor (below 0.95 of it): {', '.join(moved)}." if moved else
                    "Neither model moved off the persistence floor (0.95 of it) in that time."))
    return lines


# --- the check ------------------------------------------------------------------------------------------------------

class Context:
    def __init__(self, args):
        self.args, self.smoke = args, args.smoke
        self.device = torch.device(args.device)
        self.out = Path(args.out)
        self.work = self.out / "work"
        shutil.rmtree(self.work, ignore_errors=True)  # ours: a rerun starts from nothing
        # the smoke runs at the tiny preset's sizes on the chosen device; the full check at the paper's
        self.overlays = [ROOT / "presets" / "tiny.yaml"] if args.smoke else []
        self.overlays.append(write_yaml({"training": {"device": self.device.type}}, self.work / "device.yaml"))
        self.config = load_config(*self.overlays)
        self.tiny_store = None
        self.dry_run = None
        self.timing = {}
        self.packing = None
        self.equiv_model = None
        self.sections = {}


def machine(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU used"
    return (f"{gpu}; torch {torch.__version__} (CUDA {torch.version.cuda}); {os.cpu_count()} CPU cores; "
            f"{platform.platform()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for gpu_check.csv, gpu_check.md and the work files")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--smoke", action="store_true", help="every section at tiny sizes (the CI check)")
    parser.add_argument("--sections", default="abcdefg", help="which sections to run (default all: abcdefg)")
    parser.add_argument("--learn-seconds", type=float, default=None, help="(g): training time per model "
                        "(default 50, smoke 1)")
    parser.add_argument("--packing-seconds", type=float, default=None, help="(e): seconds per measurement "
                        "(default 12, smoke 1)")
    parser.add_argument("--packing-model", default="rotation/rgroup",
                        help="(e): dataset/model (default rotation/rgroup)")
    parser.add_argument("--translation-store", help="(g): an existing translation store (results/data/translation.zarr "
                        "of the paper config) instead of simulating it")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    if not args.out:
        parser.error("--out is required")
    args.learn_seconds = args.learn_seconds or (1.0 if args.smoke else 50.0)
    args.packing_seconds = args.packing_seconds or (1.0 if args.smoke else 12.0)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here; use --device cpu --smoke for the CPU smoke run")
    numerics.configure("fp32", True)  # before the first CUDA operation (cuBLAS reads its workspace setting once)
    ctx = Context(args)
    report = Report()
    budgets = SMOKE_BUDGET_S if args.smoke else BUDGET_S
    started = time.perf_counter()
    functions = {"a": section_a, "b": section_b, "c": section_c, "d": section_d, "e": section_e, "f": section_f,
                 "g": section_g}
    for letter in args.sections:
        budget = Budget(budgets[letter])
        start = time.perf_counter()
        try:
            lines, status = functions[letter](ctx, report, budget), "ok"
        except Exception as e:  # a failed section is reported, and the others still run
            lines, status = [f"**Failed**: {e}", "", "```", traceback.format_exc()[-3000:], "```"], "failed"
        seconds = time.perf_counter() - start
        ctx.sections[letter] = {"status": status, "seconds": seconds, "budget": budgets[letter], "lines": lines}
        report.add(letter, "section", "status", status, "", f"{seconds:.1f} s of a {budgets[letter]} s budget")
        print(f"({letter}) {SECTIONS[letter]}: {status} in {seconds:.1f} s", flush=True)
    total = time.perf_counter() - started
    write_outputs(ctx, report, total)
    print(f"wrote {ctx.out / 'gpu_check.csv'} and {ctx.out / 'gpu_check.md'} ({total:.0f} s)")
    return 0 if all(s["status"] == "ok" for s in ctx.sections.values()) else 1


def write_outputs(ctx, report: Report, total: float) -> None:
    import pandas as pd

    from pipeline.files import write_table, write_text

    write_table(pd.DataFrame(report.rows, columns=["section", "item", "metric", "value", "unit", "note"]),
                ctx.out / "gpu_check.csv")
    mode = "smoke (tiny sizes: the code paths, not the numbers)" if ctx.smoke else "full"
    lines = ["# GPU check", "",
             f"`python benchmarks/gpu_check.py {' '.join(sys.argv[1:])}`: {mode}, device {ctx.device}, "
             f"{total:.0f} s in all.", "", f"Machine: {machine(ctx.device)}.", ""]
    lines += md_table(["section", "status", "seconds", "budget s"],
                      [[f"({k}) {SECTIONS[k]}", s["status"], round(s["seconds"], 1), s["budget"]]
                       for k, s in ctx.sections.items()])
    for k, s in ctx.sections.items():
        lines += ["", f"## ({k}) {SECTIONS[k]}", "", *s["lines"]]
    write_text("\n".join(lines) + "\n", ctx.out / "gpu_check.md")


if __name__ == "__main__":
    sys.exit(main())
