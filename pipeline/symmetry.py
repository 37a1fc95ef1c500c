"""Group actions on velocity fields: the project's one symmetry convention.

A velocity field is an array ``(..., 2, H, W)``: components ``(vx, vy)``, indexed ``[y, x]`` with ``y``
growing with the row index. The physical frame has x to the right and y *up*, so row 0 is the bottom of
the domain. Every action below moves positions and transforms vector components together, in that
physical frame:

* ``rotate(u, k)``: rotation by ``k`` quarter turns counter-clockwise about the domain centre,
  ``u'(p) = R u(R^-1 p)`` with ``R (vx, vy) = (-vy, vx)``. Exact on a square grid of cell-centred values.
* ``translate(u, dy, dx)``: periodic shift of positions by whole cells; vectors are unchanged.
* ``downscale(u, factor)``: the scaling family's action, a field on a grid ``factor`` times finer mapped
  to the base grid: positions shrunk by ``1/factor`` (antialiased bilinear resampling) and velocities
  divided by ``factor`` (velocity has units of length per time, the time step is unchanged).

Functions accept numpy arrays and torch tensors and return the same kind.
"""
from __future__ import annotations

import numpy as np

try:  # torch is optional for the data-generation environment
    import torch
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None


def _is_torch(u) -> bool:
    return torch is not None and isinstance(u, torch.Tensor)


def _check_field(u, name: str = "field") -> None:
    if u.ndim < 3 or u.shape[-3] != 2:
        raise ValueError(f"{name}: expected a velocity field of shape (..., 2, H, W), got {tuple(u.shape)}")


def rotate(u, k: int = 1):
    """Rotate velocity field ``u`` by ``k`` quarter turns counter-clockwise (physical frame, y up)."""
    _check_field(u)
    if u.shape[-1] != u.shape[-2]:
        raise ValueError(f"rotate: quarter turns need a square grid, got H, W = {tuple(u.shape[-2:])}")
    k = int(k) % 4
    if k == 0:
        return u
    # With y growing with the row index, a counter-clockwise turn in the physical frame is a clockwise
    # turn of the array as printed (row 0 on top): new[i, j] = old[N-1-j, i], i.e. rot90 from axis x to y.
    if _is_torch(u):
        moved = torch.rot90(u, k, dims=(-1, -2))
        vx, vy = moved[..., 0, :, :], moved[..., 1, :, :]
        for _ in range(k):
            vx, vy = -vy, vx
        return torch.stack((vx, vy), dim=-3)
    moved = np.rot90(u, k, axes=(-1, -2))
    vx, vy = moved[..., 0, :, :], moved[..., 1, :, :]
    for _ in range(k):
        vx, vy = -vy, vx
    return np.ascontiguousarray(np.stack((vx, vy), axis=-3))


def rotate_scalar(s, k: int = 1):
    """Rotate a scalar field ``(..., H, W)`` by ``k`` quarter turns counter-clockwise (positions only)."""
    k = int(k) % 4
    if _is_torch(s):
        return torch.rot90(s, k, dims=(-1, -2))
    return np.ascontiguousarray(np.rot90(s, k, axes=(-1, -2)))


def rotate_vector(v, k: int = 1):
    """Rotate a physical vector ``(vx, vy)`` by ``k`` quarter turns counter-clockwise."""
    vx, vy = float(v[0]), float(v[1])
    for _ in range(int(k) % 4):
        vx, vy = -vy, vx
    return (vx, vy)


def rotate_point(p, k: int, size: float):
    """Rotate a position ``(x, y)`` in a square domain ``[0, size]^2`` about its centre."""
    c = size / 2
    dx, dy = rotate_vector((p[0] - c, p[1] - c), k)
    return (c + dx, c + dy)


def translate(u, dy: int, dx: int):
    """Shift positions of ``u`` (any ``(..., H, W)`` array) by ``(dy, dx)`` cells, periodically."""
    if _is_torch(u):
        return torch.roll(u, shifts=(int(dy), int(dx)), dims=(-2, -1))
    return np.roll(u, shift=(int(dy), int(dx)), axis=(-2, -1))


def downscale(u, factor: float, size: tuple[int, int]):
    """Map a field simulated ``factor`` times larger onto the base grid ``size = (H, W)``.

    Positions shrink by ``1/factor`` (antialiased bilinear resampling of every frame) and velocities are
    divided by ``factor``. ``u`` is ``(..., 2, H_big, W_big)``; returns ``(..., 2, *size)``.
    """
    _check_field(u)
    if factor <= 0:
        raise ValueError(f"downscale: factor must be positive, got {factor}")
    if torch is None:
        raise ImportError("downscale needs torch")
    was_numpy = not _is_torch(u)
    t = torch.as_tensor(np.asarray(u)) if was_numpy else u
    lead = t.shape[:-3]
    flat = t.reshape(-1, 2, *t.shape[-2:])
    if tuple(flat.shape[-2:]) != tuple(size):
        flat = torch.nn.functional.interpolate(flat, size=tuple(size), mode="bilinear",
                                               align_corners=False, antialias=True)
    out = (flat / factor).reshape(*lead, 2, *size)
    return out.numpy() if was_numpy else out
