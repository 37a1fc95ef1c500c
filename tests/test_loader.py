"""The bounded-memory sample reader (pipeline/loader.py) gives exactly the in-memory samples."""
import numpy as np
import torch

from pipeline import datasets
from pipeline.rollout import Samples
from pipeline.loader import MB, SampleSource, StoreSamples

WINDOWS = {"offset": 1, "input_length": 3, "rollout": 4, "train": [0, 9], "valid": [9, 11], "test_future": [11, 13],
           "test_domain": [0, 13]}


def store(tmp_path):
    velocity = np.random.default_rng(0).normal(size=(4, 21, 2, 6, 6)).astype(np.float32)
    sims = [{"index": i, "role": r} for i, r in enumerate(["train", "train", "test_domain", "train"])]
    path = tmp_path / "d.zarr"
    datasets.write_store(path, velocity, {"dataset": "d", "sims": sims}, chunk_frames=5)
    return str(path), velocity



def assert_same_samples(read, memory, seed: int) -> None:
    """``read`` gives exactly the in-memory reader's samples: in a random order, 5 at a time, and batch by batch."""
    assert len(read) == len(memory)
    order = torch.randperm(len(memory), generator=torch.Generator().manual_seed(seed))
    for lo in range(0, len(memory), 5):
        for a, b in zip(read.get(order[lo:lo + 5]), memory.get(order[lo:lo + 5])):
            assert torch.equal(a, b)
    batches, expected = list(read.batches(4)), list(memory.batches(4))
    assert len(batches) == len(expected) > 0
    for (xa, ya), (xb, yb) in zip(batches, expected):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)

def test_store_samples_equal_the_in_memory_samples(tmp_path):
    path, velocity = store(tmp_path)
    chunk_mb = 5 * 2 * 6 * 6 * 4 / MB
    small = SampleSource(path, "cpu", cache_mb=3 * chunk_mb)  # three chunks of a store of 20
    whole = SampleSource(path, "cpu", cache_mb=1)
    assert not small.in_memory and whole.in_memory and small.cache.capacity == 3
    ds = small.dataset
    for split in ("train", "valid", "test_domain"):
        w = datasets.split_windows(ds, split, WINDOWS, out_length=2 if split != "test_domain" else None)
        streamed, memory = small.samples(w), whole.samples(w)
        assert isinstance(streamed, StoreSamples) and isinstance(memory, Samples) and len(streamed) == len(memory)
        assert_same_samples(streamed, memory, seed=1)
        assert len(small.cache._chunks) <= 3
    x, y = whole.samples(datasets.split_windows(ds, "train", WINDOWS, out_length=2)).get(torch.tensor([10]))
    np.testing.assert_array_equal(x[0].numpy(), velocity[1, 2:5])  # sim 1, start 1: frames 2..4 in, 5..6 out
    np.testing.assert_array_equal(y[0].numpy(), velocity[1, 5:7])


def test_reading_in_store_order_decodes_each_chunk_once(tmp_path):
    path, _ = store(tmp_path)
    source = SampleSource(path, "cpu", cache_mb=2 * 5 * 2 * 6 * 6 * 4 / MB)
    samples = source.samples(datasets.split_windows(source.dataset, "test_domain", WINDOWS))
    for _ in samples.batches(3):
        pass
    # one held-out sim, windows up to frame 12 + 1 + 3 + 4 - 1 = 19: chunks 0..3, each decoded once
    assert source.cache.reads == 4 and source.cache.hits > 0


# --- the scratch copy (training.scratch) -----------------------------------------------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pipeline.loader import ScratchCopy, store_key  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHUNK_MB = 5 * 2 * 6 * 6 * 4 / MB


def _copies(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.endswith(".lock"))


def test_scratch_samples_equal_the_in_memory_samples(tmp_path):
    path, velocity = store(tmp_path)
    scratch = tmp_path / "scratch"
    source = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch))
    whole = SampleSource(path, "cpu", cache_mb=1)
    assert not source.in_memory and source.scratch.built and "scratch copy" in source.way
    np.testing.assert_array_equal(np.load(source.scratch.path), velocity)  # a plain .npy of the velocity
    for split in ("train", "valid", "test_domain"):
        w = datasets.split_windows(source.dataset, split, WINDOWS, out_length=2 if split != "test_domain" else None)
        scratched, memory = source.samples(w), whole.samples(w)
        assert_same_samples(scratched, memory, seed=2)
    again = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch))
    assert not again.scratch.built and again.scratch.path == source.scratch.path, "a second job reuses the copy"


def test_a_rebuilt_store_gets_a_new_copy_and_the_stale_one_goes(tmp_path):
    path, velocity = store(tmp_path)
    scratch = tmp_path / "scratch"
    first = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch)).scratch.path
    key = store_key(path)
    datasets.write_store(path, velocity[:, ::-1] + 1, {"dataset": "d", "sims": datasets.open_store(path).attrs["sims"]},
                         chunk_frames=5)
    assert store_key(path) != key
    second = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch)).scratch
    assert second.built and second.path != first and _copies(scratch) == [second.path.name]
    np.testing.assert_array_equal(np.load(second.path), velocity[:, ::-1] + 1)


