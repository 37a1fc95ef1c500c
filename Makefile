# Checks beside the test suite. `make lint`: ruff on the Python code, snakefmt --check on the rule files (both
# configured in pyproject.toml) and Snakemake's linter on the workflow (paper configuration);
# `make docs-check`: scripts/check_docs.py (links, every snakemake command of README.md and docs/ planned);
# `make slurm-check`: .ci/slurm.sh (root; starts a single-node SLURM, runs the tiny preset through
# profiles/slurm, checks the jobs and outputs, stops SLURM).
SNAKEMAKE ?= .venv/bin/snakemake

.PHONY: lint docs-check slurm-check

lint:
	.venv/bin/ruff check .
	.venv/bin/snakefmt --check Snakefile workflow/rules
	$(SNAKEMAKE) --lint

docs-check:
	.venv/bin/python scripts/check_docs.py

slurm-check:
	.ci/slurm.sh
