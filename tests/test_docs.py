"""The documentation check (scripts/check_docs.py) and the pages themselves.

The real pages' links and Snakemake command lines are checked here, without planning; CI runs the whole check
(`python scripts/check_docs.py`: every command planned, every benchmark command's arguments parsed). The
check's own parts are tested on small pages written here, each with a known fault that it must report at its
file and line.
"""
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import yaml
from helpers import ROOT

_spec = importlib.util.spec_from_file_location("check_docs", ROOT / "scripts" / "check_docs.py")
check_docs = importlib.util.module_from_spec(_spec)
sys.modules["check_docs"] = check_docs
_spec.loader.exec_module(check_docs)


def page(tmp_path, text: str, name: str = "page.md") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_real_pages_links_resolve_and_commands_parse():
    errors, commands = [], []
    for path in check_docs.doc_files():
        assert path.exists(), path
        errors += check_docs.check_links(path)
        commands += check_docs.extract_commands(path)[0]
    errors += check_docs.check_snakemake(commands, plan=False)
    assert not errors, "\n".join(errors)
    assert len(commands) > 10   # the pages do show commands, and the extraction finds them


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 160
    # CI's test step (.ci/run) and the quick run are the README's two set-up commands, word for word
    assert "bash scripts/install.sh && .venv/bin/python -m pytest -q" in text
    assert "bash scripts/install.sh && .venv/bin/snakemake all --cores 2 --configfile presets/quick.yaml" in text
    for path in check_docs.doc_files():   # no page points at a file the reader does not have
        assert "PROTOCOL.md" not in path.read_text() and "../shared" not in path.read_text(), path


def test_broken_link_and_image_reported_at_their_line(tmp_path):
    (tmp_path / "there.md").write_text("x")
    path = page(tmp_path, "# t\n[ok](there.md#a-section) and [web](https://example.org)\n"
                          "![missing](figure.png)\n```\n[not a link](inside-a-code-block.md)\n```\n"
                          "text `[code](not-followed.md)` then [gone](nowhere.md#x)\n")
    errors = check_docs.check_links(path)
    assert [e.split(": ")[0] for e in errors] == [f"{path}:3", f"{path}:7"]
    assert "figure.png" in errors[0] and "nowhere.md#x" in errors[1]


def test_commands_extracted_from_blocks_and_inline_spans(tmp_path):
    path = page(tmp_path, "Run\n\n```bash\n# a comment\nbash scripts/install.sh && .venv/bin/snakemake all \\\n"
                          "  --cores 2   # trailing comment\nX=1 python -m snakemake -n tune_all\n```\n\n"
                          "or `snakemake --cores 2\nresults/tables/table1.md` over two lines, and\n"
                          "`python benchmarks/models.py --batch 4`.\n\n<!-- check_docs: skip -->\n"
                          "`snakemake mine --configfile my.yaml`\n")
    snakemake, benchmarks = check_docs.extract_commands(path)
    assert [(c.line, c.words, c.skip) for c in snakemake] == [
        (6, ["all", "--cores", "2"], False),
        (7, ["-n", "tune_all"], False),
        (10, ["--cores", "2", "results/tables/table1.md"], False),
        (15, ["mine", "--configfile", "my.yaml"], True),
    ]
    assert [(c.line, c.words) for c in benchmarks] == [(12, ["benchmarks/models.py", "--batch", "4"])]


def test_snakemake_faults_reported_with_file_and_line(tmp_path):
    """A target after --configfile (read as a config file), an unknown option, and a target that does not plan
    in a group of good ones: each reported at its own line, the good commands not."""
    path = page(tmp_path, "```bash\n"
                          "snakemake --cores 2 --configfile presets/tiny.yaml results/tables/table1.md\n"
                          "snakemake --cores 2 --no-such-option all\n"
                          "snakemake results/data/rotation.zarr --cores 2 --configfile presets/tiny.yaml\n"
                          "snakemake results/no/such/target.csv --cores 1 --configfile presets/tiny.yaml\n"
                          "snakemake results/data/equivariance_levels.csv --configfile presets/tiny.yaml\n"
                          "snakemake --summary\n"
                          "```\n")
    commands = check_docs.extract_commands(path)[0]
    logged = []
    errors = check_docs.check_snakemake(commands, plan=True, log=logged.append)
    lines = [e.split(": ")[0].rsplit(":", 1)[1] for e in errors]
    assert lines == ["2", "3", "5"], "\n".join(errors)
    assert "read as config files" in errors[0] and "results/tables/table1.md" in errors[0]
    assert "does not plan" in errors[2]
    # the three tiny-preset commands with targets were planned together first, then one by one
    assert any("planned 3 command(s)" in m and "failed" in m for m in logged), logged


def test_benchmark_arguments_parsed_not_run(tmp_path):
    path = page(tmp_path, "```bash\npython benchmarks/models.py --batch 4 --repeat 1\n"
                          "python benchmarks/models.py [--device cuda]\npython benchmarks/nothing.py\n```\n")
    errors = check_docs.check_benchmarks(check_docs.extract_commands(path)[1])
    assert [e.split(": ")[0].rsplit(":", 1)[1] for e in errors] == ["3", "4"], "\n".join(errors)
    assert "unrecognized arguments" in errors[0] and "no script" in errors[1]


def test_citation_names_this_software_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    paper = cff["preferred-citation"]
    assert paper["title"] == "Approximately Equivariant Networks for Imperfectly Symmetric Dynamics"
    assert [a["family-names"] for a in paper["authors"]] == ["Wang", "Walters", "Yu"]
    assert paper["year"] == 2022
    assert re.match(r"^MIT", (ROOT / "LICENSE").read_text()) and cff["license"] == "MIT"
