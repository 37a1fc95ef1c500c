"""The relaxed steerable layer's constants kept on disk between jobs (pipeline.models.rotation.basis_cache_dir):
a model built from the cache equals one built from escnn, weights and torch's random state after it included, and
the cached build needs no escnn; a damaged cache file is recomputed and replaced."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
BUILD = """
import sys, torch
from pipeline.models import build
torch.manual_seed(3)
model = build("rsteer", "rotation", in_frames=2, hidden=2, layers=3, kernel_size=3, alpha=0.1)
torch.save({"state": model.state_dict(), "rng": torch.get_rng_state(), "escnn": "escnn" in sys.modules}, sys.argv[1])
"""


def _build(out: Path, cache: str) -> dict:
    env = {**os.environ, "PIPELINE_BASIS_CACHE": cache}
    subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=ROOT, env=env, check=True, capture_output=True)
    return torch.load(out, weights_only=True)


def _assert_same(a: dict, b: dict) -> None:
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert torch.equal(a["state"][k], b["state"][k]), k
    assert torch.equal(a["rng"], b["rng"]), "the cached build must draw what escnn's probe layer draws"


def test_cached_basis_builds_the_same_model_without_escnn(tmp_path):
    cache = tmp_path / "bases"
    reference = _build(tmp_path / "off.pt", "")           # cache off: escnn every time
    first = _build(tmp_path / "first.pt", str(cache))      # empty cache: escnn, then the files are written
    files = sorted(cache.glob("steerable-*.pt"))
    assert len(files) == 3, files  # vector->regular, regular->regular, regular->vector
    second = _build(tmp_path / "second.pt", str(cache))    # from the files
    assert reference["escnn"] and first["escnn"] and not second["escnn"]
    _assert_same(reference, first)
    _assert_same(reference, second)
    assert not list(cache.glob("*.partial")), "no temporary file is left behind"

    files[0].write_bytes(b"half a file")                   # damaged: recomputed from escnn and replaced
    again = _build(tmp_path / "again.pt", str(cache))
    assert again["escnn"], "a damaged file is not used"
    _assert_same(reference, again)
    assert torch.load(files[0], weights_only=True)["basis"].ndim == 5, "the damaged file is replaced by a whole one"
