"""Smoke-plume simulations with PhiFlow 3 (float64, numpy backend).

One step, as in the paper's data-generation notebook (docs/protocol.md):

1. smoke (centred grid, zero-gradient boundary) is advected with MacCormack (dt = 1), then the inflow (a
   solid sphere of value 1 sampled on the grid) is added;
2. velocity (staggered grid, zero boundary: closed box) is advected semi-Lagrangian with ``velocity_dt``,
   and the buoyancy ``smoke * b`` resampled to the staggered grid is added. ``b`` is a field over space:
   uniform, or (translation family) one vector on the cells left of a vertical line and another on the
   cells right of it, so the force depends on where the smoke is, not where it came from;
3. the velocity is made divergence-free (pressure projection).

Advection and buoyancy are PhiFlow's own code. The pressure projection is where the time goes: PhiFlow's
default builds and factorises the same sparse matrix every step (per sim, even inside a batch), and above
~215x215 cells its numpy backend overflows an int32 index. ``projection="dct"`` (the default here) solves
the same discrete problem, the MAC Laplacian with Neumann walls, directly by a 2-D DCT-II, which
diagonalises it exactly: same discretisation, a direct solve, O(N^2 log N), batched over sims; the
velocities agree with PhiFlow's to round-off (``benchmarks/simulation.py`` measures it).
``projection="phiflow"`` runs ``fluid.make_incompressible`` for reference.

Frames are the velocity after each step, sampled at cell centres (the mean of the two faces around a cell),
as ``(vx, vy)`` indexed ``[y, x]``; on cell centres a quarter turn about the domain centre maps the grid onto
itself, so the rotation of ``pipeline.symmetry`` is exact on the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.fft

METHODS = ("fast", "phiflow")


def REFERENCE_SOLVE():
    """PhiFlow's default solve (method 'auto': a direct sparse solve on the numpy backend) with an explicit
    float64 tolerance. With its implicit default tolerance, PhiFlow rejects its own direct solutions of
    this singular (pure Neumann) system when the residual is ~1e-11, and raises ``Diverged``."""
    from phi.flow import Solve
    return Solve("auto", rel_tol=1e-8, abs_tol=1e-8)


class SimulationError(RuntimeError):
    """A simulation produced non-finite values."""


@dataclass(frozen=True)
class Plume:
    """The physical parameters of one plume. Lengths in cells of the base grid convention (dx = domain/grid)."""

    grid: int                      # cells per side of the square grid
    domain: float                  # side length of the square domain [0, domain]^2
    inflow: tuple[float, float]    # inflow sphere centre (x, y)
    radius: float                  # inflow sphere radius
    buoyancy: tuple[float, float]  # buoyancy vector b (force smoke * b); left of split_x when that is set
    velocity_dt: float             # time step of the velocity advection
    label: str = ""                # names the sim in error messages
    buoyancy_right: tuple[float, float] | None = None  # b on the cells whose centre x >= split_x
    split_x: float | None = None   # the vertical line splitting the domain into two buoyancy regions

    def __post_init__(self):
        if (self.buoyancy_right is None) != (self.split_x is None):
            raise ValueError(f"Plume {self.label or ''}: buoyancy_right and split_x go together; got "
                             f"buoyancy_right={self.buoyancy_right}, split_x={self.split_x}")

    def buoyancy_field(self) -> np.ndarray:
        """``b`` at the cell centres, ``(W, H, 2)`` indexed ``[x, y]`` (PhiFlow's order), ``(bx, by)``."""
        b = np.empty((self.grid, self.grid, 2))
        b[...] = self.buoyancy
        if self.split_x is not None:
            x = (np.arange(self.grid) + 0.5) * self.domain / self.grid
            b[x >= self.split_x] = self.buoyancy_right
        return b

    def as_dict(self) -> dict:
        out = {"grid": self.grid, "domain": self.domain, "inflow": list(self.inflow), "radius": self.radius,
               "buoyancy": list(self.buoyancy), "velocity_dt": self.velocity_dt, "label": self.label}
        if self.split_x is not None:
            out.update(buoyancy_right=list(self.buoyancy_right), split_x=self.split_x)
        return out


def _with_walls(vx: np.ndarray, vy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interior faces ``(..., H, W-1)``, ``(..., H-1, W)`` padded with the zero wall faces."""
    return (np.pad(vx, [(0, 0)] * (vx.ndim - 1) + [(1, 1)]),
            np.pad(vy, [(0, 0)] * (vy.ndim - 2) + [(1, 1), (0, 0)]))


def divergence(vx: np.ndarray, vy: np.ndarray, dx: float) -> np.ndarray:
    """Cell divergence of a staggered velocity given by its interior faces (zero walls)."""
    px, py = _with_walls(vx, vy)
    return (np.diff(px, axis=-1) + np.diff(py, axis=-2)) / dx


def project_dct(vx: np.ndarray, vy: np.ndarray, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """Make a staggered velocity in a closed box divergence-free.

    ``vx``: ``(..., H, W-1)`` interior x-faces, ``vy``: ``(..., H-1, W)`` interior y-faces (wall faces are
    zero). Solves ``lap p = div u`` with Neumann walls by DCT-II and returns ``u - grad p`` on the faces.
    """
    h, w = vx.shape[-2], vy.shape[-1]
    eig = ((2 * np.cos(np.pi * np.arange(h) / h) - 2)[:, None]
           + (2 * np.cos(np.pi * np.arange(w) / w) - 2)[None, :]) / dx ** 2
    eig[0, 0] = 1.0  # the constant mode: pressure is defined up to a constant, set its mean to zero
    p_hat = scipy.fft.dctn(divergence(vx, vy, dx), type=2, axes=(-2, -1), norm="ortho") / eig
    p_hat[..., 0, 0] = 0.0
    p = scipy.fft.idctn(p_hat, type=2, axes=(-2, -1), norm="ortho")
    return vx - np.diff(p, axis=-1) / dx, vy - np.diff(p, axis=-2) / dx


def faces_to_centres(vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Interior faces ``(..., H, W-1)``, ``(..., H-1, W)`` -> cell-centred ``(..., 2, H, W)`` (zero walls)."""
    px, py = _with_walls(vx, vy)
    return np.stack((0.5 * (px[..., :-1] + px[..., 1:]), 0.5 * (py[..., :-1, :] + py[..., 1:, :])), axis=-3)


def _check_batch(plumes: Sequence[Plume]) -> Plume:
    if not plumes:
        raise ValueError("simulate: no plumes given")
    first = plumes[0]
    for p in plumes[1:]:
        if (p.grid, p.domain, p.velocity_dt) != (first.grid, first.domain, first.velocity_dt):
            raise ValueError(f"simulate: plumes in one batch must share grid, domain and velocity_dt; "
                             f"{p.label or p} differs from {first.label or first}")
    return first


def simulate(plumes: Sequence[Plume], steps: int, method: str = "fast", return_faces: bool = False):
    """Simulate ``plumes`` (sharing grid, domain and dt) in one PhiFlow batch for ``steps`` steps.

    ``method="fast"``: advection and buoyancy run as one ``jit_compile``d PhiFlow function on the torch
    backend (the same PhiFlow code, traced once, without its per-call Python overhead), the projection
    is ``project_dct``. ``method="phiflow"``: PhiFlow's defaults throughout (numpy backend,
    ``fluid.make_incompressible`` with its default direct solve), the reference.

    Returns velocity frames ``(B, steps, 2, H, W)`` float32 (frame ``t`` is the state after step ``t+1``),
    with ``return_faces`` also the final interior faces ``(vx, vy)`` in float64.
    Raises ``SimulationError`` naming the plume and step if a value becomes non-finite.
    """
    if method not in METHODS:
        raise ValueError(f"simulate: method must be one of {METHODS}, got {method!r}")
    if steps < 1:
        raise ValueError(f"simulate: steps must be >= 1, got {steps}")
    first = _check_batch(plumes)
    from phi import flow
    from phi.flow import math

    n, size, dx = first.grid, float(first.domain), float(first.domain) / first.grid
    fast = method == "fast"
    frames = np.empty((len(plumes), steps, 2, n, n), dtype=np.float32)
    with _backend(fast), math.precision(64):
        sims = math.batch(sim=len(plumes))
        bounds = flow.Box(x=size, y=size)
        centre = _tensor([p.inflow for p in plumes], sims, math.channel(vector="x,y"))
        radius = _tensor([p.radius for p in plumes], sims)
        buoyancy = _tensor([p.buoyancy_field() for p in plumes], sims, math.spatial("x,y"),
                           math.channel(vector="x,y"))
        inflow = flow.CenteredGrid(flow.Sphere(center=centre, radius=radius), flow.ZERO_GRADIENT,
                                   x=n, y=n, bounds=bounds)
        smoke0 = flow.CenteredGrid(0, flow.ZERO_GRADIENT, x=n, y=n, bounds=bounds)
        velocity0 = flow.StaggeredGrid(0, 0, x=n, y=n, bounds=bounds)

        # Fields are rebuilt from value tensors inside the step so that a jitted step only sees tensors
        # (building Fields outside costs more than the traced physics).
        def advect(smoke_values, face_values):
            smoke, velocity = smoke0.with_values(smoke_values), velocity0.with_values(face_values)
            smoke = flow.advect.mac_cormack(smoke, velocity, dt=1) + inflow
            velocity = (flow.advect.semi_lagrangian(velocity, velocity, dt=first.velocity_dt)
                        + flow.resample(smoke * buoyancy, to=velocity))
            return smoke.values, velocity.values

        smoke, faces = smoke0.values, velocity0.values
        if fast:
            advect = math.jit_compile(advect)
        for step in range(steps):
            smoke, faces = advect(smoke, faces)
            if fast:
                vx, vy = project_dct(*_faces(faces), dx)
                faces = _stack_faces(vx, vy, sims)
            else:
                velocity, _ = flow.fluid.make_incompressible(velocity0.with_values(faces), solve=REFERENCE_SOLVE())
                faces = velocity.values
                vx, vy = _faces(faces)
            bad = ~(np.isfinite(vx).all(axis=(-2, -1)) & np.isfinite(vy).all(axis=(-2, -1)))
            if bad.any():
                names = ", ".join(plumes[i].label or repr(plumes[i]) for i in np.flatnonzero(bad))
                raise SimulationError(f"simulation diverged: non-finite velocity in {names} "
                                      f"at step {step + 1} of {steps}")
            frames[:, step] = faces_to_centres(vx, vy)
    if return_faces:
        return frames, (vx, vy)
    return frames


def _backend(fast: bool):
    from phiml.backend import NUMPY
    if fast:
        from phiml.backend.torch import TORCH
        return TORCH
    return NUMPY


def _tensor(values, *dims):
    from phi.flow import math
    return math.tensor(np.asarray(values, dtype=np.float64), *dims)


def _faces(values) -> tuple[np.ndarray, np.ndarray]:
    """Interior face values of batched staggered values as numpy ``(B, H, W-1)``, ``(B, H-1, W)``."""
    return (np.asarray(values[{"~vector": "x"}].numpy("sim,y,x")),
            np.asarray(values[{"~vector": "y"}].numpy("sim,y,x")))


def _stack_faces(vx: np.ndarray, vy: np.ndarray, sims):
    """Numpy faces back to PhiFlow staggered values; PhiFlow orders spatial dims (x, y), hence the transposes."""
    import torch
    from phi.flow import math
    faces = {c: math.tensor(torch.from_numpy(np.ascontiguousarray(v.swapaxes(-1, -2))), sims, math.spatial("x,y"))
             for c, v in (("x", vx), ("y", vy))}
    return math.stack(faces, math.dual(vector="x,y"))

