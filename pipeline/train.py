"""Training of one run (dataset, model, seed): the loop of docs/protocol.md, with the authors' defects fixed
(docs/fidelity.md).

* Loss of a batch: the sum over ``out_length`` rolled-out steps of the MSE, backpropagated through the whole
  rollout, plus ``model.regularizer()`` added linearly (defect 1: not squared, not skipped on CPU).
* Adam (betas 0.9, 0.999, weight decay), learning rate times ``decay`` after every epoch (ExponentialLR).
* Early stopping on the validation RMSE (``out_length``-step rollout); the best weights are kept as a deep
  copy (defect 2: not a reference to the live model).
* A model may follow its own schedule: before every optimisation step the loop calls its
  ``on_training_step(progress)`` when it has one (:func:`tell_progress`), ``progress`` the fraction of the maximum
  epochs done (relax-then-project scales its relaxed terms by it; ACE takes its dual step there).
* Reproducible: the seed fixes the initialisation (``torch.manual_seed`` before the model is built) and the
  sample order (a private, seeded generator). A checkpoint written after every epoch holds the model,
  optimiser, scheduler, RNG states, the best weights and the early-stopping count, so a killed run restarted
  from it ends exactly as an uninterrupted one. The same checkpoint extends a run to more epochs (the
  search's rungs, pipeline/tuning.py): nothing of the loop depends on the epoch budget (the learning rate
  decays per epoch, patience counts epochs), so training 2 epochs and then resuming to 7 is training 7.

Settings of a run are resolved from the config by ``pipeline.runs.train_params``: the training rules' params,
which :func:`train_run` takes.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import datasets, files, gpus, numerics
from .models import PARAMETER_BUDGET, build, count_parameters, custom
from .loader import Samples, SampleSource
from .gpus import resolve_device
from .rollout import rollout, rollout_mse_per_step, split_rmse
from .runs import Settings, build_arguments, symmetry_of

log = logging.getLogger("pipeline")

LOG_COLUMNS = ("epoch", "train_rmse", "valid_rmse", "lr", "seconds")


# --- the loop ----------------------------------------------------------------------------------------------

class Diverged(FloatingPointError):
    """A non-finite training loss or validation RMSE at ``epoch`` (1-based; the epoch that did not finish)."""

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch


def batch_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, data_term)``: the sum over the rolled-out steps of the MSE, plus the regulariser (linearly)."""
    pred = rollout(model, x, y.shape[1])
    data = ((pred - y) ** 2).mean(dim=(0, 2, 3, 4)).sum()
    return data + model.regularizer(), data.detach()


def tell_progress(model: torch.nn.Module, progress: float) -> None:
    """The training loop's one hook into a model: ``model.on_training_step(progress)``, if the model defines it, before
    every optimisation step. ``progress = (epoch - 1 + step / steps_per_epoch) / max_epochs`` runs over [0, 1) and
    depends only on the position in the loop (a resumed run calls it with the same values)."""
    hook = getattr(model, "on_training_step", None)
    if hook is not None:
        hook(float(progress))


def model_report(model: torch.nn.Module) -> dict[str, float]:
    """``model.report()``, if the model defines it: scalars it reports about itself (ACE: ``gamma_i``, its slack and
    multiplier per layer), added to every epoch's row of ``log.csv`` and to ``metrics.json``."""
    report = getattr(model, "report", None)
    return {} if report is None else {str(k): float(v) for k, v in report().items()}


def validation_rmse(model: torch.nn.Module, samples: Samples, batch: int) -> float:
    """RMSE over the validation windows (``out_length``-step rollout): the early-stopping criterion."""
    return split_rmse(rollout_mse_per_step(model, samples, batch))[0]


@dataclass
class FitResult:
    best_state: dict
    best_epoch: int
    best_valid_rmse: float
    epochs_run: int
    history: list = field(default_factory=list)


