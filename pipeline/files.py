"""Writing a job's output files whole or not at all: each is written to a ``.partial`` sibling and renamed into
place, so a file that exists is complete (a killed job leaves no half-written output for Snakemake to trust)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def _partial(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".partial")


def write_text(text: str, path: str | os.PathLike) -> None:
    tmp = _partial(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(data, path: str | os.PathLike) -> None:
    write_text(json.dumps(data, indent=1), path)


def write_table(df, path: str | os.PathLike) -> None:
    """A pandas DataFrame as CSV, without its index."""
    tmp = _partial(path)
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
