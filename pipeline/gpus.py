"""Which device a job computes on, and, on a machine of its own, which GPU it may use: the one home of that choice.

Snakemake's ``--resources gpu=N`` limits how many GPU jobs run at once but does not tell a local job which GPU to
use, so every job would land on GPU 0. Here a job that computes on a GPU claims a **slot**, a pair (GPU id, slot
index), before CUDA starts in its process:

* ``config["gpus"]`` (:data:`DEFAULTS`): ``ids`` (``all``: the GPUs the job sees when it starts, or a list of CUDA
  device numbers as ``nvidia-smi`` numbers them), ``jobs_per_gpu`` K (slots per GPU), ``wait_s`` (how long a job
  waits for a free slot), ``lock_dir`` (relative to the working directory) and ``claim``. ``--resources gpu=``
  should be ``len(ids) * K``.
* A slot is held by a non-blocking ``flock`` on its lock file ``{lock_dir}/{host}.gpu{id}.slot{k}.lock``, kept open
  for the process's whole life: the kernel releases it when the process ends, however it ends (``kill -9``
  included). The holder writes its pid, host, job and start time into the file, so a job that waits longer than
  ``wait_s`` fails with a message naming the lock directory and every holder.
* The job then sees only its GPU: ``CUDA_VISIBLE_DEVICES`` is set to it before CUDA initialises, and the job
  computes on ``cuda:0``. Without ``CUDA_VISIBLE_DEVICES`` at the start, the GPUs are counted through NVML
  (``libnvidia-ml``, the driver's library, which does not start CUDA) and numbered as ``nvidia-smi`` numbers them
  (``CUDA_DEVICE_ORDER=PCI_BUS_ID`` is set unless the environment sets an order); with it, its entries are the
  GPUs and ``ids`` index them.
* **Under a scheduler** that already gave the job its GPUs, nothing is claimed and ``CUDA_VISIBLE_DEVICES`` is left
  as the scheduler set it. ``claim: auto`` (the default) detects a SLURM job by ``SLURM_JOB_ID`` in the environment;
  ``claim: never`` turns claiming off everywhere (another scheduler, or GPUs managed by hand), ``claim: always``
  claims even in a SLURM job (Snakemake run by hand inside an interactive allocation of several GPUs; then give it
  a ``lock_dir`` on the node's local disk).

A job on the CPU claims nothing. For tests on machines without a GPU, the environment variable
:data:`STANDIN_ENV` (``PIPELINE_STANDIN_GPUS=0,1,2``) names GPUs that stand in for real ones: jobs claim their slots
exactly as above (the same lock files, the same ``CUDA_VISIBLE_DEVICES``) but compute on the CPU.

:func:`job_device` is what a job calls (``workflow/scripts/train.py`` and the other GPU jobs); :func:`record` is what
``metrics.json`` and ``model.pt`` keep of it. ``python -m pipeline.gpus`` lists the slots and their holders.
Standard library only at import: a job claims its slot before torch touches CUDA.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("pipeline")

DEFAULTS = {"ids": "all", "jobs_per_gpu": 1, "wait_s": 600, "lock_dir": ".snakemake/gpu-slots", "claim": "auto"}
CLAIM_MODES = ("auto", "always", "never")
STANDIN_ENV = "PIPELINE_STANDIN_GPUS"
SCHEDULER_ENV = "SLURM_JOB_ID"  # set in every SLURM job: the scheduler chose its GPUs (claim: auto)
POLL_S = 0.5  # seconds between two looks for a free slot


class SlotTimeout(TimeoutError):
    """No GPU slot came free within ``wait_s``; the message names the lock directory and the holders."""


@dataclass(frozen=True)
class Slot:
    gpu: str     # the GPU as CUDA_VISIBLE_DEVICES names it: a device number (or a UUID, if the environment used one)
    index: int   # 0 .. jobs_per_gpu - 1
    path: str    # its lock file


# What this process holds and computes on (set once by job_device): the open lock file keeps the flock alive.
_state: dict = {"slot": None, "fd": None, "gpu": None, "how": None}


def settings(gpus: dict | None) -> dict:
    """``config["gpus"]`` over :data:`DEFAULTS` (the schema's defaults), checked."""
    cfg = {**DEFAULTS, **(gpus or {})}
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"config['gpus']: unknown keys {unknown}; expected {', '.join(DEFAULTS)}")
    ids = cfg["ids"]
    if ids != "all" and not (isinstance(ids, list) and ids and all(isinstance(i, int) and i >= 0 for i in ids)
                             and len(set(ids)) == len(ids)):
        raise ValueError(f"config['gpus']['ids']: {ids!r}; expected 'all' or a list of distinct GPU numbers >= 0")
    if not (isinstance(cfg["jobs_per_gpu"], int) and cfg["jobs_per_gpu"] >= 1):
        raise ValueError(f"config['gpus']['jobs_per_gpu']: {cfg['jobs_per_gpu']!r}; expected an integer >= 1")
    if not (isinstance(cfg["wait_s"], (int, float)) and cfg["wait_s"] >= 0):
        raise ValueError(f"config['gpus']['wait_s']: {cfg['wait_s']!r}; expected seconds >= 0")
    if cfg["claim"] not in CLAIM_MODES:
        raise ValueError(f"config['gpus']['claim']: {cfg['claim']!r}; expected one of {', '.join(CLAIM_MODES)}")
    return cfg


