"""The paper's four families of simulations (docs/protocol.md): which plumes, their parameters and split roles.

``family_sims(family, data_config)`` lists the sims of a family (``pipeline.catalogue.shard_indices`` splits them
into jobs), ``simulate_shard`` runs one job and returns the frames as they are stored. The families:

* ``translation``: inflow on a grid of positions; the buoyancy is a field over space, the same for every sim:
  ``(0, 0.1)`` on the cells left of the vertical centre line and ``(0, 0.2)`` right of it, so a plume's force
  depends on where its smoke is (the paper's two sub-domains; docs/protocol.md);
* ``rotation``: sim ``k`` has its inflow on side ``j = (k-1) mod 4`` (bottom, right, top, left: each a quarter
  turn counter-clockwise from the previous), buoyancy ``k`` times the side's unit pointing inwards, scaled
  by 0.01 (0.011 on side 2, the deliberate symmetry break);
* ``scaling``: one plume per factor ``f`` on a grid ``f`` times finer and larger, downscaled to the base grid
  (``pipeline.symmetry.downscale``);
* ``equivariance``: the base sims ``i`` of the equivariance-level datasets, buoyancy ``0.005 (i+1)``; only
  the base sims that some level uses are simulated (``pipeline.catalogue.equivariance_base_indices``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import frame_range, sim_keys, sim_roles
from .simulate import Plume, simulate
from .symmetry import downscale, rotate_point, rotate_vector


@dataclass(frozen=True)
class Sim:
    """One simulation of a family: its plume, its split role and the parameters that identify it."""

    index: int
    plume: Plume
    role: str
    params: dict

    def metadata(self) -> dict:
        return {"index": self.index, "role": self.role, **self.params, **self.plume.as_dict()}


def _vector(v) -> tuple[float, float]:
    return float(v[0]), float(v[1])


def _plume(family: str, position: int, key: dict, data: dict) -> Plume:
    """The plume of the sim at ``position`` of ``family`` whose identifying parameters are ``key``."""
    cfg, grid, radius = data[family], int(data["grid"]), float(data["inflow_radius"])
    size, dt = float(grid), float(cfg["velocity_dt"])
    if family == "translation":
        x, y = key["inflow_x"], key["inflow_y"]
        return Plume(grid, size, _vector((x, y)), radius, _vector((0.0, cfg["buoyancy"][0])), dt,
                     f"translation sim {position} (inflow x={x}, y={y})",
                     buoyancy_right=_vector((0.0, cfg["buoyancy"][1])), split_x=size / 2)
    if family == "rotation":
        k, side = key["k"], key["side"]
        step = cfg["side2_buoyancy_step"] if side == 2 else cfg["buoyancy_step"]
        return Plume(grid, size, _vector(rotate_point((size / 2, float(cfg["inflow_offset"])), side, size)), radius,
                     _vector(rotate_vector((0.0, k * step), side)), dt, f"rotation sim {position} (k={k}, side={side})")
    if family == "scaling":
        f = key["factor"]
        n = int(round(grid * f))
        return Plume(n, size * f, _vector((size / 2 * f, cfg["inflow_y"] * f)), radius * f,
                     _vector((0.0, cfg["buoyancy"] * f)), dt, f"scaling sim {position} (factor {f}, grid {n})")
    i = key["base"]
    return Plume(grid, size, _vector((size / 2, cfg["inflow_y"])), radius,
                 _vector((0.0, cfg["buoyancy_step"] * (i + 1))), dt, f"equivariance base sim {i}")


def family_sims(family: str, data: dict) -> list[Sim]:
    """The sims of ``family`` under the ``data`` section of the config, in storage order: the sims, keys and
    roles of ``pipeline.catalogue`` with their plumes. A sim's index is its position, or for the equivariance
    family its base sim number."""
    keys, roles = sim_keys(family, data), sim_roles(family, data)
    return [Sim(key.get("base", position), _plume(family, position, key, data), role, key)
            for position, (key, role) in enumerate(zip(keys, roles))]


def simulate_shard(family: str, data: dict, indices: list[int], method: str = "fast") -> np.ndarray:
    """Simulate the sims ``indices`` (positions in ``family_sims``) and return their stored frames
    ``(len(indices), frames, 2, grid, grid)`` float32, in the order of ``indices``.

    Sims sharing a grid run as one PhiFlow batch.
    """
    sims = family_sims(family, data)
    cfg, grid = data[family], int(data["grid"])
    first, last = frame_range(cfg)
    out = np.empty((len(indices), last - first, 2, grid, grid), dtype=np.float32)
    by_grid: dict[int, list[int]] = {}
    for pos, i in enumerate(indices):
        by_grid.setdefault(sims[i].plume.grid, []).append(pos)
    for positions in by_grid.values():
        batch = [sims[indices[p]] for p in positions]
        frames = simulate([s.plume for s in batch], int(cfg["steps"]), method)[:, first:last]
        for p, sim, f in zip(positions, batch, frames):
            factor = sim.params.get("factor", 1.0)
            out[p] = downscale(f, factor, (grid, grid)) if sim.plume.grid != grid or factor != 1.0 else f
    return out
