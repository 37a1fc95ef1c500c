#!/usr/bin/env bash
# Snakemake runs this inside the environment right after creating it (envs/training.yaml, envs/figures.yaml).
# escnn without its dependencies: py3nj needs a Fortran and C toolchain and serves only 3-D groups; what escnn
# uses in 2-D (numpy, scipy, torch, lie_learn, joblib, autograd) is in the environment file.
set -euo pipefail
python -m pip install --no-deps 'escnn==1.0.11'
python -c 'import escnn.gspaces'