# --- which GPUs there are ----------------------------------------------------------------------------------

def _entries(value: str) -> list[str]:
    return [e.strip() for e in value.split(",") if e.strip()]


def nvml_count() -> int | None:
    """GPUs the NVIDIA driver reports (NVML, as ``nvidia-smi``), without starting CUDA; ``None`` without a driver."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        count = ctypes.c_uint(0)
        return int(count.value) if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 else None
    finally:
        nvml.nvmlShutdown()


def visible_gpus() -> list[str]:
    """The GPUs a job sees when it starts, as ``CUDA_VISIBLE_DEVICES`` entries: the stand-ins when
    :data:`STANDIN_ENV` is set, else ``CUDA_VISIBLE_DEVICES`` when set, else ``0 .. n-1`` for NVML's ``n``."""
    if os.environ.get(STANDIN_ENV) is not None:
        return _entries(os.environ[STANDIN_ENV])
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return _entries(os.environ["CUDA_VISIBLE_DEVICES"])
    return [str(i) for i in range(nvml_count() or 0)]


def chosen_gpus(cfg: dict) -> list[str]:
    """The GPUs that slots are made of: ``ids`` picked from :func:`visible_gpus` (``all``: every one)."""
    visible = visible_gpus()
    if cfg["ids"] == "all":
        return visible
    missing = [i for i in cfg["ids"] if i >= len(visible)]
    if missing:
        raise ValueError(f"config['gpus']['ids']: GPUs {missing} do not exist here; the job sees {len(visible)} "
                         f"GPU(s) ({', '.join(visible) or 'none'})")
    return [visible[i] for i in cfg["ids"]]


def under_scheduler(cfg: dict) -> bool:
    """Whether a scheduler chose this job's GPUs, so that nothing is claimed (``claim``, see the module doc)."""
    return cfg["claim"] == "never" or (cfg["claim"] == "auto" and SCHEDULER_ENV in os.environ)


# --- slots -------------------------------------------------------------------------------------------------

def lock_path(lock_dir: str | os.PathLike, gpu: str, index: int, host: str | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in gpu)
    return Path(lock_dir) / f"{host or socket.gethostname()}.gpu{safe}.slot{index}.lock"


def slot_order(gpus: list[str], jobs_per_gpu: int) -> list[tuple[str, int]]:
    """The order slots are tried in: slot 0 of every GPU first, then slot 1 ..., so that jobs spread over the GPUs
    before they share one."""
    return [(g, k) for k in range(jobs_per_gpu) for g in gpus]


