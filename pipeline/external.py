"""Bring your own data: an external dataset registered in the config becomes a store of our layout.

``config['external'][name] = {path, format, spec}`` registers the data at ``path`` -- a zarr array or group
(``format: zarr``), or a folder of ``.npy`` or ``.pt`` arrays (``npy``, ``pt``) concatenated along the sims --
of shape ``(sims, frames, 2, H, W)``, components ``(vx, vy)``, indexed ``[y, x]`` with y up (README: "Bring your
own data"). ``spec`` is a small YAML file::

    symmetry: rotation            # translation | rotation | scaling: the models it trains
    roles:                        # split roles by sim index (position along axis 0)
      test_domain: [6, 7]         # held out; every sim not listed here is a train sim
    files: [a.npy, b.npy]         # npy/pt only, optional: the files in order (default: all, sorted by name)
    array: velocity               # zarr only, optional: the array in a group (default velocity)
    parameters: {re: [100, 200]}  # optional: per-sim values, one per sim; they become coordinates
    first_frame: 0                # optional: frame t is the state after step first_frame + t + 1
    time_step: 1.0                # optional: the time between frames and its unit, the cell size and its unit
    time_units: s
    cell_size: 0.01
    length_units: m

An external dataset is a family of its own: ``windows[name]`` and ``models[name]`` configure it as the
paper's families are configured, ``training.datasets[name]`` and ``training.models[name]`` optionally.

Two checks refuse bad input, each naming the file and what was expected: :func:`check_spec` at DAG time
(standard library and yaml only: the spec, the path, the config entries) and :func:`import_dataset`, the job
that every training on the dataset depends on (the data: rank, NaNs, sims named by the roles, square frames
for rotation models, windows that fit). The store is streamed chunk by chunk (``datasets.write_store``).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import yaml

from .catalogue import SYMMETRY_FAMILIES as SYMMETRIES, TEST_DOMAIN, TRAIN

ROLES = (TRAIN, TEST_DOMAIN)
SPEC_KEYS = {"symmetry", "roles", "files", "array", "parameters", "first_frame", "time_step", "time_units",
             "cell_size", "length_units", "description"}
UNITS_KEYS = ("first_frame", "time_step", "time_units", "cell_size", "length_units")


class ExternalDataError(ValueError):
    """External data or its spec is not what the pipeline can use; the message names the file."""


@functools.lru_cache(maxsize=None)
def read_spec(path: str) -> dict:
    """The spec YAML at ``path``, checked (keys, symmetry, roles); raises ``ExternalDataError`` naming it."""
    if not os.path.isfile(path):
        raise ExternalDataError(f"{path}: no such spec file (config['external'][...]['spec'])")
    try:
        with open(path) as fh:
            spec = yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise ExternalDataError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(spec, dict):
        raise ExternalDataError(f"{path}: expected a mapping with keys symmetry, roles, ...; got {type(spec).__name__}")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ExternalDataError(f"{path}: unknown keys {unknown}; expected some of {sorted(SPEC_KEYS)}")
    if spec.get("symmetry") not in SYMMETRIES:
        raise ExternalDataError(f"{path}: symmetry is {spec.get('symmetry')!r}; "
                                 f"expected one of {', '.join(SYMMETRIES)}")
    roles = spec.get("roles")
    if not isinstance(roles, dict) or not set(roles) <= set(ROLES) or "test_domain" not in roles:
        raise ExternalDataError(f"{path}: roles must map test_domain (and optionally train) to lists of sim "
                                f"indices, e.g. roles: {{test_domain: [6, 7]}}; got {roles!r}")
    seen = {}
    for role, sims in roles.items():
        if not isinstance(sims, list) or not sims or not all(isinstance(i, int) and i >= 0 for i in sims):
            raise ExternalDataError(f"{path}: roles.{role} must be a non-empty list of sim indices (integers >= 0); "
                                    f"got {sims!r}")
        for i in sims:
            if i in seen:
                raise ExternalDataError(f"{path}: sim {i} is listed in roles.{seen[i]} and roles.{role}")
            seen[i] = role
    params = spec.get("parameters", {})
    if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
        raise ExternalDataError(f"{path}: parameters must map names to lists (one value per sim); got {params!r}")
    if "files" in spec and not (isinstance(spec["files"], list) and all(isinstance(f, str) for f in spec["files"])):
        raise ExternalDataError(f"{path}: files must be a list of file names; got {spec['files']!r}")
    return spec


def check_spec(name: str, entry: dict) -> dict:
    """DAG-time check of one registration (no numpy): the spec and the data path exist and agree with the
    format. Returns the spec."""
    spec = read_spec(entry["spec"])
    path, fmt = entry["path"], entry["format"]
    where = f"config['external'][{name!r}]"
    if not os.path.exists(path):
        raise ExternalDataError(f"{path}: no such file or folder ({where}['path'])")
    if fmt == "zarr" and not os.path.isdir(path):
        raise ExternalDataError(f"{path}: expected a zarr store (a directory) for format zarr ({where})")
    if fmt in ("npy", "pt"):
        if not os.path.isdir(path):
            raise ExternalDataError(f"{path}: expected a folder of .{fmt} files for format {fmt} ({where})")
        if not data_files(path, fmt, spec):
            raise ExternalDataError(f"{path}: no .{fmt} files in the folder ({where})")
    for key in ("files",) if fmt == "zarr" else ("array",):
        if key in spec:
            raise ExternalDataError(f"{entry['spec']}: {key!r} does not apply to format {fmt}")
    return spec


def symmetry(entry: dict) -> str:
    return read_spec(entry["spec"])["symmetry"]


def data_files(path: str, fmt: str, spec: dict) -> list[str]:
    """The .npy/.pt files of a folder, in the spec's order or sorted by name."""
    if "files" in spec:
        return [os.path.join(path, f) for f in spec["files"]]
    return sorted(str(p) for p in Path(path).glob(f"*.{fmt}"))


