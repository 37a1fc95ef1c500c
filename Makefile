# Checks beside the test suite. `make lint`: Snakemake's linter on the workflow (paper configuration);
# `make slurm-check`: .ci/slurm.sh (root; starts a single-node SLURM, runs the tiny preset through
# profiles/slurm, checks the jobs and outputs, stops SLURM).
SNAKEMAKE ?= .venv/bin/snakemake

.PHONY: lint slurm-check

lint:
	$(SNAKEMAKE) --lint

slurm-check:
	.ci/slurm.sh
