import os

import numpy as np
import pytest
import xarray as xr

from helpers import CONFIG, TINY
from pipeline import config as pipeline_config
from pipeline import datasets
from pipeline.catalogue import equivariance_base_indices, shard_indices
from pipeline.families import family_sims
from pipeline.symmetry import rotate


@pytest.fixture(scope="module")
def tiny():
    return pipeline_config.load(TINY)


@pytest.fixture(scope="module")
def paper():
    return pipeline_config.load(CONFIG)


def test_paper_families_follow_the_protocol(paper):
    data = paper["data"]
    tr, ro, sc = (family_sims(f, data) for f in ("translation", "rotation", "scaling"))
    assert (len(tr), len(ro), len(sc)) == (35, 36, 38)
    assert sum(s.role == "test_domain" for s in tr) == sum(s.role == "test_domain" for s in ro) == 10
    assert sum(s.role == "test_domain" for s in sc) == 10
    by_xy = {(s.params["inflow_x"], s.params["inflow_y"]): s.plume for s in tr}
    for plume in by_xy.values():  # one buoyancy field over space for every sim, split at the centre line
        assert (plume.buoyancy, plume.buoyancy_right, plume.split_x) == ((0.0, 0.1), (0.0, 0.2), 32.0)
    b = by_xy[(8, 5)].buoyancy_field()[:, :, 1]  # [x, y]
    assert (b[:32] == 0.1).all() and (b[32:] == 0.2).all()
    by_k = {s.params["k"]: s for s in ro}
    assert by_k[1].plume.inflow == (32.0, 5.0) and by_k[1].plume.buoyancy == (0.0, 0.01)
    assert by_k[2].plume.inflow == (59.0, 32.0) and by_k[2].plume.buoyancy == pytest.approx((-0.02, 0.0))
    assert by_k[3].plume.inflow == (32.0, 59.0) and by_k[3].plume.buoyancy == pytest.approx((0.0, -0.033))
    assert by_k[4].plume.inflow == (5.0, 32.0) and by_k[4].plume.buoyancy == pytest.approx((0.04, 0.0))
    assert by_k[6].role == "test_domain" and by_k[7].role == "train"
    last = sc[-1].plume
    assert (last.grid, last.domain, last.inflow, last.radius) == (301, pytest.approx(300.8),
                                                                  pytest.approx((150.4, 23.5)), pytest.approx(23.5))
    assert [sc[i].role for i in (5, 30)] == ["test_domain", "test_domain"] and sc[0].role == "train"
    assert equivariance_base_indices(10) == sorted({1 + j * n for n in range(10) for j in range(4)})


def test_shards_cover_every_sim_once():
    for n, per in ((35, 9), (38, 9), (4, 2), (1, 5)):
        shards = shard_indices(n, per)
        flat = sorted(i for s in shards for i in s)
        assert flat == list(range(n)) and max(len(s) for s in shards) <= per


def test_store_round_trip_and_atomic_write(tmp_path):
    velocity = np.random.default_rng(0).normal(size=(3, 10, 2, 8, 8)).astype(np.float32)
    sims = [{"index": i, "role": r} for i, r in enumerate(["train", "test_domain", "train"])]
    path = tmp_path / "d.zarr"
    datasets.write_store(path, velocity, {"dataset": "d", "family": "translation", "sims": sims}, chunk_frames=4)
    d = datasets.load(path)
    np.testing.assert_array_equal(d.velocity, velocity)
    assert d.roles == ["train", "test_domain", "train"] and d.sims_with_role("train") == [0, 2]
    assert d.attrs["versions"]["phiflow"] == "3.4.0"
    import zarr
    arr = zarr.open_group(str(path), mode="r")["velocity"]
    assert arr.metadata.dimension_names == datasets.DIMENSIONS and arr.chunks == (1, 4, 2, 8, 8)
    assert sorted(os.listdir(tmp_path)) == ["d.zarr"]
    with pytest.raises(ValueError, match="non-finite"):
        bad = velocity.copy()
        bad[0, 0, 0, 0, 0] = np.nan
        datasets.write_store(tmp_path / "bad.zarr", bad, {"dataset": "bad", "sims": sims})
    assert not (tmp_path / "bad.zarr").exists() and not (tmp_path / "bad.zarr.partial").exists()
    with pytest.raises(ValueError, match="3 sims of velocity but 2 sim records"):
        datasets.write_store(tmp_path / "short.zarr", velocity, {"dataset": "s", "sims": sims[:2]})


