"""Tables aggregated from the runs' ``metrics.json`` files: Table 1 (csv, markdown, LaTeX) and its VRMSE view,
the equivariance levels (Figure 4), per-step rollout errors (Figure 3), the alpha sweep (Figure 7), and every
per-step metric of every run in long format.

Across seeds: the mean and the sample standard deviation (``ddof=1``; NaN for a single seed).
"""
from __future__ import annotations

import json
import math

import pandas as pd

from . import paper
from .display import display_name
from .files import write_table, write_text

SPLITS = ("test_future", "test_domain")
SPLIT_LABELS = {"test_future": "future", "test_domain": "domain"}
FAMILIES = ("translation", "rotation", "scaling")


def read_metrics(paths) -> list[dict]:
    out = []
    for path in paths:
        with open(path) as fh:
            out.append(json.load(fh))
    return out


def _model_order(models) -> list[str]:
    return [m for m in paper.MODELS if m in set(models)] + sorted(set(models) - set(paper.MODELS))


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
    """``dataset, model, split, rmse_mean, rmse_std, n_seeds, paper_mean, paper_std``."""
    rows = [{"dataset": m["dataset"], "model": m["model"], "split": s, "rmse": m[f"{s}_rmse"]}
            for m in metrics if m["dataset"] in FAMILIES for s in SPLITS]
    df = _aggregate(rows, ["dataset", "model", "split"], "rmse", "rmse")
    df["paper_mean"] = [paper.table1(d, s, m)[0] for d, m, s in zip(df.dataset, df.model, df.split)]
    df["paper_std"] = [paper.table1(d, s, m)[1] for d, m, s in zip(df.dataset, df.model, df.split)]
    order = {m: i for i, m in enumerate(_model_order(df.model))}
    df = df.assign(_d=df.dataset.map(FAMILIES.index), _s=df.split.map(SPLITS.index), _m=df.model.map(order))
    df = df.sort_values(["_d", "_s", "_m"]).drop(columns=["_d", "_s", "_m"]).reset_index(drop=True)
    df["n_seeds"] = df["n_seeds"].astype(int)
    return df


def _cell(mean: float, std: float, pm: str, digits: int = 3) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f}{pm}{std:.{digits}f}"


def _grid(df: pd.DataFrame, pm: str, value: str = "rmse") -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Column models and rows ``(label, cells)`` laid out like the paper: ours (``{value}_mean +- {value}_std``),
    then the paper's in brackets where the table has the paper's column."""
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
            theirs = _cell(r.paper_mean, r.paper_std, pm, digits=2) if "paper_mean" in r else "-"
            cells.append(ours if theirs == "-" else f"{ours} ({theirs})")
        rows.append((f"{dataset} {SPLIT_LABELS[split]}", cells))
    return models, rows


def table1_markdown(df: pd.DataFrame, own: dict | None = None) -> str:
    """``own``: the display names of the models of one's own (``pipeline.display``), as in every table."""
    models, rows = _grid(df, " ± ")
    lines = ["RMSE of the 20-step rollout, mean ± std over seeds; the paper's value in brackets.", "",
             "| | " + " | ".join(display_name(m, own=own) for m in models) + " |",
             "|---" * (len(models) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines) + "\n"


def table1_latex(df: pd.DataFrame, own: dict | None = None) -> str:
    models, rows = _grid(df, r"$\pm$")
    lines = [r"\begin{tabular}{l" + "c" * len(models) + "}", r"\toprule",
             " & " + " & ".join(display_name(m, own=own).replace("_", r"\_") for m in models) + r" \\", r"\midrule"]
    lines += [f"{label} & " + " & ".join(cells) + r" \\" for label, cells in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
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
            for m in metrics if m["dataset"] in FAMILIES for s in SPLITS]
    df = _aggregate(rows, ["dataset", "model", "split"], "vrmse", "vrmse")
    order = {m: i for i, m in enumerate(_model_order(df.model))}
    df = df.assign(_d=df.dataset.map(FAMILIES.index), _s=df.split.map(SPLITS.index), _m=df.model.map(order))
    df = df.sort_values(["_d", "_s", "_m"]).drop(columns=["_d", "_s", "_m"]).reset_index(drop=True)
    df["n_seeds"] = df["n_seeds"].astype(int)
    return df


def table1_vrmse_markdown(df: pd.DataFrame, own: dict | None = None) -> str:
    models, rows = _grid(df, " ± ", value="vrmse")
    lines = ["VRMSE of the 20-step rollout (RMSE over the target's spatial standard deviation, per component, "
             "averaged; 1 = predicting the target's mean), mean ± std over seeds.", "",
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


# The per-step metrics of metrics.json (``{split}_{name}_per_step``) and their column in the long table.
LONG_METRICS = ("rmse", "vrmse", "nrmse", "correlation", "spectral_rmse_low", "spectral_rmse_mid", "spectral_rmse_high")


def metrics_long(metrics: list[dict]) -> pd.DataFrame:
    """``dataset, model, seed, split, step, rmse, vrmse, ...``: one row per run, split (validation and the test
    splits the run has) and rollout step (from 1), a column per metric of :data:`LONG_METRICS` (see
    pipeline/metrics.py for their definitions)."""
    rows = []
    for m in metrics:
        for split in ("valid", *SPLITS):
            if f"{split}_rmse_per_step" not in m:
                continue
            for i in range(len(m[f"{split}_rmse_per_step"])):
                rows.append({"dataset": m["dataset"], "model": m["model"], "seed": m["seed"], "split": split,
                             "step": i + 1, **{k: m[f"{split}_{k}_per_step"][i] for k in LONG_METRICS}})
    columns = ["dataset", "model", "seed", "split", "step", *LONG_METRICS]
    return pd.DataFrame(rows, columns=columns).sort_values(columns[:5], kind="stable").reset_index(drop=True)


def write(kind: str, metric_files, path) -> pd.DataFrame:
    """Write table ``kind`` (equivariance, rollout, alpha_sweep or metrics_long) of ``metric_files`` to ``path``."""
    builders = {"equivariance": equivariance, "rollout": rollout, "alpha_sweep": alpha_sweep,
                "metrics_long": metrics_long}
    df = builders[kind](read_metrics(metric_files))
    write_table(df, path)
    return df
