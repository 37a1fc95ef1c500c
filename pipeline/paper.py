"""The paper's published numbers (Wang, Walters & Yu, ICML 2022), in one place: Table 1 (RMSE, mean and
standard deviation over 3 runs) as docs/published-results.md gives them. Tables put them beside ours.
"""
from __future__ import annotations

import math

# Models in the paper's column order (their column labels: pipeline.display).
MODELS = ("mlp", "conv", "equiv", "rpp", "combo", "clcnn", "lift", "rgroup", "rsteer")

_ROWS = {  # (dataset, split): one (mean, std) per model of MODELS, None where the paper has no entry
    ("translation", "test_future"): [(1.56, 0.08), (0.94, 0.02), None, (0.92, 0.01), (1.02, 0.02), (0.92, 0.01),
                                     (0.87, 0.03), (0.71, 0.01), None],
    ("translation", "test_domain"): [(1.79, 0.13), (0.68, 0.05), None, (0.93, 0.01), (0.98, 0.01), (0.89, 0.01),
                                     (0.70, 0.00), (0.62, 0.02), None],
    ("rotation", "test_future"): [(1.38, 0.06), (1.21, 0.01), (1.05, 0.06), (0.96, 0.10), (1.07, 0.00), (0.96, 0.05),
                                  (0.82, 0.08), (0.82, 0.01), (0.80, 0.00)],
    ("rotation", "test_domain"): [(1.34, 0.03), (1.10, 0.05), (0.76, 0.02), (0.83, 0.01), (0.82, 0.02), (0.84, 0.10),
                                  (0.68, 0.09), (0.73, 0.02), (0.67, 0.01)],
    ("scaling", "test_future"): [(2.40, 0.02), (0.83, 0.01), (0.75, 0.03), (0.81, 0.09), (0.78, 0.04), (1.03, 0.01),
                                 (0.85, 0.01), (0.76, 0.04), (0.70, 0.01)],
    ("scaling", "test_domain"): [(1.81, 0.18), (0.95, 0.02), (0.87, 0.02), (0.86, 0.05), (0.85, 0.01), (0.83, 0.05),
                                 (0.77, 0.02), (0.86, 0.12), (0.73, 0.01)],
}
TABLE1 = {key: {m: v for m, v in zip(MODELS, row) if v is not None} for key, row in _ROWS.items()}


def table1(dataset: str, split: str, model: str) -> tuple[float, float]:
    """The paper's ``(mean, std)`` RMSE, or ``(nan, nan)`` where it reports none."""
    return TABLE1.get((dataset, split), {}).get(model, (math.nan, math.nan))
