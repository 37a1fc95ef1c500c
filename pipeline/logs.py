"""The log of a job: every workflow script (``workflow/scripts/*``) calls :func:`setup` with its rule's ``log:`` file
first. Standard library only, so a job sets up its log before importing anything heavy."""
from __future__ import annotations

import logging
from pathlib import Path


def setup(path: str | None) -> None:
    """Log to the rule's ``log:`` file (and stderr)."""
    handlers = [logging.StreamHandler()]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers,
                        force=True)
