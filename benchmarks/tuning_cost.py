"""GPU-hours of the hyper-parameter search of a config, estimated without a GPU and without training.

    python benchmarks/tuning_cost.py config.yaml [--tflops 20] [--overhead-ms 3] [--epochs N]

For every tuned (dataset, model) it draws the trials exactly as the workflow does (pipeline.tuning.draw_trials,
parameter-budget rejection included) and counts each trial's forward FLOPs per sample (torch's FlopCounterMode, on
the meta device where the model builds there; escnn models at widths 2..5 on the CPU, extrapolated as the
quadratic in ``hidden``, checked on the fourth width). One epoch of a trial costs

    [ 3 F x train windows x out_length  (forward + backward through the rollout)
      + F x validation windows x out_length  (early-stopping check) ] / sustained FLOP rate
    + model calls per epoch x overhead  (kernel launches and Python, which dominate the small models)

and the search trains the rungs of ``tuning.halving`` (pipeline.search.rung_schedule): every trial the first rung's
epochs, then ``trials`` of each later rung the epochs from the rung before to its own end. Which trials go on is
known only after training, so three totals are printed: without halving (every trial the full budget, what
``halving: {rungs: 1}`` costs), with halving if the promoted trials cost what the model's trials cost on average
(the estimate), and with halving if the most expensive trials were always promoted (a bound). Early stopping only
lowers all three. ``--epochs`` replaces the budget's epochs (the rungs follow). The sustained rate is an
assumption, not a measurement: no GPU was available when this was written. Run benchmarks/models.py on the
cluster's GPU to calibrate it (its ms per batch against this script's FLOPs).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import config as pipeline_config  # noqa: E402
from pipeline import runs, search, tuning  # noqa: E402
from pipeline.catalogue import SYMMETRY_FAMILIES, TRAIN, sim_roles  # noqa: E402
from pipeline.models import build  # noqa: E402


_QUADRATICS: dict = {}


def forward_flops(model: str, symmetry: str, hp: dict) -> int:
    """FLOPs of one forward pass of one sample."""
    from torch.utils.flop_counter import FlopCounterMode

    def count(hp, device):
        with torch.device(device):
            net = build(model, symmetry, **hp)
            x = torch.zeros(1, hp["in_frames"], 2, *hp["frame_size"])
        with FlopCounterMode(display=False) as counter:  # with grad: escnn trips the tracker under no_grad
            net(x)
        return counter.get_total_flops()

    try:
        return count(hp, "meta")
    except (NotImplementedError, RuntimeError):  # escnn builds its bases from data
        pass
    # the quadratic in hidden, once per setting of the other hyper-parameters (escnn builds are slow)
    key = (model, symmetry, repr(sorted((k, v) for k, v in hp.items() if k != "hidden")))
    if key not in _QUADRATICS:
        c = [count({**hp, "hidden": w}, "cpu") for w in (2, 3, 4, 5)]
        d1, d2 = c[1] - c[0], c[2] - c[1]
        # not quadratic (CLCNN caps its width to the parameter budget): counted at full width
        _QUADRATICS[key] = (c[0], d1, d2 - d1) if c[3] == c[2] + d2 + (d2 - d1) else None
    if _QUADRATICS[key] is None:
        return count(hp, "cpu")
    c0, d1, d2 = _QUADRATICS[key]
    x = hp["hidden"] - 2
    return c0 + x * d1 + x * (x - 1) // 2 * d2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="+", help="config.yaml, then overlays (as --configfile merges them)")
    parser.add_argument("--tflops", type=float, default=20.0, help="sustained FLOP rate of one GPU, in 10^12 / s")
    parser.add_argument("--overhead-ms", type=float, default=3.0, help="fixed cost of one model call (fwd+bwd)")
    parser.add_argument("--epochs", type=int, help="the trials' budget epochs (default: the config's)")
    parser.add_argument("--families", nargs="+", default=list(SYMMETRY_FAMILIES), help="families to estimate")
    parser.add_argument("--models", nargs="+", help="models to estimate (default: every tuned one)")
    args = parser.parse_args()

    from snakemake.utils import update_config

    cfg = pipeline_config.load(args.config[0])
    for overlay in args.config[1:]:
        update_config(cfg, pipeline_config.load(overlay))
    if args.epochs:
        cfg["tuning"]["budget"]["epochs"] = args.epochs
    pipeline_config.validate(cfg)
    grid = cfg["data"]["grid"]
    epochs = cfg["tuning"]["budget"]["epochs"]
    rungs = search.rung_schedule(cfg["tuning"])
    cache: dict = {}
    totals, t0 = [0.0, 0.0, 0.0], time.perf_counter()
    print("rungs (epochs at the end x trials): " + ", ".join(f"{r['epochs']} x {r['trials']}" for r in rungs)
          + f"; {search.trial_epochs(rungs)} trial-epochs per model with halving, "
          f"{cfg['tuning']['trials'] * epochs} without")
    print(f"{'dataset':12} {'model':8} trials rejected  mean GFLOP/fwd  GPU-hours: no halving  halving  bound")
    for family in args.families:
        w = cfg["windows"][family]
        train_sims = sim_roles(family, cfg["data"]).count(TRAIN)
        n_train = train_sims * (w["train"][1] - w["train"][0])
        n_valid = train_sims * (w["valid"][1] - w["valid"][0])
        for model in cfg["tuning"]["models"][family]:
            if args.models and model not in args.models:
                continue
            symmetry = runs.symmetry_of(family)
            run = runs.train_params(cfg, family, model)
            drawn = tuning.draw_trials(run, cfg["tuning"], family, model, (grid, grid))
            per_epoch, gflops = [], []  # seconds of one epoch of each trial
            for trial in drawn["trials"]:
                s = trial["settings"]
                hp = tuning.build_hyperparameters(s, w["input_length"], (grid, grid))
                key = (model, symmetry, repr(sorted(hp.items())))
                if key not in cache:
                    cache[key] = forward_flops(model, symmetry, hp)
                f = cache[key]
                gflops.append(f / 1e9)
                flop = 3 * f * n_train * s["out_length"] + f * n_valid * s["out_length"]
                calls = (-(-n_train // s["batch"]) * s["out_length"]
                         + -(-n_valid // run["eval_batch"]) * s["out_length"])
                per_epoch.append(flop / (args.tflops * 1e12) + calls * args.overhead_ms / 1e3)
            full = sum(per_epoch) * epochs
            mean = sum(per_epoch) / len(per_epoch) * search.trial_epochs(rungs)
            dearest, bound, done = sorted(per_epoch, reverse=True), 0.0, 0
            for rung in rungs:
                bound += sum(dearest[:rung["trials"]]) * (rung["epochs"] - done)
                done = rung["epochs"]
            hours = [full / 3600, mean / 3600, bound / 3600]
            totals = [t + h for t, h in zip(totals, hours)]
            print(f"{family:12} {model:8} {len(drawn['trials']):6} {len(drawn['rejected']):8} "
                  f"{sum(gflops) / len(gflops):14.2f} {hours[0]:21.1f} {hours[1]:8.1f} {hours[2]:6.1f}", flush=True)
    print(f"total GPU-hours at {args.tflops:g} TFLOP/s sustained and {args.overhead_ms:g} ms per call, {epochs} "
          f"budget epochs: {totals[0]:.0f} without halving, {totals[1]:.0f} with halving (at most {totals[2]:.0f}) "
          f"({time.perf_counter() - t0:.0f} s to estimate)")


if __name__ == "__main__":
    main()