def holder(path: str | os.PathLike) -> str:
    """Who holds a slot, as its lock file says (pid, host, job, since), or that it is free."""
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return "free (no lock file)"
    try:
        h = json.loads(text)
        return f"pid {h['pid']} on {h['host']} since {h['since']}: {h['job']}"
    except (ValueError, KeyError):
        return f"unreadable holder record {text[:80]!r}"


def _try_lock(path: Path, job: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    record = {"pid": os.getpid(), "host": socket.gethostname(), "job": job,
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return fd


def claim(gpus: list[str], jobs_per_gpu: int, lock_dir: str | os.PathLike, wait_s: float, job: str = "") -> Slot:
    """Claim a free slot of ``gpus`` (``jobs_per_gpu`` each), waiting up to ``wait_s`` seconds; held until this
    process ends. Raises :class:`SlotTimeout` naming ``lock_dir`` and every slot's holder."""
    if _state["slot"] is not None:
        return _state["slot"]
    if not gpus:
        raise ValueError("no GPU to claim a slot of")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    order = slot_order(gpus, jobs_per_gpu)
    deadline = time.monotonic() + wait_s
    waited = False
    while True:
        for gpu, k in order:
            path = lock_path(lock_dir, gpu, k)
            fd = _try_lock(path, job)
            if fd is not None:
                slot = Slot(gpu, k, str(path))
                _state.update(slot=slot, fd=fd)
                log.info("GPU slot %s.%d claimed (%s)%s", gpu, k, path, " after waiting" if waited else "")
                return slot
        if time.monotonic() >= deadline:
            holders = "\n".join(f"  GPU {g} slot {k}: {holder(lock_path(lock_dir, g, k))}" for g, k in order)
            raise SlotTimeout(
                f"{job or 'job'}: no free GPU slot after {wait_s:g} s (GPUs {', '.join(gpus)}; {jobs_per_gpu} job(s) "
                f"per GPU; config['gpus']). Lock directory {lock_dir.resolve()}; holders:\n{holders}\n"
                f"Are more GPU jobs allowed at once (--resources gpu=) than ids x jobs_per_gpu = {len(order)}, or does "
                f"another workflow use the same GPUs? Raise config['gpus']['wait_s'] to wait longer.")
        if not waited:
            log.info("waiting for a free GPU slot (%s; at most %g s)", lock_dir, wait_s)
            waited = True
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def _cuda_started() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def job_device(device: str = "auto", gpus: dict | None = None, job: str = ""):
    """The torch device a job computes on, its GPU slot claimed first (:func:`claim_device`)."""
    return resolve_device(claim_device(device, gpus, job))


def claim_device(device: str = "auto", gpus: dict | None = None, job: str = "") -> str:
    """Claim the job's GPU slot when it computes on a GPU (see the module doc) and return what it computes on:
    ``cpu``, ``cuda`` or, under a scheduler, ``device`` itself. ``device``: ``training.device`` (auto, cpu, cuda);
    ``gpus``: ``config["gpus"]``; ``job`` names the job in the lock file. Call it before anything starts CUDA in
    this process (standard library only)."""
    cfg = settings(gpus)
    standin = os.environ.get(STANDIN_ENV) is not None
    if device == "cpu" and not standin:
        _state.update(how="cpu")
        return "cpu"
    if under_scheduler(cfg):
        given = _entries(os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # the scheduler's, even with stand-ins
        _state.update(how="scheduler", gpu=given[0] if given else None)
        log.info("GPUs chosen by the scheduler (%s): CUDA_VISIBLE_DEVICES=%s; no slot claimed",
                 SCHEDULER_ENV if cfg["claim"] == "auto" else "claim: never", os.environ.get("CUDA_VISIBLE_DEVICES"))
        return "cpu" if standin else device
    chosen = chosen_gpus(cfg)
    if not chosen:
        if device == "cuda":
            raise RuntimeError(f"training.device is 'cuda' but no GPU is visible (NVML finds none, "
                               f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        _state.update(how="cpu")
        return "cpu"
    if _cuda_started():
        raise RuntimeError("pipeline.gpus.job_device: CUDA started in this process before the GPU slot was claimed; "
                           "call job_device first")
    slot = claim(chosen, cfg["jobs_per_gpu"], cfg["lock_dir"], cfg["wait_s"], job)
    if os.environ.get("CUDA_VISIBLE_DEVICES") is None:  # numbered by NVML, in PCI bus order: CUDA's numbers too
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ["CUDA_VISIBLE_DEVICES"] = slot.gpu
    _state.update(how="slot", gpu=slot.gpu)
    return "cpu" if standin else "cuda"


def job_name(smk) -> str:
    """How a Snakemake job is named in its lock file: rule and wildcards
    (``train dataset=rotation model=conv seed=0``)."""
    return " ".join([smk.rule, *(f"{k}={v}" for k, v in smk.wildcards.items())])


def resolve_device(device="auto"):
    """The torch device of ``training.device`` (or a torch device, returned as it is): ``auto`` is CUDA when
    present, else CPU. Claims nothing: a job calls :func:`job_device`."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"training.device is {device!r} but no CUDA device is available")
    return torch.device(device)


def _as_index(gpu: str | None):
    return None if gpu is None else (int(gpu) if gpu.isdigit() else gpu)


def placement() -> dict:
    """This process's GPU as the machine numbers it (``index``), its slot (``None`` when none was claimed) and how
    it was chosen (``slot``, ``scheduler``, ``cpu``; ``None`` outside a job). Standard library only."""
    slot = _state["slot"]
    return {"index": _as_index(_state["gpu"]), "slot": None if slot is None else slot.index, "chosen_by": _state["how"]}


def record(device) -> dict:
    """What ``metrics.json`` (and ``model.pt``) keep of where a job ran: the torch device, the device's name and
    :func:`placement`."""
    import torch

    device = torch.device(device)
    where = placement()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if where["index"] is None:  # outside a job: the process's own numbering
            visible = _entries(os.environ.get("CUDA_VISIBLE_DEVICES") or "")
            where["index"] = _as_index(visible[device.index or 0] if visible else str(device.index or 0))
    else:
        name = "cpu" if where["index"] is None else f"cpu (standing in for GPU {where['index']})"
    return {"device": str(device), "name": name, **where}


# --- python -m pipeline.gpus: the slots of this machine and who holds them ----------------------------------

def slot_states(lock_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """``(lock file name, holder or 'free')`` of every slot lock file in ``lock_dir`` (a free slot is probed with a
    non-blocking flock, released at once)."""
    out = []
    for path in sorted(Path(lock_dir).glob("*.lock")):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            state = "free"
        except OSError:
            state = "held by " + holder(path)
        finally:
            os.close(fd)  # closing drops a probe's lock
        out.append((path.name, state))
    return out


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.gpus", description="The GPU slots of this machine "
                                     "(config['gpus']) and their holders.")
    parser.add_argument("--lock-dir", default=DEFAULTS["lock_dir"])
    parser.add_argument("--jobs-per-gpu", type=int, default=DEFAULTS["jobs_per_gpu"])
    args = parser.parse_args(argv)
    visible = visible_gpus()
    print(f"GPUs visible: {len(visible)} ({', '.join(visible) or 'none'}); with jobs_per_gpu {args.jobs_per_gpu}: "
          f"--resources gpu={len(visible) * args.jobs_per_gpu}")
    states = slot_states(args.lock_dir)
    print(f"lock directory {Path(args.lock_dir).resolve()}: " + ("no slot claimed yet" if not states else ""))
    for name, state in states:
        print(f"  {name}: {state}")


if __name__ == "__main__":
    main()
