"""Approximately equivariant networks for imperfectly symmetric dynamics: the reproducible pipeline.

Modules, in the order data flows:
``symmetry`` (group actions on velocity fields) -> ``catalogue`` (which sims, from the config) / ``simulate``
(PhiFlow plumes) / ``families`` -> ``datasets`` (zarr stores, splits, windows) -> ``models`` -> ``runs`` (a run's
settings) -> ``rollout`` / ``train`` -> ``metrics`` / ``evaluate`` -> ``tables`` / ``figures``.

Snakemake imports ``config``, ``catalogue``, ``runs`` and ``models`` (its name list) to build the DAG, where only
Snakemake is installed: they and this file import nothing beyond the standard library, yaml and jsonschema.
"""
