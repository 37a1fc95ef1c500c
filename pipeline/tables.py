"""Tables aggregated from the runs' ``metrics.json`` files: Table 1 (csv, markdown, LaTeX) and its VRMSE view,
the equivariance levels (Figure 4), per-step rollout errors (Figure 3), the alpha sweep (Figure 7), and every
per-step metric of every run in long format.

Across seeds: the mean and the sample standard deviation (``ddof=1``; NaN for a single seed).

Persistence (``pipeline.runs.PERSISTENCE``: the last input frame repeated, no seed) is a model of every table whose
metrics files include its ``metrics.json``; it comes first. Table 1 marks every model whose mean RMSE is not below
persistence's on the same dataset and split (:data:`NOT_BELOW_MARK`; the CSV's ``below_persistence``).
"""
from __future__ import annotations

import json
import math

import pandas as pd

from . import paper
from .catalogue import SYMMETRY_FAMILIES
from .display import display_name
from .files import write_table, write_text
from .runs import PERSISTENCE

SPLITS = ("test_future", "test_domain")
SPLIT_LABELS = {"test_future": "future", "test_domain": "domain"}


def read_metrics(paths) -> list[dict]:
    out = []
    for path in paths:
        with open(path) as fh:
            out.append(json.load(fh))
    return out


def _model_order(models) -> list[str]:
    """Persistence, the paper's models in its column order, then the others by name."""
    known = (PERSISTENCE, *paper.MODELS)
    return [m for m in known if m in set(models)] + sorted(set(models) - set(known))


def _aggregate(rows: list[dict], keys: list[str], value: str, prefix: str) -> pd.DataFrame:
    """Mean, sample std and count of ``value`` over the seeds of each ``keys`` group."""
    columns = keys + [f"{prefix}_mean", f"{prefix}_std", "n_seeds"]
    if not rows:
        return pd.DataFrame(columns=columns)
    g = pd.DataFrame(rows).groupby(keys, sort=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index()
    return out.set_axis(columns, axis=1)


# --- Table 1 -----------------------------------------------------------------------------------------------

def table1(metrics: list[dict]) -> pd.DataFrame:
    """``dataset, model, split, rmse_mean, rmse_std, n_seeds, paper_mean, paper_std, persistence_rmse,
    below_persistence``: the last two compare each model's mean RMSE with persistence's on its dataset and split
    (empty where persistence was not evaluated, and on persistence's own rows)."""
    rows = [{"dataset": m["dataset"], "model": m["model"], "split": s, "rmse": m[f"{s}_rmse"]}
            for m in metrics if m["dataset"] in SYMMETRY_FAMILIES for s in SPLITS]
    df = _aggregate(rows, ["dataset", "model", "split"], "rmse", "rmse")
    df["paper_mean"] = [paper.table1(d, s, m)[0] for d, m, s in zip(df.dataset, df.model, df.split)]
    df["paper_std"] = [paper.table1(d, s, m)[1] for d, m, s in zip(df.dataset, df.model, df.split)]
    order = {m: i for i, m in enumerate(_model_order(df.model))}
    df = df.assign(_d=df.dataset.map(SYMMETRY_FAMILIES.index), _s=df.split.map(SPLITS.index), _m=df.model.map(order))
    df = df.sort_values(["_d", "_s", "_m"]).drop(columns=["_d", "_s", "_m"]).reset_index(drop=True)
    df["n_seeds"] = df["n_seeds"].astype(int)
    floor = df[df.model == PERSISTENCE].set_index(["dataset", "split"])["rmse_mean"]
    df["persistence_rmse"] = [floor.get((d, s), math.nan) for d, s in zip(df.dataset, df.split)]
    below = [pd.NA if m == PERSISTENCE or math.isnan(p) else bool(r < p)
             for m, r, p in zip(df.model, df.rmse_mean, df.persistence_rmse)]
    df["below_persistence"] = pd.array(below, dtype="boolean")
    return df


NOT_BELOW_MARK = {"md": "†", "tex": r"$^\dagger$"}
NOT_BELOW_NOTE = "mean RMSE not below persistence's (the last input frame repeated for every step) on that row"


def _cell(mean: float, std: float, pm: str, digits: int = 3) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f}{pm}{std:.{digits}f}"


