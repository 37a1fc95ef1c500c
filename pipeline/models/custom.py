"""Models of your own: registered in ``config['custom_models']``, trained and evaluated like the registry's.

``custom_models: {mynet: {symmetries: [rotation], builder: "mypkg.nets:build", name: MyNet}}`` makes ``mynet`` a
model of the rotation datasets (the rotation family, the equivariance levels, an external dataset of that symmetry).
The builder is a function of a module in the working directory (Snakemake's ``--directory``) or of an installed
package; its keyword arguments say which hyper-parameters it takes (docs/custom-models.md has the contract).

Two halves, so that building the DAG stays light:

* at DAG time (standard library only): :func:`registered`, :func:`names`, :func:`display_names` and
  :func:`check_config` read the registration's shape; the user's module is never imported;
* in the jobs: :func:`build` imports the module and calls the builder, and :func:`check_model` runs the model once
  on a zero batch. Each refuses a bad model before training with :class:`CustomModelError`, naming the model, the
  module and what was expected.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys

SYMMETRY_ARGUMENT = "symmetry"  # a builder that takes it is told which symmetry it is built for


class CustomModelError(ValueError):
    """A registered model of one's own that cannot be built or does not keep the contract; the message names it."""


# --- DAG time: the registration ------------------------------------------------------------------------------

def registered(config: dict) -> dict:
    """``config['custom_models']`` (empty when absent)."""
    return config.get("custom_models") or {}


def builder_of(config: dict, model: str) -> str | None:
    """The builder (``module:function``) of a registered model, ``None`` for a model of the registry."""
    entry = registered(config).get(model)
    return entry["builder"] if entry else None


def names(config: dict, symmetry: str) -> list[str]:
    """The registered models of ``symmetry``."""
    return [m for m, entry in registered(config).items() if symmetry in entry["symmetries"]]


def display_names(config: dict) -> dict[str, str]:
    """Each registered model's display name in tables and figures: its ``name``, else the model name."""
    return {m: entry.get("name", m) for m, entry in registered(config).items()}


def check_config(config: dict, builtin) -> None:
    """A registered name is not one of the registry's (``builtin(symmetry)`` lists those) for any of its symmetries.
    The shape of an entry (``module:function``, known symmetries) is the JSON schema's."""
    for model, entry in registered(config).items():
        taken = [s for s in entry["symmetries"] if model in builtin(s)]
        if taken:
            raise ValueError(f"config['custom_models'][{model!r}]: the name is taken by the pipeline's own model "
                             f"{model!r} ({', '.join(taken)}); register it under another name")


# --- job time: import, build, check --------------------------------------------------------------------------

def _where(model: str, builder: str) -> str:
    return f"custom model {model!r} (builder {builder!r}, module {builder.partition(':')[0]!r})"


def load_builder(model: str, builder: str):
    """The builder function: ``module:function`` imported from the working directory or an installed package."""
    module_name, _, function = builder.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:  # a job's script is run from elsewhere; the user's modules lie in the working directory
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise CustomModelError(f"{_where(model, builder)}: the module does not import ({type(e).__name__}: {e}); "
                               f"expected a module in the working directory {cwd} or an installed package") from e
    fn = getattr(module, function, None)
    if not callable(fn):
        raise CustomModelError(f"{_where(model, builder)}: the module {module.__file__} has no function "
                               f"{function!r}; expected a builder function returning a torch.nn.Module")
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise CustomModelError(f"{_where(model, builder)}: the builder's argument {p} is not a named keyword; "
                                   f"expected keyword arguments only, one per hyper-parameter it takes")
    return fn


def hyperparameters(model: str, builder: str) -> set[str]:
    """The hyper-parameters a registered model takes: its builder's keyword arguments (the one definition for the
    registry's models and ours: ``pipeline.models.hyperparameters``)."""
    return set(inspect.signature(load_builder(model, builder)).parameters) - {SYMMETRY_ARGUMENT}


def build(model: str, symmetry: str, builder: str, hyperparameters: dict, shared=frozenset()):
    """Call the builder with the hyper-parameters it takes. ``shared``: the hyper-parameters any model may be given
    (``pipeline.models.SHARED_HYPERPARAMETERS``); the builder takes those it names. Refused: an argument without
    a default that the run does not give, and a model-specific hyper-parameter (``options``) it does not take."""
    fn = load_builder(model, builder)
    params = inspect.signature(fn).parameters
    given = {**hyperparameters, SYMMETRY_ARGUMENT: symmetry}
    missing = [n for n, p in params.items() if p.default is p.empty and n not in given]
    if missing:
        raise CustomModelError(f"{_where(model, builder)}: the builder takes argument(s) {missing} that the run "
                               f"does not give; expected arguments among the hyper-parameters "
                               f"{sorted(set(shared) | set(hyperparameters))} (or 'symmetry'), or a default value, "
                               f"or a value in config['training']['models'][...][{model!r}]['options']")
    unknown = sorted(set(hyperparameters) - set(params) - set(shared))
    if unknown:
        raise CustomModelError(f"{_where(model, builder)}: the run gives hyper-parameter(s) {unknown} that the "
                               f"builder does not take; expected them among its arguments {sorted(params)}")
    net = fn(**{k: v for k, v in given.items() if k in params})
    import torch

    if not isinstance(net, torch.nn.Module):
        raise CustomModelError(f"{_where(model, builder)}: the builder returned {type(net).__name__}; expected a "
                               f"torch.nn.Module")
    if not callable(getattr(net, "regularizer", None)):
        net.regularizer = _no_regularizer  # optional: nothing added to the loss
    return net


def _no_regularizer():
    import torch

    return torch.zeros(())


def check_model(model: str, builder: str, net, in_frames: int, frame_size, device=None) -> None:
    """Refuse a built model that breaks the contract: the output of one forward pass on a zero batch of the
    dataset's shape must be ``(B, 2, H, W)``, its trainable parameters under ``PARAMETER_BUDGET``, and its
    ``regularizer()`` a scalar."""
    import torch

    from . import PARAMETER_BUDGET, count_parameters

    where = _where(model, builder)
    n = count_parameters(net)
    if n >= PARAMETER_BUDGET:
        raise CustomModelError(f"{where}: {n} trainable parameters; expected fewer than the budget of "
                               f"{PARAMETER_BUDGET} that every model of the comparison keeps")
    h, w = (int(s) for s in frame_size)
    device = device or next(iter(net.parameters()), torch.zeros(())).device
    x = torch.zeros(2, int(in_frames), 2, h, w, device=device)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            y = net(x)
    except Exception as e:
        raise CustomModelError(f"{where}: forward on a zero batch of shape {tuple(x.shape)} (B, T_in, 2, H, W) "
                               f"failed ({type(e).__name__}: {e}); expected an output of shape (2, 2, {h}, {w})") from e
    finally:
        net.train(was_training)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (2, 2, h, w):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise CustomModelError(f"{where}: forward maps input {tuple(x.shape)} (B, T_in, 2, H, W) to {got}; "
                               f"expected the next frame, shape (B, 2, H, W) = (2, 2, {h}, {w})")
    r = net.regularizer()
    scalar = (isinstance(r, torch.Tensor) and r.ndim == 0) or (isinstance(r, (int, float)) and not isinstance(r, bool))
    if not scalar:
        got = f"a tensor of shape {tuple(r.shape)}" if isinstance(r, torch.Tensor) else type(r).__name__
        raise CustomModelError(f"{where}: regularizer() returned {got}; expected a scalar (a 0-dimensional tensor "
                               f"or a number), added to the loss")
