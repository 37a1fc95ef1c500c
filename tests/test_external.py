"""Bring your own data (pipeline/external.py): registration, the checks that refuse bad data, and a run end to end."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

import helpers
from helpers import CONFIG, TINY
from pipeline import config as pipeline_config
from pipeline import datasets, external

WINDOWS = {"offset": 1, "input_length": 2, "rollout": 3, "train": [0, 4], "valid": [4, 6], "test_future": [6, 8],
           "test_domain": [0, 8]}


def external_velocity(shape=(5, 14, 2, 8, 8)) -> np.ndarray:
    """The velocity :func:`make_external` writes: smooth random fields, the same for the same shape."""
    rng = np.random.default_rng(0)
    return np.cumsum(rng.normal(scale=0.1, size=shape), axis=1).astype(np.float32)


def make_external(folder: Path, fmt: str = "npy", shape=(5, 14, 2, 8, 8), spec_extra=None) -> dict:
    """A small dataset of smooth random fields in ``folder`` (two files for npy/pt) and its spec; returns the
    ``config['external']`` entry."""
    folder.mkdir(parents=True, exist_ok=True)
    v = external_velocity(shape)
    data = folder / ("data.zarr" if fmt == "zarr" else "data")
    if fmt == "zarr":
        import zarr
        zarr.create_array(str(data), shape=v.shape, dtype="float32")[...] = v
    else:
        data.mkdir()
        for i, part in enumerate((v[:2], v[2:])):
            if fmt == "npy":
                np.save(data / f"part{i}.npy", part)
            else:
                torch.save(torch.from_numpy(part), data / f"part{i}.pt")
    spec = {"symmetry": "rotation", "roles": {"test_domain": [3]},
            "parameters": {"re": [100 * (i + 1) for i in range(shape[0])]},
            "time_step": 0.5, "time_units": "s", "cell_size": 0.25, "length_units": "m", **(spec_extra or {})}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return {"path": str(data), "format": fmt, "spec": str(folder / "spec.yaml")}


def registered(entry: dict, name: str = "mine") -> dict:
    config = pipeline_config.load(CONFIG)
    config["external"] = {name: entry}
    config["windows"][name] = dict(WINDOWS)
    config["models"][name] = ["conv"]
    return config


@pytest.mark.parametrize("fmt", ["npy", "pt", "zarr"])
def test_import_writes_our_layout(tmp_path, fmt):
    entry = make_external(tmp_path / "in", fmt)
    pipeline_config.validate(registered(entry))
    out = tmp_path / "mine.zarr"
    external.import_dataset("mine", entry, str(out), chunk_frames=4, windows=WINDOWS)
    ds = xr.open_zarr(str(out), consolidated=True)
    assert dict(ds.sizes) == {"sim": 5, "time": 14, "component": 2, "y": 8, "x": 8}
    # the values, in order: the two files of npy/pt joined part0 then part1, nothing rescaled or cast
    np.testing.assert_array_equal(ds.velocity.values, external_velocity())
    assert ds.role.values.tolist() == ["train"] * 3 + ["test_domain", "train"] and ds.re.values.tolist()[3] == 400
    assert ds.time.values[:2].tolist() == [0.5, 1.0] and ds.time.attrs["units"] == "s"
    assert ds.x.values[0] == 0.125 and ds.x.attrs["units"] == "m" and ds.velocity.attrs["units"] == "m / s"
    assert ds.attrs["symmetry"] == "rotation" and ds.attrs["dataset"] == ds.attrs["family"] == "mine"


def test_dag_time_checks_name_the_spec(tmp_path):
    entry = make_external(tmp_path / "in", spec_extra={"symmetry": "reflection"})
    with pytest.raises(pipeline_config.ConfigError, match=r"spec\.yaml: symmetry is 'reflection'"):
        pipeline_config.validate(registered(entry))
    entry = make_external(tmp_path / "in2", spec_extra={"roles": {"test_domain": [1], "train": [1, 2]}})
    with pytest.raises(pipeline_config.ConfigError,
                       match=r"spec\.yaml: sim 1 is listed in roles.test_domain and roles.train"):
        pipeline_config.validate(registered(entry))
    entry = make_external(tmp_path / "in3")
    config = registered({**entry, "path": str(tmp_path / "nowhere")})
    with pytest.raises(pipeline_config.ConfigError, match="nowhere: no such file or folder"):
        pipeline_config.validate(config)
    config = registered(entry)
    del config["windows"]["mine"]
    with pytest.raises(pipeline_config.ConfigError,
                       match=r"config\['windows'\]: no entry for the external dataset 'mine'"):
        pipeline_config.validate(config)
    config = registered(entry)
    config["models"]["typo"] = ["conv"]
    with pytest.raises(pipeline_config.ConfigError, match=r"config\['models'\]: 'typo' is neither"):
        pipeline_config.validate(config)


@pytest.mark.parametrize("case, shape, spec, message", [
    ("rank", (5, 14, 2, 8), {},
     r"part0\.npy: expected an array of shape \(sims, frames, 2, H, W\).*got shape \(2, 14, 2, 8\)"),
    ("square", (5, 14, 2, 8, 6), {}, r"part0\.npy: rotation models need square frames \(H == W\); got H=8, W=6"),
    ("roles", (5, 14, 2, 8, 8), {"roles": {"test_domain": [3, 9]}},
     r"spec\.yaml: roles.test_domain names sims \[9\], but .*data holds 5 sims \(0..4\)"),
    ("nan", (5, 14, 2, 8, 8), {}, r"part1\.npy: NaN or infinite values in sims \[1\] of this file"),
    ("windows", (5, 9, 2, 8, 8), {}, r"split 'valid' needs frame 10 but the store has 9 frames.*windows'\]\['mine'\]"),
])
def test_bad_data_is_refused_naming_the_file(tmp_path, case, shape, spec, message):
    entry = make_external(tmp_path / "in", shape=shape, spec_extra=spec)
    if case == "nan":
        part = np.load(Path(entry["path"]) / "part1.npy")
        part[1, 3, 0, 2, 2] = np.nan
        np.save(Path(entry["path"]) / "part1.npy", part)
    out = tmp_path / "mine.zarr"
    with pytest.raises(external.ExternalDataError, match=message):
        external.import_dataset("mine", entry, str(out), chunk_frames=4, windows=WINDOWS)
    assert not out.exists() and not (tmp_path / "mine.zarr.partial").exists()


def snakemake(work: Path, overlay: dict, *targets):
    (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    return helpers.snakemake(targets, work, [CONFIG, TINY, work / "overlay.yaml"], "--quiet", "rules", cores=2,
                             check=False)


def overlay(entry: dict) -> dict:
    return {"external": {"mine": entry}, "windows": {"mine": WINDOWS},
            "models": {"translation": [], "rotation": [], "scaling": [], "equivariance": [], "mine": ["conv"]},
            "training": {"override": {"epochs": 1}},
            "figures": {"fig3": {"datasets": ["mine"], "steps": [1, 3]}}}


def test_external_dataset_trains_evaluates_and_draws_end_to_end(tmp_path):
    entry = make_external(tmp_path / "in")
    run = "results/runs/mine/conv/seed0"
    done = snakemake(tmp_path, overlay(entry), f"{run}/metrics.json", "results/tables/rollout_mine.csv",
                     "results/figures/rollout_mine.png", "results/figures/fig3_mine.png")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    m = json.loads((tmp_path / run / "metrics.json").read_text())
    assert (m["dataset"], m["model"], m["symmetry"]) == ("mine", "conv", "rotation")
    assert all(math.isfinite(m[k]) for k in ("valid_rmse", "test_future_rmse", "test_domain_rmse",
                                             "equivariance_error"))
    assert len(m["test_domain_rmse_per_step"]) == WINDOWS["rollout"]
    assert (tmp_path / "results" / "figures" / "fig3_mine.png").stat().st_size > 0
    assert datasets.load(tmp_path / "results" / "data" / "mine.zarr").roles == ["train"] * 3 + ["test_domain", "train"]


def test_invalid_external_data_stops_the_workflow_before_training(tmp_path):
    entry = make_external(tmp_path / "in", shape=(5, 14, 2, 8, 6))  # not square, rotation models
    done = snakemake(tmp_path, overlay(entry), "results/runs/mine/conv/seed0/metrics.json")
    assert done.returncode != 0
    assert "part0.npy: rotation models need square frames (H == W); got H=8, W=6" in done.stderr
    assert not (tmp_path / "results" / "runs").exists() and not (tmp_path / "results" / "data" / "mine.zarr").exists()
