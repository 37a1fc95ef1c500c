"""Every model family of the paper behind one registry.

``build(name, symmetry, **hyperparameters)`` returns a ``torch.nn.Module`` whose ``forward(x)`` maps
``(B, T_in, 2, H, W)`` (``T_in`` past frames of ``(vx, vy)``) to the next frame ``(B, 2, H, W)`` and whose
``regularizer()`` returns the scalar added linearly to the loss. ``names(symmetry)`` lists the models.

Each symmetry has its own module registering its builders in a ``MODELS`` dict:
``translation``, ``rotation``, ``scaling``.
"""
from __future__ import annotations

import importlib

import torch

SYMMETRIES = ("translation", "rotation", "scaling")


def _registry(symmetry: str) -> dict:
    if symmetry not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {symmetry!r}; expected one of {', '.join(SYMMETRIES)}")
    return importlib.import_module(f"{__name__}.{symmetry}").MODELS


def names(symmetry: str) -> list[str]:
    """Model names available for ``symmetry``."""
    return list(_registry(symmetry))


def build(name: str, symmetry: str, **hyperparameters) -> torch.nn.Module:
    """Build model ``name`` for ``symmetry`` with the given hyper-parameters."""
    registry = _registry(symmetry)
    if name not in registry:
        raise ValueError(f"unknown model {name!r} for symmetry {symmetry!r}; expected one of {', '.join(registry)}")
    return registry[name](**hyperparameters)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
