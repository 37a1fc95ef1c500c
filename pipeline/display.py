"""How a model is named in the tables and the figures: the one definition both use (``pipeline.figures`` adds
each model's colour and marker). Standard library only: the table jobs run without matplotlib.

A model of one's own (``config['custom_models']``) is named by its registration (``name``, else the model name):
``pipeline.models.custom.display_names(config)``, which the table and figure rules pass to their jobs as params.
"""
from __future__ import annotations

# name in the model registry -> display name
NAMES = {
    "persistence": "Persistence",  # no model: the last input frame repeated (pipeline.runs.PERSISTENCE)
    "mlp": "MLP",
    "conv": "Conv",
    "equiv": "Equiv",
    "rpp": "Rpp",
    "combo": "Combo",
    "clcnn": "CLCNN",
    "lift": "Lift",
    "rgroup": "RGroup",
    "rsteer": "RSteer",
    "rsteer_tr": "RSteer-TR",
    "crelax": "CRelax",  # the newer models (docs/newer-models.md)
    "sbi": "SBI",
    "ace": "ACE",
    "gmcnn": "GM-CNN",
}
# The strictly equivariant model has the name of its architecture in the paper, per symmetry.
EQUIV_NAMES = {"translation": "Conv", "rotation": "E2CNN", "scaling": "SESN", "equivariance": "E2CNN"}


def display_name(model: str, dataset: str | None = None, own: dict | None = None) -> str:
    """Display name of ``model``; ``equiv`` is named after its architecture when ``dataset`` says which.
    ``own``: the display names of the models of one's own (``pipeline.models.custom.display_names``)."""
    if own and model in own:
        return own[model]
    family = None if dataset is None else ("equivariance" if dataset.startswith("equivariance") else dataset)
    if model == "equiv" and family in EQUIV_NAMES:
        return EQUIV_NAMES[family]
    return NAMES.get(model, model)
