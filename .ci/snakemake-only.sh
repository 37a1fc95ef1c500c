#!/usr/bin/env bash
# The users' command on its intended set-up: an environment with only Snakemake and the SLURM executor plugin
# (the per-rule conda environments bring numpy, torch and escnn). In a fresh venv, plan the paper DAG with
# `--use-conda -n` and the quick preset's DAG, each from an empty working directory.
# Where no conda is installed, a stub that answers only conda's read-only queries stands in (.ci/conda-stub):
# planning needs `conda info`; creating the environments is not checked here.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" > /dev/null || PYTHON=python3
SCRATCH=$(mktemp -d /tmp/ci-snakemake-only.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT

# The same Snakemake and plugin specifiers as pyproject.toml.
mapfile -t SPECS < <("$PYTHON" - <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if d.split(">")[0].split("=")[0].split("<")[0] in ("snakemake", "snakemake-executor-plugin-slurm")))
PY
)
"$PYTHON" -m venv "$SCRATCH/venv"
"$SCRATCH/venv/bin/python" -m pip install --quiet "${SPECS[@]}"
"$SCRATCH/venv/bin/python" - <<'PY'
import importlib.util
import snakemake
absent = [m for m in ("torch", "escnn", "scipy", "zarr", "phi") if importlib.util.find_spec(m) is None]
assert len(absent) == 5, f"not a Snakemake-only environment: {absent} are the only ones absent"
print("snakemake", snakemake.__version__, "without", ", ".join(absent))
PY

if ! command -v conda > /dev/null; then
    echo "no conda on PATH: planning with the stub .ci/conda-stub/conda (environments are not created here)"
    export PATH="$REPO/.ci/conda-stub:$PATH"
fi
cd "$SCRATCH"
plan() {  # plan NAME ARGS...: a dry run from an empty working directory; prints its time and job count
    local name=$1 start=$SECONDS
    shift
    mkdir "$SCRATCH/$name"
    env -u PYTHONPATH "$SCRATCH/venv/bin/snakemake" --snakefile "$REPO/Snakefile" --directory "$SCRATCH/$name" -n "$@" \
        > "$SCRATCH/$name.log" 2>&1 || { tail -n 40 "$SCRATCH/$name.log"; exit 1; }
    echo "$name: $(grep -E '^total ' "$SCRATCH/$name.log" | tail -n 1 | awk '{ print $2 }') jobs planned in $((SECONDS - start)) s"
}
plan paper --use-conda --cores 8 all
plan quick --use-conda --cores 2 --configfile "$REPO/presets/quick.yaml" -- all
