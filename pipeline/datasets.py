"""Dataset layout (zarr v3, readable as an ``xarray.Dataset``), the equivariance levels, and the split windows.

A store ``results/data/{dataset}.zarr`` holds one data variable ``velocity`` of shape (sims, frames, 2, H, W),
float32, dimension names (sim, time, component, y, x), chunked one sim by ``chunk_frames`` frames, beside it
its coordinates, one zarr array each (xarray's zarr v3 convention: ``dimension_names`` on every array, a
dimension's coordinate named after it, the others listed in ``velocity``'s ``coordinates`` attribute):

* ``sim`` (0..sims-1) and, along ``sim``, every physical parameter of the sims and their split ``role``
  (``train`` or ``test_domain``); vector parameters (inflow, buoyancy) have dimensions (sim, component);
* ``time``: the simulation step after which a frame is stored, ``first_frame + t + 1`` (frame ``t`` is the
  state after step ``first_frame + t + 1``; the unit is one simulation step, so the smoke's dt is 1);
* ``y``, ``x``: the cell centres, ``(i + 0.5) * cell_size`` (cells of the base grid unless a dataset says
  otherwise); ``component``: ``vx``, ``vy``.

The group attributes keep the provenance: ``dataset``, ``family``; ``sims``: one dict per sim with its
parameters and ``role`` (the same records as the coordinates); ``first_frame``; ``versions``; ``config``;
``statistics`` (mean, std and max |v| per component, computed over chunks while the store is written); the
equivariance levels also ``level``, ``members`` and ``data_equivariance_error``. The metadata is consolidated
(``zarr.consolidate_metadata``), so ``xarray.open_zarr(path)`` reads it in one request.

Every chunk of every array ends with its CRC-32C checksum (zarr's ``crc32c`` codec after the compressor), and
every chunk is written, so a reader detects a chunk damaged on disk (``pipeline.integrity``).

Writing streams the velocity chunk by chunk (a dask array in, never the whole store in memory) into a
``.partial`` sibling that is renamed into place, so a finished-looking store is finished.

Windows (docs/protocol.md): a sample starting at ``s`` of a sim uses frames ``s+offset .. s+offset+L-1`` as input
and the following ``out_length`` frames as targets. The window starts of each split come from the config.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from importlib import metadata
from numbers import Number
from pathlib import Path

import numpy as np

from . import files, integrity
from .catalogue import TEST_DOMAIN, TRAIN, equivariance_level_members
from .symmetry import rotate

DIMENSIONS = ("sim", "time", "component", "y", "x")
COMPONENTS = ("vx", "vy")
SPLITS = ("train", "valid", "test_future", "test_domain")
ROLES = (TRAIN, TEST_DOMAIN)
TIME_UNITS = "simulation step"   # defaults of the coordinates' units (a dataset's attributes may override)
LENGTH_UNITS = "cells"


def versions() -> dict:
    """Versions of the packages that change the data."""
    out = {}
    for pkg in ("phiflow", "phiml", "numpy", "torch", "zarr", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def coordinates(shape: tuple, attrs: dict) -> dict:
    """The coordinates of a store of ``velocity.shape == shape`` with attributes ``attrs``:
    ``{name: (dimensions, values, attributes)}``.

    ``attrs`` may set ``first_frame`` (0), ``time_step`` (1), ``time_units``, ``cell_size`` (1) and
    ``length_units``. Per-sim coordinates come from ``attrs["sims"]``: numbers, strings and 2-vectors; other
    values stay in the attributes only.
    """
    sims, frames, _, height, width = shape
    first = int(attrs.get("first_frame", 0))
    dt, dx = float(attrs.get("time_step", 1.0)), float(attrs.get("cell_size", 1.0))
    length = {"units": attrs.get("length_units", LENGTH_UNITS)}
    out = {
        "sim": (("sim",), np.arange(sims, dtype=np.int64), {"long_name": "sim (position in the store)"}),
        "time": (("time",), (first + np.arange(frames) + 1) * dt,
                 {"units": attrs.get("time_units", TIME_UNITS),
                  "long_name": "time of the frame: the state after step first_frame + t + 1"}),
        "component": (("component",), np.array(COMPONENTS, dtype=object), {"long_name": "velocity component"}),
        "y": (("y",), (np.arange(height) + 0.5) * dx, {**length, "long_name": "cell centre y (up)"}),
        "x": (("x",), (np.arange(width) + 0.5) * dx, {**length, "long_name": "cell centre x (right)"}),
    }
    records = attrs.get("sims", [])
    keys = list(dict.fromkeys(k for r in records for k in r))
    for key in keys:
        values = [r.get(key) for r in records]
        given = [v for v in values if v is not None]
        if not given:
            continue
        name = key if key not in out and key != "velocity" else f"sim_{key}"
        if all(isinstance(v, str) for v in given):
            out[name] = (("sim",), np.array([v or "" for v in values], dtype=object), {})
        elif all(isinstance(v, Number) and not isinstance(v, bool) for v in given):
            exact = len(given) == len(values) and all(isinstance(v, (int, np.integer)) for v in given)
            out[name] = (("sim",), np.array([np.nan if v is None else v for v in values],
                                            dtype=np.int64 if exact else np.float64), {})
        elif all(isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(c, Number) for c in v) for v in given):
            out[name] = (("sim", "component"), np.array([[np.nan] * 2 if v is None else v for v in values],
                                                         dtype=np.float64), {})
    return out


# Every chunk is written, zeros included, so that a missing chunk file is damage rather than zeros
# (pipeline.integrity).
_EVERY_CHUNK = {"write_empty_chunks": True}


def _compressors(compressor) -> tuple:
    """A compressor followed by the per-chunk checksum (pipeline.integrity): zarr's bytes-to-bytes codecs."""
    return (compressor, integrity.checksum_codec())