def _grid(df: pd.DataFrame, pm: str, value: str = "rmse",
          mark: str = "") -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Column models and rows ``(label, cells)`` laid out like the paper: ours (``{value}_mean +- {value}_std``),
    then ``mark`` where the table says the model is not below persistence, then the paper's in brackets where the
    table has the paper's column."""
    models = _model_order(df.model)
    rows = []
    for (dataset, split), part in df.groupby(["dataset", "split"], sort=False):
        by_model = part.set_index("model")
        cells = []
        for m in models:
            if m not in by_model.index:
                cells.append("")
                continue
            r = by_model.loc[m]
            ours = _cell(r[f"{value}_mean"], r[f"{value}_std"], pm)
            if mark and "below_persistence" in r and not pd.isna(r.below_persistence) and not r.below_persistence:
                ours += mark
            theirs = _cell(r.paper_mean, r.paper_std, pm, digits=2) if "paper_mean" in r else "-"
            cells.append(ours if theirs == "-" else f"{ours} ({theirs})")
        rows.append((f"{dataset} {SPLIT_LABELS[split]}", cells))
    return models, rows


def table1_markdown(df: pd.DataFrame, own: dict | None = None) -> str:
    """``own``: the display names of the models of one's own (``pipeline.display``), as in every table."""
    models, rows = _grid(df, " ± ", mark=NOT_BELOW_MARK["md"])
    lines = ["RMSE of the 20-step rollout, mean ± std over seeds; the paper's value in brackets.", "",
             "| | " + " | ".join(display_name(m, own=own) for m in models) + " |",
             "|---" * (len(models) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    if PERSISTENCE in models:
        lines += ["", f"{NOT_BELOW_MARK['md']} {NOT_BELOW_NOTE}."]
    return "\n".join(lines) + "\n"


def table1_latex(df: pd.DataFrame, own: dict | None = None) -> str:
    models, rows = _grid(df, r"$\pm$", mark=NOT_BELOW_MARK["tex"])
    lines = [r"\begin{tabular}{l" + "c" * len(models) + "}", r"\toprule",
             " & " + " & ".join(display_name(m, own=own).replace("_", r"\_") for m in models) + r" \\", r"\midrule"]
    lines += [f"{label} & " + " & ".join(cells) + r" \\" for label, cells in rows]
    lines.append(r"\bottomrule")
    if PERSISTENCE in models:
        lines.append(rf"\multicolumn{{{len(models) + 1}}}{{l}}"
                     rf"{{\footnotesize {NOT_BELOW_MARK['tex']} {NOT_BELOW_NOTE}.}} \\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def write_table1(metric_files, csv_path, md_path, tex_path, own: dict | None = None) -> pd.DataFrame:
    df = table1(read_metrics(metric_files))
    write_table(df, csv_path)
    write_text(table1_markdown(df, own), md_path)
    write_text(table1_latex(df, own), tex_path)
    return df


# --- Table 1's VRMSE view -------------------------------------------------------------------------------------

def table1_vrmse(metrics: list[dict]) -> pd.DataFrame:
    """``dataset, model, split, vrmse_mean, vrmse_std, n_seeds``: Table 1 in VRMSE (pipeline.metrics.vrmse_per_step,
    averaged over the rollout); no published values (the paper reports RMSE only)."""
    rows = [{"dataset": m["dataset"], "model": m["model"], "split": s, "vrmse": m[f"{s}_vrmse"]}
            for m in metrics if m["dataset"] in SYMMETRY_FAMILIES for s in SPLITS]
    df = _aggregate(rows, ["dataset", "model", "split"], "vrmse", "vrmse")
    order = {m: i for i, m in enumerate(_model_order(df.model))}
    df = df.assign(_d=df.dataset.map(SYMMETRY_FAMILIES.index), _s=df.split.map(SPLITS.index), _m=df.model.map(order))
    df = df.sort_values(["_d", "_s", "_m"]).drop(columns=["_d", "_s", "_m"]).reset_index(drop=True)
    df["n_seeds"] = df["n_seeds"].astype(int)
    return df


def table1_vrmse_markdown(df: pd.DataFrame, own: dict | None = None) -> str:
    models, rows = _grid(df, " ± ", value="vrmse")
    lines = ["VRMSE (The Well) of the rollout: per sample, step and velocity component, the RMSE over the target's "
             "spatial standard deviation (Bessel-corrected), averaged; just under 1 = predicting the target's mean. "
             "Mean ± std over seeds.", "",
             "| | " + " | ".join(display_name(m, own=own) for m in models) + " |",
             "|---" * (len(models) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines) + "\n"


def write_table1_vrmse(metric_files, csv_path, md_path, own: dict | None = None) -> pd.DataFrame:
    df = table1_vrmse(read_metrics(metric_files))
    write_table(df, csv_path)
    write_text(table1_vrmse_markdown(df, own), md_path)
    return df


# --- the other tables --------------------------------------------------------------------------------------

def equivariance(metrics: list[dict]) -> pd.DataFrame:
    """``level, data_equivariance_error, model, equivariance_error_mean, equivariance_error_std, n_seeds``."""
    rows = [{"level": m["level"], "data_equivariance_error": m["data_equivariance_error"], "model": m["model"],
             "equivariance_error": m["equivariance_error"]} for m in metrics if "level" in m]
    df = _aggregate(rows, ["level", "data_equivariance_error", "model"], "equivariance_error", "equivariance_error")
    return df.sort_values(["level", "model"]).reset_index(drop=True)


def rollout(metrics: list[dict]) -> pd.DataFrame:
    """``model, split, step, rmse_mean, rmse_std``: per-step RMSE of the test rollouts (steps from 1)."""
    rows = [{"model": m["model"], "split": s, "step": i + 1, "rmse": v}
            for m in metrics for s in SPLITS for i, v in enumerate(m[f"{s}_rmse_per_step"])]
    df = _aggregate(rows, ["model", "split", "step"], "rmse", "rmse")
    return df.drop(columns="n_seeds")


def alpha_sweep(metrics: list[dict]) -> pd.DataFrame:
    """``alpha, split, rmse_mean, rmse_std, n_seeds`` of the sweep's runs."""
    rows = [{"alpha": m["alpha"], "split": s, "rmse": m[f"{s}_rmse"]} for m in metrics for s in SPLITS]
    return _aggregate(rows, ["alpha", "split"], "rmse", "rmse").sort_values(["alpha", "split"]).reset_index(drop=True)


# The per-step metrics of metrics.json (``{split}_{name}_per_step``) and their column in the long table: the RMSE and
# pipeline.metrics.PER_STEP_METRICS (torch is imported with it: every env that runs the table rules has it).
def long_metrics() -> tuple[str, ...]:
    from .metrics import PER_STEP_METRICS
    return ("rmse", *PER_STEP_METRICS)


def metrics_long(metrics: list[dict]) -> pd.DataFrame:
    """``dataset, model, seed, split, step, rmse, vrmse, ...``: one row per run, split (validation and the test
    splits the run has) and rollout step (from 1), a column per metric of :func:`long_metrics` (definitions:
    pipeline/metrics.py, docs/metrics.md; an fRMSE band that the frame size lacks is blank)."""
    names = long_metrics()
    rows = []
    for m in metrics:
        for split in ("valid", *SPLITS):
            if f"{split}_rmse_per_step" not in m:
                continue
            for i in range(len(m[f"{split}_rmse_per_step"])):
                rows.append({"dataset": m["dataset"], "model": m["model"], "seed": m["seed"], "split": split,
                             "step": i + 1, **{k: _at(m.get(f"{split}_{k}_per_step"), i) for k in names}})
    columns = ["dataset", "model", "seed", "split", "step", *names]
    return pd.DataFrame(rows, columns=columns).sort_values(columns[:5], kind="stable").reset_index(drop=True)


def _at(values, i: int):
    """``values[i]``, or ``None`` where the metric has no curve (an fRMSE band that the frame lacks)."""
    return None if values is None else values[i]


def write(kind: str, metric_files, path) -> pd.DataFrame:
    """Write table ``kind`` (equivariance, rollout, alpha_sweep or metrics_long) of ``metric_files`` to ``path``."""
    builders = {"equivariance": equivariance, "rollout": rollout, "alpha_sweep": alpha_sweep,
                "metrics_long": metrics_long}
    df = builders[kind](read_metrics(metric_files))
    write_table(df, path)
    return df
