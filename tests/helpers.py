"""Shared test helpers, one definition each: the repository's root, the configs as Snakemake merges them, a
Snakemake command line and the reading of its dry runs, a synthetic store, and the equivariance assertion
(e3nn's ``assert_equivariant`` in spirit) used by every model test."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from snakemake.utils import update_config

from pipeline import config as pipeline_config
from pipeline import datasets, runs

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config.yaml"


def preset(name: str) -> Path:
    """The path of ``presets/<name>.yaml``."""
    return ROOT / "presets" / f"{name}.yaml"


TINY = preset("tiny")


# --- configs ---------------------------------------------------------------------------------------------------

def config(name: str | None = None, *overlays: dict) -> dict:
    """config.yaml with ``presets/<name>.yaml`` (if given), then each overlay, merged on top as Snakemake merges
    ``--configfile`` files (not validated)."""
    cfg = pipeline_config.load(CONFIG)
    if name:
        update_config(cfg, pipeline_config.load(preset(name)))
    for overlay in overlays:
        update_config(cfg, overlay)
    return cfg


def tiny_config(**override) -> dict:
    """config.yaml with presets/tiny.yaml on top (as Snakemake merges them), plus training overrides, validated."""
    cfg = config("tiny")
    cfg["training"]["override"].update(override)
    return pipeline_config.validate(cfg)


# --- Snakemake -------------------------------------------------------------------------------------------------

def snakemake_args(targets: Iterable, workdir, configfiles: Iterable = (), *extra: str,
                   cores: int | None = None) -> list[str]:
    """The arguments after ``snakemake`` that run the repository's Snakefile on ``targets`` in ``workdir``: then
    ``extra``, ``--cores`` (if given) and the config files LAST (``--configfile`` takes every word after it)."""
    args = [*map(str, targets), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *extra]
    if cores is not None:
        args += ["--cores", str(cores)]
    configfiles = [str(c) for c in configfiles]
    return args + (["--configfile", *configfiles] if configfiles else [])


def snakemake(targets: Iterable, workdir, configfiles: Iterable = (), *extra: str, cores: int | None = None,
              check: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake`` (this interpreter) with :func:`snakemake_args`; with ``check``, assert that it
    succeeded, showing the ends of its output if not."""
    cmd = [sys.executable, "-m", "snakemake", *snakemake_args(targets, workdir, configfiles, *extra, cores=cores)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def job_counts(output: str) -> dict[str, int]:
    """``{rule: jobs}`` from the "Job stats" table that Snakemake prints (``total`` included)."""
    table = output[output.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def planned_jobs(output: str) -> set[tuple[str, str]]:
    """``(rule, wildcards)`` of every job (rules and checkpoints) that a dry run's output lists; ``""`` for a job
    without wildcards."""
    jobs, rule = set(), None
    for line in output.splitlines():
        if m := re.match(r"(?:local)?(?:rule|checkpoint) (\w+):$", line):
            rule = m[1]
            jobs.add((rule, ""))
        elif rule and (m := re.match(r"\s+wildcards: (.*)$", line)):
            jobs.discard((rule, ""))
            jobs.add((rule, m[1]))
    return jobs


# --- synthetic data --------------------------------------------------------------------------------------------

def synthetic_velocity(sims: int = 3, frames: int = 22, size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth fields drifting one cell per frame: the next frame is a shift of the last (learnable by a conv)."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    out = np.empty((sims, frames, 2, size, size), dtype=np.float32)
    for s in range(sims):
        a, b = rng.uniform(0.5, 1.5, 2)
        for t in range(frames):
            phase = 2 * np.pi * (x - t) / size
            out[s, t, 0] = a * np.sin(phase + y / size)
            out[s, t, 1] = b * np.cos(phase)
    return out


def write_synthetic_store(path, dataset: str = "translation", roles=("train", "train", "test_domain"), *,
                          velocity: np.ndarray | None = None, **extra) -> str:
    """A store of ``dataset`` with one sim per role: ``velocity`` (default :func:`synthetic_velocity`), frames
    from 0; ``extra`` goes into its attributes."""
    if velocity is None:
        velocity = synthetic_velocity(len(roles))
    family = runs.family_of(dataset)
    datasets.write_store(path, velocity, {"dataset": dataset, "family": family, "first_frame": 0,
                                          "sims": [{"index": i, "role": r} for i, r in enumerate(roles)], **extra})
    return str(path)


# --- equivariance ----------------------------------------------------------------------------------------------


def equivariance_gap(f: Callable, x: torch.Tensor, act_in: Callable, act_out: Callable | None = None,
                     crop: int = 0) -> tuple[float, float]:
    """``(max |f(act_in(x)) - act_out(f(x))|, max |act_out(f(x))|)`` after an optional border crop."""
    act_out = act_out or act_in
    with torch.no_grad():
        lhs, rhs = f(act_in(x)), act_out(f(x))
    if crop:
        lhs, rhs = lhs[..., crop:-crop, crop:-crop], rhs[..., crop:-crop, crop:-crop]
    return float((lhs - rhs).abs().max()), float(rhs.abs().max())


def assert_equivariant(f: Callable, x: torch.Tensor, act_in: Callable, act_out: Callable | None = None,
                       rtol: float | None = None, crop: int = 0) -> float:
    """Assert ``f(act_in(x)) == act_out(f(x))`` to ``rtol`` times the output scale; return the max error.

    ``act_out`` defaults to ``act_in``. ``crop`` drops that many border pixels before comparing (for
    actions exact only away from the borders). The default tolerance is round-off for the dtype.
    """
    err, scale = equivariance_gap(f, x, act_in, act_out, crop)
    assert scale > 0, "the output is identically zero: equivariant by default, so it proves nothing"
    if rtol is None:
        rtol = 1e-5 if x.dtype == torch.float32 else 1e-10
    atol = rtol * (scale or 1.0)
    assert err <= atol, f"not equivariant: max |f(gx) - g f(x)| = {err:.3e} > {atol:.3e} (output scale {scale:.3e})"
    return err
