"""Approximately equivariant networks for imperfectly symmetric dynamics: the reproducible pipeline.

Modules, in the order data flows:
``symmetry`` (group actions on velocity fields) -> ``catalogue`` (which sims, from the config) / ``simulate``
(PhiFlow plumes) / ``families`` -> ``datasets`` (zarr stores, splits, windows; ``integrity``: every chunk checksummed,
damaged data refused, ``verify``; ``external``: your own data into that layout) -> ``models`` -> ``runs`` (a run's
settings) -> ``gpus`` (a job's device and GPU slot) -> ``loader`` (samples in bounded memory) / ``rollout`` /
``train`` -> ``metrics`` / ``evaluate`` / ``symmetry_breaking`` -> ``tables`` / ``figures``.

Snakemake imports ``config``, ``catalogue``, ``runs``, ``external`` (its spec checks) and ``models`` (its name list)
to build the DAG, where only Snakemake is installed: they and this file import nothing beyond the standard library,
yaml and jsonschema.
"""
