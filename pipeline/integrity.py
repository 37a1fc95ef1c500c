"""Data integrity: every chunk a store holds carries a checksum, and damaged data is refused, never used.

Every array of a store (``datasets.write_store``: the family stores, the equivariance levels and the imported
external datasets alike) is written with zarr 3's ``crc32c`` codec after its compressor, so the last four bytes of
each chunk file are the CRC-32C of the compressed bytes before them. zarr checks it on every read, for every
reader (our jobs, xarray, dask): a chunk whose bytes changed on disk fails to decode instead of decoding into
slightly wrong numbers. Every chunk is written, even one holding only zeros, so a chunk file that is missing is
damage too (zarr would otherwise read it as zeros).

Our jobs read a store's velocity through :class:`CheckedArray` (``datasets.open_store``), which turns a failed
read into :class:`DamagedStoreError`: it names the store, each damaged chunk (its key and file) and the sims and
frames it holds, and says what to do: delete the store and let Snakemake rebuild it. :func:`verify_store` checks
every chunk of every array of a store and changes nothing; ``snakemake verify`` and ``python -m
pipeline.integrity STORE...`` run it over stores. A store written before the checksums (no ``crc32c`` codec)
cannot be checked: it is reported as such (``verify``; a warning when a job opens it), not refused.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from itertools import product

import numpy as np

log = logging.getLogger("pipeline")

CHECKSUM_CODEC = "crc32c"  # zarr 3's name of the codec (zarr.codecs.Crc32cCodec)
REBUILD = ("delete the store and let Snakemake rebuild it (`rm -rf {path}`, then run your snakemake command again: "
           "it simulates or imports the data again, and reruns the jobs that read it)")


def checksum_codec():
    """The codec that checksums each chunk: a bytes-to-bytes codec placed after the compressor."""
    import zarr
    return zarr.codecs.Crc32cCodec()


def has_checksums(array) -> bool:
    """Whether a zarr array's chunks carry a checksum (its codecs include ``crc32c``)."""
    return any(type(c).__name__ == "Crc32cCodec" for c in getattr(array.metadata, "codecs", ()))


@dataclass(frozen=True)
class DamagedChunk:
    """One chunk that failed to read: its array, key (``c/0/3/0/0/0``), file and why."""

    array: str
    key: str
    file: str
    reason: str
    region: tuple[slice, ...]  # the array indices it holds

    def describe(self, sims: list | None = None) -> str:
        text = f"chunk {self.key} of {self.array!r} (file {self.file}"
        if self.array == "velocity" and len(self.region) == 5:
            s, t = self.region[0], self.region[1]
            ids = list(range(s.start, s.stop))
            named = [_sim_name(i, sims) for i in ids]
            text += f"; sim{'s' if len(ids) > 1 else ''} {', '.join(named)}, frames {t.start}..{t.stop - 1}"
        return f"{text}): {self.reason}"


def _sim_name(i: int, sims: list | None) -> str:
    record = sims[i] if sims and i < len(sims) and isinstance(sims[i], dict) else {}
    extra = ", ".join(f"{k} {record[k]}" for k in ("role", "index") if k in record)
    return f"{i} ({extra})" if extra else str(i)


class DamagedStoreError(RuntimeError):
    """A store holds chunks that cannot be read as written; the message names them and says what to do."""

    def __init__(self, path: str, damaged: list[DamagedChunk], sims: list | None = None):
        self.path, self.damaged = str(path), list(damaged)
        lines = [f"{self.path}: {len(self.damaged)} damaged chunk{'s' if len(self.damaged) != 1 else ''} "
                 "(the data on disk changed since it was written; refusing to use it):"]
        lines += [f"  - {d.describe(sims)}" for d in self.damaged]
        lines.append("What to do: " + REBUILD.format(path=self.path) + ".")
        super().__init__("\n".join(lines))


def _chunk_file(store: str, array, key: str) -> str:
    return os.path.join(store, *array.path.split("/"), *key.split("/"))


def damaged_chunks(store: str, array) -> list[DamagedChunk]:
    """Every chunk of ``array`` (a zarr array of the store at ``store``) that fails to read, or whose file is
    missing where the array carries checksums (those stores write every chunk). Reads one chunk at a time."""
    grid = array.cdata_shape
    checked = has_checksums(array)
    out = []
    for coords in product(*(range(n) for n in grid)):
        key = array.metadata.encode_chunk_key(coords)
        path = _chunk_file(store, array, key)
        region = tuple(slice(c * k, min((c + 1) * k, n)) for c, k, n in zip(coords, array.chunks, array.shape))
        if checked and not os.path.isfile(path):
            out.append(DamagedChunk(array.path, key, path, "the chunk file is missing", region))
            continue
        try:
            array.get_block_selection(coords)
        except Exception as e:  # noqa: BLE001 - a checksum mismatch (ValueError) or any decoder's error
            out.append(DamagedChunk(array.path, key, path, f"{type(e).__name__}: {e}", region))
    return out


