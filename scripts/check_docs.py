"""Check that the documentation still matches the repository: README.md and docs/*.md.

    python scripts/check_docs.py            # everything (CI runs this)
    python scripts/check_docs.py --no-plan  # links, command syntax and the benchmarks' arguments; no planning

What is checked, each failure reported as ``file:line: message``:

- **Links.** Every relative link and image, ``[text](target)`` or ``![alt](target)``, names a file or folder
  of the repository (the part after ``#`` is not checked). ``http(s)://`` and ``mailto:`` links are not followed.
- **Snakemake commands.** A command is any ``snakemake ...`` (also ``.venv/bin/snakemake`` or
  ``python -m snakemake``) on a line of a fenced code block or in an inline code span, possibly after ``&&``.
  Every one is parsed by Snakemake's own argument parser. Every one that names a target is planned with ``-n``
  exactly as written (order kept: ``--configfile`` and ``--resources`` take every word that follows them), by
  this Python's Snakemake, in a fresh copy of the working tree (``git ls-files``: tracked and untracked,
  not ignored, so no ``results/`` or ``.snakemake/``): a clean clone. Commands that differ only in their
  targets and core counts are planned together, and one by one only when that plan fails. The forms:
  ``--directory DIR`` is planned in a fresh empty folder instead of DIR; ``--use-conda`` plans with a real
  ``conda`` when one is on PATH, else with ``.ci/conda-stub`` (planning asks ``conda info`` only);
  ``--profile profiles/slurm`` plans through the SLURM executor, which submits nothing in a dry run (no sbatch
  needed); ``--conda-create-envs-only``, ``--report``, ``--summary`` and ``--lint`` commands are parsed, not
  run (they create environments or read a finished run).
- **Benchmark commands.** Every ``python benchmarks/NAME.py ...`` command: the script's argument parser must
  accept the arguments shown (the script is run with ``ArgumentParser.parse_args`` patched to stop right
  after parsing, so nothing is measured).

A command that cannot run as shown (it names a file the user writes, say) is exempted by the comment
``<!-- check_docs: skip -->`` on the line before it, or before its code block; exemptions are listed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARK = "<!-- check_docs: skip -->"
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
SNAKEMAKE_HEADS = (("snakemake",), (".venv/bin/snakemake",), ("python", "-m", "snakemake"),
                   ("python3", "-m", "snakemake"), (".venv/bin/python", "-m", "snakemake"))
BENCHMARK_HEADS = ("python", "python3", ".venv/bin/python")
NOT_PLANNED = ("conda_create_envs_only", "report", "summary", "detailed_summary", "lint", "list_rules",
               "list_target_rules", "dag", "rulegraph")
PLAN_TIMEOUT_S = 300
WORKERS = 2   # plans and argument checks run two at a time (CI's machine has 2 cores)


@dataclass
class Command:
    file: Path
    line: int
    text: str
    words: list[str] = field(default_factory=list)   # after the program (snakemake / the script)
    skip: bool = False

    @property
    def where(self) -> str:
        return f"{_shown(self.file)}:{self.line}"


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def check_links(path: Path) -> list[str]:
    errors = []
    in_fence = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0]
            if not (path.parent / file_part).exists():
                errors.append(f"{_shown(path)}:{n}: link to {target!r}: no such file")
    return errors


def _shell_pieces(text: str) -> list[list[str]]:
    """The simple commands of a shell line (split at &&, ||, ; and |), each as words, env assignments dropped."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
    except ValueError:
        return []
    pieces, current = [], []
    for w in words:
        if w in ("&&", "||", ";", "|", "&"):
            pieces.append(current)
            current = []
        else:
            current.append(w)
    pieces.append(current)
    out = []
    for piece in pieces:
        while piece and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", piece[0]):
            piece = piece[1:]
        if piece:
            out.append(piece)
    return out


