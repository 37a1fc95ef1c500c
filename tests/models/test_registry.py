"""The model registry: every symmetry lists its models and rejects bad names and hyper-parameters."""
from __future__ import annotations

import pytest
import torch

from pipeline.models import SHARED_HYPERPARAMETERS, build, names

# Extend as the rotation and scaling modules land; a listed symmetry whose module is missing must fail.
SYMMETRIES_TESTED = ["translation", "rotation", "scaling"]

EXPECTED = {
    "translation": {"mlp", "conv", "rpp", "combo", "clcnn", "lift", "rgroup"},
}


@pytest.mark.parametrize("symmetry", SYMMETRIES_TESTED)
def test_names_lists_all_models(symmetry):
    listed = names(symmetry)
    assert len(listed) == len(set(listed))
    if symmetry in EXPECTED:
        assert EXPECTED[symmetry] <= set(listed)
    for name in listed:
        assert name == name.lower() and name.isidentifier()


@pytest.mark.parametrize("symmetry", SYMMETRIES_TESTED)
def test_unknown_model_raises(symmetry):
    with pytest.raises(ValueError, match="no_such_model"):
        build("no_such_model", symmetry)


def test_unknown_symmetry_raises():
    with pytest.raises(ValueError, match="no_such_symmetry"):
        build("conv", "no_such_symmetry")
    with pytest.raises(ValueError, match="no_such_symmetry"):
        names("no_such_symmetry")


@pytest.mark.parametrize("symmetry", SYMMETRIES_TESTED)
def test_unknown_hyperparameter_raises(symmetry):
    for name in names(symmetry):
        with pytest.raises(ValueError, match="bogus_option") as info:
            build(name, symmetry, bogus_option=1)
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("symmetry", SYMMETRIES_TESTED)
def test_shared_hyperparameters_accepted_by_every_model(symmetry):
    """A shared config (every shared key) builds every model; keys a model has no use for are dropped."""
    if symmetry == "scaling":
        extra = dict(scales=(1.0, 1.5))
    else:
        extra = {}
    hp = dict(in_frames=2, frame_size=(16, 16), hidden=4, layers=2, kernel_size=3, alpha=0.0, banks=2,
              rank=1, **extra)
    assert set(hp) - {"scales"} <= SHARED_HYPERPARAMETERS
    for name in names(symmetry):
        model = build(name, symmetry, **hp)
        assert isinstance(model, torch.nn.Module)
        assert callable(getattr(model, "regularizer", None))


@pytest.mark.parametrize("symmetry", SYMMETRIES_TESTED)
def test_name_list_matches_the_modules(symmetry):
    """``NAMES`` (what the config is validated against without importing torch) lists each module's models."""
    from pipeline.models import NAMES, _registry
    assert NAMES[symmetry] == tuple(_registry(symmetry))
