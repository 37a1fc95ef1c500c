"""The paper's four families of simulations (PROTOCOL.md): which plumes, their parameters and split roles.

``family_sims(family, data_config)`` lists the sims of a family, ``shard_indices`` splits them into jobs,
``simulate_shard`` runs one job and returns the frames as they are stored. The families:

* ``translation``: inflow on a grid of positions; the buoyancy is a field over space, the same for every sim:
  ``(0, 0.1)`` on the cells left of the vertical centre line and ``(0, 0.2)`` right of it, so a plume's force
  depends on where its smoke is (the paper's two sub-domains; PROTOCOL.md);
* ``rotation``: sim ``k`` has its inflow on side ``j = (k-1) mod 4`` (bottom, right, top, left: each a quarter
  turn counter-clockwise from the previous), buoyancy ``k`` times the side's unit pointing inwards, scaled
  by 0.01 (0.011 on side 2, the deliberate symmetry break);
* ``scaling``: one plume per factor ``f`` on a grid ``f`` times finer and larger, downscaled to the base grid
  (``pipeline.symmetry.downscale``);
* ``equivariance``: the base sims ``i`` of the equivariance-level datasets, buoyancy ``0.005 (i+1)``; only
  the base sims that some level uses are simulated (``equivariance_base_indices``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import (FAMILIES, TEST_DOMAIN, TRAIN, equivariance_base_indices,  # noqa: F401 (re-exported)
                        equivariance_level_members, frame_range, shard_indices)
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


def _plume(cfg: dict, grid: int, domain: float, inflow, radius: float, buoyancy, dt: float, label: str,
           buoyancy_right=None, split_x=None) -> Plume:
    return Plume(grid=int(grid), domain=float(domain), inflow=_vector(inflow), radius=float(radius),
                 buoyancy=_vector(buoyancy), velocity_dt=float(dt), label=label,
                 buoyancy_right=None if buoyancy_right is None else _vector(buoyancy_right),
                 split_x=None if split_x is None else float(split_x))


def family_sims(family: str, data: dict) -> list[Sim]:
    """The sims of ``family`` under the ``data`` section of the config, in storage order."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    cfg, grid, radius = data[family], int(data["grid"]), float(data["inflow_radius"])
    size = float(grid)
    sims: list[Sim] = []
    if family == "translation":
        held = {tuple(t) for t in cfg["test_domain"]}
        left, right = (0.0, cfg["buoyancy"][0]), (0.0, cfg["buoyancy"][1])
        for x in cfg["inflow_x"]:
            for y in cfg["inflow_y"]:
                label = f"translation sim {len(sims)} (inflow x={x}, y={y})"
                sims.append(Sim(len(sims), _plume(cfg, grid, size, (x, y), radius, left, cfg["velocity_dt"], label,
                                                  buoyancy_right=right, split_x=size / 2),
                                TEST_DOMAIN if (x, y) in held else TRAIN, {"inflow_x": x, "inflow_y": y}))
    elif family == "rotation":
        held = {tuple(t) for t in cfg["test_domain"]}
        bottom = (size / 2, float(cfg["inflow_offset"]))
        for k in range(1, int(cfg["sims"]) + 1):
            side = (k - 1) % 4
            step = cfg["side2_buoyancy_step"] if side == 2 else cfg["buoyancy_step"]
            label = f"rotation sim {k - 1} (k={k}, side={side})"
            sims.append(Sim(k - 1, _plume(cfg, grid, size, rotate_point(bottom, side, size), radius,
                                          rotate_vector((0.0, k * step), side), cfg["velocity_dt"], label),
                            TEST_DOMAIN if (k, side) in held else TRAIN, {"k": k, "side": side}))
    elif family == "scaling":
        held = {int(i) for i in cfg["test_domain"]}
        for i, f in enumerate(cfg["factors"]):
            n = int(round(grid * f))
            label = f"scaling sim {i} (factor {f}, grid {n})"
            sims.append(Sim(i, _plume(cfg, n, size * f, (size / 2 * f, cfg["inflow_y"] * f), radius * f,
                                      (0.0, cfg["buoyancy"] * f), cfg["velocity_dt"], label),
                            TEST_DOMAIN if i in held else TRAIN, {"factor": f}))
    else:
        for i in equivariance_base_indices(int(cfg["levels"])):
            label = f"equivariance base sim {i}"
            sims.append(Sim(i, _plume(cfg, grid, size, (size / 2, cfg["inflow_y"]), radius,
                                      (0.0, cfg["buoyancy_step"] * (i + 1)), cfg["velocity_dt"], label),
                            TRAIN, {"base": i}))
    return sims


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
