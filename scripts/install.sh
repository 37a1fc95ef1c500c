#!/usr/bin/env bash
# Creates .venv and installs the pipeline with every dependency, on a fresh machine with Python 3.11 and pip.
# escnn goes in with --no-deps (its py3nj needs a Fortran compiler and serves only 3-D groups).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -m pip install --quiet --no-deps 'escnn==1.0.11'
.venv/bin/python -c "import escnn, phi, torch, zarr, snakemake; print('installed: torch', torch.__version__, '| escnn', escnn.__version__)" 2>&1 | grep -v -i warn
