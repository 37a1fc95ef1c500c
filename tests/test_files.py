"""pipeline.files: outputs written whole or not at all."""
from __future__ import annotations

import pytest

from pipeline import files


def test_partial_renames_on_success_and_leaves_nothing_on_error(tmp_path):
    out = tmp_path / "sub" / "a.txt"
    with files.partial(out) as tmp:
        assert tmp.name == "a.txt.partial" and not out.exists()
        tmp.write_text("one")
    assert out.read_text() == "one" and sorted(p.name for p in out.parent.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError), files.partial(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert out.read_text() == "one" and sorted(p.name for p in out.parent.iterdir()) == ["a.txt"]


def test_unique_partials_of_one_path_do_not_collide(tmp_path):
    """Two writers of the same file without a lock (the basis cache, the scratch copy): each writes a sibling of
    its own, both complete, and the last rename wins."""
    out = tmp_path / "basis.pt"
    with files.partial(out, unique=True) as first, files.partial(out, unique=True) as second:
        assert first != second and first.exists() and second.exists()
        assert first.name.startswith("basis.pt.") and first.name.endswith(".partial")
        first.write_text("first")
        second.write_text("second")
    assert out.read_text() == "first"  # the outer block ends last: its rename wins
    assert [p.name for p in tmp_path.iterdir()] == ["basis.pt"]
    with pytest.raises(OSError), files.partial(out, unique=True) as tmp:
        tmp.write_text("half")
        raise OSError("disk full")
    assert out.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["basis.pt"]
