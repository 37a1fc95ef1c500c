"""What the chunk checksums (zarr's crc32c codec, pipeline/integrity.py) cost in write and read time.

Writes the same velocity as a store with checksums (``datasets.write_store`` as the jobs call it) and without (the
same function with the checksum codec left out, as stores were written before), alternately, ``--repeats`` times
each, and reads each back whole (``datasets.load``) and one chunk at a time (``open_store(...).velocity[sim,
frames]``, as ``pipeline.loader``'s cache reads it). Prints the fastest and the median time of each and their
ratios with/without (on a shared machine the fastest is the steadier estimate of the cost), both sides run
alternately on the same machine state::

    python benchmarks/checksums.py                       # 8 sims x 128 frames of 64x64, chunks of 32 frames
    python benchmarks/checksums.py --sims 4 --frames 64 --repeats 3

The velocity is smooth travelling waves plus 1% noise (compresses about as the simulations do); ``--like STORE``
takes the first sims of an existing store instead. On a busy machine the whole-store timings vary by more than the
checksums cost; the last lines time the checksum computation alone (what the codec adds to each read and write).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import google_crc32c  # what zarr's crc32c codec computes with
import numpy as np

from pipeline import datasets


def synthetic(sims: int, frames: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    t = np.arange(frames)[:, None, None]
    out = np.empty((sims, frames, 2, size, size), dtype=np.float32)
    for s in range(sims):
        a, b, k = rng.uniform(0.5, 1.5, 3)
        out[s, :, 0] = a * np.sin(2 * np.pi * k * (x - t) / size + y / size)
        out[s, :, 1] = b * np.cos(2 * np.pi * (y - 0.5 * t) / size)
    return out + rng.normal(scale=0.01, size=out.shape).astype(np.float32)


def timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def write(path: Path, velocity: np.ndarray, chunk_frames: int, checksums: bool) -> float:
    attrs = {"dataset": "bench", "family": "bench", "first_frame": 0,
             "sims": [{"index": i, "role": "train"} for i in range(velocity.shape[0])]}
    if checksums:
        return timed(lambda: datasets.write_store(path, velocity, attrs, chunk_frames))
    with mock.patch.object(datasets, "_compressors", lambda compressor: (compressor,)):
        return timed(lambda: datasets.write_store(path, velocity, attrs, chunk_frames))


def read_by_chunk(path: Path) -> None:
    v = datasets.open_store(path).velocity
    cf = v.chunks[1]
    for s in range(v.shape[0]):
        for lo in range(0, v.shape[1], cf):
            np.asarray(v[s, lo:lo + cf])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=8)
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--chunk-frames", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--like", help="an existing store: benchmark on its first --sims sims instead")
    args = ap.parse_args()
    logging.getLogger("pipeline").setLevel(logging.ERROR)  # the store without checksums warns at each open
    if args.like:
        velocity = np.asarray(datasets.open_store(args.like).velocity[:args.sims], dtype=np.float32)
    else:
        velocity = synthetic(args.sims, args.frames, args.size)
    times = {(k, c): [] for k in ("write", "read whole", "read by chunk") for c in (True, False)}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {c: Path(tmp, f"{'with' if c else 'without'}.zarr") for c in (True, False)}
        for _ in range(args.repeats):
            for c in (True, False):  # alternate, so that both see the same machine state
                times["write", c].append(write(paths[c], velocity, args.chunk_frames, c))
                times["read whole", c].append(timed(lambda c=c: datasets.load(paths[c])))
                times["read by chunk", c].append(timed(lambda c=c: read_by_chunk(paths[c])))
        chunk_files = [f.read_bytes() for f in (paths[True] / "velocity" / "c").rglob("*") if f.is_file()]
        crc = min(timed(lambda: [google_crc32c.value(raw[:-4]) for raw in chunk_files]) for _ in range(args.repeats))
        size = {c: sum(f.stat().st_size for f in paths[c].rglob("*") if f.is_file()) for c in (True, False)}
        shutil.rmtree(tmp, ignore_errors=True)
    mb = velocity.nbytes / 2 ** 20
    print(f"velocity {velocity.shape} float32, {mb:.1f} MB, chunks of {args.chunk_frames} frames; "
          f"{args.repeats} alternating runs each")
    print(f"{'':>14} {'fastest: with crc32c':>21} {'without':>8} {'ratio':>6} | {'median: with':>13} {'without':>8} "
          f"{'ratio':>6}")
    for kind in ("write", "read whole", "read by chunk"):
        a, b = min(times[kind, True]), min(times[kind, False])
        c, d = statistics.median(times[kind, True]), statistics.median(times[kind, False])
        print(f"{kind:>14} {a:20.3f}s {b:7.3f}s {a / b:6.3f} | {c:12.3f}s {d:7.3f}s {c / d:6.3f}")
    print(f"the checksums alone: {crc * 1e3:.1f} ms for the {len(chunk_files)} velocity chunks "
          f"({sum(map(len, chunk_files)) / 2 ** 20:.1f} MB compressed; google_crc32c, fastest of {args.repeats})")
    print(f"{'on disk':>14} {size[True] / 2 ** 20:19.2f}MB {size[False] / 2 ** 20:6.2f}MB "
          f"{size[True] / size[False]:6.4f}")


if __name__ == "__main__":
    main()