def _code_lines(path: Path):
    """(line number, text, skipped) of every shell line in fenced blocks and every inline code span (a span
    may continue over the lines of its paragraph)."""
    lines = path.read_text().splitlines()
    in_fence = skip_block = False
    pending = ""
    paragraph: list[tuple[int, str]] = []

    def spans():
        text = "\n".join(line for _, line in paragraph)
        first = paragraph[0][0]
        marked = first > 1 and lines[first - 2].strip() == SKIP_MARK
        for match in INLINE_CODE.finditer(text):
            n = first + text.count("\n", 0, match.start())
            yield n, " ".join(match.group(2).split()), marked or (n > 1 and lines[n - 2].strip() == SKIP_MARK)

    for n, line in enumerate(lines, 1):
        previous = lines[n - 2].strip() if n > 1 else ""
        if line.lstrip().startswith("```"):
            if paragraph:
                yield from spans()
                paragraph = []
            in_fence = not in_fence
            skip_block = in_fence and previous == SKIP_MARK
            continue
        if in_fence:
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1] + " "
                continue
            pending = ""
            yield n, text, skip_block or previous == SKIP_MARK
        elif line.strip():
            paragraph.append((n, line))
        elif paragraph:
            yield from spans()
            paragraph = []
    if paragraph:
        yield from spans()


def extract_commands(path: Path) -> tuple[list[Command], list[Command]]:
    """The Snakemake commands and the benchmark commands shown in one page."""
    snakemake, benchmarks = [], []
    for n, text, skip in _code_lines(path):
        for words in _shell_pieces(text):
            for head in SNAKEMAKE_HEADS:
                if tuple(words[:len(head)]) == head:
                    snakemake.append(Command(path, n, " ".join(words), words[len(head):], skip))
                    break
            else:
                if (len(words) >= 2 and words[0] in BENCHMARK_HEADS and words[1].startswith("benchmarks/")
                        and words[1].endswith(".py")):
                    benchmarks.append(Command(path, n, " ".join(words), words[1:], skip))
    return snakemake, benchmarks


def _parse_snakemake(command: Command):
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return parser.parse_args(command.words), None
    except SystemExit:
        return None, "Snakemake's argument parser rejects it"
    except Exception as exc:   # noqa: BLE001 (Snakemake's own parse actions raise their own errors)
        return None, f"Snakemake's argument parser rejects it: {exc}"


def clean_tree(dest: Path) -> Path:
    """Copy the working tree's tracked and untracked-but-not-ignored files into ``dest``: a clean clone."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):   # not a git checkout: everything but what a run leaves
        left = (".git", ".venv", "results", ".snakemake", "__pycache__", ".pytest_cache")
        listed = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                  if p.is_file() and not set(p.relative_to(ROOT).parts) & set(left)]
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _without_targets(words: list[str], targets: set[str]) -> list[str]:
    return [w for w in words if w not in targets]


def _group_key(words: list[str], targets: set[str]) -> list[str]:
    """A command's words without its targets and core counts: commands with the same key plan together."""
    out, i = [], 0
    words = _without_targets(words, targets)
    while i < len(words):
        if words[i] in ("--cores", "-c", "--jobs", "-j") and i + 1 < len(words) and words[i + 1][:1].isdigit():
            i += 2
            continue
        if not re.match(r"^(--cores|--jobs)=", words[i]):
            out.append(words[i])
        i += 1
    return out


def _replace_directory(words: list[str], scratch: Path) -> list[str]:
    out, i = [], 0
    while i < len(words):
        w = words[i]
        if w in ("--directory", "-d") and i + 1 < len(words):
            out += [w, tempfile.mkdtemp(dir=scratch, prefix="directory-")]
            i += 2
            continue
        if w.startswith("--directory="):
            w = "--directory=" + tempfile.mkdtemp(dir=scratch, prefix="directory-")
        out.append(w)
        i += 1
    return out


def _run_plan(words: list[str], tree: Path, scratch: Path) -> tuple[bool, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if shutil.which("conda") is None:
        env["PATH"] = f"{tree / '.ci' / 'conda-stub'}{os.pathsep}{env['PATH']}"
    argv = [sys.executable, "-m", "snakemake", "-n", *_replace_directory(words, scratch)]
    try:
        done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=PLAN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"no plan within {PLAN_TIMEOUT_S} s"
    if done.returncode == 0:
        return True, ""
    tail = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()][-6:]
    return False, "\n    ".join(tail)


