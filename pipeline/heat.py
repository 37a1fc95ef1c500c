"""Heat diffusion in a metal plate (paper Figure 2): exact versus approximate rotational symmetry.

The plate is the square ``[0, grid]^2`` (cell size 1), insulated (zero-gradient boundary), starting from a
hot Gaussian blob in its centre. The temperature obeys ``dT/dt = div(kappa grad T)``, integrated with
PhiFlow's implicit (backward Euler, conjugate gradient) finite-volume diffusion in float64:

* ``uniform``: ``kappa = diffusivity`` everywhere. The equation, the plate and the initial condition are
  all invariant under quarter turns, so the solution stays exactly C4-symmetric.
* ``varying``: ``kappa = diffusivity * (1 + variation * s(x, y))`` with ``s`` a smooth, seeded random
  field of a few low Fourier modes scaled to ``max |s| = 1`` (imperfections of the plate's thickness or
  composition). The heat equation is still rotation-symmetric, but this plate is not: the solution is only
  approximately symmetric.

``simulate`` returns both solutions at the requested times; ``rotation_asymmetry`` measures how far a
field is from its own quarter turns.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class HeatResult:
    """Temperatures ``(len(times), grid, grid)`` (index ``[y, x]``, row 0 at the bottom) and ``kappa``."""

    times: np.ndarray
    uniform: np.ndarray
    varying: np.ndarray
    kappa: np.ndarray
    params: dict


def diffusivity_field(grid: int, diffusivity: float, variation: float, modes: int = 3, seed: int = 0) -> np.ndarray:
    """``kappa[y, x] = diffusivity * (1 + variation * s)`` with ``s`` a smooth random field, ``max |s| = 1``.

    ``s`` sums cosines of wave numbers ``1..modes`` per axis (periods of the plate size and shorter) with
    seeded normal amplitudes and uniform phases, so the same seed always gives the same plate.
    """
    if not 0 <= variation < 1:
        raise ValueError(f"variation must be in [0, 1) so that kappa stays positive, got {variation}")
    rng = np.random.default_rng(seed)
    c = (np.arange(grid) + 0.5) / grid
    y, x = np.meshgrid(c, c, indexing="ij")
    s = np.zeros((grid, grid))
    for kx in range(modes + 1):
        for ky in range(modes + 1):
            if kx == ky == 0:
                continue
            a, px, py = rng.normal(), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
            s += a / np.hypot(kx, ky) * np.cos(2 * np.pi * kx * x + px) * np.cos(2 * np.pi * ky * y + py)
    s /= np.abs(s).max()
    return diffusivity * (1.0 + variation * s)


def initial_condition(grid: int, blob_radius: float) -> np.ndarray:
    """A Gaussian hot blob of width ``blob_radius`` cells, peak 1, centred in the plate (C4-symmetric)."""
    c = np.arange(grid) + 0.5 - grid / 2
    y, x = np.meshgrid(c, c, indexing="ij")
    return np.exp(-(x ** 2 + y ** 2) / (2 * blob_radius ** 2))


def simulate(grid: int = 64, diffusivity: float = 1.0, variation: float = 0.3, blob_radius: float = 6.0,
             dt: float = 5.0, times=(0, 20, 60, 150), modes: int = 3, seed: int = 0,
             tolerance: float = 1e-10) -> HeatResult:
    """Diffuse the same hot blob on a uniform and on a slightly varying plate; keep the frames at ``times``.

    ``dt`` is the implicit (unconditionally stable) time step, cell size 1; every time in ``times`` must be
    a multiple of it. ``tolerance`` is the conjugate-gradient tolerance (relative and absolute).
    """
    with warnings.catch_warnings():  # phiml warns, on import, that an extrapolation we do not use is experimental
        warnings.filterwarnings("ignore", message="symmetric-gradient extrapolation is experimental")
        from phi import math
        from phi.flow import ZERO_GRADIENT, Box, CenteredGrid, Solve, diffuse

    times = np.asarray(sorted(times), dtype=float)
    if times[0] < 0:
        raise ValueError(f"times must be non-negative, got {times.tolist()}")
    steps = np.rint(times / dt).astype(int)
    if not np.allclose(steps * dt, times):
        raise ValueError(f"every time in {times.tolist()} must be a multiple of dt={dt}")
    kappa = diffusivity_field(grid, diffusivity, variation, modes, seed)
    if dt <= 0:
        raise ValueError(f"dt must be positive, got {dt}")
    t0 = initial_condition(grid, blob_radius)

    with math.precision(64):
        bounds = Box(x=grid, y=grid)

        def grid_of(values: np.ndarray):
            # arrays are [y, x]; PhiFlow's spatial order is (x, y)
            return CenteredGrid(math.tensor(values.T, math.spatial("x,y")), ZERO_GRADIENT, bounds=bounds, x=grid,
                                y=grid)

        coefficients = {"uniform": diffusivity, "varying": grid_of(kappa)}
        solve = Solve("CG", tolerance, tolerance, max_iterations=10 * grid * grid)
        out = {}
        for name, k in coefficients.items():
            t = grid_of(t0)
            frames, step = [], 0
            for target in steps:
                while step < target:
                    t = diffuse.implicit(t, k, dt, solve=solve)
                    step += 1
                frames.append(t.values.numpy("y,x"))
            out[name] = np.stack(frames)
    params = dict(grid=grid, diffusivity=diffusivity, variation=variation, blob_radius=blob_radius, dt=dt,
                  times=times.tolist(), modes=modes, seed=seed, tolerance=tolerance)
    return HeatResult(times, out["uniform"], out["varying"], kappa, params)


def rotation_asymmetry(field: np.ndarray) -> float:
    """``max_k max |T - rot90(T, k)| / max |T|`` over the quarter turns ``k = 1, 2, 3`` (0 if symmetric)."""
    scale = np.abs(field).max() or 1.0
    return float(max(np.abs(field - np.rot90(field, k)).max() for k in (1, 2, 3)) / scale)
