"""Floating-point precision and determinism of a job's torch computations (``training.defaults.precision``,
``training.defaults.deterministic``).

torch runs float32 convolutions on CUDA in TF32 by default (10-bit mantissa): an exactly equivariant E2CNN then
shows an equivariance error of ~1e-3 instead of ~1e-7, GPU results drift from CPU ones, and a resumed run no longer
ends bit for bit as an uninterrupted one. So the default here is true float32, deterministic:

* ``fp32``: IEEE float32 for CUDA matmuls and cuDNN convolutions (TF32 off);
* ``tf32``: TF32 for both (faster on Ampere and later; an opt-in);
* ``bf16``: TF32 off, and the training forward pass under ``torch.autocast`` in bfloat16 (weights, optimiser and
  loss stay float32; an opt-in for speed).

``deterministic`` turns on ``torch.use_deterministic_algorithms`` (warning, in the job's log, for an op that has
no deterministic CUDA kernel rather than failing the job), sets the cuBLAS workspace that deterministic cuBLAS
needs and turns cuDNN's autotuner off. Evaluation always runs in ``fp32``, deterministic, so that metrics of runs
trained in different precisions are comparable.

On CPU the TF32 flags have no effect and bf16 autocast uses the CPU's bfloat16 kernels.
"""
from __future__ import annotations

import contextlib
import os
import sys

import torch

PRECISIONS = ("fp32", "tf32", "bf16")
CUBLAS_WORKSPACE = ":4096:8"


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"training precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def configure(precision: str = "fp32", deterministic: bool = True) -> dict:
    """Set torch's global numerics for this process; returns what was set (recorded with the run).

    Call it before the first CUDA operation: cuBLAS reads its workspace setting when it starts.

    Precision is set through torch's long-standing API (``torch.backends.cuda.matmul.allow_tf32``,
    ``torch.backends.cudnn.allow_tf32``, ``torch.set_float32_matmul_precision``), never through the newer
    ``fp32_precision`` attributes: torch refuses to read the old getters once the new setters were used (a
    ``RuntimeError`` from ``torch.backends.cudnn.allow_tf32``, ``torch.backends.cudnn.flags()`` and
    ``torch.get_float32_matmul_precision()``), and user code and libraries call those getters. The old setters keep
    both the old and the new getters working.
    """
    tf32 = check(precision) == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")  # "high": TF32 matmuls; "highest": IEEE
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = bool(deterministic)
    _use_deterministic_algorithms(bool(deterministic))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    return state()


def _use_deterministic_algorithms(flag: bool) -> None:
    """``torch.use_deterministic_algorithms(flag, warn_only=True)`` without its cost in a job that never compiles:
    the public call imports ``torch._inductor`` (and with it dynamo, ~2 s of every job's start) only to keep
    inductor's copy of the flag in step. The flag the kernels read is the one set here; when inductor is already
    loaded (``torch.compile`` in use) the public call keeps both in step."""
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(flag, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(flag, warn_only=True)


def state() -> dict:
    """The numerics torch runs with now, as recorded in ``metrics.json`` (``tf32`` or ``ieee`` for CUDA matmuls and
    cuDNN convolutions, read through the getters that every torch user can call)."""
    return {"cuda_matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee",
            "cudnn_conv": "tf32" if torch.backends.cudnn.allow_tf32 else "ieee",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}


def autocast(precision: str, device: torch.device):
    """The context the training forward pass runs in: bf16 autocast for ``bf16``, nothing otherwise."""
    if check(precision) == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