def check_snakemake(commands: list[Command], plan: bool, log=print) -> list[str]:
    errors = []
    groups: dict[str, list[tuple[Command, list[str]]]] = {}
    for command in commands:
        ns, problem = _parse_snakemake(command)
        if problem:
            errors.append(f"{command.where}: `{command.text}`: {problem}")
            continue
        if command.skip:
            continue
        missing = [str(f) for f in ns.configfile or [] if not (ROOT / f).is_file()]
        if missing:
            errors.append(f"{command.where}: `{command.text}`: no config file {', '.join(missing)} in the repository"
                          " (targets after --configfile are read as config files: put them before it)")
            continue
        if not ns.targets or any(getattr(ns, name, None) for name in NOT_PLANNED):
            continue
        key = json.dumps(_group_key(command.words, set(ns.targets)))
        groups.setdefault(key, []).append((command, sorted(ns.targets)))
    if not plan or not groups:
        return errors
    with tempfile.TemporaryDirectory(prefix="check-docs-") as tmp:
        tree = clean_tree(Path(tmp) / "tree")
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()

        def plan_group(members):
            first = members[0][0]
            targets = list(dict.fromkeys(t for _, ts in members for t in ts))
            rest = _without_targets(first.words, set(members[0][1]))
            ok, _ = _run_plan([*targets, *rest], tree, scratch)
            found = []
            if not ok:
                for command, _ in members:
                    one_ok, why = _run_plan(command.words, tree, scratch)
                    if not one_ok:
                        found.append(f"{command.where}: `{command.text}` does not plan (-n):\n    {why}")
            return (f"planned {len(members)} command(s) like `{first.text}` ({len(targets)} targets): "
                    + ("ok" if ok else "failed, planned one by one")), found

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for message, found in pool.map(plan_group, groups.values()):
                log(message)
                errors += found
    return errors


_PARSE_ONLY = """
import argparse, runpy, sys
_parse = argparse.ArgumentParser.parse_args
def parse_then_stop(self, args=None, namespace=None):
    _parse(self, args, namespace)
    raise SystemExit(0)
argparse.ArgumentParser.parse_args = parse_then_stop
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
raise SystemExit("the script finished without parsing its arguments")
"""


def _check_benchmark(command: Command) -> str | None:
    script = ROOT / command.words[0]
    if not script.is_file():
        return f"{command.where}: `{command.text}`: no script {command.words[0]}"
    done = subprocess.run([sys.executable, "-c", _PARSE_ONLY, str(script), *command.words[1:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=PLAN_TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode == 0:
        return None
    tail = [line for line in done.stderr.splitlines() if line.strip()][-3:]
    return f"{command.where}: `{command.text}`: its arguments do not parse:\n    " + "\n    ".join(tail)


def check_benchmarks(commands: list[Command]) -> list[str]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        found = pool.map(_check_benchmark, [c for c in commands if not c.skip])
    return [e for e in found if e]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-plan", action="store_true", help="do not plan the Snakemake commands (fast checks only)")
    args = ap.parse_args(argv)
    errors, snakemake, benchmarks = [], [], []
    for path in doc_files():
        if not path.exists():
            errors.append(f"{_shown(path)}: missing")
            continue
        errors += check_links(path)
        s, b = extract_commands(path)
        snakemake += s
        benchmarks += b
    skipped = [c for c in snakemake + benchmarks if c.skip]
    print(f"{len(snakemake)} snakemake and {len(benchmarks)} benchmark commands in {len(doc_files())} pages")
    for c in skipped:
        print(f"  exempt ({SKIP_MARK}): {c.where}: `{c.text}`")
    errors += check_snakemake(snakemake, plan=not args.no_plan)
    errors += check_benchmarks(benchmarks)
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
