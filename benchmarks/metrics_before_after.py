"""Old and new values of the metrics and of the symmetry-breaking measure changed by issue 17 (docs/metrics.md,
docs/symmetry-breaking.md): the modules of an older commit (``--old``, default a41e509, before the change), read
with ``git show``, beside this checkout's, on a fixed random pair and, given ``--store`` (a rotation store, e.g. the
tiny preset's), on persistence predictions of its test splits and on RGroup / RSteer trained briefly on it.

    python benchmarks/metrics_before_after.py
    snakemake results/data/rotation.zarr --cores 1 --configfile presets/tiny.yaml --directory /tmp/tiny
    python benchmarks/metrics_before_after.py --store /tmp/tiny/results/data/rotation.zarr --runs /tmp/tiny/runs
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import metrics as new  # noqa: E402


def old_module(commit: str, path: str, name: str):
    """The module ``path`` as it was at ``commit``, imported as ``pipeline.<name>`` (its relative imports work)."""
    text = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout
    tmp = Path(tempfile.mkdtemp()) / f"{name}.py"
    tmp.write_text(text)
    spec = importlib.util.spec_from_file_location(f"pipeline.{name}", tmp)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(old, pred, target, label: str) -> None:
    so = old.summarise_rollout(old.rollout_scores_per_step(pred, target))
    sn = new.summarise_rollout(new.rollout_scores_per_step(pred, target), tuple(target.shape[-2:]))
    print(f"{label}:")
    print(f"  vrmse        old {so['vrmse']:.6f}  new {sn['vrmse']:.6f}  (old / new {so['vrmse'] / sn['vrmse']:.6f})")
    print(f"  nrmse        old {so['nrmse']:.6f}  new {sn['nrmse']:.6f}  vector_nrmse {sn['vector_nrmse']:.6f}")
    print(f"  correlation  old {so['correlation']:.6f}  new {sn['correlation']:.6f}; "
          f"time old {so['correlation_time']} new "
          + ", ".join(f"{k.removeprefix('correlation_time_')}: {v}" for k, v in sn.items()
                      if k.startswith("correlation_time_")))
    fmt = lambda v: "none" if v is None else f"{v:.4g}"  # noqa: E731
    print("  old spectral_rmse", " / ".join(fmt(so[f"spectral_rmse_{b}"]) for b in new.BANDS),
          "| new frmse", " / ".join(fmt(sn[f"frmse_{b}"]) for b in new.BANDS),
          "| new binned_spectral_mse", " / ".join(fmt(sn[f"binned_spectral_mse_{b}"]) for b in new.BANDS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="a41e509", help="commit whose metrics and symmetry_breaking modules are 'old'")
    ap.add_argument("--store", help="a rotation store: persistence scores and brief RGroup / RSteer trainings")
    ap.add_argument("--runs", default="/tmp/metrics_before_after", help="where the brief trainings go")
    args = ap.parse_args()
    old = old_module(args.old, "pipeline/metrics.py", "_old_metrics")

    g = torch.Generator().manual_seed(0)
    t = torch.randn(4, 20, 2, 64, 64, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 20, 2, 64, 64, generator=g, dtype=torch.float64)
    compare(old, t + 0.5 * noise, t, "random pair, t ~ N(0, 1), p = t + 0.5 N(0, 1), 4 x 20 x 2 x 64 x 64, seed 0")
    scale = torch.tensor([1.0, 0.01], dtype=torch.float64)[None, None, :, None, None]
    compare(old, t * scale + 0.25 * noise, t * scale,
            "the same with the target's vy scaled by 0.01, error 0.25 N(0, 1)")
    curve = torch.tensor([0.99, 0.9, 0.85, 0.79, 0.82, 0.8, 0.7], dtype=torch.float64)
    print(f"correlation curve {curve.tolist()}: time old {old.correlation_time(curve)} "
          f"new {new.correlation_times(curve)}")
    if not args.store:
        return

    import warnings

    from pipeline import datasets, runs, symmetry_breaking, train
    from pipeline.config import load, validate
    from pipeline.rollout import load_model
    from snakemake.utils import update_config

    warnings.filterwarnings("ignore")
    cfg = load(ROOT / "config.yaml")
    update_config(cfg, load(ROOT / "presets" / "tiny.yaml"))
    cfg = validate(cfg)
    ds = datasets.load(args.store)
    windows = cfg["windows"]["rotation"]
    for split in ("test_future", "test_domain"):
        w = datasets.split_windows(ds, split, windows)
        xs, ys = datasets.window_arrays(ds, w)
        y = torch.from_numpy(ys).double()
        persistence = torch.from_numpy(xs).double()[:, -1:].expand_as(y)
        compare(old, persistence, y, f"persistence on {args.store}, {split} ({len(w)} windows, {y.shape[1]} steps)")
    old_sb = old_module(args.old, "pipeline/symmetry_breaking.py", "_old_symmetry_breaking")
    for model in ("rgroup", "rsteer"):
        params = runs.train_params(cfg, "rotation", model)
        params["training"].update(epochs=5, patience=5)
        params["model"].update(hidden=4, **({"banks": 2} if model == "rgroup" else {}))
        out = Path(args.runs) / model
        train.train_run(params, "rotation", args.store, model, 0, str(out), progress=False)
        m, _ = load_model(out / "model.pt", "cpu")
        before = {r["layer"]: r["departure"] for r in old_sb.analyse(m) if r["element"] == "all"}
        after = {r["layer"]: r["departure"] for r in symmetry_breaking.analyse(m) if r["element"] == "all"}
        print(f"{model} (tiny preset settings, 5 epochs, hidden 4): departure old (weights) -> new (kernel):",
              ", ".join(f"{k} {before[k]:.4g} -> {after[k]:.4g}" for k in before))


if __name__ == "__main__":
    main()