SHARE = """
import sys, time, torch
from pipeline import datasets
from pipeline.loader import SampleSource
import pipeline.loader as loader
write = loader.ScratchCopy._write
def slow_write(self, *args):  # hold the lock a while, so that the other job surely waits on it
    time.sleep(1.5)
    write(self, *args)
loader.ScratchCopy._write = slow_write
open(sys.argv[4], "w").close()  # started; then wait for the other job to start too
while not all(__import__("os").path.exists(p) for p in sys.argv[5:]):
    time.sleep(0.01)
source = SampleSource(sys.argv[1], "cpu", cache_mb=float(sys.argv[2]), scratch=sys.argv[3])
w = datasets.split_windows(source.dataset, "train", {"offset": 1, "input_length": 3, "rollout": 4, "train": [0, 9]}, 2)
x, y = source.samples(w).get(torch.arange(len(w)))
print(source.scratch.built, source.scratch.path, float(x.sum() + y.sum()))
"""


def test_two_jobs_share_one_scratch_copy(tmp_path):
    path, velocity = store(tmp_path)
    scratch = tmp_path / "scratch"
    flags = [str(tmp_path / f"started{i}") for i in range(2)]
    jobs = [subprocess.Popen([sys.executable, "-c", SHARE, path, str(CHUNK_MB), str(scratch), flags[i], *flags],
                             cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    for job in jobs:
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
        outs.append(out.split())
    assert sorted(o[0] for o in outs) == ["False", "True"], "exactly one of the two jobs decompresses the store"
    assert outs[0][1:] == outs[1][1:], "both read the same copy and the same samples"
    assert _copies(scratch) == [Path(outs[0][1]).name]


KILLED = """
import os, signal, sys
import pipeline.loader as loader
from pipeline.loader import SampleSource
real = loader.np.ascontiguousarray
calls = []
def die_after_one_sim(*args, **kwargs):  # a job killed during decompression: one sim written, then SIGKILL
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
loader.np.ascontiguousarray = die_after_one_sim
SampleSource(sys.argv[1], "cpu", cache_mb=float(sys.argv[2]), scratch=sys.argv[3])
"""


def test_a_half_written_copy_of_a_killed_job_is_never_used(tmp_path):
    path, velocity = store(tmp_path)
    scratch = tmp_path / "scratch"
    killed = subprocess.run([sys.executable, "-c", KILLED, path, str(CHUNK_MB), str(scratch)], cwd=ROOT,
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    left = _copies(scratch)
    assert len(left) == 1 and left[0].endswith(".partial"), "only a temporary file is left, never the copy's name"
    assert 0 < (scratch / left[0]).stat().st_size < velocity.nbytes
    source = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch))
    assert source.scratch.built, "the next job writes a whole copy (the killed job's lock died with it)"
    assert _copies(scratch) == [source.scratch.path.name], "and deletes the killed job's leftover"
    np.testing.assert_array_equal(np.load(source.scratch.path), velocity)


def test_a_full_scratch_disk_stops_the_job_with_a_clear_error(tmp_path):
    path, _ = store(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    array = datasets.open_store(path).velocity
    free = __import__("shutil").disk_usage(scratch).free
    # checked before writing: the copy and the margin to spare exceed what the disk has free
    with pytest.raises(OSError,
                       match=r"training.scratch: .*scratch has \d+ MB free; the decompressed copy of .*d.zarr"):
        ScratchCopy(path, array, scratch, reserve_bytes=free)
    assert _copies(scratch) == []
    # the disk filling up while writing (a file size limit makes the write fail as a full disk would)
    code = ("import resource, signal, sys; from pipeline.loader import SampleSource; "
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000)); "
            "SampleSource(sys.argv[1], 'cpu', cache_mb=float(sys.argv[2]), scratch=sys.argv[3])")
    full = subprocess.run([sys.executable, "-c", code, path, str(CHUNK_MB), str(scratch)], cwd=ROOT,
                          capture_output=True, text=True)
    assert full.returncode == 1
    assert "training.scratch: " in full.stderr and "ran out of space while decompressing" in full.stderr
    assert _copies(scratch) == [], "the partial copy is removed"


def test_an_old_copy_a_job_is_opening_is_not_deleted(tmp_path):
    """A writer deletes another copy of the same store name only when no job holds that copy's lock (a job opens
    its copy under the lock), so two stores of one name (two workflow folders, one scratch disk) never pull a copy
    from under a job that is opening it."""
    import fcntl

    path, velocity = store(tmp_path)
    scratch = tmp_path / "scratch"
    first = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch)).scratch.path
    attrs = {"dataset": "d", "sims": datasets.open_store(path).attrs["sims"]}
    with open(first.with_name(first.name + ".lock"), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a job between checking the first copy and opening it
        datasets.write_store(path, velocity + 1, attrs, chunk_frames=5)
        second = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch)).scratch.path
        assert _copies(scratch) == sorted([first.name, second.name]), "the held copy stays"
    datasets.write_store(path, velocity + 2, attrs, chunk_frames=5)
    third = SampleSource(path, "cpu", cache_mb=CHUNK_MB, scratch=str(scratch)).scratch.path
    assert _copies(scratch) == [third.name], "unheld, both older copies go"
