"""Simulation speed: PhiFlow's default step against ours, on the same plumes, in one process.

For each case it runs the same plumes with ``method="phiflow"`` (numpy backend, ``make_incompressible``
with PhiFlow's default direct solve, one plume at a time as the paper's notebook did) and with
``method="fast"`` (advection jitted on torch, DCT projection, plumes batched), and prints plume-steps per
second for each, their ratio, and the largest relative difference in velocity over the common frames.

    python benchmarks/simulation.py                      # 64x64 (batch of 8) and 200x200
    python benchmarks/simulation.py --grid 300 --steps 5 # PhiFlow's default fails above ~215 cells
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from pipeline.simulate import Plume, simulate


def plumes(grid: int, count: int) -> list[Plume]:
    """Translation-family plumes (inflow x = 8, 16, ..., y = 5, 10, ...), scaled to ``grid`` like the
    scaling family."""
    f = grid / 64
    xy = [(x, y) for y in (5, 10, 15, 20, 25) for x in range(8, 64, 8)][:count]
    return [Plume(grid, 64.0 * f, (x * f, y * f), 5.0 * f, (0.0, (0.1 if x < 32 else 0.2) * f), 0.5, f"bench {i}")
            for i, (x, y) in enumerate(xy)]


def run(grid: int, count: int, steps: int) -> dict:
    """Frames and plume-steps/s of each method; ours also its steady rate (without tracing and TorchScript's
    first profiling runs: the difference between a call of ``2 steps`` and one of ``steps``)."""
    ps = plumes(grid, count)
    out = {}
    start = time.perf_counter()
    try:  # the reference: one plume at a time
        frames = np.concatenate([simulate([p], steps, "phiflow") for p in ps])
        out["phiflow"] = (frames, count * steps / (time.perf_counter() - start))
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        out["phiflow"] = (None, f"{type(e).__name__}: {str(e).splitlines()[0][:80]}")
    start = time.perf_counter()
    frames = simulate(ps, steps, "fast")  # one call, its tracing included
    once = time.perf_counter() - start
    start = time.perf_counter()
    simulate(ps, 2 * steps, "fast")
    twice = time.perf_counter() - start
    out["fast"] = (frames, count * steps / once, count * steps / max(twice - once, 1e-9))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", type=int, nargs="*", default=[64, 200])
    ap.add_argument("--plumes", type=int, default=8, help="plumes per case (batched by the fast method)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one core per job, as Snakemake runs it)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    print(f"{'grid':>5} {'plumes':>6} {'steps':>5} {'phiflow':>9} {'ours':>9} {'ratio':>6} {'ours steady':>11} "
          f"{'ratio':>6} {'max rel diff':>12}   (plume-steps per second)")
    for grid in args.grid:
        count = args.plumes if grid <= 128 else 1
        res = run(grid, count, args.steps)
        ref, (frames, ours, steady) = res["phiflow"], res["fast"]
        if ref[0] is None:
            print(f"{grid:>5} {count:>6} {args.steps:>5} {'failed':>9} {ours:>9.2f} {'-':>6} {steady:>11.2f} {'-':>6} "
                  f"{'-':>12}   phiflow: {ref[1]}")
            continue
        diff = np.abs(frames - ref[0]).max() / np.abs(ref[0]).max()
        print(f"{grid:>5} {count:>6} {args.steps:>5} {ref[1]:>9.2f} {ours:>9.2f} {ours / ref[1]:>6.1f} {steady:>11.2f} "
              f"{steady / ref[1]:>6.1f} {diff:>12.2e}")


if __name__ == "__main__":
    main()
