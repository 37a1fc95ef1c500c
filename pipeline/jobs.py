"""The work of each Snakemake data job, as plain functions (workflow/scripts/* call these).

``data`` is the rule's params: the ``data`` section of the config cut down to the keys the job reads (its
family's section and the shared keys), so that a config edit reruns exactly the data it changes."""
from __future__ import annotations

import logging

import numpy as np

from . import datasets, files
from .catalogue import equivariance_base_indices, frame_range, shard_indices
from .families import family_sims, simulate_shard

log = logging.getLogger("pipeline")


def run_simulation_shard(family: str, shard: int, data: dict, output: str, threads: int = 1) -> None:
    """Simulate shard ``shard`` of ``family`` and save its frames to ``output`` (.npy, written atomically)."""
    import torch
    torch.set_num_threads(threads)  # torch's default (all cores) thrashes when Snakemake runs jobs side by side
    shards = shard_indices(len(family_sims(family, data)), data["sims_per_job"])
    if not 0 <= shard < len(shards):
        raise ValueError(f"{family}: shard {shard} does not exist (0..{len(shards) - 1})")
    log.info("%s shard %d: sims %s", family, shard, shards[shard])
    frames = simulate_shard(family, data, shards[shard])
    with files.partial(output, keep_suffix=True) as tmp:
        np.save(tmp, frames)
    log.info("wrote %s %s", output, frames.shape)


def _family_frames(family: str, data: dict, shard_files: list[str]):
    """The family's frames ``(sims, frames, 2, H, W)`` in storage order, as a dask array over the memory-mapped
    shard files in chunks of the store: assembling a family streams it, never holding it in memory."""
    import dask.array as da

    sims = family_sims(family, data)
    shards = shard_indices(len(sims), data["sims_per_job"])
    if len(shard_files) != len(shards):
        raise ValueError(f"{family}: expected {len(shards)} shard files, got {len(shard_files)}")
    parts = []
    for indices, path in zip(shards, shard_files):
        part = np.load(path, mmap_mode="r")
        if part.shape[0] != len(indices):
            raise ValueError(f"{path}: holds {part.shape[0]} sims, expected {len(indices)}")
        if parts and part.shape[1:] != parts[0].shape[1:]:
            raise ValueError(f"{path}: frames of shape {part.shape[1:]}, expected {parts[0].shape[1:]} as in "
                             f"{shard_files[0]}")
        parts.append(datasets.lazy_frames(part, data["chunk_frames"]))
    order = np.argsort(np.concatenate(shards))  # shards interleave the sims; storage order is by index
    return da.concatenate(parts)[order]


def _provenance(data: dict, family: str) -> dict:
    """The config that produced a family's stores (kept in their attributes)."""
    return {"data": {k: data[k] for k in ("grid", "inflow_radius", family)}}


def assemble_dataset(family: str, data: dict, shard_files: list[str], output: str) -> None:
    """Write the zarr store of a family from its shard files."""
    sims = family_sims(family, data)
    velocity = _family_frames(family, data, shard_files)
    first, _ = frame_range(data[family])
    datasets.write_store(output, velocity, {
        "dataset": family, "family": family, "first_frame": first,
        "sims": [s.metadata() for s in sims],
        "config": _provenance(data, family),
    }, chunk_frames=data["chunk_frames"])
    log.info("wrote %s %s", output, velocity.shape)


def build_equivariance_level(level: int, data: dict, shard_files: list[str], output: str) -> None:
    """Write the store of ``E_level`` from the base sims."""
    base = _family_frames("equivariance", data, shard_files)
    indices = equivariance_base_indices(data["equivariance"]["levels"])
    first, _ = frame_range(data["equivariance"])
    error_first, error_last = data["equivariance"]["error_frames"]
    velocity, error = datasets.equivariance_level(base, indices, level, slice(error_first - first,
                                                                              error_last - first + 1))
    members = [1 + j * level for j in range(4)]
    by_base = {s.index: s for s in family_sims("equivariance", data)}
    sims = [{**by_base[m].metadata(), "index": j, "rotation_quarter_turns": j} for j, m in enumerate(members)]
    datasets.write_store(output, velocity, {
        "dataset": f"equivariance_{level}", "family": "equivariance", "level": level, "members": members,
        "data_equivariance_error": error, "error_frames": [error_first, error_last], "first_frame": first,
        "sims": sims,
        "config": _provenance(data, "equivariance"),
    }, chunk_frames=data["chunk_frames"])
    log.info("wrote %s level %d, data equivariance error %.6f", output, level, error)


def equivariance_table(stores: list[str], output: str) -> None:
    """``level,dataset,data_equivariance_error`` for every level store."""
    import zarr
    rows = []
    for path in stores:
        attrs = zarr.open_group(path, mode="r").attrs
        rows.append((attrs["level"], attrs["dataset"], attrs["data_equivariance_error"]))
    files.write_csv(sorted(rows), output, ["level", "dataset", "data_equivariance_error"])

