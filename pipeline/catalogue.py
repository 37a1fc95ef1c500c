"""Which sims each family has, from the config alone: their identifying keys, split roles, shards and stored
frames (docs/protocol.md). Standard library only: Snakemake imports this to plan its jobs and validate the config
(``pipeline.config``), where numpy and PhiFlow are not installed; ``pipeline.families`` builds the plumes of
these same sims.
"""
from __future__ import annotations

# The three symmetry families (each a model family and a dataset with test splits), then the equivariance levels.
SYMMETRY_FAMILIES = ("translation", "rotation", "scaling")
FAMILIES = (*SYMMETRY_FAMILIES, "equivariance")
TRAIN, TEST_DOMAIN = "train", "test_domain"


def sim_keys(family: str, data: dict) -> list[dict]:
    """The parameters that identify each sim of ``family`` under the ``data`` section, in storage order
    (``Sim.params`` of ``pipeline.families.family_sims``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    cfg = data[family]
    if family == "translation":
        return [{"inflow_x": x, "inflow_y": y} for x in cfg["inflow_x"] for y in cfg["inflow_y"]]
    if family == "rotation":
        return [{"k": k, "side": (k - 1) % 4} for k in range(1, int(cfg["sims"]) + 1)]
    if family == "scaling":
        return [{"factor": f} for f in cfg["factors"]]
    return [{"base": i} for i in equivariance_base_indices(int(cfg["levels"]))]


def sim_roles(family: str, data: dict) -> list[str]:
    """``train`` or ``test_domain`` of each sim, in storage order: held out are the sims that the family's
    ``test_domain`` names by ``(x, y)`` (translation), ``(k, side)`` (rotation) or index (scaling)."""
    keys = sim_keys(family, data)
    if family == "equivariance":
        return [TRAIN] * len(keys)
    held = {tuple(t) if isinstance(t, list) else t for t in data[family]["test_domain"]}
    return [TEST_DOMAIN if task_key(family, i, key) in held else TRAIN for i, key in enumerate(keys)]


def task_key(family: str, index: int, key: dict):
    """How ``test_domain`` names the sim ``index`` with parameters ``key``."""
    if family == "translation":
        return key["inflow_x"], key["inflow_y"]
    if family == "rotation":
        return key["k"], key["side"]
    return index


def equivariance_level_members(level: int) -> tuple[int, int, int, int]:
    """Base sims of level ``n``: ``(1, 1+n, 1+2n, 1+3n)``, rotated by 0, 1, 2, 3 quarter turns."""
    return tuple(1 + j * level for j in range(4))


def equivariance_base_indices(levels: int) -> list[int]:
    """Every base sim that one of the levels ``0 .. levels-1`` uses, sorted."""
    return sorted({i for n in range(levels) for i in equivariance_level_members(n)})


def shard_indices(n_sims: int, sims_per_job: int) -> list[list[int]]:
    """Split ``n_sims`` into jobs of at most ``sims_per_job`` sims, interleaved so that jobs of the
    scaling family (whose cost grows with the sim index) get a similar share of large grids."""
    n_jobs = max(1, -(-n_sims // int(sims_per_job)))
    return [list(range(j, n_sims, n_jobs)) for j in range(n_jobs)]


def family_shards(family: str, data: dict) -> list[list[int]]:
    """The simulation jobs of ``family``: the sims (positions in storage order) of each."""
    return shard_indices(len(sim_keys(family, data)), data["sims_per_job"])


def frame_range(cfg: dict) -> tuple[int, int]:
    """Stored frames ``[first, last)`` of a family section (frame ``t`` is the state after step ``t+1``)."""
    last = int(cfg.get("last_frame", int(cfg["steps"]) - 1)) + 1
    return int(cfg["first_frame"]), last
