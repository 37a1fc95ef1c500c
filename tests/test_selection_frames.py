"""Model selection sees no test frame: per sim, the frames that the hyper-parameter search's score reads and the frames
that the test splits score are disjoint, on config.yaml and both presets (docs/metrics.md, "Model selection")."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import config

from pipeline import config as pipeline_config
from pipeline import datasets, runs
from pipeline.catalogue import frame_range, sim_roles

TEST_FAMILIES = ("translation", "rotation", "scaling")   # the families with test splits (the levels have none)


def load(preset: str | None) -> dict:
    return pipeline_config.validate(config(preset))


def layout(cfg: dict, family: str) -> datasets.Dataset:
    """A dataset with the config's sims, roles and stored frames and no data (1 x 1 pixels, one shared zero):
    what the window code reads to place windows."""
    roles = sim_roles(family, cfg["data"])
    first, last = frame_range(cfg["data"][family])
    velocity = np.broadcast_to(np.float32(0), (len(roles), last - first, 2, 1, 1))
    return datasets.Dataset(f"{family} of the config", velocity, {"sims": [{"role": r} for r in roles]})


def frames_by_sim(windows: datasets.Windows, part: str) -> dict[int, set[int]]:
    """``{sim: frames}`` of every sample of ``windows``: ``part`` ``read`` (inputs and targets) or ``targets``."""
    out: dict[int, set[int]] = {}
    for i in range(len(windows)):
        sim, _ = windows.index(i)
        inputs, targets = windows.slices(i)
        first = inputs.start if part == "read" else targets.start
        out.setdefault(sim, set()).update(range(first, targets.stop))
    return out


def scored_by_tests(ds: datasets.Dataset, w: dict) -> dict[int, set[int]]:
    scored: dict[int, set[int]] = {}
    for split in ("test_future", "test_domain"):
        for sim, frames in frames_by_sim(datasets.split_windows(ds, split, w), "targets").items():
            scored.setdefault(sim, set()).update(frames)
    return scored


@pytest.mark.parametrize("preset", [None, "quick", "tiny"])
def test_selection_reads_no_frame_that_a_test_split_scores(preset):
    cfg = load(preset)
    for family in TEST_FAMILIES:
        w = cfg["windows"][family]
        ds = layout(cfg, family)
        selection = datasets.selection_windows(ds, w)   # what tuning.validation_score reads
        assert len(selection) > 0 and selection.out_length == w["rollout"]
        read, scored = frames_by_sim(selection, "read"), scored_by_tests(ds, w)
        assert set(read) == set(ds.sims_with_role("train")), f"{preset} {family}: selection reads every train sim"
        for sim in range(len(ds.roles)):
            common = read.get(sim, set()) & scored.get(sim, set())
            assert not common, (f"{preset or 'config.yaml'} {family} sim {sim}: "
                                f"selection reads test frames {sorted(common)}")


def test_the_paper_config_selects_on_the_early_validation_windows_and_the_old_score_overlapped():
    cfg = load(None)
    w = cfg["windows"]["rotation"]
    ds = layout(cfg, "rotation")
    assert runs.selection_starts(w) == tuple(range(160, 181))   # last target 180 + 2 + 10 + 19 = 211 < 212
    scored = scored_by_tests(ds, w)
    sim = ds.sims_with_role("train")[0]
    # the old score (every validation window at the test horizon) read targets 212..230, shared with 19 of the 50
    # test-future windows: the test above catches it
    old = frames_by_sim(datasets.split_windows(ds, "valid", w, w["rollout"]), "read")[sim]
    assert sorted(old & scored[sim]) == list(range(212, 231))
    future = datasets.split_windows(ds, "test_future", w)
    shared = [s for s in future.starts if set(range(s + 12, s + 32)) & old]
    assert len(shared) == 19


def test_early_stopping_keeps_the_papers_protocol_and_its_overlap_is_the_documented_one():
    """Early stopping scores every validation window at the training horizon (the paper's protocol, kept): with
    out_length 6 the windows starting at 195..199 have targets up to frame 216, frames 212..216 of test_future's."""
    cfg = load(None)
    w = cfg["windows"]["rotation"]
    ds = layout(cfg, "rotation")
    out_length = runs.train_params(cfg, "rotation", "rsteer")["training"]["out_length"]
    assert out_length == 6
    sim = ds.sims_with_role("train")[0]
    valid = frames_by_sim(datasets.split_windows(ds, "valid", w, out_length), "targets")[sim]
    assert sorted(valid & scored_by_tests(ds, w)[sim]) == [212, 213, 214, 215, 216]


def test_a_config_without_a_selection_window_is_refused_by_name():
    cfg = load("tiny")
    cfg["tuning"]["models"]["rotation"] = ["conv"]
    cfg["windows"]["rotation"] = {**cfg["windows"]["rotation"], "test_future": [8, 11]}
    with pytest.raises(pipeline_config.ConfigError, match=r"config\['windows'\]\['rotation'\]: no 'valid' window"):
        pipeline_config.validate(cfg)
    with pytest.raises(ValueError, match="move windows.valid earlier"):
        datasets.selection_windows(layout(cfg, "rotation"), cfg["windows"]["rotation"])
