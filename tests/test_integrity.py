"""Damaged data is refused (pipeline/integrity.py): a chunk changed on disk, in a family store, an equivariance
level and an imported external store, stops training, evaluation and ``verify``; a clean store passes."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_external import WINDOWS as EXTERNAL_WINDOWS
from test_external import make_external
from helpers import ROOT, tiny_config, write_synthetic_store

from pipeline import datasets, evaluate, external, integrity, jobs, runs, train
from pipeline.catalogue import family_shards, frame_range


def damage(store, sim: int = 1, chunk: int = 0) -> str:
    """Overwrite 7 bytes in the middle of velocity chunk (sim, chunk) of ``store``; returns its key."""
    key = f"c/{sim}/{chunk}/0/0/0"
    path = Path(store, "velocity", *key.split("/"))
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 7] = bytes(255 - b for b in raw[middle:middle + 7])  # every byte changes
    path.write_bytes(bytes(raw))
    return key


def family_store(folder: Path) -> str:
    return write_synthetic_store(folder / "translation.zarr")


def level_store(folder: Path) -> str:
    """Level 1 built by the job's own function from shard files of the tiny preset's shapes."""
    data = tiny_config()["data"]
    first, last = frame_range(data["equivariance"])
    rng = np.random.default_rng(1)
    shards = []
    for j, sims in enumerate(family_shards("equivariance", data)):
        shards.append(str(folder / f"{j}.npy"))
        np.save(shards[-1], rng.normal(size=(len(sims), last - first, 2, data["grid"],
                                             data["grid"])).astype(np.float32))
    out = str(folder / "equivariance_1.zarr")
    jobs.build_equivariance_level(1, data, shards, out)
    return out


def external_store(folder: Path) -> str:
    entry = make_external(folder / "in", "npy")
    out = str(folder / "mine.zarr")
    external.import_dataset("mine", entry, out, chunk_frames=4, windows=EXTERNAL_WINDOWS)
    return out


KINDS = {"family": family_store, "level": level_store, "external": external_store}


def job_config(kind: str) -> tuple[dict, str]:
    """The tiny config and the dataset name under which the jobs read a store of ``kind``."""
    cfg = tiny_config(epochs=1)
    if kind == "external":
        cfg["external"] = {"mine": {"path": "unused", "format": "npy", "spec": "unused"}}
        cfg["windows"]["mine"], cfg["models"]["mine"] = dict(EXTERNAL_WINDOWS), ["conv"]
    return cfg, {"family": "translation", "level": "equivariance_1", "external": "mine"}[kind]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_of_store_checksums_every_chunk(tmp_path, kind):
    store = KINDS[kind](tmp_path)
    group = zarr.open_group(store, mode="r")
    for name, array in group.arrays():
        assert integrity.has_checksums(array), name
    report = integrity.verify_store(store)
    assert (report.status, report.damaged) == ("ok", [])
    with pytest.raises(IndexError):  # a bad selection is no damage: zarr's own error
        datasets.open_store(store).velocity[99]
    assert report.chunks == sum(int(np.prod(a.cdata_shape)) for _, a in group.arrays())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_damaged_chunk_is_refused_by_training_evaluation_and_verify(tmp_path, kind):
    cfg, dataset = job_config(kind)
    store = KINDS[kind](tmp_path)
    train.train_run(runs.train_params(cfg, dataset, "conv"), dataset, store, "conv", 0, str(tmp_path / "clean"),
                    progress=False)  # a model of the clean store, to evaluate on the damaged one
    model = str(tmp_path / "clean" / "model.pt")
    sims = zarr.open_group(store, mode="r").attrs["sims"]
    frames, cf = datasets.open_store(store).velocity.shape[1], zarr.open_group(store, mode="r")["velocity"].chunks[1]
    windows = runs.evaluate_params(cfg, dataset)["windows"]
    chunk = (windows["valid"][0] + windows["offset"]) // cf  # a chunk that evaluation reads (a train sim's)
    key = damage(store, sim=1, chunk=chunk)
    chunk_file = os.path.join(store, "velocity", *key.split("/"))
    first_frame, last_frame = chunk * cf, min((chunk + 1) * cf, frames) - 1

    def assert_names_it(message: str):
        assert store in message and key in message and chunk_file in message
        assert f"sim 1 (role {sims[1]['role']}, index {sims[1]['index']})" in message
        assert f"frames {first_frame}..{last_frame}" in message
        assert "delete the store" in message and "Snakemake rebuild" in message
        assert message.count("\n  - ") == 1  # only the damaged chunk is listed

    with pytest.raises(integrity.DamagedStoreError) as e:
        datasets.load(store)
    assert_names_it(str(e.value))
    with pytest.raises(integrity.DamagedStoreError) as e:  # training: the job's function
        train.train_run(runs.train_params(cfg, dataset, "conv"), dataset, store, "conv", 0, str(tmp_path / "run"),
                        progress=False)
    assert_names_it(str(e.value))
    assert not (tmp_path / "run" / "model.pt").exists()
    # evaluation, reading the store whole and chunk by chunk (a cache of two chunks: pipeline.loader)
    for cache_mb in (None, 1e-6):
        with pytest.raises(integrity.DamagedStoreError) as e:
            evaluate.evaluate_run(runs.evaluate_params(cfg, dataset), dataset, store, model,
                                  str(tmp_path / "metrics.json"), cache_mb=cache_mb)
        assert_names_it(str(e.value))
        assert not (tmp_path / "metrics.json").exists()
    report = integrity.verify_store(store)
    assert report.status == "damaged" and [d.key for d in report.damaged] == [key]
    assert_names_it(report.detail)
    out = io.StringIO()
    assert integrity.verify([store], out=out) == 1
    assert "damaged" in out.getvalue() and key in out.getvalue()


def test_a_missing_chunk_file_is_damage_not_zeros(tmp_path):
    store = family_store(tmp_path)
    Path(store, "velocity", "c", "2", "0", "0", "0", "0").unlink()
    with pytest.raises(integrity.DamagedStoreError, match=r"c/2/0/0/0/0 .*the chunk file is missing"):
        datasets.open_store(store)
    assert [d.key for d in integrity.verify_store(store).damaged] == ["c/2/0/0/0/0"]


def test_a_damaged_coordinate_is_found_by_verify(tmp_path):
    store = family_store(tmp_path)
    path = Path(store, "time", "c", "0")
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0xFF
    path.write_bytes(bytes(raw))
    report = integrity.verify_store(store)
    assert report.status == "damaged" and [(d.array, d.key) for d in report.damaged] == [("time", "c/0")]


def test_a_store_without_checksums_is_reported_not_refused(tmp_path, caplog):
    """Stores written before the checksums: readable as before, verify says it cannot check them."""
    velocity = np.random.default_rng(0).normal(size=(2, 4, 2, 4, 4)).astype(np.float32)
    group = zarr.open_group(str(tmp_path / "old.zarr"), mode="w", zarr_format=3)
    group.create_array("velocity", shape=velocity.shape, dtype="float32", chunks=(1, 2, 2, 4, 4))[...] = velocity
    group.attrs.update({"dataset": "old", "sims": [{"index": 0, "role": "train"}, {"index": 1, "role": "train"}]})
    with caplog.at_level("WARNING", logger="pipeline"):
        np.testing.assert_array_equal(datasets.load(tmp_path / "old.zarr").velocity, velocity)
    assert "without chunk checksums" in caplog.text
    report = integrity.verify_store(str(tmp_path / "old.zarr"))
    assert report.status == "no checksums" and "delete the store" in report.detail
    assert integrity.verify([str(tmp_path / "old.zarr")], out=io.StringIO()) == 0


def test_verify_command_exit_status(tmp_path):
    clean, bad = tmp_path / "clean", tmp_path / "bad"
    clean.mkdir(), bad.mkdir()
    stores = [family_store(clean), family_store(bad)]
    cmd = [sys.executable, "-m", "pipeline.integrity"]
    done = subprocess.run([*cmd, stores[0]], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    before = {p: p.read_bytes() for p in Path(stores[1]).rglob("*") if p.is_file()}
    key = damage(stores[1])
    before[Path(stores[1], "velocity", *key.split("/"))] = Path(stores[1], "velocity", *key.split("/")).read_bytes()
    done = subprocess.run([*cmd, *stores], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and key in done.stdout and "1 damaged" in done.stdout
    assert {p: p.read_bytes() for p in Path(stores[1]).rglob("*") if p.is_file()} == before  # nothing changed
    shutil.rmtree(stores[1])
    done = subprocess.run([*cmd, *stores], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "absent" in done.stdout
