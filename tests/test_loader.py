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
        order = torch.randperm(len(w), generator=torch.Generator().manual_seed(1))
        for lo in range(0, len(w), 5):
            for a, b in zip(streamed.get(order[lo:lo + 5]), memory.get(order[lo:lo + 5])):
                assert torch.equal(a, b)
        for (xa, ya), (xb, yb) in zip(streamed.batches(4), memory.batches(4)):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
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
