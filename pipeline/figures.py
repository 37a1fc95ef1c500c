"""Every figure of the pipeline: the paper's Figures 2, 3, 4 and 7, the per-step rollout errors and correlation,
and the symmetry breaking read off the relaxed weights.

This module is the one place that defines how a model looks (:data:`MODEL_STYLES`: colour and marker; its display
name is ``pipeline.display``'s, shared with the tables) and how a split is named and drawn (:data:`SPLIT_STYLES`);
every figure uses them. Each ``plot_*`` function takes in-memory data (aggregated tables as pandas frames, arrays)
and returns a matplotlib ``Figure`` sized for the paper (single column :data:`COLUMN` inches wide, full width
:data:`PAGE`), so the tests can count its panels and lines; :func:`save` writes it. The ``*_figure`` functions at
the end read the pipeline's files and are what the Snakemake scripts call.

Units: velocities are in grid cells per simulation time unit (the domain is ``[0, grid]^2`` with one cell per
length unit), so every RMSE and equivariance error of a velocity field is in those units.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import files  # noqa: E402
from .catalogue import SYMMETRY_FAMILIES  # noqa: E402
from .display import display_name  # noqa: E402
from .models import RELAXED  # noqa: E402
from .runs import CORRELATION_THRESHOLDS, PERSISTENCE  # noqa: E402

COLUMN = 3.4   # inches: one column of the ICML two-column layout
PAGE = 7.0     # inches: the full text width
DPI = 200

VELOCITY_UNIT = "cells / time unit"

# name in the model registry -> (colour, marker); display names: pipeline.display. Relaxed (approximately
# equivariant) models in warm colours, baselines in cool colours and greys; persistence, the no-model floor, black
# and dotted.
MODEL_STYLES = {
    PERSISTENCE: ("#000000", ""),  # the floor: the last input frame repeated (pipeline.runs)
    "mlp": ("#7f7f7f", "x"),
    "conv": ("#1f77b4", "o"),
    "equiv": ("#17becf", "s"),
    "rpp": ("#9467bd", "v"),
    "combo": ("#8c564b", "P"),
    "clcnn": ("#e377c2", "X"),
    "lift": ("#bcbd22", "^"),
    "rgroup": ("#ff7f0e", "D"),
    "rsteer": ("#d62728", "*"),
    "rsteer_tr": ("#2ca02c", "h"),
    "crelax": ("#e6550d", "d"),   # the newer models (docs/newer-models.md)
    "sbi": ("#fdae6b", "<"),
    "ace": ("#a50f15", ">"),
    "gmcnn": ("#fd8d3c", "8"),
}
SPLIT_STYLES = {
    "test_future": ("Test-future", "-"),
    "test_domain": ("Test-domain", "--"),
}
_FALLBACK_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#31a354")

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "legend.frameon": False,
    "image.origin": "lower",
}


def model_label(model: str, dataset: str | None = None, own: dict | None = None) -> str:
    """Display name of ``model`` (:func:`pipeline.display.display_name`; ``own``: the models of one's own)."""
    return display_name(model, dataset, own)


def model_color(model: str) -> str:
    if model in MODEL_STYLES:
        return MODEL_STYLES[model][0]
    return _FALLBACK_COLOURS[sum(map(ord, model)) % len(_FALLBACK_COLOURS)]


def model_marker(model: str) -> str:
    return MODEL_STYLES[model][1] if model in MODEL_STYLES else "o"


def model_linestyle(model: str) -> str:
    """Dotted for persistence, which is no model but the floor every model is read against; solid otherwise."""
    return ":" if model == PERSISTENCE else "-"


def model_order(models) -> list[str]:
    """Models in the order of :data:`MODEL_STYLES` (unknown names last, alphabetically)."""
    known = list(MODEL_STYLES)
    return sorted(set(models), key=lambda m: (known.index(m) if m in known else len(known), m))


def split_label(split: str) -> str:
    return SPLIT_STYLES[split][0] if split in SPLIT_STYLES else split


def _styled(fn):
    """Build the figure under :data:`STYLE` (fonts and line widths are fixed when artists are created)."""
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return fn(*args, **kwargs)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: no rows")


def save(fig, *paths, dpi: int = DPI) -> None:
    """Write ``fig`` to every path (format from the suffix), atomically, then close it.

    The canvas is saved at its own size (no tight bounding box), so a figure of ``w x h`` inches is exactly
    ``w * dpi`` by ``h * dpi`` pixels.
    """
    for path in paths:
        with files.partial(path, keep_suffix=True) as tmp:
            fig.savefig(tmp, dpi=dpi, metadata={"Software": None} if tmp.suffix == ".png" else None)
    plt.close(fig)


# --- per-step rollout errors ---------------------------------------------------------------------------

@_styled
def plot_rollout(df: pd.DataFrame, dataset: str | None = None, own: dict | None = None):
    """RMSE of every rolled-out step, one panel per test split, one line (mean, band +- std) per model; ``own``:
    the display names of the models of one's own (as in every plot)."""
    _require(df, ["model", "split", "step", "rmse_mean", "rmse_std"], "rollout table")
    splits = [s for s in SPLIT_STYLES if s in set(df["split"])] + sorted(set(df["split"]) - set(SPLIT_STYLES))
    models = model_order(df["model"])
    fig, axes = plt.subplots(1, len(splits), figsize=(PAGE, 2.5), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, split in zip(axes[0], splits):
        part = df[df["split"] == split]
        for model in models:
            m = part[part["model"] == model].sort_values("step")
            if m.empty:
                continue
            steps, mean, std = m["step"].to_numpy(), m["rmse_mean"].to_numpy(), np.nan_to_num(m["rmse_std"].to_numpy())
            ax.plot(steps, mean, color=model_color(model), marker=model_marker(model), markevery=_every(len(steps)),
                    linestyle=model_linestyle(model), label=model_label(model, dataset, own))
            ax.fill_between(steps, mean - std, mean + std, color=model_color(model), alpha=0.15, linewidth=0)
        title = split_label(split) if dataset is None else f"{dataset.capitalize()}: {split_label(split).lower()}"
        ax.set_title(title)
        ax.set_xlabel("Rollout step (frames ahead)")
        ax.set_xlim(left=min(df["step"]) - 0.5)
    axes[0, 0].set_ylabel(f"RMSE ({VELOCITY_UNIT})")
    axes[0, 0].set_ylim(bottom=0)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="Model")
    return fig


def _every(n: int) -> int:
    return max(1, n // 6)


# --- Figure 4: model vs data equivariance error -----------------------------------------------------------

@_styled
def plot_equivariance(df: pd.DataFrame, own: dict | None = None):
    """Model equivariance error against the data's, one line per model with error bars over seeds."""
    _require(df, ["level", "data_equivariance_error", "model", "equivariance_error_mean", "equivariance_error_std"],
             "equivariance table")
    fig, ax = plt.subplots(figsize=(COLUMN, 2.8), layout="constrained")
    x_hi = float(df["data_equivariance_error"].max()) * 1.05 or 1.0
    y_hi = float((df["equivariance_error_mean"] + df["equivariance_error_std"].fillna(0)).max()) * 1.05 or 1.0
    hi = max(x_hi, y_hi)
    ax.plot([0, hi], [0, hi], color="0.5", linestyle=":", linewidth=1, label="Model = data", zorder=1)
    for model in model_order(df["model"]):
        m = df[df["model"] == model].sort_values("data_equivariance_error")
        ax.errorbar(m["data_equivariance_error"], m["equivariance_error_mean"],
                    yerr=m["equivariance_error_std"].fillna(0),
                    color=model_color(model), marker=model_marker(model), capsize=2, elinewidth=0.8,
                    label=model_label(model, "equivariance", own), zorder=2)
    # equal scales when the two ranges are alike (the diagonal at 45 degrees), else each axis its own range
    if max(x_hi, y_hi) <= 2 * min(x_hi, y_hi):
        x_hi = y_hi = hi
    ax.set_xlim(-0.03 * x_hi, x_hi)
    ax.set_ylim(-0.03 * y_hi, y_hi)
    ax.set_xlabel(f"Data equivariance error ({VELOCITY_UNIT})")
    ax.set_ylabel(f"Model equivariance error\n({VELOCITY_UNIT})")
    fig.legend(loc="outside upper center", ncols=3)
    return fig


# --- Figure 7: the alpha sweep -----------------------------------------------------------------------------

@_styled
def plot_alpha(df: pd.DataFrame, model: str = "rsteer", dataset: str = "scaling", own: dict | None = None):
    """Test RMSE against the regulariser weight alpha: log axis, alpha = 0 as a separate point on the left.

    Lines join the positive alphas; alpha = 0 sits one decade left of the smallest positive alpha, behind a
    break of the axis, joined by a dotted line.
    """
    _require(df, ["alpha", "split", "rmse_mean", "rmse_std"], "alpha sweep table")
    alphas = np.sort(df["alpha"].unique())
    positive = alphas[alphas > 0]
    zero_at = positive.min() / 10 if len(positive) else 1.0
    fig, ax = plt.subplots(figsize=(COLUMN, 2.4), layout="constrained")
    splits = [s for s in SPLIT_STYLES if s in set(df["split"])]
    for i, split in enumerate(splits):
        part = df[df["split"] == split].sort_values("alpha")
        x = np.where(part["alpha"] > 0, part["alpha"], zero_at)
        y, e = part["rmse_mean"].to_numpy(), part["rmse_std"].fillna(0).to_numpy()
        color = model_color(model) if i == 0 else "0.25"
        pos = part["alpha"].to_numpy() > 0
        ax.errorbar(x[pos], y[pos], yerr=e[pos], color=color, linestyle=SPLIT_STYLES[split][1], marker="o",
                    capsize=2, elinewidth=0.8, label=split_label(split))
        if (~pos).any():
            ax.errorbar(x[~pos], y[~pos], yerr=e[~pos], color=color, marker="o", markerfacecolor="white",
                        capsize=2, elinewidth=0.8, linestyle="none")
            if pos.any():
                j = np.argmax(pos)
                ax.plot([x[~pos][0], x[j]], [y[~pos][0], y[j]], color=color, linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ticks = ([zero_at] if (alphas == 0).any() else []) + list(positive)
    ax.set_xticks(ticks)
    ax.set_xticklabels((["0"] if (alphas == 0).any() else []) + [_power_label(a) for a in positive])
    ax.minorticks_off()
    if (alphas == 0).any() and len(positive):
        # an axis break between alpha = 0 and the log-spaced alphas
        gap = np.sqrt(zero_at * positive.min())
        ax.axvline(gap, color="0.6", linewidth=0.6, linestyle=(0, (2, 2)))
    lo, hi = (zero_at if (alphas == 0).any() else positive.min()), alphas.max() if len(positive) else 1.0
    ax.set_xlim(lo / 2.5, hi * 2.5)
    ax.set_xlabel(r"Regularisation weight $\alpha$")
    ax.set_ylabel(f"RMSE ({VELOCITY_UNIT})")
    ax.set_title(f"{model_label(model, dataset, own)} on {dataset}")
    ax.legend()
    return fig


# --- the hyper-parameter search --------------------------------------------------------------------------

@_styled
def plot_tuning(df: pd.DataFrame, own: dict | None = None):
    """Validation RMSE of every trial against its index, one panel per dataset, one colour per model: trained
    trials as markers, the best so far as a line, the chosen trial ringed. Trial 0 is the config's setting."""
    _require(df, ["dataset", "model", "trial", "status", "chosen", "valid_rmse"], "hyperparameters table")
    done = df[df["status"] == "trained"]
    datasets = [d for d in SYMMETRY_FAMILIES if d in set(df["dataset"])]
    fig, axes = plt.subplots(1, len(datasets), figsize=(PAGE, 2.6), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, dataset in zip(axes[0], datasets):
        part = done[done["dataset"] == dataset]
        for model in model_order(part["model"]):
            m = part[part["model"] == model].sort_values("trial")
            trial, rmse = m["trial"].to_numpy(dtype=float), m["valid_rmse"].to_numpy(dtype=float)
            color = model_color(model)
            ax.plot(trial, rmse, color=color, marker=model_marker(model), linestyle="none", markersize=3, alpha=0.6)
            ax.step(trial, np.minimum.accumulate(rmse), where="post", color=color,
                    label=model_label(model, dataset, own))
            best = m[m["chosen"].astype(bool)]
            ax.plot(best["trial"].to_numpy(dtype=float), best["valid_rmse"].to_numpy(dtype=float), linestyle="none",
                    marker="o", markersize=8, markerfacecolor="none", markeredgecolor="black")
        ax.set_title(dataset.capitalize())
        ax.set_xlabel("Trial (0: config setting)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel(f"Validation RMSE ({VELOCITY_UNIT})")
    return fig


def _power_label(a: float) -> str:
    e = np.log10(a)
    if np.isclose(e, round(e)):
        return f"$10^{{{int(round(e))}}}$"
    return f"{a:g}"


# --- Figure 2: heat diffusion ------------------------------------------------------------------------------

@_styled
def plot_heat(result):
    """Rows: uniform and varying diffusion coefficient. Columns: the coefficient; the temperature at each
    time (normalised by the larger maximum of the two rows at that time, isotherms in white); and the last
    temperature minus its own quarter turn, which is zero for exact C4 symmetry (its maximum, relative to
    the temperature's, in the panel title)."""
    from .heat import rotation_asymmetry

    n = len(result.times)
    fig = plt.figure(figsize=(PAGE, 2.2), layout="constrained")
    axes = fig.subplots(2, n + 2, squeeze=False)
    kappa_rows = (np.full_like(result.kappa, result.params["diffusivity"]), result.kappa)
    k_lo, k_hi = float(result.kappa.min()), float(result.kappa.max())
    levels = np.linspace(0.1, 0.9, 5)
    extent = (0, result.kappa.shape[1], 0, result.kappa.shape[0])
    rows = (("Uniform", result.uniform), ("Varying", result.varying))
    scales = [float(max(result.uniform[c].max(), result.varying[c].max())) or 1.0 for c in range(n)]
    diffs = [f[-1] / scales[-1] - np.rot90(f[-1] / scales[-1]) for _, f in rows]
    d_max = max(float(np.abs(d).max()) for d in diffs) or 1.0
    for r, (name, frames) in enumerate(rows):
        ki = axes[r, 0].imshow(kappa_rows[r], cmap="cividis", vmin=k_lo, vmax=k_hi, extent=extent)
        axes[r, 0].set_ylabel(f"{name} $\\kappa$")
        for c in range(n):
            t = frames[c] / scales[c]
            im = axes[r, c + 1].imshow(t, cmap="inferno", vmin=0, vmax=1, extent=extent)
            axes[r, c + 1].contour(t, levels=levels, colors="white", linewidths=0.4, extent=extent)
            if r == 0:
                axes[r, c + 1].set_title(f"$T$, t = {result.times[c]:g}")
        di = axes[r, -1].imshow(diffs[r], cmap="RdBu_r", vmin=-d_max, vmax=d_max, extent=extent)
        axes[r, -1].set_title(f"max {100 * rotation_asymmetry(frames[-1]):.1f}%", fontsize=7)
    axes[0, 0].set_title(r"Diffusivity $\kappa$")
    axes[0, -1].set_title(f"$T - R_{{90}}T$, t = {result.times[-1]:g}\n"
                          f"max {100 * rotation_asymmetry(result.uniform[-1]):.1f}%", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for side in ("top", "right"):
            ax.spines[side].set_visible(True)
    fig.colorbar(ki, ax=axes[:, 0], location="left", shrink=0.85, label=r"$\kappa$ (cells$^2$/time unit)")
    fig.colorbar(im, ax=axes[:, 1:n + 1], shrink=0.85, label="Temperature (normalised)")
    fig.colorbar(di, ax=axes[:, -1], shrink=0.85, label="Difference")
    return fig


# --- Figure 3: predictions ------------------------------------------------------------------------------------

def magnitude(u: np.ndarray) -> np.ndarray:
    """Velocity magnitude of ``(..., 2, H, W)``."""
    return np.sqrt(np.sum(np.asarray(u, dtype=np.float64) ** 2, axis=-3))


def figure_steps(steps, rollout: int) -> list[int]:
    """The requested steps that the rollout reaches, plus its last step when some were cut."""
    kept = sorted({int(s) for s in steps if 1 <= int(s) <= rollout})
    if len(kept) < len(set(steps)) and rollout not in kept:
        kept.append(rollout)
    return kept or [rollout]


@_styled
def plot_predictions(target: np.ndarray, predictions: dict, steps, dataset: str | None = None,
                     labels: dict | None = None,
                     title: str | None = None, own: dict | None = None):
    """Velocity magnitude of the ground truth (first row) and each model's rollout (one row per model) at
    ``steps`` (1-based rollout steps), on one colour scale (0 .. the largest ground-truth magnitude).

    ``target`` and each prediction are ``(rollout, 2, H, W)``; ``labels`` maps a model to extra text under
    its name (its RMSE, say).
    """
    rows = [("Target", target)] + [(m, p) for m, p in predictions.items()]
    fig = plt.figure(figsize=(PAGE * (len(steps) + 1.2) / 5.2, 1.35 * len(rows) + 0.35), layout="constrained")
    axes = fig.subplots(len(rows), len(steps), squeeze=False)
    vmax = float(magnitude(target[[s - 1 for s in steps]]).max()) or 1.0
    pred_max = max([float(magnitude(p[[s - 1 for s in steps]]).max()) for _, p in rows[1:]], default=0.0)
    h, w = target.shape[-2:]
    for r, (name, field) in enumerate(rows):
        for c, step in enumerate(steps):
            ax = axes[r, c]
            im = ax.imshow(magnitude(field[step - 1]), cmap="viridis", vmin=0, vmax=vmax, extent=(0, w, 0, h))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for side in ("top", "right"):
                ax.spines[side].set_visible(True)
            if r == 0:
                ax.set_title(f"Step {step}")
        label = name if r == 0 else model_label(name, dataset, own)
        if r > 0 and labels and name in labels:
            label = f"{label}\n{labels[name]}"
        axes[r, 0].set_ylabel(label, color="black" if r == 0 else model_color(name), fontweight="bold")
    fig.colorbar(im, ax=axes, shrink=0.6, extend="max" if pred_max > vmax else "neither",
                 label=f"|velocity| ({VELOCITY_UNIT})")
    if title:
        import textwrap
        fig.suptitle(textwrap.fill(title, width=int(fig.get_figwidth() * 15)), fontsize=plt.rcParams["axes.titlesize"])
    return fig


def choose_models(table1: pd.DataFrame, dataset: str, split: str = "test_domain", baselines: int = 2,
                  models=None) -> list[str]:
    """Models of Figure 3: ``models`` when given, else the relaxed model with the lowest ``split`` RMSE and
    the ``baselines`` non-relaxed trained models (not persistence) with the lowest (in that order)."""
    if models:
        return list(models)
    _require(table1, ["dataset", "model", "split", "rmse_mean"], "table1")
    t = table1[(table1["dataset"] == dataset) & (table1["split"] == split)].dropna(subset=["rmse_mean"])
    if t.empty:
        raise ValueError(f"table1 has no {split} rows for {dataset!r}")
    t = t[t["model"] != PERSISTENCE].sort_values(["rmse_mean", "model"])  # persistence has no model.pt to roll out
    relaxed = t[t["model"].isin(RELAXED)]["model"].tolist()[:1]
    others = t[~t["model"].isin(RELAXED)]["model"].tolist()[:baselines]
    return relaxed + others


def load_model(path):
    """Rebuild a trained model from its ``model.pt`` (the training stage's format)."""
    from .rollout import load_model as _load
    return _load(path, "cpu")[0]


def predictions_figure(dataset: str, store: str, windows: dict, table1: str, runs: str, output_png: str,
                       output_pdf: str | None = None, sample: int = 0, seed: int = 0, steps=(1, 5, 10, 20),
                       baselines: int = 2, models=None, split: str = "test_domain", dpi: int = DPI,
                       own: dict | None = None):
    """Figure 3 for ``dataset``: roll out the chosen models (run ``{runs}/{dataset}/{model}/seed{seed}``)
    on sample ``sample`` of ``split`` and plot their velocity magnitude next to the ground truth."""
    import torch

    from . import datasets
    from .rollout import rollout

    t1 = pd.read_csv(table1) if table1 else pd.DataFrame(columns=["dataset", "model", "split", "rmse_mean"])
    chosen = choose_models(t1, dataset, split, baselines, models)
    ds = datasets.open_store(store)  # reads only the sample drawn
    w = datasets.split_windows(ds, split, windows)
    if not 0 <= sample < len(w):
        raise IndexError(f"figures sample {sample} is out of range: {dataset} {split} has {len(w)} samples")
    x, y = datasets.window_arrays(ds, w, [sample])
    shown = figure_steps(steps, w.out_length)
    predictions, labels = {}, {}
    for model_name in chosen:
        path = Path(runs) / dataset / model_name / f"seed{seed}" / "model.pt"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no trained model for Figure 3 (models {chosen}, seed {seed})")
        model = load_model(path)
        with torch.no_grad():
            p = rollout(model, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), w.out_length)[0].numpy()
        predictions[model_name] = p
        row = t1[(t1["dataset"] == dataset) & (t1["model"] == model_name) & (t1["split"] == split)]
        if not row.empty:
            mean, std = row["rmse_mean"].iloc[0], row["rmse_std"].iloc[0] if "rmse_std" in row else np.nan
            labels[model_name] = f"RMSE {mean:.2f}" + ("" if pd.isna(std) else f" ± {std:.2f}")
    sim, start = w.index(sample)
    inputs, _ = w.slices(sample)
    label = ds.attrs["sims"][sim].get("label", f"{dataset} sim {sim}")
    title = (f"{label[0].upper()}{label[1:]}, {split_label(split).lower()}: "
             f"rollout from input frames {inputs.start}-{inputs.stop - 1}")
    fig = plot_predictions(y[0], predictions, shown, dataset, labels, title, own)
    save(fig, *[p for p in (output_png, output_pdf) if p], dpi=dpi)
    return chosen


# --- correlation over the rollout ----------------------------------------------------------------------------

@_styled
def plot_correlation(df: pd.DataFrame, dataset: str, thresholds=CORRELATION_THRESHOLDS, own: dict | None = None):
    """Per-step Pearson correlation of ``dataset``'s test rollouts (the long metrics table), one panel per test
    split, one line (mean, band +- std over seeds) per model; dotted: each correlation-time threshold. The legend
    gives each model's correlation time at the first threshold (PDEArena's: the steps strictly above it,
    pipeline.metrics.correlation_time of each seed's curve, mean over seeds)."""
    from .metrics import correlation_time
    thresholds = [float(t) for t in thresholds]
    if not thresholds:
        raise ValueError("plot_correlation: no correlation thresholds (evaluation.correlation_thresholds is empty)")
    first = thresholds[0]
    _require(df, ["dataset", "model", "seed", "split", "step", "correlation"], "long metrics table")
    df = df[(df["dataset"] == dataset) & df["split"].isin(list(SPLIT_STYLES))]
    _require(df, ["correlation"], f"long metrics table of {dataset}")
    splits = [s for s in SPLIT_STYLES if s in set(df["split"])]
    fig, axes = plt.subplots(1, len(splits), figsize=(PAGE, 2.5), sharey=True, squeeze=False, layout="constrained")
    handles, times = {}, {}  # per model: its line, and its correlation time in each split
    for ax, split in zip(axes[0], splits):
        part = df[df["split"] == split]
        for model in model_order(part["model"]):
            m = part[part["model"] == model]
            curve = m.groupby("step")["correlation"].agg(["mean", "std"]).sort_index()
            per_seed = [correlation_time(g.sort_values("step")["correlation"].to_numpy(), first)
                        for _, g in m.groupby("seed", dropna=False)]  # persistence has no seed
            times.setdefault(model, {})[split] = float(np.mean(per_seed))
            steps, mean, std = curve.index.to_numpy(), curve["mean"].to_numpy(), np.nan_to_num(curve["std"].to_numpy())
            (handles[model],) = ax.plot(steps, mean, color=model_color(model), marker=model_marker(model),
                                        markevery=_every(len(steps)), linestyle=model_linestyle(model))
            ax.fill_between(steps, mean - std, mean + std, color=model_color(model), alpha=0.15, linewidth=0)
        for t in thresholds:
            ax.axhline(t, color="0.4", linestyle=":", linewidth=1)
        ax.set_title(f"{dataset.capitalize()}: {split_label(split).lower()}")
        ax.set_xlabel("Rollout step (frames ahead)")
    axes[0, 0].set_ylabel("Correlation with the target")
    axes[0, 0].set_ylim(top=1.02)
    # one legend beside the panels (as in the rollout figure), so that no curve runs under it; each entry gives the
    # model's correlation time in every split, in the panels' order ("-": the model is not in that split)
    models = model_order(handles)
    labels = [f"{model_label(model, dataset, own)} ("
              + " / ".join("-" if s not in times[model] else f"{times[model][s]:.1f}" for s in splits) + ")"
              for model in models]
    title = (f"Model (correlation time > {first:g},\n"
             + " / ".join(split_label(s).lower() for s in splits) + ")")
    fig.legend([handles[m] for m in models], labels, loc="outside right center", title=title)
    return fig


# --- symmetry breaking in the relaxed layers' kernels (pipeline/symmetry_breaking.py) ----------------------------

ROTATION_ELEMENTS = ("0: bottom side", "1: right side", "2: top side (broken)", "3: left side")


def _layer_colours(layers) -> dict:
    cmap = plt.get_cmap("viridis")
    return {layer: cmap(i / max(1, len(layers) - 1)) for i, layer in enumerate(layers)}


def _layers(df: pd.DataFrame) -> list[str]:
    """Layer names in network order (``conv0, conv1, ..., projection``)."""
    return sorted(set(df["layer"]), key=lambda n: (n == "projection", len(n), n))


@_styled
def plot_symmetry_breaking(df: pd.DataFrame):
    """Each relaxed layer's departure from equivariance (its assembled kernel's distance to its group average)
    against the data equivariance error of the levels,
    one panel per relaxed model, one line per layer (mean, error bars std over seeds); the legend gives the
    Spearman rank correlation of the seed means with the data error."""
    _require(df, ["dataset", "level", "data_equivariance_error", "model", "seed", "layer", "element", "departure"],
             "symmetry-breaking table")
    df = df[(df["element"].astype(str) == "all") & df["dataset"].str.startswith("equivariance")]
    _require(df, ["departure"], "symmetry-breaking table of the equivariance levels")
    models = model_order(df["model"])
    fig, axes = plt.subplots(1, len(models), figsize=(PAGE, 2.6), squeeze=False, layout="constrained")
    for ax, model in zip(axes[0], models):
        part = df[df["model"] == model]
        layers = _layers(part)
        colours = _layer_colours(layers)
        for layer in layers:
            g = part[part["layer"] == layer].groupby("data_equivariance_error")["departure"].agg(["mean", "std"])
            rho = pd.Series(g.index.to_numpy()).corr(pd.Series(g["mean"].to_numpy()), method="spearman")
            ax.errorbar(g.index, g["mean"], yerr=g["std"].fillna(0), color=colours[layer], marker="o", capsize=2,
                        elinewidth=0.8, label=f"{layer} (ρ = {rho:.2f})")
        ax.set_title(model_label(model, "equivariance"))
        ax.set_xlabel(f"Data equivariance error ({VELOCITY_UNIT})")
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower right", title="Layer (Spearman ρ)")
    axes[0, 0].set_ylabel("Kernel's departure from\nequivariance ||K - PK|| / ||K||")
    return fig


@_styled
def plot_symmetry_breaking_rotation(df: pd.DataFrame):
    """Per group element, the departure of each relaxed layer's kernel on the rotation family (bars: mean over
    seeds, error bars: std), one panel per relaxed model; element 2 (the top side, buoyancy 0.011) is the broken
    one. A layer whose kernel singles out the break has its element-2 bar above the other three."""
    _require(df, ["dataset", "model", "seed", "layer", "element", "departure"], "symmetry-breaking table")
    df = df[(df["dataset"] == "rotation") & (df["element"].astype(str) != "all")]
    _require(df, ["departure"], "symmetry-breaking table of the rotation family")
    df = df.assign(element=df["element"].astype(int))
    models = model_order(df["model"])
    colours = ("#9ecae1", "#6baed6", "#d62728", "#3182bd")
    fig, axes = plt.subplots(1, len(models), figsize=(PAGE, 2.6), squeeze=False, layout="constrained")
    for ax, model in zip(axes[0], models):
        part = df[df["model"] == model]
        layers = _layers(part)
        for h in range(4):
            g = part[part["element"] == h].groupby("layer")["departure"].agg(["mean", "std"]).reindex(layers)
            x = np.arange(len(layers)) + (h - 1.5) * 0.2
            ax.bar(x, g["mean"], width=0.2, yerr=g["std"].fillna(0), color=colours[h], label=ROTATION_ELEMENTS[h],
                   error_kw={"elinewidth": 0.8, "capsize": 1.5})
        ax.set_xticks(np.arange(len(layers)), layers)
        ax.set_title(f"{model_label(model, 'rotation')}: rotation family")
        ax.set_xlabel("Layer")
    axes[0, 0].set_ylabel("Departure of group element h\n||D_h|| / ||K||")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="Group element h")
    return fig


# --- ACE's learned gamma_i beside the relaxed kernels' departure (pipeline/symmetry_breaking.py) -------------------

def _level_curves(ax, df: pd.DataFrame, value: str) -> None:
    """One line per layer of ``df`` (one model's rows): ``value`` against the data equivariance error, mean over
    seeds with std error bars; the legend gives each layer's Spearman rank correlation of the means with the error."""
    layers = _layers(df)
    colours = _layer_colours(layers)
    for layer in layers:
        g = df[df["layer"] == layer].groupby("data_equivariance_error")[value].agg(["mean", "std"])
        rho = pd.Series(g.index.to_numpy()).corr(pd.Series(g["mean"].to_numpy()), method="spearman")
        ax.errorbar(g.index, g["mean"], yerr=g["std"].fillna(0), color=colours[layer], marker="o", capsize=2,
                    elinewidth=0.8, label=f"{layer} (ρ = {rho:.2f})")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", title="Layer (Spearman ρ)")


@_styled
def plot_ace_gamma(gamma: pd.DataFrame, departure: pd.DataFrame | None = None):
    """ACE's learned degree of symmetry breaking per layer, ``|gamma_i|`` (the weight of layer i's non-equivariant
    part), against the data equivariance error of the levels (first panel, one per ACE model), beside the relaxed
    models' kernel departure ``||K - PK|| / ||K||`` per layer on the same levels (one panel per model of
    ``departure``, the symmetry-breaking table; none when it is None or holds no level). Mean over seeds, error bars
    std; the legends give each layer's Spearman rank correlation with the data error."""
    _require(gamma, ["dataset", "data_equivariance_error", "model", "seed", "layer", "abs_gamma"], "ACE gamma table")
    gamma = gamma[gamma["dataset"].str.startswith("equivariance")]
    _require(gamma, ["abs_gamma"], "ACE gamma table of the equivariance levels")
    panels = [(m, gamma[gamma["model"] == m], "abs_gamma") for m in model_order(gamma["model"])]
    if departure is not None:
        _require(departure, ["dataset", "data_equivariance_error", "model", "seed", "layer", "element", "departure"],
                 "symmetry-breaking table")
        departure = departure[(departure["element"].astype(str) == "all")
                              & departure["dataset"].str.startswith("equivariance")]
        panels += [(m, departure[departure["model"] == m], "departure") for m in model_order(departure["model"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(PAGE, 2.6), squeeze=False, layout="constrained")
    labelled = set()
    for ax, (model, part, value) in zip(axes[0], panels):
        _level_curves(ax, part, value)
        ax.set_title(model_label(model, "equivariance"))
        if value not in labelled:   # one y label per quantity, on its first panel
            ax.set_ylabel("Learned |γ_i|" if value == "abs_gamma" else "Kernel's departure\n||K - PK|| / ||K||")
            labelled.add(value)
    fig.supxlabel(f"Data equivariance error ({VELOCITY_UNIT})")
    return fig


# --- the pipeline's figure files --------------------------------------------------------------------------

def rollout_figure(table: str, dataset: str, output: str, dpi: int = DPI, own: dict | None = None) -> None:
    save(plot_rollout(pd.read_csv(table), dataset, own), output, dpi=dpi)


def equivariance_figure(table: str, output: str, dpi: int = DPI, own: dict | None = None) -> None:
    save(plot_equivariance(pd.read_csv(table), own), output, dpi=dpi)


def alpha_figure(table: str, output: str, model: str = "rsteer", dataset: str = "scaling", dpi: int = DPI,
                 own: dict | None = None) -> None:
    save(plot_alpha(pd.read_csv(table), model, dataset, own), output, dpi=dpi)


def heat_figure(output: str, heat: dict, dpi: int = DPI) -> None:
    from .heat import simulate
    save(plot_heat(simulate(**heat)), output, dpi=dpi)


def correlation_figure(table: str, dataset: str, output: str, thresholds=CORRELATION_THRESHOLDS, dpi: int = DPI,
                       own: dict | None = None) -> None:
    save(plot_correlation(pd.read_csv(table), dataset, thresholds, own), output, dpi=dpi)


def symmetry_breaking_figure(table: str, output: str, dpi: int = DPI) -> None:
    save(plot_symmetry_breaking(pd.read_csv(table)), output, dpi=dpi)


def symmetry_breaking_rotation_figure(table: str, output: str, dpi: int = DPI) -> None:
    save(plot_symmetry_breaking_rotation(pd.read_csv(table)), output, dpi=dpi)


def ace_gamma_figure(table: str, output: str, departure_table: str | None = None, dpi: int = DPI) -> None:
    departure = pd.read_csv(departure_table) if departure_table else None
    save(plot_ace_gamma(pd.read_csv(table), departure), output, dpi=dpi)