def _rng_states(generator: torch.Generator) -> dict:
    states = {"torch": torch.get_rng_state(), "order": generator.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(states["torch"])
    generator.set_state(states["order"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def fit(model: torch.nn.Module, train: Samples, valid: Samples, config: Settings, seed: int, run: str,
        checkpoint: str | os.PathLike | None = None, fingerprint: dict | None = None, eval_batch: int = 16,
        progress: bool = True, max_seconds: float | None = None) -> FitResult:
    """Train ``model`` (already built and seeded) and return the best weights (a copy) and the history.

    ``run`` names the run in messages. ``checkpoint``: written after every epoch and resumed from when it
    exists, its ``fingerprint`` (the run's settings but the epoch budget) matches and it has not trained more
    than ``config.epochs`` epochs; otherwise the run starts afresh. A larger budget than the checkpoint's
    continues it (the search's rungs). ``max_seconds``: no epoch starts after this much wall time, the first always
    runs (a check that trains for a fixed time, ``benchmarks/gpu_check.py``); the workflow's runs have none.
    """
    from tqdm import tqdm

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999),
                                 weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.decay)
    budgetless = {k: v for k, v in asdict(config).items() if k != "epochs"}
    fingerprint = json.loads(json.dumps({"run": run, "seed": seed, "settings": budgetless, **(fingerprint or {})}))
    state = {"epoch": 0, "best_state": None, "best_epoch": 0, "best_valid_rmse": math.inf, "bad_epochs": 0,
             "history": []}
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        if saved.get("fingerprint") == fingerprint and saved["loop"]["epoch"] <= config.epochs:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            _set_rng_states(saved["rng"], generator)
            state = saved["loop"]
            log.info("%s: resuming from %s after epoch %d", run, checkpoint, state["epoch"])
        else:
            log.warning("%s: %s belongs to other settings or a longer training; starting afresh", run, checkpoint)

    n = len(train)
    # disable=None: a bar only when stderr is a terminal; in a log file (a SLURM job's, a redirected run's) each
    # redraw would be a new line among other jobs' lines, and the epoch lines below carry the same numbers
    bar = tqdm(total=config.epochs, initial=state["epoch"], desc=run, file=sys.stderr,
               disable=None if progress else True, dynamic_ncols=True, unit="epoch")
    deadline = math.inf if max_seconds is None else time.perf_counter() + max_seconds
    while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
        epoch = state["epoch"] + 1
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        order = torch.randperm(n, generator=generator)
        data_sum = 0.0
        steps = math.ceil(n / config.batch)
        for step, lo in enumerate(range(0, n, config.batch)):
            tell_progress(model, (epoch - 1 + step / steps) / config.epochs)
            idx = order[lo:lo + config.batch]
            x, y = train.get(idx)
            with numerics.autocast(config.precision, device):
                loss, data = batch_loss(model, x, y)
            if not torch.isfinite(loss):
                raise Diverged(f"{run}: non-finite training loss ({loss.item()}) at epoch {epoch}, "
                               f"batch {lo // config.batch + 1}; lower the learning rate or alpha", epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            data_sum += float(data) * len(idx)
        scheduler.step()
        model.eval()
        valid_rmse = validation_rmse(model, valid, eval_batch)
        if not math.isfinite(valid_rmse):
            raise Diverged(f"{run}: non-finite validation RMSE at epoch {epoch}", epoch)
        train_rmse = math.sqrt(data_sum / n / config.out_length)
        if valid_rmse < state["best_valid_rmse"]:
            state.update(best_valid_rmse=valid_rmse, best_epoch=epoch, bad_epochs=0,
                         best_state={k: v.detach().clone() for k, v in model.state_dict().items()})
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["history"].append({"epoch": epoch, "train_rmse": train_rmse, "valid_rmse": valid_rmse, "lr": lr,
                                 "seconds": time.perf_counter() - start, **model_report(model)})
        if checkpoint:
            _save_checkpoint(checkpoint, {"fingerprint": fingerprint, "model": model.state_dict(),
                                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                          "rng": _rng_states(generator), "loop": state})
        bar.update(1)
        bar.set_postfix(train=f"{train_rmse:.4f}", valid=f"{valid_rmse:.4f}",
                        best=f"{state['best_valid_rmse']:.4f}@{state['best_epoch']}")
        log.info("%s epoch %d: train RMSE %.5f, valid RMSE %.5f, lr %.3g, %.1fs", run, epoch, train_rmse,
                 valid_rmse, lr, state["history"][-1]["seconds"])
        if time.perf_counter() >= deadline:
            log.info("%s: stopped after epoch %d, its time (%g s) is up", run, epoch, max_seconds)
            break
    bar.close()
    if state["bad_epochs"] >= config.patience:
        log.info("%s: early stop after epoch %d (best %d)", run, state["epoch"], state["best_epoch"])
    return FitResult(copy.deepcopy(state["best_state"]), state["best_epoch"], state["best_valid_rmse"],
                     state["epoch"], state["history"])


def _save_checkpoint(path: Path, state: dict) -> None:
    """A checkpoint or ``model.pt``, whole or not at all (a test stops a run here, as a kill would)."""
    files.write_torch(state, path)


# --- one run of the workflow -------------------------------------------------------------------------------

def write_log(history: list[dict], path: str | os.PathLike, columns=LOG_COLUMNS) -> None:
    """Rows of dicts to a CSV with ``columns`` (:func:`pipeline.files.write_csv`)."""
    files.write_csv(history, path, columns)


def train_run(params: dict, dataset_name: str, store: str, model_name: str, seed: int, out_dir: str,
              alpha: float | None = None, device=None, progress: bool = True, cache_mb: float | None = None,
              max_seconds: float | None = None, keep_checkpoint: bool = False, scratch: str | None = None) -> FitResult:
    """Train one run and write ``model.pt`` (best weights + what rebuilds the model) and ``log.csv``.

    ``params``: the run's settings, ``pipeline.runs.train_params`` (the rule's params). ``alpha``: the value of
    an alpha sweep, which names the run (``params`` holds it already). ``device`` overrides the params' device.
    ``cache_mb``: the memory for the velocity read (``pipeline.loader``; ``None``: the whole store in memory);
    ``scratch``: a folder on local disk where a store larger than ``cache_mb`` is decompressed once and read from
    (``training.scratch``; ``None``: read through the chunk cache). ``max_seconds``: as for :func:`fit`.
    ``out_dir/checkpoint.pt`` is kept while the run is unfinished (a restarted job resumes from it), and after it
    with ``keep_checkpoint`` (a search trial's rung, which the next rung continues). ``model.pt`` records where it
    trained (``pipeline.gpus.record``).
    """
    run = f"{dataset_name}/{model_name}/seed{seed}" + ("" if alpha is None else f"/alpha{alpha:g}")
    device = resolve_device(device or params["device"])
    train_cfg, wcfg = Settings(**params["training"]), params["windows"]
    numerics.configure(train_cfg.precision, train_cfg.deterministic)
    source = SampleSource(store, device, cache_mb, scratch)  # in memory when the store fits the cache
    ds = source.dataset
    if ds.attrs.get("dataset") != dataset_name:
        raise ValueError(f"{run}: {store} holds dataset {ds.attrs.get('dataset')!r}, not {dataset_name!r}")
    train = source.samples(datasets.split_windows(ds, "train", wcfg, train_cfg.out_length))
    valid = source.samples(datasets.split_windows(ds, "valid", wcfg, train_cfg.out_length))
    hp = build_arguments(params["model"], wcfg["input_length"], ds.velocity.shape[-2:])
    symmetry = ds.attrs.get("symmetry") or symmetry_of(dataset_name)  # an external dataset's store says its own
    builder = params.get("builder")  # a model of one's own (config['custom_models']): its module:function
    torch.manual_seed(seed)
    model = build(model_name, symmetry, builder, **hp).to(device)
    if builder:  # refused before training when it breaks the contract (pipeline/models/custom.py)
        custom.check_model(model_name, builder, model, hp["in_frames"], hp["frame_size"], device)
    elif count_parameters(model) >= PARAMETER_BUDGET:
        log.warning("%s: %d trainable parameters, over the paper's budget of %d", run, count_parameters(model),
                    PARAMETER_BUDGET)
    log.info("%s on %s: %s, hyper-parameters %s, %d train / %d valid samples, read %s", run, device, train_cfg, hp,
             len(train), len(valid), source.way)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    result = fit(model, train, valid, train_cfg, seed, run, checkpoint,
                 {"hyperparameters": hp, "model": model_name, **({"builder": builder} if builder else {})},
                 params["eval_batch"], progress, max_seconds)
    saved = {"name": model_name, "symmetry": symmetry, "dataset": dataset_name, "seed": seed,
             "hyperparameters": hp, "training": asdict(train_cfg), "state_dict": result.best_state,
             "best_epoch": result.best_epoch, "best_valid_rmse": result.best_valid_rmse,
             "epochs_run": result.epochs_run, "versions": datasets.versions(), "gpu": gpus.record(device),
             **({"builder": builder} if builder else {})}
    _save_checkpoint(out / "model.pt", saved)
    reported = tuple(k for k in (result.history[0] if result.history else {}) if k not in LOG_COLUMNS)
    write_log(result.history, out / "log.csv", LOG_COLUMNS + reported)  # + the model's report() columns
    if not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    log.info("%s: best valid RMSE %.5f at epoch %d of %d", run, result.best_valid_rmse, result.best_epoch,
             result.epochs_run)
    return result