class CheckedArray:
    """A store's zarr array that refuses damaged data: indexing reads as zarr does, and a chunk that fails to
    read raises :class:`DamagedStoreError` naming every damaged chunk of the array, its sims and what to do.

    It has what our readers use of a zarr array: ``shape``, ``dtype``, ``ndim``, ``chunks`` and indexing (so
    ``dask.array.from_array`` and ``numpy.asarray`` take it)."""

    def __init__(self, store: str, array, sims: list | None = None):
        self.store, self.array, self.sims = str(store), array, sims
        self.shape, self.dtype, self.ndim, self.chunks = array.shape, array.dtype, array.ndim, array.chunks
        self.checksums = has_checksums(array)
        if self.checksums:
            missing = [d for d in _missing_chunks(self.store, array)]
            if missing:
                raise DamagedStoreError(self.store, missing, sims)
        else:
            log.warning("%s: written without chunk checksums (by an older version of the pipeline), so damaged "
                        "data cannot be detected; delete it and let Snakemake rebuild it to add them", self.store)

    def __getitem__(self, key):
        try:
            return self.array[key]
        except (IndexError, TypeError, KeyError):  # a bad selection, not bad data
            raise
        except Exception as e:  # noqa: BLE001 - whatever a damaged chunk makes the decoders raise
            damaged = damaged_chunks(self.store, self.array)
            if damaged:
                raise DamagedStoreError(self.store, damaged, self.sims) from e
            raise

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


def _missing_chunks(store: str, array) -> list[DamagedChunk]:
    """Chunks of a checksummed array whose files are absent (a directory listing, no data read)."""
    root = os.path.join(store, *array.path.split("/"))
    present = {os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
               for d, _, files in os.walk(os.path.join(root, "c")) for f in files}
    out = []
    for coords in product(*(range(n) for n in array.cdata_shape)):
        key = array.metadata.encode_chunk_key(coords)
        if key not in present:
            region = tuple(slice(c * k, min((c + 1) * k, n)) for c, k, n in zip(coords, array.chunks, array.shape))
            out.append(DamagedChunk(array.path, key, _chunk_file(store, array, key), "the chunk file is missing",
                                    region))
    return out


# --- verify: every chunk of every array of the stores, nothing changed -----------------------------------------

@dataclass
class StoreReport:
    """What :func:`verify_store` found in one store."""

    path: str
    status: str  # "ok", "damaged", "no checksums", "unreadable", "absent"
    damaged: list[DamagedChunk]
    detail: str = ""
    chunks: int = 0


def verify_store(path: str) -> StoreReport:
    """Read every chunk of every array of the store at ``path`` and report what fails; changes nothing.

    A store whose arrays lack the checksum codec is ``"no checksums"`` (written before they existed) unless a
    chunk fails to decode even so (``"damaged"``)."""
    import zarr

    path = str(path)
    if not os.path.isdir(path):
        return StoreReport(path, "absent", [], "not built")
    try:
        group = zarr.open_group(path, mode="r")
        arrays = list(group.arrays())
        sims = group.attrs.get("sims")
    except Exception as e:  # noqa: BLE001 - damaged metadata: whatever the JSON reader raises
        return StoreReport(path, "unreadable", [], f"its metadata cannot be read ({type(e).__name__}: {e})")
    damaged, unchecked, chunks = [], [], 0
    for name, array in arrays:
        chunks += int(np.prod(array.cdata_shape))
        damaged += damaged_chunks(path, array)
        if not has_checksums(array):
            unchecked.append(name)
    if damaged:
        return StoreReport(path, "damaged", damaged, str(DamagedStoreError(path, damaged, sims)), chunks)
    if unchecked:
        return StoreReport(path, "no checksums", [], f"arrays {', '.join(sorted(unchecked))} carry no chunk "
                           "checksums (written by an older version): damage cannot be detected; delete the store "
                           "and let Snakemake rebuild it to add them", chunks)
    return StoreReport(path, "ok", [], "", chunks)


def verify(stores: list[str], out=sys.stdout) -> int:
    """Verify each store, print one line per store (and each damaged chunk); return the number of damaged or
    unreadable stores (0: every store that exists reads as written)."""
    bad = 0
    for path in stores:
        r = verify_store(path)
        bad += r.status in ("damaged", "unreadable")
        head = f"{r.status:>12}  {r.path}" + (f"  ({r.chunks} chunks)" if r.chunks else "")
        print(head if not r.detail or r.status == "damaged" else f"{head}: {r.detail}", file=out)
        if r.status == "damaged":
            print("\n".join("              " + line for line in r.detail.splitlines()[1:]), file=out)
    print(f"verify: {len(stores)} store(s), {bad} damaged or unreadable", file=out)
    return bad


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.integrity STORE...``: exit status 1 when any store is damaged or unreadable."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m pipeline.integrity STORE.zarr [STORE.zarr ...]", file=sys.stderr)
        return 2
    return 1 if verify(argv) else 0


if __name__ == "__main__":
    sys.exit(main())
