"""Model benchmark: parameters and forward+backward time per batch at the paper's hyper-parameters (docs/protocol.md).

    python benchmarks/models.py [--device cuda] [--symmetry translation ...] [--models conv rgroup ...]

For every symmetry whose module imports (a missing or broken module is reported and skipped) and every
registered model, builds the model at 64x64, in_frames 10, 5 layers and the family's settings of docs/protocol.md,
then times ``loss = mean(model(x)^2) + model.regularizer(); loss.backward()`` on a batch of 8 (1 warm-up,
median of 3 repeats) and prints a table.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from pipeline.model_sizes import time_forward_backward  # noqa: E402
from pipeline.models import SYMMETRIES, build, count_parameters, names  # noqa: E402

COMMON = dict(in_frames=10, frame_size=(64, 64), layers=5)
PAPER_SETTINGS = {
    "translation": dict(hidden=128, kernel_size=3, banks=2),
    "rotation": dict(hidden=92, kernel_size=3),
    "scaling": dict(hidden=64, kernel_size=5, scales=(1.0, 1.5, 2.0, 2.5)),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--symmetry", nargs="+", choices=SYMMETRIES, default=list(SYMMETRIES))
    parser.add_argument("--models", nargs="+", default=None, help="model names (default: all registered)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    print(f"{'symmetry':<12} {'model':<14} {'parameters':>12} {'ms/iter':>10}   (device {device}, batch {args.batch})",
          flush=True)
    for symmetry in args.symmetry:
        try:
            available = names(symmetry)
        except Exception as exc:  # module missing or broken: report, go on
            print(f"{symmetry:<12} (skipped: {type(exc).__name__}: {exc})", flush=True)
            continue
        for name in (args.models or available):
            if name not in available:
                continue
            hp = {**COMMON, **PAPER_SETTINGS[symmetry]}
            model, n_par = None, "-"
            try:
                model = build(name, symmetry, **hp).to(device)
                n_par = count_parameters(model)
                x = torch.randn(args.batch, hp["in_frames"], 2, *hp["frame_size"], device=device)
                ms = f"{time_forward_backward(model, x, args.warmup, args.repeat):.1f}"
            except Exception as exc:
                ms = f"error: {type(exc).__name__}: {exc}"
            print(f"{symmetry:<12} {name:<14} {n_par:>12} {ms:>10}", flush=True)
            del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
