"""Estimate the core-hours of generating every dataset of a config, from timed steps of each grid size.

Times one batch per (family, grid) on one thread for ``--steps`` and for twice as many steps, and extrapolates
the difference (the steady cost of a step, without tracing and TorchScript's first profiling runs) to the
config's step counts: ``python benchmarks/data_cost.py config.yaml``.
"""
from __future__ import annotations

import argparse
import time
import warnings

import torch
import yaml

from pipeline.catalogue import FAMILIES, shard_indices
from pipeline.families import family_sims
from pipeline.simulate import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config", nargs="?", default="config.yaml")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    data = yaml.safe_load(open(args.config))["data"]
    total = 0.0
    for family in FAMILIES:
        sims = family_sims(family, data)
        steps = data[family]["steps"]
        seconds = 0.0
        for shard in shard_indices(len(sims), data["sims_per_job"]):
            by_grid: dict[int, list] = {}
            for i in shard:
                by_grid.setdefault(sims[i].plume.grid, []).append(sims[i].plume)
            for batch in by_grid.values():
                t0 = time.perf_counter()
                simulate(batch, args.steps)
                t1 = time.perf_counter()
                simulate(batch, 2 * args.steps)
                t2 = time.perf_counter()
                per_step = max((t2 - t1) - (t1 - t0), 0.0) / args.steps
                seconds += (t1 - t0) + per_step * (steps - args.steps)
        total += seconds
        print(f"{family:>12}: {len(sims):3d} sims x {steps} steps ~ {seconds / 60:6.1f} core-minutes")
    print(f"{'total':>12}: ~ {total / 3600:.2f} core-hours")


if __name__ == "__main__":
    main()
