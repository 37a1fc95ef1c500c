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


def run(grid: int, count: int, steps: int, methods=("phiflow", "fast")) -> dict:
    ps = plumes(grid, count)
    out = {}
    for method in methods:
        start = time.perf_counter()
        try:
            if method == "phiflow":  # the reference: one plume at a time
                frames = np.concatenate([simulate([p], steps, method) for p in ps])
            else:
                simulate(ps, 1, method)  # trace the jitted step once, outside the timing
                start = time.perf_counter()
                frames = simulate(ps, steps, method)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            out[method] = (None, f"{type(e).__name__}: {str(e).splitlines()[0][:80]}")
            continue
        out[method] = (frames, count * steps / (time.perf_counter() - start))
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
    print(f"{'grid':>5} {'plumes':>6} {'steps':>5} {'phiflow steps/s':>15} {'ours steps/s':>12} {'ratio':>7} {'max rel diff':>12}")
    for grid in args.grid:
        count = args.plumes if grid <= 128 else 1
        res = run(grid, count, args.steps)
        ref, ours = res["phiflow"], res["fast"]
        if ref[0] is None:
            print(f"{grid:>5} {count:>6} {args.steps:>5} {'failed':>15} {ours[1]:>12.2f} {'-':>7} {'-':>12}   phiflow: {ref[1]}")
            continue
        diff = np.abs(ours[0] - ref[0]).max() / np.abs(ref[0]).max()
        print(f"{grid:>5} {count:>6} {args.steps:>5} {ref[1]:>15.2f} {ours[1]:>12.2f} {ours[1] / ref[1]:>7.1f} {diff:>12.2e}")


if __name__ == "__main__":
    main()