def test_store_opens_as_a_labelled_xarray_dataset(tmp_path):
    import dask.array as da
    rng = np.random.default_rng(2)
    velocity = rng.normal(size=(3, 6, 2, 4, 4)).astype(np.float32)
    sims = [{"index": i, "role": r, "k": i + 1, "label": f"sim {i}", "inflow": [1.0 * i, 2.0], "x": 7}
            for i, r in enumerate(["train", "test_domain", "train"])]
    path = tmp_path / "d.zarr"
    lazy = da.from_array(velocity, chunks=(1, 2, 2, 4, 4))  # streamed chunk by chunk
    datasets.write_store(path, lazy, {"dataset": "d", "sims": sims, "first_frame": 1}, chunk_frames=4)
    ds = xr.open_zarr(str(path), consolidated=True)  # the store as xarray reads it: lazy, consolidated metadata
    assert dict(ds.sizes) == {"sim": 3, "time": 6, "component": 2, "y": 4, "x": 4}
    assert ds.velocity.dims == datasets.DIMENSIONS and ds.velocity.attrs["units"] == "cells / simulation step"
    assert ds.time.values.tolist() == [2, 3, 4, 5, 6, 7] and ds.time.attrs["units"] == "simulation step"
    assert ds.x.values.tolist() == [0.5, 1.5, 2.5, 3.5] and ds.y.attrs["units"] == "cells"
    assert ds.component.values.tolist() == ["vx", "vy"]
    assert ds.inflow.dims == ("sim", "component") and ds.sim_x.values.tolist() == [7, 7, 7]  # "x" is a dimension
    held = ds.sel(sim=ds.role == "test_domain")
    assert held.k.values.tolist() == [2] and held.label.values.tolist() == ["sim 1"]
    np.testing.assert_array_equal(held.velocity.values, velocity[[1]])
    assert ds.attrs["sims"] == sims and ds.attrs["first_frame"] == 1
    stats = datasets.statistics(path)
    assert stats == ds.attrs["statistics"]
    np.testing.assert_allclose(stats["mean"], velocity.mean(axis=(0, 1, 3, 4)), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], velocity.std(axis=(0, 1, 3, 4)), rtol=1e-5)
    import zarr
    assert zarr.open_group(str(path), mode="r").metadata.consolidated_metadata is not None
    lazy_ds = datasets.open_store(path)
    assert isinstance(lazy_ds.velocity.array, zarr.Array) and lazy_ds.roles == ["train", "test_domain", "train"]
    np.testing.assert_array_equal(lazy_ds.velocity[1, 2:4], velocity[1, 2:4])


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.zarr"):
        datasets.load(tmp_path / "nowhere.zarr")


def test_equivariance_level_rotates_members_and_measures_error():
    rng = np.random.default_rng(1)
    base_indices = [1, 2, 3, 4]
    base = rng.normal(size=(4, 5, 2, 6, 6))
    level, error = datasets.equivariance_level(base, base_indices, 1)
    level = level.compute()  # lazy: a dask array
    for j in range(4):
        np.testing.assert_array_equal(level[j], rotate(base[j], j))
    expected = np.mean([np.abs(base[0] - base[j]).mean() for j in (1, 2, 3)])
    assert error == pytest.approx(expected)
    _, late = datasets.equivariance_level(base, base_indices, 1, slice(2, 4))
    assert late == pytest.approx(np.mean([np.abs(base[0, 2:4] - base[j, 2:4]).mean() for j in (1, 2, 3)]))
    assert late != pytest.approx(error)
    same, zero = datasets.equivariance_level(base, base_indices, 0)
    assert zero == 0.0 and np.array_equal(same[1].compute(), rotate(base[0], 1))
    with pytest.raises(KeyError, match=r"needs base sims \[5, 7\]"):
        datasets.equivariance_level(base, base_indices, 2)


def test_windows_follow_the_protocol_offsets(tiny):
    velocity = np.arange(3 * 23, dtype=np.float32).reshape(3, 23, 1, 1, 1) * np.ones((1, 1, 2, 2, 2), np.float32)
    d = datasets.Dataset("mem", velocity, {"sims": [{"role": r} for r in ("train", "test_domain", "train")]})
    w = tiny["windows"]["translation"]
    train = datasets.split_windows(d, "train", w, out_length=2)
    assert train.sims == (0, 2) and train.starts == tuple(range(0, 5)) and len(train) == 10
    x, y = datasets.window_arrays(d, train, [7])  # sim 2, start 2: inputs frames 4..6, targets 7..8
    assert x.shape == (1, 3, 2, 2, 2) and y.shape == (1, 2, 2, 2, 2)
    assert x[0, :, 0, 0, 0].tolist() == [2 * 23 + 4, 2 * 23 + 5, 2 * 23 + 6]
    assert y[0, :, 0, 0, 0].tolist() == [2 * 23 + 7, 2 * 23 + 8]
    dom = datasets.split_windows(d, "test_domain", w)
    assert dom.sims == (1,) and dom.out_length == 4
    with pytest.raises(ValueError, match="needs frame 27 but the store has 23 frames"):
        datasets.split_windows(d, "test_future", {**w, "test_future": [0, 20]})
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        datasets.split_windows(d, "tset", w)


def test_assembly_streams_chunk_by_chunk(tmp_path):
    """write_store of lazy_frames reads the source one store chunk at a time (never the whole array)."""
    velocity = np.random.default_rng(3).normal(size=(3, 10, 2, 4, 4)).astype(np.float32)

    class Recorded:
        def __init__(self, a):
            self.a, self.shape, self.dtype, self.ndim, self.reads = a, a.shape, a.dtype, a.ndim, []

        def __getitem__(self, key):
            self.reads.append(self.a[key].shape)
            return self.a[key]

    source = Recorded(velocity)
    sims = [{"index": i, "role": "train"} for i in range(3)]
    datasets.write_store(tmp_path / "d.zarr", datasets.lazy_frames(source, 4), {"dataset": "d", "sims": sims},
                         chunk_frames=4)
    np.testing.assert_array_equal(datasets.load(tmp_path / "d.zarr").velocity, velocity)
    assert source.reads and max(int(np.prod(r)) for r in source.reads) <= 4 * 2 * 4 * 4
