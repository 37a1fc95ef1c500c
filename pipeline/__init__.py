"""Approximately equivariant networks for imperfectly symmetric dynamics: the reproducible pipeline.

Modules, in the order data flows:
``symmetry`` (group actions on velocity fields) -> ``simulate`` (PhiFlow plumes) ->
``datasets`` (zarr stores, splits, windows; ``external``: your own data into that layout) -> ``models`` ->
``loader`` (samples in bounded memory) -> ``train`` -> ``metrics`` / ``evaluate`` ->
``tables`` / ``figures``.
"""
