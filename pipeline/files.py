"""Writing a job's output files whole or not at all: each is written to a ``.partial`` sibling and renamed into
place, so a file that exists is complete (a killed job leaves no half-written output for Snakemake to trust).
:func:`partial` is the pattern for any writer (a file or a directory such as a zarr store); the others use it."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def partial(path: str | os.PathLike, keep_suffix: bool = False, unique: bool = False):
    """Yield the sibling of ``path`` to write to (its folder made): ``<name>.partial``, or with ``keep_suffix``
    ``.<stem>.partial<suffix>`` for writers that choose the format by the suffix (``numpy.save``, matplotlib), or
    with ``unique`` an empty file ``<name>.<random>.partial`` of its own, for writers that may race on the same
    ``path`` without a lock (the last rename wins, each copy whole). When the block ends it is renamed to ``path``
    (replacing a file or a directory there); when the block raises, it is removed and ``path`` left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if unique:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".partial")
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = path.with_name(f".{path.stem}.partial{path.suffix}" if keep_suffix else f"{path.name}.partial")
        _remove(tmp)
    try:
        yield tmp
        if tmp.is_dir():
            _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def write_text(text: str, path: str | os.PathLike) -> None:
    with partial(path) as tmp:
        tmp.write_text(text)


def write_json(data, path: str | os.PathLike) -> None:
    write_text(json.dumps(data, indent=1), path)


def write_table(df, path: str | os.PathLike) -> None:
    """A pandas DataFrame as CSV, without its index."""
    with partial(path) as tmp:
        df.to_csv(tmp, index=False)


def write_csv(rows, path: str | os.PathLike, columns) -> None:
    """Rows (dicts, or sequences in the order of ``columns``) as CSV under the header ``columns``."""
    import csv

    with partial(path) as tmp, open(tmp, "w", newline="") as fh:
        rows = list(rows)
        if rows and isinstance(rows[0], dict):
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
        else:
            w = csv.writer(fh)
            w.writerow(columns)
        w.writerows(rows)


def write_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save`` of ``obj``."""
    import torch

    with partial(path) as tmp:
        torch.save(obj, tmp)
