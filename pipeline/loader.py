"""Sample windows for training and evaluation, in memory bounded by a cache rather than by the store's size.

:class:`SampleSource` opens a store once per job and hands out the samples of each split:

* when the whole velocity array fits in ``cache_mb`` (the paper's stores do: at most ~400 MB), or no cache is
  given, it is read once into one tensor on the device and every split indexes it (:class:`Samples`:
  the fastest way, unchanged);
* otherwise :class:`StoreSamples` assembles each batch from the store's chunks (one sim by ``chunk_frames``
  frames) through :class:`ChunkCache`, a least-recently-used cache of decoded chunks holding at most
  ``cache_mb``; the batches are the same tensors in the same order, only memory and speed differ.

Reading a window from zarr each time it is drawn decodes one or two whole chunks for a few frames (the naive
way, ~50x slower than indexing memory); the cache decodes a chunk once and serves every window that overlaps it
until it is evicted, so reading in store order (evaluation, validation) decodes each chunk once, and random
training order hits the cache in proportion to the share of the store it holds. ``benchmarks/loader.py``
measures both against reading the whole store.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from . import datasets

MB = 2 ** 20


class Samples:
    """The windows of one split, gathered from the in-memory velocity tensor by indexing (no store reads).

    ``frames`` is the whole dataset ``(sims, frames, 2, H, W)`` as one tensor (on the training device), shared
    by every split; ``get(idx)`` returns inputs ``(B, L, 2, H, W)`` and targets ``(B, out_length, 2, H, W)``.
    """

    def __init__(self, frames: torch.Tensor, windows: datasets.Windows):
        self.frames, self.windows = frames, windows
        self.sim, self.first = (torch.from_numpy(a).to(frames.device) for a in windows.first_frames())
        self.input_length, self.out_length = windows.input_length, windows.out_length
        self._span = torch.arange(self.input_length + self.out_length, device=frames.device)

    def __len__(self) -> int:
        return len(self.windows)

    def get(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = idx.to(self.frames.device)
        w = self.frames[self.sim[idx, None], self.first[idx, None] + self._span]
        return w[:, :self.input_length], w[:, self.input_length:]

    def batches(self, size: int):
        """Every sample once, in order, ``size`` at a time."""
        for lo in range(0, len(self), size):
            yield self.get(torch.arange(lo, min(lo + size, len(self))))


class ChunkCache:
    """Decoded chunks ``(chunk_frames, 2, H, W)`` of a store's velocity array, least recently used evicted first,
    at most ``max_bytes`` in all (always room for the two chunks one window may span)."""

    def __init__(self, array, max_bytes: int):
        self.array = array
        self.chunk_frames = int(array.chunks[1])
        chunk_bytes = self.chunk_frames * int(np.prod(array.shape[2:])) * np.dtype(array.dtype).itemsize
        self.capacity = max(2, int(max_bytes) // chunk_bytes)
        self._chunks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.reads = self.hits = 0

    def chunk(self, sim: int, index: int) -> np.ndarray:
        key = (sim, index)
        found = self._chunks.get(key)
        if found is not None:
            self._chunks.move_to_end(key)
            self.hits += 1
            return found
        lo = index * self.chunk_frames
        found = np.asarray(self.array[sim, lo:lo + self.chunk_frames], dtype=np.float32)
        self.reads += 1
        self._chunks[key] = found
        while len(self._chunks) > self.capacity:
            self._chunks.popitem(last=False)
        return found

    def frames(self, sim: int, lo: int, hi: int, out: np.ndarray) -> None:
        """Write frames ``lo .. hi-1`` of ``sim`` into ``out`` ``(hi - lo, 2, H, W)``."""
        cf = self.chunk_frames
        for index in range(lo // cf, (hi - 1) // cf + 1):
            a, b = max(lo, index * cf), min(hi, (index + 1) * cf)
            out[a - lo:b - lo] = self.chunk(sim, index)[a - index * cf:b - index * cf]


class StoreSamples(Samples):
    """The windows of one split read through a :class:`ChunkCache`: :class:`Samples` (``len``,
    ``get(idx) -> (inputs, targets)`` on ``device``, ``batches(size)``) with the frames read from the cache."""

    def __init__(self, cache: ChunkCache, windows: datasets.Windows, device):
        self.cache, self.windows, self.device = cache, windows, torch.device(device)
        self.sim, self.first = windows.first_frames()
        self.input_length, self.out_length = windows.input_length, windows.out_length
        self._frame_shape = tuple(cache.array.shape[2:])

    def get(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        idx = idx.cpu().numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
        span = self.input_length + self.out_length
        out = np.empty((len(idx), span, *self._frame_shape), dtype=np.float32)
        # Samples sharing chunks read them one after another, while they are surely cached.
        for j in np.lexsort((self.first[idx], self.sim[idx])):
            i = idx[j]
            self.cache.frames(int(self.sim[i]), int(self.first[i]), int(self.first[i]) + span, out[j])
        w = torch.from_numpy(out).to(self.device)
        return w[:, :self.input_length], w[:, self.input_length:]


class SampleSource:
    """A store opened for a training or evaluation job; :meth:`samples` gives the samples of a split.

    ``dataset`` is the lazily opened store (``datasets.open_store``: shape and attributes, no velocity read).
    ``in_memory`` says which way the samples are read (see the module docstring).
    """

    def __init__(self, store: str, device, cache_mb: float | None = None):
        self.dataset = datasets.open_store(store)
        self.device = torch.device(device)
        array = self.dataset.velocity
        nbytes = int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
        self.in_memory = cache_mb is None or nbytes <= cache_mb * MB
        if self.in_memory:
            self.frames = torch.from_numpy(np.asarray(array[...], dtype=np.float32)).to(self.device)
        else:
            self.cache = ChunkCache(array, int(cache_mb * MB))

    def samples(self, windows: datasets.Windows):
        return Samples(self.frames, windows) if self.in_memory else StoreSamples(self.cache, windows, self.device)
