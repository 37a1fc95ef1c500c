"""The data rules through Snakemake: the paper DAG builds (dry run), the tiny preset runs for real."""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import yaml
from helpers import CONFIG, TINY, job_counts, snakemake

from pipeline import datasets
from pipeline.symmetry import rotate

DATA = [*[f"results/data/{d}.zarr" for d in ("translation", "rotation", "scaling")],
        "results/data/equivariance_levels.csv"]


def test_paper_data_dag_builds(tmp_path):
    done = snakemake(DATA, tmp_path, [CONFIG], "-n")
    counts = job_counts(done.stdout + done.stderr)
    # shards of at most 9 sims: translation 35 -> 4, rotation 36 -> 4, scaling 38 -> 5, equivariance 19 -> 3
    assert counts["simulate_shard"] == 16 and counts["assemble_dataset"] == 3
    assert counts["equivariance_level"] == 10 and counts["equivariance_table"] == 1


def test_bad_config_fails_before_any_job(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"data": {"grid": "sixty-four"}}))
    done = snakemake([], tmp_path, [CONFIG, tmp_path / "bad.yaml"], "-n", check=False)
    assert done.returncode != 0
    assert "config['data']['grid']: 'sixty-four' is not of type 'integer'" in done.stdout + done.stderr


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    snakemake(DATA, work, [CONFIG, TINY], cores=2)
    return work, yaml.safe_load(TINY.read_text())


def test_tiny_data_rules_write_complete_stores(tiny_data):
    work, tiny = tiny_data
    data = work / "results" / "data"
    grid = tiny["data"]["grid"]
    expected = {"translation": (4, 24), "rotation": (4, 23), "scaling": (3, 23)}
    for name, (sims, frames) in expected.items():
        d = datasets.load(data / f"{name}.zarr")
        assert d.velocity.shape == (sims, frames, 2, grid, grid) and d.velocity.dtype == np.float32
        assert np.isfinite(d.velocity).all() and np.abs(d.velocity).max() > 0.05
        assert d.attrs["family"] == name and d.attrs["versions"]["phiflow"] == "3.4.0"
        assert d.attrs["config"]["data"][name] == tiny["data"][name]
    assert datasets.load(data / "translation.zarr").roles == ["train", "train", "train", "test_domain"]
    assert datasets.load(data / "rotation.zarr").roles == ["train", "test_domain", "train", "train"]
    assert datasets.load(data / "scaling.zarr").roles == ["train", "test_domain", "train"]
    assert not list((data / "shards").rglob("*.npy")), "simulation shards are temporary"
    assert not list(data.glob("*.partial"))


def test_tiny_equivariance_levels(tiny_data):
    work, tiny = tiny_data
    data = work / "results" / "data"
    with open(data / "equivariance_levels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["level"]) for r in rows] == list(range(tiny["data"]["equivariance"]["levels"]))
    errors = [float(r["data_equivariance_error"]) for r in rows]
    assert errors[0] == 0.0 and 0 < errors[1] < errors[2], "more buoyancy spread, less symmetry"
    e0, e2 = datasets.load(data / "equivariance_0.zarr"), datasets.load(data / "equivariance_2.zarr")
    assert e0.velocity.shape == (4, 14, 2, 32, 32) and e2.attrs["members"] == [1, 3, 5, 7]
    assert e2.attrs["data_equivariance_error"] == pytest.approx(errors[2])
    # E_0 is four copies of one plume, turned by 0..3 quarter turns: exactly C4-symmetric
    for k in range(4):
        np.testing.assert_array_equal(rotate(e0.velocity[0], k), e0.velocity[k])


def test_tiny_stores_open_with_xarray(tiny_data):
    import xarray as xr

    work, tiny = tiny_data
    data = work / "results" / "data"
    levels = [f"equivariance_{n}" for n in range(tiny["data"]["equivariance"]["levels"])]
    for name in ["translation", "rotation", "scaling", *levels]:
        ds = xr.open_zarr(data / f"{name}.zarr", consolidated=True)
        stored = datasets.load(data / f"{name}.zarr")
        assert ds.velocity.dims == ("sim", "time", "component", "y", "x") and ds.attrs["dataset"] == name
        assert ds.role.values.tolist() == stored.roles and ds.attrs["sims"] == stored.attrs["sims"]
        first = stored.attrs["first_frame"]
        assert ds.time.values.tolist() == list(range(first + 1, first + 1 + stored.velocity.shape[1]))
        assert ds.x.values[0] == 0.5 and ds.x.attrs["units"] == "cells"
        held = ds.sel(sim=ds.role == "test_domain")
        np.testing.assert_array_equal(held.velocity.values, stored.velocity[stored.sims_with_role("test_domain")])
    rotation = xr.open_zarr(data / "rotation.zarr")
    held = rotation.sel(sim=rotation.role == "test_domain")
    held_out = [[int(k), int(s)] for k, s in zip(held.k.values, held.side.values)]
    assert held_out == tiny["data"]["rotation"]["test_domain"]
    level = xr.open_zarr(data / "equivariance_2.zarr")
    assert level.attrs["data_equivariance_error"] > 0 and level.rotation_quarter_turns.values.tolist() == [0, 1, 2, 3]


def test_verify_target_passes_clean_stores_and_fails_on_a_damaged_chunk(tiny_data, tmp_path):
    """`snakemake verify` on a copy of the tiny stores: every store ok, then one damaged chunk fails it, named."""
    work, _ = tiny_data
    shutil.copytree(work / "results" / "data", tmp_path / "results" / "data",
                    ignore=shutil.ignore_patterns("shards"))
    snakemake(["verify"], tmp_path, [CONFIG, TINY], cores=1)
    log = (tmp_path / "results" / "logs" / "verify.log").read_text()
    assert log.count("        ok  ") == 6 and "0 damaged" in log  # 3 families, 3 levels
    chunk = tmp_path / "results" / "data" / "equivariance_2.zarr" / "velocity" / "c" / "3" / "0" / "0" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x10  # one bit
    chunk.write_bytes(bytes(raw))
    done = snakemake(["verify"], tmp_path, [CONFIG, TINY], cores=1, check=False)
    assert done.returncode != 0
    log = (tmp_path / "results" / "logs" / "verify.log").read_text()
    assert "damaged  " in log and "equivariance_2.zarr" in log and "c/3/0/0/0/0" in log and "1 damaged" in log
    assert chunk.read_bytes() == bytes(raw)  # verify changes nothing
