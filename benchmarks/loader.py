"""Peak memory and samples/s of reading training windows: the whole store in memory, naive per-window zarr reads,
the chunk cache of pipeline/loader.py, and the scratch copy (``training.scratch``: the store decompressed once to
local disk, windows read through the page cache), on the paper's rotation store and on a synthetic 256x256 store.

    python benchmarks/loader.py results/data/rotation.zarr --synthetic /tmp/synthetic256.zarr --cache-mb 4096,128 \
        --scratch /tmp/loader-scratch

Each (store, way) runs in a fresh process, so its peak resident memory (``ru_maxrss``) is its own. Training reads
batches of the rotation family's train windows in a seeded random order (``--batch`` samples, ``--batches``
batches); evaluation reads the test-domain windows in store order. The scratch way runs twice: first with an empty
scratch folder (its open time includes the decompression), then again reusing the copy, as the next job would.
``--rounds N`` runs the ways N times, interleaved, and reports each one's best, so that a load that comes and goes
on a shared machine weighs on every way alike; train CPU ms/sample is the reading process's own CPU time (user and
system), which a loaded machine changes less than the rates.
The synthetic store is written once (smooth random fields, streamed chunk by chunk) when it does not exist, shaped
like the given store unless ``--sims`` / ``--frames`` say otherwise (its sims' records repeat the given store's).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's pipeline

WAYS = ("memory", "naive", "cache", "scratch")


def synthetic_store(path: str, like: str, grid: int, sims: int | None = None, frames: int | None = None) -> None:
    """A store shaped like ``like`` (or ``sims`` x ``frames``) but ``grid`` x ``grid``: per chunk, a few random
    Fourier modes (smooth, so it compresses like a flow); never more than a chunk in memory."""
    import dask.array as da

    from pipeline import datasets

    ref = datasets.open_store(like)
    sims, frames = sims or ref.velocity.shape[0], frames or ref.velocity.shape[1]
    records = [{**ref.attrs["sims"][i % len(ref.attrs["sims"])], "index": i} for i in range(sims)]
    cf = int(ref.velocity.chunks[1])
    y, x = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def block(block_info=None):
        (s, _), (f0, f1) = block_info[None]["array-location"][:2]
        rng = np.random.default_rng(s * 100000 + f0)
        out = np.zeros((1, f1 - f0, 2, grid, grid), np.float32)
        for _ in range(4):
            ky, kx, phase = rng.integers(1, 6), rng.integers(1, 6), rng.uniform(0, 2 * np.pi)
            field = np.sin(2 * np.pi * (ky * y + kx * x) / grid + phase).astype(np.float32)
            ramp = np.linspace(0, 1, f1 - f0, dtype=np.float32)[:, None, None, None]
            out[0] += ramp * rng.normal(size=(1, 2, 1, 1)).astype(np.float32) * field
        return out

    v = da.map_blocks(block, chunks=((1,) * sims, tuple(min(cf, frames - i) for i in range(0, frames, cf)), (2,),
                                     (grid,), (grid,)), dtype=np.float32)
    datasets.write_store(path, v, {**ref.attrs, "dataset": f"synthetic{grid}", "config": {}, "sims": records},
                         chunk_frames=cf)


def run(store: str, way: str, cache_mb: float, batch: int, batches: int, config: str, scratch: str | None) -> dict:
    import torch
    import yaml

    from pipeline import datasets
    from pipeline.loader import Samples
    from pipeline.rollout import frames_tensor
    from pipeline.loader import SampleSource

    torch.set_num_threads(1)
    cfg = yaml.safe_load(open(config))
    windows, out_length = cfg["windows"]["rotation"], cfg["training"]["defaults"]["out_length"]
    start = time.perf_counter()
    if way == "memory":  # today: the whole store into one tensor
        ds = datasets.load(store)
        frames = frames_tensor(ds, "cpu")
        make = lambda w: Samples(frames, w)  # noqa: E731
    elif way == "naive":  # a zarr read per window
        ds = datasets.open_store(store)
        make = lambda w: NaiveSamples(ds, w)  # noqa: E731
    else:  # cache, or scratch (a cache too small for the store, so the scratch copy is read)
        source = SampleSource(store, "cpu", cache_mb, scratch if way == "scratch" else None)
        ds = source.dataset
        make = source.samples
    opened = time.perf_counter() - start
    train = make(datasets.split_windows(ds, "train", windows, out_length))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    n = min(batches, len(train) // batch)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        train.get(order[i * batch:(i + 1) * batch])
    train_rate = n * batch / (time.perf_counter() - t0)
    train_cpu = (time.process_time() - c0) / (n * batch)
    test = make(datasets.split_windows(ds, "test_domain", windows))
    t0 = time.perf_counter()
    seen = 0
    for x, _ in test.batches(batch):
        seen += x.shape[0]
        if seen >= n * batch:
            break
    eval_rate = seen / (time.perf_counter() - t0)
    return {"store": store, "way": way, "open_s": round(opened, 2), "train_samples_per_s": round(train_rate, 1),
            "train_cpu_ms_per_sample": round(1000 * train_cpu, 1),
            "eval_samples_per_s": round(eval_rate, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "in_memory": way == "memory" or (way in ("cache", "scratch") and source.in_memory),
            "built": way == "scratch" and source.scratch is not None and source.scratch.built}


class NaiveSamples:
    """Each window read from the zarr array when drawn (what the cache replaces)."""

    def __init__(self, ds, windows):
        self.ds, self.windows = ds, windows

    def __len__(self):
        return len(self.windows)

    def get(self, idx):
        import torch

        from pipeline import datasets
        x, y = datasets.window_arrays(self.ds, self.windows, [int(i) for i in idx])
        return torch.from_numpy(x), torch.from_numpy(y)

    def batches(self, size):
        import torch
        for lo in range(0, len(self), size):
            yield self.get(torch.arange(lo, min(lo + size, len(self))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", help="the paper's rotation store (results/data/rotation.zarr of config.yaml)")
    ap.add_argument("--synthetic", help="path of the synthetic 256x256 store (written when missing)")
    ap.add_argument("--synthetic-only", action="store_true", help="benchmark the synthetic store alone")
    ap.add_argument("--grid", type=int, default=256)
    ap.add_argument("--sims", type=int, help="sims of the synthetic store (default: the given store's)")
    ap.add_argument("--frames", type=int, help="frames of the synthetic store (default: the given store's)")
    ap.add_argument("--scratch", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "loader-benchmark-scratch"),
                    help="scratch folder of the scratch way (emptied first)")
    ap.add_argument("--scratch-cache-mb", default="64", help="cache bound of the scratch way (below the store)")
    ap.add_argument("--cache-mb", default="512", help="cache sizes of the new way, comma-separated")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--ways", default=",".join(WAYS))
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the ways this many times, interleaved, and report each way's best (a loaded machine)")
    ap.add_argument("--one", nargs=2, metavar=("STORE", "WAY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run(args.one[0], args.one[1], float(args.cache_mb), args.batch, args.batches, args.config,
                             args.scratch)))
        return
    stores = [] if args.synthetic_only else [args.store]
    if args.synthetic:
        if not os.path.isdir(args.synthetic):
            t0 = time.perf_counter()
            synthetic_store(args.synthetic, args.store, args.grid, args.sims, args.frames)
            print(f"wrote {args.synthetic} in {time.perf_counter() - t0:.0f} s", flush=True)
        stores.append(args.synthetic)
    print("| store | shape | way | open s | train samples/s | train CPU ms/sample | eval samples/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    from pipeline import datasets
    for store in stores:
        shape = "x".join(map(str, datasets.open_store(store).velocity.shape))
        sizes = {"cache": args.cache_mb.split(","), "scratch": [args.scratch_cache_mb] * 2}
        runs = [(w, c) for w in args.ways.split(",") for c in sizes.get(w, ["0"])]
        shutil.rmtree(args.scratch, ignore_errors=True)
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for way, cache_mb in runs:
                cmd = [sys.executable, __file__, store, "--one", store, way, "--cache-mb", cache_mb,
                       "--batch", str(args.batch), "--batches", str(args.batches), "--config", args.config,
                       "--scratch", args.scratch]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode:
                    print(f"| {store} | {shape} | {way} | failed: {done.stderr.strip().splitlines()[-1]} |")
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                if way == "cache":
                    label = f"chunk cache {cache_mb} MB" + (" (fits: in memory)" if r["in_memory"] else "")
                elif way == "scratch":
                    label = "scratch copy, " + ("in memory (fits the cache)" if r["in_memory"] else
                                                "decompressing it" if r["built"] else "reusing it")
                else:
                    label = way
                if args.rounds > 1:  # each run as it comes, then each way's best
                    print(f"<!-- round: {label} {json.dumps(r)} -->", flush=True)
                if label in best:  # the best rates and least CPU of the rounds; the largest memory
                    b = best[label]
                    for key in ("train_samples_per_s", "eval_samples_per_s"):
                        b[key] = max(b[key], r[key])
                    b["train_cpu_ms_per_sample"] = min(b["train_cpu_ms_per_sample"], r["train_cpu_ms_per_sample"])
                    b["peak_rss_mb"] = max(b["peak_rss_mb"], r["peak_rss_mb"])
                else:
                    best[label] = r
                if args.rounds == 1:  # as it comes
                    print(f"| {os.path.basename(store)} | {shape} | {label} | {r['open_s']} | "
                          f"{r['train_samples_per_s']} | {r['train_cpu_ms_per_sample']} | {r['eval_samples_per_s']} | "
                          f"{r['peak_rss_mb']} |", flush=True)
        for label, r in best.items() if args.rounds > 1 else ():
            print(f"| {os.path.basename(store)} | {shape} | {label} | {r['open_s']} | {r['train_samples_per_s']} | "
                  f"{r['train_cpu_ms_per_sample']} | {r['eval_samples_per_s']} | {r['peak_rss_mb']} |", flush=True)
    shutil.rmtree(args.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