# --- the job: check the data and write our store --------------------------------------------------------------

def _arrays(entry: dict, spec: dict) -> list[tuple[str, object]]:
    """``(file, lazily readable array)`` of each source file (memory-mapped where the format allows)."""
    import numpy as np

    path, fmt = entry["path"], entry["format"]
    if fmt == "zarr":
        import zarr
        try:
            node = zarr.open(path, mode="r")
        except Exception as e:  # noqa: BLE001 - zarr raises several kinds for a folder that is no store
            raise ExternalDataError(f"{path}: not a readable zarr store ({e})") from None
        if isinstance(node, zarr.Group):
            name = spec.get("array", "velocity")
            if name not in node:
                raise ExternalDataError(f"{path}: the zarr group has no array {name!r} "
                                        f"(arrays: {sorted(node.array_keys())}); set 'array' in {entry['spec']}")
            return [(f"{path}/{name}", node[name])]
        return [(path, node)]
    out = []
    for f in data_files(path, fmt, spec):
        if not os.path.isfile(f):
            raise ExternalDataError(f"{f}: no such file (listed in {entry['spec']})")
        try:
            if fmt == "npy":
                out.append((f, np.load(f, mmap_mode="r")))
            else:
                import torch
                t = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
                if not isinstance(t, torch.Tensor):
                    raise ExternalDataError(f"{f}: expected a saved tensor, got {type(t).__name__}")
                out.append((f, t.numpy()))
        except ExternalDataError:
            raise
        except Exception as e:  # noqa: BLE001 - unreadable file, whatever the reader raises
            raise ExternalDataError(f"{f}: cannot read it as .{fmt} ({e})") from None
    return out


