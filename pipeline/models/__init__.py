"""Every model family of the paper behind one registry.

``build(name, symmetry, **hyperparameters)`` returns a ``torch.nn.Module`` whose ``forward(x)`` maps
``(B, T_in, 2, H, W)`` (``T_in`` past frames of ``(vx, vy)``) to the next frame ``(B, 2, H, W)`` and whose
``regularizer()`` returns the scalar added linearly to the loss. ``names(symmetry)`` lists the models.

Each symmetry has its own module registering its builders in a ``MODELS`` dict:
``translation``, ``rotation``, ``scaling``. ``NAMES`` lists them without importing those modules (or torch):
Snakemake validates the config's model names with it when it builds the DAG, and a test keeps it equal to
the ``MODELS`` dicts.

Models of one's own (``config['custom_models']``, :mod:`pipeline.models.custom`) go through the same ``build``
and :func:`hyperparameters_of`, given their builder (``custom="module:function"``).
"""
from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

from ..catalogue import SYMMETRY_FAMILIES as SYMMETRIES

if TYPE_CHECKING:
    import torch

# The paper's method, relaxed weight sharing: the relaxed C4 models (RGroup and RSteer, whose relaxed layers
# pipeline.symmetry_breaking measures), then RSteer's variants. Figure 3 shows the best relaxed model.
RELAXED_C4 = ("rgroup", "rsteer")
RELAXED = (*RELAXED_C4, "rsteer_tr")
NAMES = {
    "translation": ("mlp", "conv", "rpp", "combo", "clcnn", "lift", "rgroup", "sbi", "gmcnn"),
    "rotation": ("mlp", "conv", "equiv", "rpp", "combo", "clcnn", "lift", "rgroup", "rsteer", "rsteer_tr",
                 "crelax", "sbi", "ace", "gmcnn"),
    "scaling": ("mlp", "conv", "equiv", "rpp", "combo", "clcnn", "lift", "rgroup", "rsteer", "crelax", "sbi", "ace",
                "gmcnn"),
}
# Models that learn a per-layer degree of symmetry breaking gamma_i and report it (``report()``: gamma_i, ...;
# pipeline/symmetry_breaking.py tabulates it, the analysis draws it against the levels' data equivariance error).
GAMMA_MODELS = ("ace",)


def _registry(symmetry: str) -> dict:
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}; expected one of {', '.join(SYMMETRIES)}")
    return importlib.import_module(f"{__name__}.{symmetry}").MODELS


def names(symmetry: str) -> list[str]:
    """Model names available for ``symmetry``."""
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}; expected one of {', '.join(SYMMETRIES)}")
    return list(NAMES[symmetry])


# Hyper-parameters any model may be given by a shared config; a model that has no use for one of these
# (an MLP's kernel size, say) ignores it. Any other unknown key is an error.
SHARED_HYPERPARAMETERS = frozenset({"in_frames", "frame_size", "hidden", "layers", "kernel_size", "alpha",
                                   "banks", "scales", "rank",
                                   # searched hyper-parameters of the newer models (docs/newer-models.md)
                                   "schedule", "fields", "field_dropout", "dual_lr", "slack_penalty", "neighbourhood"})


def _builder(name: str, symmetry: str):
    registry = _registry(symmetry)
    if name not in registry:
        raise ValueError(f"unknown model {name!r} for symmetry {symmetry!r}; expected one of {', '.join(registry)}")
    return registry[name]


def hyperparameters_of(name: str, symmetry: str, custom: str | None = None) -> set[str]:
    """The hyper-parameters model ``name`` takes: its builder's keyword arguments (what the search varies).
    ``custom``: the builder ``module:function`` of a model registered in ``config['custom_models']``."""
    if custom is not None:  # --- models of one's own (pipeline/models/custom.py)
        from . import custom as own
        return own.hyperparameters(name, custom)
    return set(inspect.signature(_builder(name, symmetry)).parameters)


def build(name: str, symmetry: str, custom: str | None = None, **hyperparameters) -> torch.nn.Module:
    """Build model ``name`` for ``symmetry`` with the given hyper-parameters; ``custom``: the builder
    ``module:function`` of a model registered in ``config['custom_models']``."""
    if custom is not None:  # --- models of one's own (pipeline/models/custom.py)
        from . import custom as own
        return own.build(name, symmetry, custom, hyperparameters, SHARED_HYPERPARAMETERS)
    accepted = hyperparameters_of(name, symmetry)
    unknown = set(hyperparameters) - accepted - SHARED_HYPERPARAMETERS
    if unknown:
        raise ValueError(f"model {name!r} ({symmetry}) has no hyper-parameter(s) {sorted(unknown)}; "
                         f"it accepts {sorted(accepted)}")
    return _builder(name, symmetry)(**{k: v for k, v in hyperparameters.items() if k in accepted})


PARAMETER_BUDGET = 10 ** 7  # every model of the paper has fewer trainable parameters ("for a fair comparison")


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
