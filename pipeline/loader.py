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

Random-order training through a cache much smaller than the store decodes a chunk for almost every window (5-10x
slower than memory). With a scratch folder (``training.scratch``: the node's local disk), :class:`ScratchCopy`
decompresses the velocity once into a raw ``.npy`` file there and each window is one read of consecutive bytes
(``os.preadv`` into the batch): the operating system's page cache keeps the file's hot part in memory that is not
the job's own, so training runs near memory speed while the job's resident memory stays that of a few batches.

Scratch copies are named by the store's name and a key of its identity (its path, the velocity's metadata and
every chunk file's size and modification time): a rebuilt store has a new key and never reads a stale copy. The
copy is written under a temporary name and renamed into place while the writer holds a lock (``flock`` on a
``.lock`` file beside it), so concurrent jobs reading the same store decompress it once and share it; a job killed
while writing leaves only a temporary file, which is never read and is deleted by the next writer. The free space
is checked before writing, and a full disk stops the job with an error naming the folder. Copies stay for later
jobs (and runs) reading the same store; writing a copy deletes the older copies of the same store name that no job
is opening (a job opens its copy under that copy's lock). Delete the folder at any time no job is running (on a
cluster, node-local scratch usually goes with the allocation).
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from . import datasets, files

MB = 2 ** 20
SCRATCH_FREE_MARGIN = 256 * MB  # left free on the scratch disk beyond the copy
log = logging.getLogger("pipeline")


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
        self.frame_shape = tuple(int(n) for n in array.shape[2:])
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


class ScratchCopy:
    """The store's velocity decompressed to a raw float32 ``.npy`` file in ``folder`` (made once, shared by the jobs
    reading the same store; see the module docstring). :meth:`frames` reads a window with one ``preadv``.

    ``reserve_bytes``: free space to leave on the scratch disk beyond the copy."""

    def __init__(self, store: str, array, folder: str | os.PathLike, reserve_bytes: int = SCRATCH_FREE_MARGIN):
        self.shape = tuple(int(n) for n in array.shape)
        self.frame_shape = self.shape[2:]
        self.frame_bytes = int(np.prod(self.frame_shape)) * 4
        self.folder = Path(os.path.expandvars(os.path.expanduser(str(folder))))
        self.path = self.folder / f"{Path(store).name}-{store_key(store)}.npy"
        self.built = False  # whether this job wrote the copy (else it found one)
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer per store; the others wait and then read its copy
            try:
                self.offset = self._whole_copy()
                if self.offset is None:
                    self._write(store, array, reserve_bytes)
                    self.built = True
                    self.offset = self._whole_copy()
                    if self.offset is None:
                        raise OSError(f"{self.path}: the scratch copy just written does not read back whole")
                self._fd = os.open(self.path, os.O_RDONLY)  # under the lock: a writer deletes only unlocked copies
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _whole_copy(self) -> int | None:
        """The data offset of the copy when it is whole and has the store's shape, else None."""
        try:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                offset = fh.tell()
        except (OSError, ValueError):
            return None
        whole = offset + int(np.prod(self.shape)) * 4
        if tuple(shape) != self.shape or fortran or dtype != np.float32 or os.path.getsize(self.path) != whole:
            return None
        return offset

    def _write(self, store: str, array, reserve_bytes: int) -> None:
        nbytes = int(np.prod(self.shape)) * 4
        stem = self.path.name[:self.path.name.rindex("-")]
        for old in self.folder.glob(f"{stem}-*"):  # older copies of this store name, leftovers of killed writers
            if old.suffix not in (".npy", ".partial") or old.name == self.path.name or ".npy" not in old.name:
                continue
            copy = old.name[:old.name.index(".npy") + 4]
            if copy == self.path.name:  # a killed writer's leftover of this copy (its lock is ours now)
                old.unlink(missing_ok=True)
                continue
            with open(self.folder / f"{copy}.lock", "a+") as other:  # another copy: only when no job holds it
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                old.unlink(missing_ok=True)  # a job reading it keeps its open file
        free = shutil.disk_usage(self.folder).free
        if free < nbytes + reserve_bytes:
            raise OSError(errno.ENOSPC, f"training.scratch: {self.folder} has {free / MB:.0f} MB free; the "
                          f"decompressed copy of {store} needs {nbytes / MB:.0f} MB (and {reserve_bytes / MB:.0f} MB "
                          f"to spare). Free space there, point training.scratch at a larger disk, or set it to null "
                          f"to read through the chunk cache")
        try:  # each write goes to the file (chunks are large)
            with files.partial(self.path, unique=True) as tmp, open(tmp, "wb", buffering=0) as fh:
                np.lib.format.write_array_header_2_0(fh, {"descr": "<f4", "fortran_order": False,
                                                          "shape": self.shape})
                step = int(array.chunks[1])
                for sim in range(self.shape[0]):  # chunk by chunk in storage order: the memory of one chunk
                    for lo in range(0, self.shape[1], step):
                        fh.write(memoryview(np.ascontiguousarray(array[sim, lo:lo + step], dtype="<f4")).cast("B"))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise OSError(e.errno, f"training.scratch: {self.folder} ran out of space while decompressing "
                              f"{store} ({nbytes / MB:.0f} MB): {e.strerror}. Free space there, point "
                              f"training.scratch at a larger disk, or set it to null") from e
            raise
        log.info("decompressed %s to %s (%.0f MB)", store, self.path, nbytes / MB)

    def frames(self, sim: int, lo: int, hi: int, out: np.ndarray) -> None:
        """Write frames ``lo .. hi-1`` of ``sim`` into ``out`` ``(hi - lo, 2, H, W)`` (contiguous float32)."""
        start = self.offset + (sim * self.shape[1] + lo) * self.frame_bytes
        want = (hi - lo) * self.frame_bytes
        got = os.preadv(self._fd, [memoryview(out).cast("B")], start)
        if got != want:
            raise OSError(f"{self.path}: short read ({got} of {want} bytes); the scratch copy was truncated")

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def store_key(store: str | os.PathLike) -> str:
    """A key of a store's identity: its resolved path, the velocity's metadata and the name, size and modification
    time of every file of the velocity array (a rebuilt store gets a new key; reading no data)."""
    root = Path(store).resolve() / "velocity"
    entries = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            entries.append(f"{os.path.relpath(path, root)} {st.st_size} {st.st_mtime_ns}")
            if name == "zarr.json" and dirpath == str(root):
                with open(path, "rb") as fh:
                    entries.append(hashlib.sha256(fh.read()).hexdigest())
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


class StoreSamples(Samples):
    """The windows of one split read through a frame reader (a :class:`ChunkCache` or a :class:`ScratchCopy`):
    a :class:`Samples` (``len``, ``get(idx) -> (inputs, targets)`` on ``device``, ``batches(size)``)."""

    def __init__(self, cache: ChunkCache | ScratchCopy, windows: datasets.Windows, device):
        self.cache, self.windows, self.device = cache, windows, torch.device(device)
        self.sim, self.first = windows.first_frames()
        self.input_length, self.out_length = windows.input_length, windows.out_length
        self._frame_shape = cache.frame_shape

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
    ``in_memory`` says which way the samples are read (see the module docstring): in memory when the store fits
    ``cache_mb`` (or no bound is given); else from a :class:`ScratchCopy` in ``scratch`` when one is given; else
    through a :class:`ChunkCache` of ``cache_mb``.
    """

    def __init__(self, store: str, device, cache_mb: float | None = None, scratch: str | os.PathLike | None = None):
        self.dataset = datasets.open_store(store)
        self.device = torch.device(device)
        array = self.dataset.velocity
        nbytes = int(np.prod(array.shape)) * np.dtype(array.dtype).itemsize
        self.in_memory = cache_mb is None or nbytes <= cache_mb * MB
        self.scratch = None
        if self.in_memory:
            self.frames = torch.from_numpy(np.asarray(array[...], dtype=np.float32)).to(self.device)
        elif scratch:
            self.scratch = ScratchCopy(store, array, scratch)
        else:
            self.cache = ChunkCache(array, int(cache_mb * MB))

    @property
    def way(self) -> str:
        """How the samples are read, for the job's log."""
        if self.in_memory:
            return "in memory"
        return f"from the scratch copy {self.scratch.path}" if self.scratch else "through the chunk cache"

    def samples(self, windows: datasets.Windows):
        if self.in_memory:
            return Samples(self.frames, windows)
        return StoreSamples(self.scratch or self.cache, windows, self.device)