def _velocity(entry: dict, spec: dict, chunk_frames: int):
    """The data as one dask array ``(sims, frames, 2, H, W)``, after the shape checks."""
    import dask.array as da
    import numpy as np

    from . import datasets

    parts, shape = [], None
    for f, a in _arrays(entry, spec):
        if a.ndim != 5 or a.shape[2] != 2:
            raise ExternalDataError(f"{f}: expected an array of shape (sims, frames, 2, H, W) (2 = vx, vy); got "
                                    f"shape {tuple(a.shape)}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ExternalDataError(f"{f}: expected floating-point velocity, got dtype {a.dtype}")
        if shape is not None and tuple(a.shape[1:]) != shape:
            raise ExternalDataError(f"{f}: frames of shape {tuple(a.shape[1:])}, but the first file has {shape}")
        shape = tuple(a.shape[1:])
        if spec["symmetry"] == "rotation" and a.shape[3] != a.shape[4]:
            raise ExternalDataError(f"{f}: rotation models need square frames (H == W); got H={a.shape[3]}, "
                                    f"W={a.shape[4]}")
        x = datasets.lazy_frames(a, chunk_frames)
        bad = np.flatnonzero(~da.isfinite(x).all(axis=(1, 2, 3, 4)).compute())
        if bad.size:
            raise ExternalDataError(f"{f}: NaN or infinite values in sims {bad.tolist()} of this file")
        parts.append(x)
    return da.concatenate(parts)


def _sims(spec_path: str, spec: dict, n: int, data_path: str) -> list[dict]:
    roles = spec["roles"]
    for role, sims in roles.items():
        missing = [i for i in sims if i >= n]
        if missing:
            raise ExternalDataError(f"{spec_path}: roles.{role} names sims {missing}, but {data_path} holds {n} sims "
                                    f"(0..{n - 1})")
    held = set(roles["test_domain"])
    train = set(roles.get("train", set(range(n)) - held))
    unassigned = sorted(set(range(n)) - held - train)
    if unassigned:
        raise ExternalDataError(f"{spec_path}: sims {unassigned} have no role (list them in roles.train or "
                                f"roles.test_domain, or leave roles.train out)")
    if not train:
        raise ExternalDataError(f"{spec_path}: no train sims: every one of the {n} sims is held out")
    records = [{"index": i, "role": "test_domain" if i in held else "train"} for i in range(n)]
    for key, values in spec.get("parameters", {}).items():
        if len(values) != n:
            raise ExternalDataError(f"{spec_path}: parameters.{key} has {len(values)} values, "
                                    f"expected one per sim ({n})")
        if key in ("index", "role"):
            raise ExternalDataError(f"{spec_path}: parameters.{key}: {key!r} is reserved")
        for r, v in zip(records, values):
            r[key] = v
    return records


def import_dataset(name: str, entry: dict, output: str, chunk_frames: int = 32, windows: dict | None = None) -> None:
    """Check the external data of ``entry`` and write it as our store at ``output`` (streamed by chunks).

    ``windows``: the dataset's window config; every split must fit in the frames, so a bad range fails here,
    before any training job."""
    from . import datasets

    spec = check_spec(name, entry)
    velocity = _velocity(entry, spec, chunk_frames)
    sims = _sims(entry["spec"], spec, velocity.shape[0], entry["path"])
    attrs = {"dataset": name, "family": name, "symmetry": spec["symmetry"], "sims": sims,
             "first_frame": int(spec.get("first_frame", 0)),
             **{k: spec[k] for k in UNITS_KEYS[1:] if k in spec},
             "source": {"path": os.path.abspath(entry["path"]), "format": entry["format"]},
             "config": {"external": dict(entry), "spec": spec}}
    if windows:
        ds = datasets.Dataset(entry["path"], velocity, attrs)
        for split in datasets.SPLITS:
            if split in windows:
                try:
                    datasets.split_windows(ds, split, windows)
                except ValueError as e:
                    raise ExternalDataError(f"{e} (config['windows'][{name!r}])") from None
    datasets.write_store(output, velocity, attrs, chunk_frames=chunk_frames)