def _write_array(group, name: str, dims: tuple, values: np.ndarray, attrs: dict) -> None:
    import zarr

    dtype = str if values.dtype == object else values.dtype  # strings: zarr v3's variable-length UTF-8
    array = group.create_array(name, shape=values.shape, dtype=dtype, dimension_names=dims,
                               compressors=_compressors(zarr.codecs.ZstdCodec()), config=_EVERY_CHUNK)
    array[...] = values
    if attrs:
        array.attrs.update(attrs)


class _ChunkReader:
    """An array-like over a memory-mapped (or otherwise lazily readable) array that copies only the slice asked
    for: dask's ``from_array`` copies a numpy array whole, memory-mapped ones included, before any chunk is used."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        return np.array(self.array[key])


def lazy_frames(array, chunk_frames: int):
    """``array`` (sims, frames, 2, H, W), memory-mapped .npy, a tensor's numpy view or a zarr array, as a dask
    array in the store's chunks (one sim by ``chunk_frames`` frames) that reads one chunk at a time."""
    import dask.array as da

    chunks = (1, min(chunk_frames, array.shape[1]), *array.shape[2:])
    return da.from_array(_ChunkReader(array), chunks=chunks, name=False)


def write_store(path: str | os.PathLike, velocity, attrs: dict, chunk_frames: int = 32) -> None:
    """Write ``velocity`` (sims, frames, 2, H, W; a numpy or a dask array), its coordinates and ``attrs`` to
    a zarr v3 store at ``path``, atomically, one chunk at a time."""
    import dask
    import dask.array as da
    import zarr

    path = Path(path)
    if velocity.ndim != 5 or velocity.shape[2] != 2:
        raise ValueError(f"{path}: velocity must be (sims, frames, 2, H, W), got {velocity.shape}")
    sims = attrs.get("sims", [])
    if len(sims) != velocity.shape[0]:
        raise ValueError(f"{path}: {velocity.shape[0]} sims of velocity but {len(sims)} sim records")
    coords = coordinates(velocity.shape, attrs)
    chunks = (1, min(chunk_frames, velocity.shape[1]), 2, *velocity.shape[-2:])
    v = da.asarray(velocity).astype(np.float32).rechunk(chunks)
    with files.partial(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        array = group.create_array("velocity", shape=v.shape, dtype="float32", chunks=chunks,
                                   dimension_names=DIMENSIONS, config=_EVERY_CHUNK,
                                   compressors=_compressors(zarr.codecs.BloscCodec(cname="zstd", clevel=3,
                                                                                   shuffle="bitshuffle")))
        stored = da.store(v, array, lock=False, compute=False)
        finite = da.isfinite(v).all()
        _, finite, *stats = dask.compute(stored, finite, *_statistics(v))
        if not finite:
            raise ValueError(f"{path}: refusing to write non-finite velocity")
        array.attrs.update({"units": f"{coords['x'][2]['units']} / {coords['time'][2]['units']}",
                            "long_name": "velocity at the cell centres",
                            "coordinates": " ".join(k for k, (dims, _, _) in coords.items() if k not in dims)})
        for name, (dims, values, coord_attrs) in coords.items():
            _write_array(group, name, dims, values, coord_attrs)
        group.attrs.update({**attrs, "versions": versions(), "statistics": _statistics_record(*stats)})
        with warnings.catch_warnings():  # consolidated metadata is zarr-python's (and xarray's) extension to v3
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(str(tmp))


@dataclass
class Dataset:
    """A dataset: velocity (sims, frames, 2, H, W) and its attributes.

    ``velocity`` is a numpy array (:func:`load`) or the store's zarr array (:func:`open_store`), which reads
    only the frames that are indexed.
    """

    path: str
    velocity: np.ndarray
    attrs: dict

    @property
    def roles(self) -> list[str]:
        return [s["role"] for s in self.attrs["sims"]]

    def sims_with_role(self, role: str) -> list[int]:
        if role not in ROLES:
            raise ValueError(f"{self.path}: unknown role {role!r}; expected {TRAIN!r} or {TEST_DOMAIN!r}")
        return [i for i, r in enumerate(self.roles) if r == role]


def open_store(path: str | os.PathLike) -> Dataset:
    """Open a store without reading its velocity: ``Dataset.velocity`` is the zarr array, wrapped so that a damaged
    chunk raises ``integrity.DamagedStoreError`` naming it (``pipeline.integrity``)."""
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
    return Dataset(path, integrity.CheckedArray(path, group["velocity"], attrs["sims"]), attrs)


def load(path: str | os.PathLike) -> Dataset:
    """Read a whole store into memory (one read; slicing numpy is far faster than reading windows)."""
    ds = open_store(path)
    return Dataset(ds.path, np.asarray(ds.velocity[...]), ds.attrs)


def _statistics(v) -> tuple:
    """Mean, standard deviation and max |v| of each component of a dask velocity array, unevaluated."""
    axes = (0, 1, 3, 4)
    return v.mean(axis=axes, dtype=np.float64), v.std(axis=axes, dtype=np.float64), abs(v).max(axis=axes)


def _statistics_record(mean, std, peak) -> dict:
    return {"components": list(COMPONENTS), "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist(),
            "max_abs": np.asarray(peak, dtype=float).tolist()}


def statistics(path: str | os.PathLike) -> dict:
    """Mean, standard deviation and max |v| of each velocity component of a store, computed over its chunks
    (memory: a few chunks, whatever the store's size)."""
    import dask
    import dask.array as da

    v = open_store(path).velocity
    return _statistics_record(*dask.compute(*_statistics(da.from_array(v, chunks=v.chunks, name=False))))


# --- equivariance levels -------------------------------------------------------------------------

def equivariance_level(base, base_indices: list[int], level: int, error_frames: slice = slice(None)):
    """Dataset ``E_level`` from the base sims (lazily, a dask array) and its data equivariance error.

    ``base`` is (n_base, frames, 2, H, W), numpy or dask, for the base sims ``base_indices``. Level ``n`` stacks
    base sims ``(1, 1+n, 1+2n, 1+3n)`` rotated by 0, 1, 2, 3 quarter turns; its data equivariance error (the
    paper's section 5.2: the mean absolute error between the sims rotated back to the same inflow) is the mean
    absolute difference between the first member and each of the other three (unrotated), averaged, over the
    frames ``error_frames`` of ``base`` (the paper's numbers leave out the early frames; config
    ``error_frames``). The error is computed chunk by chunk; the level is returned unevaluated.
    """
    import dask.array as da

    position = {b: p for p, b in enumerate(base_indices)}
    members = equivariance_level_members(level)
    missing = [m for m in members if m not in position]
    if missing:
        raise KeyError(f"equivariance level {level} needs base sims {missing}, not among {base_indices}")
    base = da.asarray(base).rechunk({2: -1, 3: -1, 4: -1})  # a quarter turn needs whole frames in a chunk
    frames = [base[position[m]] for m in members]
    error = da.stack([abs(frames[0][error_frames] - f[error_frames]).mean() for f in frames[1:]]).mean()
    rotated = da.stack([f.map_blocks(rotate, j, dtype=f.dtype) for j, f in enumerate(frames)])
    return rotated, float(error.compute())


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

    def first_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """``(sim, first)`` of every sample in order, int64: the sim and the first input frame of its window."""
        sims = np.repeat(np.asarray(self.sims, dtype=np.int64), len(self.starts))
        firsts = np.tile(np.asarray(self.starts, dtype=np.int64), len(self.sims)) + self.offset
        return sims, firsts

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


def selection_windows(dataset: Dataset, windows: dict) -> Windows:
    """The samples that score a trial of the hyper-parameter search: the validation windows of
    :func:`pipeline.runs.selection_starts` (none of their frames is a test-future target), ``windows["rollout"]``
    steps each. A config that leaves none is refused, naming its keys."""
    from dataclasses import replace

    from .runs import selection_starts

    starts = selection_starts(windows)
    if not starts:
        raise ValueError(f"{dataset.path}: no validation window of {windows['valid']} ends, after its "
                         f"{windows['rollout']} rollout steps, before the first target frame of test_future "
                         f"{windows['test_future']}; move windows.valid earlier or windows.test_future later")
    return replace(split_windows(dataset, "valid", windows, int(windows["rollout"])), starts=starts)


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
