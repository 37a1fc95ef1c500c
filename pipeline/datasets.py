"""Dataset layout (zarr v3), the equivariance-level datasets, and the split windows.

A store ``results/data/{dataset}.zarr`` holds one array ``velocity`` of shape (sims, frames, 2, H, W),
float32, dimension names (sim, time, component, y, x), chunked one sim by ``chunk_frames`` frames, and the
group attributes:

* ``dataset``, ``family``; ``sims``: one dict per sim with its physical parameters and its ``role``
  (``train`` or ``test_domain``); ``first_frame``: the simulation step of frame 0 (minus one);
* ``versions``: phiflow, phiml, numpy, torch, zarr; ``config``: the config section that produced it;
* equivariance levels only: ``level``, ``members`` and ``data_equivariance_error``.

Stores are written to a temporary sibling and renamed into place, so a finished-looking store is finished.

Windows (PROTOCOL.md): a sample starting at ``s`` of a sim uses frames ``s+offset .. s+offset+L-1`` as input
and the following ``out_length`` frames as targets. The window starts of each split come from the config.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .families import TEST_DOMAIN, TRAIN, equivariance_level_members
from .symmetry import rotate

DIMENSIONS = ("sim", "time", "component", "y", "x")
SPLITS = ("train", "valid", "test_future", "test_domain")


def versions() -> dict:
    """Versions of the packages that change the data."""
    out = {}
    for pkg in ("phiflow", "phiml", "numpy", "torch", "zarr", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def write_store(path: str | os.PathLike, velocity: np.ndarray, attrs: dict, chunk_frames: int = 32) -> None:
    """Write ``velocity`` (sims, frames, 2, H, W) and ``attrs`` to a zarr v3 store at ``path``, atomically."""
    import zarr

    path = Path(path)
    if velocity.ndim != 5 or velocity.shape[2] != 2:
        raise ValueError(f"{path}: velocity must be (sims, frames, 2, H, W), got {velocity.shape}")
    if not np.isfinite(velocity).all():
        raise ValueError(f"{path}: refusing to write non-finite velocity")
    sims = attrs.get("sims", [])
    if len(sims) != velocity.shape[0]:
        raise ValueError(f"{path}: {velocity.shape[0]} sims of velocity but {len(sims)} sim records")
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        chunks = (1, min(chunk_frames, velocity.shape[1]), 2, *velocity.shape[-2:])
        array = group.create_array("velocity", shape=velocity.shape, dtype="float32", chunks=chunks,
                                   dimension_names=DIMENSIONS,
                                   compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"))
        array[...] = velocity.astype(np.float32, copy=False)
        group.attrs.update({**attrs, "versions": versions()})
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Dataset:
    """A dataset read into memory: velocity (sims, frames, 2, H, W) and its attributes."""

    path: str
    velocity: np.ndarray
    attrs: dict

    @property
    def roles(self) -> list[str]:
        return [s["role"] for s in self.attrs["sims"]]

    def sims_with_role(self, role: str) -> list[int]:
        if role not in (TRAIN, TEST_DOMAIN):
            raise ValueError(f"{self.path}: unknown role {role!r}; expected {TRAIN!r} or {TEST_DOMAIN!r}")
        return [i for i, r in enumerate(self.roles) if r == role]


def load(path: str | os.PathLike) -> Dataset:
    """Read a whole store into memory (one read; slicing numpy is far faster than reading windows)."""
    import zarr

    path = str(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no dataset store here (expected a zarr directory)")
    group = zarr.open_group(path, mode="r")
    if "velocity" not in group:
        raise KeyError(f"{path}: store has no 'velocity' array")
    attrs = dict(group.attrs)
    for key in ("sims", "dataset"):
        if key not in attrs:
            raise KeyError(f"{path}: store attributes lack {key!r}")
    return Dataset(path, np.asarray(group["velocity"][...]), attrs)


# --- equivariance levels -------------------------------------------------------------------------

def equivariance_level(base: np.ndarray, base_indices: list[int], level: int,
                       error_frames: slice = slice(None)) -> tuple[np.ndarray, float]:
    """Dataset ``E_level`` from the base sims and its data equivariance error.

    ``base`` is (n_base, frames, 2, H, W) for the base sims ``base_indices``. Level ``n`` stacks base sims
    ``(1, 1+n, 1+2n, 1+3n)`` rotated by 0, 1, 2, 3 quarter turns; its data equivariance error (the paper's
    section 5.2: the mean absolute error between the sims rotated back to the same inflow) is the mean absolute
    difference between the first member and each of the other three (unrotated), averaged, over the frames
    ``error_frames`` of ``base`` (the paper's numbers leave out the early frames; config ``error_frames``).
    """
    position = {b: p for p, b in enumerate(base_indices)}
    members = equivariance_level_members(level)
    missing = [m for m in members if m not in position]
    if missing:
        raise KeyError(f"equivariance level {level} needs base sims {missing}, not among {base_indices}")
    frames = [base[position[m]] for m in members]
    error = float(np.mean([np.mean(np.abs(frames[0][error_frames] - f[error_frames])) for f in frames[1:]]))
    return np.stack([rotate(f, j) for j, f in enumerate(frames)]), error


# --- windows ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Windows:
    """Samples ``(sim, start)`` of one split: inputs ``(L, 2, H, W)`` and ``out_length`` target frames."""

    sims: tuple[int, ...]
    starts: tuple[int, ...]
    input_length: int
    out_length: int
    offset: int

    def __len__(self) -> int:
        return len(self.sims) * len(self.starts)

    def index(self, i: int) -> tuple[int, int]:
        return self.sims[i // len(self.starts)], self.starts[i % len(self.starts)]

    def slices(self, i: int) -> tuple[slice, slice]:
        _, s = self.index(i)
        a = s + self.offset
        return slice(a, a + self.input_length), slice(a + self.input_length, a + self.input_length + self.out_length)

    def last_frame(self) -> int:
        return max(self.starts) + self.offset + self.input_length + self.out_length - 1


def split_windows(dataset: Dataset, split: str, windows: dict, out_length: int | None = None) -> Windows:
    """The samples of ``split`` under a family's ``windows`` config.

    ``train``/``valid``/``test_future`` use the train sims, ``test_domain`` the held-out sims. Training and
    validation roll out ``out_length`` steps (from the training config), the tests ``windows["rollout"]``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split not in windows:
        raise KeyError(f"{dataset.path}: the windows config has no {split!r} range")
    role = TEST_DOMAIN if split == "test_domain" else TRAIN
    sims = dataset.sims_with_role(role)
    if not sims:
        raise ValueError(f"{dataset.path}: split {split!r} has no sims with role {role!r}")
    lo, hi = windows[split]
    steps = int(windows["rollout"]) if split.startswith("test") else int(out_length or windows["rollout"])
    w = Windows(tuple(sims), tuple(range(int(lo), int(hi))), int(windows["input_length"]), steps,
                int(windows["offset"]))
    if w.last_frame() >= dataset.velocity.shape[1]:
        raise ValueError(f"{dataset.path}: split {split!r} needs frame {w.last_frame()} but the store has "
                         f"{dataset.velocity.shape[1]} frames; shorten the window range or simulate longer")
    return w


def window_arrays(dataset: Dataset, windows: Windows, items=None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(N, L, 2, H, W)`` and targets ``(N, out_length, 2, H, W)`` of ``items`` (default all)."""
    items = range(len(windows)) if items is None else items
    xs, ys = [], []
    for i in items:
        sim, _ = windows.index(i)
        a, b = windows.slices(i)
        xs.append(dataset.velocity[sim, a])
        ys.append(dataset.velocity[sim, b])
    return np.stack(xs), np.stack(ys)
