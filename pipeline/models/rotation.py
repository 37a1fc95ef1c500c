"""Rotation (C4) models of the paper: baselines, E2CNN, the approximate-symmetry alternatives and the relaxed
group / steerable convolutions (paper sections 3.1-3.4).

Every model maps ``(B, T_in, 2, H, W)`` velocity frames to the next frame ``(B, 2, H, W)``. Inputs are
``T_in`` vector fields, the output one vector field; equivariant hidden layers carry ``hidden`` copies of the
regular representation of C4 (``4 * hidden`` channels). ``regularizer()`` returns ``alpha`` times the paper's
constraint for the relaxed / soft models and zero otherwise.

Frame convention (defect 3 of docs/fidelity.md)
-----------------------------------------------
``pipeline.symmetry.rotate(u, k)`` is the physical counter-clockwise quarter turn with ``y`` growing with the
row index: the array is turned with ``rot90(dims=(-1, -2))`` and ``(vx, vy) -> (-vy, vx)``. escnn's
``rot2dOnR2(4)`` element ``k`` turns the array with ``rot90(axes=(-2, -1))`` (the opposite sense on the grid)
while its ``irrep(1)`` turns the two channels by ``+k * 90`` degrees. With the reflection
``S = diag(1, -1)`` of the vector components, ``S R(theta) S = R(-theta)``, so ``v -> S v`` maps our
``rotate(k)`` onto escnn's element ``-k`` on both positions and components. Every escnn-based model here
therefore negates ``vy`` of each input frame (:func:`to_escnn_frame`) and of its output
(:func:`from_escnn_frame`); hidden regular fields are then simply indexed by escnn's ``-k``. The relaxed group
convolution and the CLCNN are written directly in our frame and need no conversion. Tests check all of it
against ``rotate``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import files
from ..symmetry import rotate_scalar
from . import PARAMETER_BUDGET
from .common import (ACE, MLP, ConvNet, LocallyConnected2d, Model, RelaxThenProject, SymmetryBreakingInputs,
                     build_gmcnn, conv_stack, finite_differences_l1, frames_to_channels, relu_between)

N_ROT = 4  # order of the cyclic group C4
log = logging.getLogger("pipeline")


# --------------------------------------------------------------------------------------------------------
# frame conversion and small helpers
# --------------------------------------------------------------------------------------------------------

def to_escnn_frame(x: torch.Tensor) -> torch.Tensor:
    """Our physical frame -> escnn's frame for fields ``(..., 2, H, W)``: ``(vx, vy) -> (vx, -vy)``."""
    return torch.stack((x[..., 0, :, :], -x[..., 1, :, :]), dim=-3)


from_escnn_frame = to_escnn_frame  # the reflection is an involution

# escnn warns on import that py3nj is missing; py3nj serves only 3-D groups and install.sh leaves it out.
warnings.filterwarnings("ignore", message=".*py3nj.*", category=UserWarning)


@functools.lru_cache(maxsize=None)
def _gspace():
    """escnn's C4 acting on the plane (imported lazily: escnn is slow to import)."""
    from escnn import gspaces
    return gspaces.rot2dOnR2(N_ROT)


def _rep(name: str):
    gs = _gspace()
    return {"vector": gs.irrep(1), "regular": gs.regular_repr, "trivial": gs.trivial_repr}[name]


def _field_type(*groups: tuple[str, int]):
    """escnn FieldType made of ``(representation name, count)`` groups, in that order."""
    from escnn import nn as enn
    reps = []
    for name, count in groups:
        reps += [_rep(name)] * int(count)
    return enn.FieldType(_gspace(), reps)


def _kernel_rotation_index(kernel_size: int) -> torch.Tensor:
    """``(4, k*k)`` long: ``flat[idx[g]]`` is the kernel ``psi(R^-g y)``, i.e. ``psi`` turned by ``g`` quarter turns
    counter-clockwise in our physical frame (kernel index ``[dy, dx]`` with ``dy`` up like the data)."""
    base = torch.arange(kernel_size * kernel_size).reshape(kernel_size, kernel_size)
    return torch.stack([rotate_scalar(base, g).reshape(-1) for g in range(N_ROT)])


def _rotation_powers(sign: int = 1) -> torch.Tensor:
    """``(4, 2, 2)``: ``R^(sign*g)`` with ``R (vx, vy) = (-vy, vx)`` (our counter-clockwise quarter turn)."""
    r = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    if sign < 0:
        r = r.T
    mats, m = [], torch.eye(2)
    for _ in range(N_ROT):
        mats.append(m)
        m = r @ m
    return torch.stack(mats)


def _check_kernel(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")


def _r2conv_stack(types: list, kernel_size: int):
    """escnn ``SequentialModule`` of same-padded ``R2Conv`` layers ``types[i] -> types[i + 1]`` with an escnn
    ``ReLU`` between consecutive layers (not after the last)."""
    from escnn import nn as enn
    mods = []
    for i in range(len(types) - 1):
        mods.append(enn.R2Conv(types[i], types[i + 1], kernel_size, padding=kernel_size // 2))
        if i < len(types) - 2:
            mods.append(enn.ReLU(types[i + 1]))
    return enn.SequentialModule(*mods)


# --------------------------------------------------------------------------------------------------------
# escnn-based models: E2CNN, RPP, Combo, Lift
# --------------------------------------------------------------------------------------------------------

class E2CNN(Model):
    """C4 steerable CNN (escnn ``R2Conv``): ``T_in`` vector fields -> ``hidden`` regular fields (ReLU) x
    ``layers - 1`` -> one vector field. ``frame_fix=False`` gives the authors' defective model (defect 3),
    equivariant only to escnn's mirrored rotation; kept for the test that documents it."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, frame_fix: bool = True,
                 extra_trivial: int = 0):
        super().__init__()
        _check_kernel(kernel_size)
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.frame_fix = frame_fix
        self.in_type = _field_type(("vector", in_frames), ("trivial", extra_trivial))
        hid = _field_type(("regular", hidden))
        types = [self.in_type] + [hid] * (layers - 1) + [_field_type(("vector", 1))]
        self.net = _r2conv_stack(types, kernel_size)

    def backbone(self, channels: torch.Tensor) -> torch.Tensor:
        from escnn import nn as enn
        return self.net(enn.GeometricTensor(channels, self.in_type)).tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frame_fix:
            x = to_escnn_frame(x)
        y = self.backbone(frames_to_channels(x))
        return from_escnn_frame(y) if self.frame_fix else y


class RPP(Model):
    """Residual pathway prior (Finzi et al. 2021) as the paper's baseline: every layer is an escnn C4 conv plus
    an unconstrained conv of the same shape, summed (ReLU after). ``regularizer() = alpha * sum ||W_plain||^2``:
    the stronger L2 prior on the non-equivariant path (the equivariant path only gets the optimiser's
    weight decay), so the model is pulled towards equivariance."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, alpha: float):
        super().__init__()
        from escnn import nn as enn
        _check_kernel(kernel_size)
        self.alpha = float(alpha)
        self.types = [_field_type(("vector", in_frames))] + [_field_type(("regular", hidden))] * (layers - 1) \
            + [_field_type(("vector", 1))]
        self.equiv = nn.ModuleList(enn.R2Conv(a, b, kernel_size, padding=kernel_size // 2)
                                   for a, b in zip(self.types[:-1], self.types[1:]))
        self.plain = nn.ModuleList(nn.Conv2d(a.size, b.size, kernel_size, padding=kernel_size // 2)
                                   for a, b in zip(self.types[:-1], self.types[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from escnn import nn as enn
        h = frames_to_channels(to_escnn_frame(x))
        for i, (eq, pl) in enumerate(zip(self.equiv, self.plain)):
            h = eq(enn.GeometricTensor(h, self.types[i])).tensor + pl(h)
            if i < len(self.equiv) - 1:
                h = F.relu(h)
        return from_escnn_frame(h)

    def regularizer(self) -> torch.Tensor:
        return self.alpha * sum((p ** 2).sum() for p in self.plain.parameters())


class Combo(Model):
    """Non-equivariant convolutions first (``plain_layers``, default ``layers // 2``, ``4 * hidden`` channels,
    ReLU), read as ``hidden`` regular fields by the remaining escnn C4 layers."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, plain_layers: int | None = None):
        super().__init__()
        _check_kernel(kernel_size)
        n_plain = max(1, layers // 2) if plain_layers is None else int(plain_layers)
        n_equiv = layers - n_plain
        if n_plain < 1 or n_equiv < 1:
            raise ValueError(f"combo needs at least one plain and one equivariant layer, got "
                             f"{n_plain} plain of {layers}")
        self.plain = conv_stack(2 * in_frames, 4 * hidden, 4 * hidden, n_plain, kernel_size, final_activation=True)
        self.hid_type = _field_type(("regular", hidden))
        types = [self.hid_type] * n_equiv + [_field_type(("vector", 1))]
        self.equiv = _r2conv_stack(types, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from escnn import nn as enn
        h = self.plain(frames_to_channels(to_escnn_frame(x)))
        return from_escnn_frame(self.equiv(enn.GeometricTensor(h, self.hid_type)).tensor)


class LiftExpansion(Model):
    """Lift expansion (Wang et al. 2021): a non-equivariant 2-layer CNN encoder (``4 * hidden`` wide) outputs
    ``encoder_channels`` (default ``hidden``) maps that enter the escnn C4 backbone as extra trivial-representation
    fields beside the ``T_in`` vector fields; the backbone is :class:`E2CNN`."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int,
                 encoder_channels: int | None = None):
        super().__init__()
        n_enc = hidden if encoder_channels is None else int(encoder_channels)
        self.encoder = conv_stack(2 * in_frames, 4 * hidden, n_enc, 2, kernel_size)
        self.backbone = E2CNN(in_frames, hidden, layers, kernel_size, extra_trivial=n_enc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder(frames_to_channels(x))
        h = torch.cat((frames_to_channels(to_escnn_frame(x)), enc), dim=1)
        return from_escnn_frame(self.backbone.backbone(h))


# --------------------------------------------------------------------------------------------------------
# relaxed group convolution (paper eq. 4-5), written in our frame
# --------------------------------------------------------------------------------------------------------
# Regular features f(x, i, c), i in Z4, transform as (g . f)(x, i) = f(R^-g x, i - g), channel index c*4 + i.

class LiftingConv(nn.Module):
    """Exactly C4-equivariant lifting from ``n_in`` vector fields to ``n_out`` regular fields (defect 5):
    ``f(x, g) = sum_y psi(R^-g y) R^-g v(x + y)``, the spatial form of the paper's ``f(i) = c <v, e_i>``.
    One bias per output field (invariant component only)."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int):
        super().__init__()
        _check_kernel(kernel_size)
        self.k = kernel_size
        fan_in = 2 * n_in * kernel_size ** 2
        self.psi = nn.Parameter(torch.randn(n_out, n_in, 2, kernel_size ** 2) * math.sqrt(2.0 / fan_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.register_buffer("rot_idx", _kernel_rotation_index(kernel_size), persistent=False)
        self.register_buffer("rinv", _rotation_powers(-1), persistent=False)

    def kernel(self) -> torch.Tensor:
        psi = self.psi[..., self.rot_idx]                                   # (o, t, c, g, p)
        k = torch.einsum("otcgp,gcd->ogtdp", psi, self.rinv)
        o, t = self.psi.shape[:2]
        return k.reshape(o * N_ROT, t * 2, self.k, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), self.bias.repeat_interleave(N_ROT), padding=self.k // 2)


class RelaxedGroupConv(nn.Module):
    """Relaxed C4 group convolution, regular -> regular (eq. 5):
    ``out(x, g) = sum_{y, h} f(x + y, h) sum_l w_l(h) psi_l(R^-g y, h - g)``.
    ``w`` has shape ``(banks, 4)``, initialised all equal (exactly equivariant). One conv2d with the
    assembled kernel; one bias per output field."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, banks: int):
        super().__init__()
        _check_kernel(kernel_size)
        self.k = kernel_size
        kk = kernel_size ** 2
        fan_in = N_ROT * n_in * kk
        self.psi = nn.Parameter(torch.randn(banks, n_out, n_in, N_ROT * kk) * math.sqrt(2.0 / fan_in / banks))
        self.w = nn.Parameter(torch.ones(banks, N_ROT))
        self.bias = nn.Parameter(torch.zeros(n_out))
        rot = _kernel_rotation_index(kernel_size)                          # (g, p)
        g = torch.arange(N_ROT)[:, None, None]
        h = torch.arange(N_ROT)[None, :, None]
        self.register_buffer("idx", ((h - g) % N_ROT) * kk + rot[:, None, :], persistent=False)  # (g, h, p)

    def kernel(self) -> torch.Tensor:
        psi = self.psi[..., self.idx]                                       # (l, o, i, g, h, p)
        k = torch.einsum("lh,loighp->ogihp", self.w, psi)
        o, i = self.psi.shape[1:3]
        return k.reshape(o * N_ROT, i * N_ROT, self.k, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), self.bias.repeat_interleave(N_ROT), padding=self.k // 2)

    def constraint(self) -> torch.Tensor:
        """``sum_l sum_{g,h} |w_l(h) - w_l(g)|`` (the paper's L_gconv)."""
        return (self.w[:, :, None] - self.w[:, None, :]).abs().sum()


class RelaxedGroupProjection(nn.Module):
    """Relaxed group convolution from regular fields to one vector field (no bias: no invariant component):
    ``out(x) = sum_{y, h} sum_l w_l(h) R^h phi_l(R^-h y) f(x + y, h)``."""

    def __init__(self, n_in: int, kernel_size: int, banks: int):
        super().__init__()
        _check_kernel(kernel_size)
        self.k = kernel_size
        fan_in = N_ROT * n_in * kernel_size ** 2
        self.phi = nn.Parameter(torch.randn(banks, 2, n_in, kernel_size ** 2) * math.sqrt(1.0 / fan_in / banks))
        self.w = nn.Parameter(torch.ones(banks, N_ROT))
        self.register_buffer("rot_idx", _kernel_rotation_index(kernel_size), persistent=False)
        self.register_buffer("rpow", _rotation_powers(1), persistent=False)

    def kernel(self) -> torch.Tensor:
        phi = self.phi[..., self.rot_idx]                                   # (l, d, i, h, p)
        k = torch.einsum("lh,hcd,ldihp->cihp", self.w, self.rpow, phi)
        return k.reshape(2, -1, self.k, self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), padding=self.k // 2)

    def constraint(self) -> torch.Tensor:
        return (self.w[:, :, None] - self.w[:, None, :]).abs().sum()


class RGroup(Model):
    """Relaxed C4 group CNN: exact lifting (vector -> regular), ``layers - 2`` relaxed group convolutions with
    ``banks`` filter banks, a relaxed projection to the output vector field; ReLU after every hidden layer.
    ``regularizer() = alpha * sum over layers of L_gconv``."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, banks: int, alpha: float):
        super().__init__()
        if layers < 2:
            raise ValueError(f"rgroup needs at least 2 layers (lift and projection), got {layers}")
        self.alpha = float(alpha)
        self.lift = LiftingConv(in_frames, hidden, kernel_size)
        self.convs = nn.ModuleList(RelaxedGroupConv(hidden, hidden, kernel_size, banks) for _ in range(layers - 2))
        self.proj = RelaxedGroupProjection(hidden, kernel_size, banks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.lift(frames_to_channels(x)))
        for conv in self.convs:
            h = F.relu(conv(h))
        return self.proj(h)

    def regularizer(self) -> torch.Tensor:
        return self.alpha * (sum(c.constraint() for c in self.convs) + self.proj.constraint())


# --------------------------------------------------------------------------------------------------------
# relaxed steerable convolution (paper eq. 6-9), escnn kernel basis, escnn frame
# --------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _steerable_basis(in_rep: str, out_rep: str, kernel_size: int) -> torch.Tensor:
    """escnn's C4-steerable kernel basis for one ``in_rep`` -> one ``out_rep`` field:
    ``(n_basis, dim_out, dim_in, k, k)``, read off an ``R2Conv`` by expanding unit weight vectors."""
    from escnn import nn as enn
    conv = enn.R2Conv(_field_type((in_rep, 1)), _field_type((out_rep, 1)), kernel_size,
                      padding=kernel_size // 2, bias=False)
    n = conv.weights.numel()
    with torch.no_grad():
        basis = [conv.basisexpansion(torch.eye(n, dtype=conv.weights.dtype)[j]) for j in range(n)]
    return torch.stack(basis).reshape(n, *basis[0].shape[:2], kernel_size, kernel_size).float().contiguous()


@functools.lru_cache(maxsize=None)
def _steerable_basis_std(in_rep: str, out_rep: str, kernel_size: int) -> torch.Tensor:
    """``(n_basis,)``: the standard deviation escnn's ``R2Conv`` draws each coefficient of the one-field basis of
    :func:`_steerable_basis` with (``escnn.nn.init.generalized_he_init``: ``1 / sqrt(n_in_irreps * n_basis(in_irrep,
    out_irrep))`` per output irrep, same order as the basis). For ``n_in`` identical input fields escnn counts
    ``n_in`` times the basis elements, i.e. divides this by ``sqrt(n_in)``."""
    from escnn import nn as enn
    conv = enn.R2Conv(_field_type((in_rep, 1)), _field_type((out_rep, 1)), kernel_size,
                      padding=kernel_size // 2, bias=False, initialize=False)
    info = list(conv.basisexpansion.get_basis_info())
    in_irreps, count = {}, {}
    for attr in info:
        o = attr["out_irreps_position"]
        in_irreps.setdefault(o, set()).add(attr["in_irrep"])
        count[(attr["in_irrep"], o)] = count.get((attr["in_irrep"], o), 0) + 1
    std = [1.0 / math.sqrt(len(in_irreps[a["out_irreps_position"]]) * count[(a["in_irrep"], a["out_irreps_position"])])
           for a in info]
    assert len(std) == conv.weights.numel()
    return torch.tensor(std, dtype=torch.float32)


def _invariant_bias_basis(rep_name: str) -> torch.Tensor:
    """``(dim, n_trivial)``: the columns of the change of basis that carry trivial irreps; a bias is only ever
    ``basis @ b`` (zero columns for a vector field, which therefore has no bias)."""
    rep = _rep(rep_name)
    q = torch.as_tensor(rep.change_of_basis, dtype=torch.float32)
    cols, offset = [], 0
    for irrep_id in rep.irreps:
        irrep = rep.group.irrep(*irrep_id)
        if irrep.is_trivial():
            cols.append(offset)
        offset += irrep.size
    return q[:, cols]


# The relaxed steerable layer's constants (basis, init scales, bias basis) come from escnn, whose import and basis
# construction cost ~2-4 s of every training and evaluation job of an rsteer model. They depend only on the layer's
# definition, so the first job computes them and keeps them in a cache folder; later jobs read them without
# importing escnn. Reading them changes no result: the values are the same tensors, and the normal draws that
# escnn's probe layer makes from torch's generator (its weight init, in :func:`_steerable_basis`) are drawn again, so
# a model built after ``torch.manual_seed`` gets the same initial weights either way.
BASIS_CACHE_ENV = "PIPELINE_BASIS_CACHE"
BASIS_CACHE_FORMAT = 1


def basis_cache_dir() -> Path | None:
    """The folder of cached steerable bases: ``$PIPELINE_BASIS_CACHE``, else ``$XDG_CACHE_HOME`` (``~/.cache``)
    ``/approx-equivariance/bases``; an empty ``$PIPELINE_BASIS_CACHE`` turns the cache off. Files are small (a few
    KB each), named by the hash of their definition, written whole (a temporary name renamed into place) and safe
    to delete at any time."""
    value = os.environ.get(BASIS_CACHE_ENV)
    if value is not None:
        return Path(value) if value else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "approx-equivariance" / "bases"


def _basis_definition(in_rep: str, out_rep: str, kernel_size: int) -> dict:
    from importlib import metadata
    try:
        escnn_version = metadata.version("escnn")
    except metadata.PackageNotFoundError:
        escnn_version = None
    return {"format": BASIS_CACHE_FORMAT, "group": f"rot2dOnR2({N_ROT})", "in_rep": in_rep, "out_rep": out_rep,
            "kernel_size": int(kernel_size), "escnn": escnn_version}


def _read_basis(path: Path, definition: dict) -> dict | None:
    try:
        saved = torch.load(path, weights_only=True)
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged or foreign file: recompute (and replace it)
        log.warning("ignoring the unreadable basis cache file %s (%s)", path, e)
        return None
    if not isinstance(saved, dict) or saved.get("definition") != definition:
        return None
    return saved


def _write_basis(path: Path, saved: dict) -> None:
    try:
        with files.partial(path, unique=True) as tmp:  # jobs building the same layer may write it at once
            torch.save(saved, tmp)
    except OSError as e:  # a read-only or full cache folder costs speed, never the job
        log.warning("could not keep the steerable basis in %s (%s); set %s to a writable folder", path, e,
                    BASIS_CACHE_ENV)


@functools.lru_cache(maxsize=None)
def _steerable_constants(in_rep: str, out_rep: str,
                         kernel_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(basis, std, bias_basis)`` of a relaxed steerable layer ``in_rep -> out_rep`` (:func:`_steerable_basis`,
    :func:`_steerable_basis_std`, :func:`_invariant_bias_basis` of ``out_rep``), from the cache folder
    (:func:`basis_cache_dir`) when it holds them for this definition (and escnn version), else from escnn."""
    definition = _basis_definition(in_rep, out_rep, kernel_size)
    folder = basis_cache_dir()
    path = None
    if folder is not None:
        digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:24]
        path = folder / f"steerable-{digest}.pt"
        saved = _read_basis(path, definition)
        if saved is not None:
            torch.randn(saved["basis"].shape[0])  # the draws of the probe layer's init in _steerable_basis
            return saved["basis"], saved["std"], saved["bias_basis"]
    basis = _steerable_basis(in_rep, out_rep, kernel_size)
    std = _steerable_basis_std(in_rep, out_rep, kernel_size)
    bias_basis = _invariant_bias_basis(out_rep)
    if path is not None:
        _write_basis(path, {"definition": definition, "basis": basis, "std": std, "bias_basis": bias_basis})
    return basis, std, bias_basis


class RelaxedSteerableConv(nn.Module):
    """Relaxed C4-steerable convolution, ``n_in`` ``in_rep`` fields -> ``n_out`` ``out_rep`` fields.

    ``rank=None`` (eq. 7): ``K(y) = sum_l w_l(y) psi_l(y)`` with relaxed weights ``w`` of shape
    ``(n_out, n_in, L, k, k)``, one weight per basis element and kernel pixel (for ``k = 3`` each pixel is its own
    angle, so this equals the paper's ``w_l(theta)``). ``rank=r`` (eq. 8-9): ``w_l(x, y) = sum_r a_r(x) b_{r,l}(y)``
    with ``a: (r, H, W)``, computed as one conv2d with ``r`` stacked kernels, then mixed by ``a``.

    Parametrisation: ``w_l(y) = coef_l + delta_l(y)`` (:attr:`weight`), the shared equivariant coefficients of
    escnn's ``R2Conv`` plus a per-pixel relaxation ``delta`` that starts at zero. The function class and the
    constraint are the paper's (differences of ``w`` over ``y`` are those of ``delta``); what changes is that the
    equivariant part is one parameter per basis element, as in E2CNN, so Adam moves it at E2CNN's rate, and
    ``coef`` is drawn exactly like escnn's generalised He init (``rank`` kernels each ``1 / sqrt(rank)`` of it),
    so a relaxed layer at initialisation is distributed like the ``R2Conv`` of ``equiv``. Exactly equivariant at
    initialisation (``delta = 0``, ``a`` constant over ``x``). The bias lives only on trivial (invariant)
    sub-representations.
    """

    def __init__(self, in_rep: str, n_in: int, out_rep: str, n_out: int, kernel_size: int,
                 rank: int | None = None, frame_size: tuple[int, int] | None = None, bias: bool = True):
        super().__init__()
        _check_kernel(kernel_size)
        self.k, self.n_in, self.n_out, self.rank = kernel_size, n_in, n_out, rank
        basis, std, bb = _steerable_constants(in_rep, out_rep, kernel_size)
        self.register_buffer("basis", basis.clone())
        n_basis = basis.shape[0]
        reps = 1 if rank is None else int(rank)
        std = std / math.sqrt(n_in * reps)
        coef = torch.randn(reps, n_out, n_in, n_basis) * std
        if rank is None:
            self.coef = nn.Parameter(coef[0])                               # (o, i, l)
            self.a = None
        else:
            if frame_size is None:
                raise ValueError("the translation-relaxed steerable conv needs frame_size")
            self.coef = nn.Parameter(coef)                                  # (r, o, i, l)
            self.a = nn.Parameter(torch.ones(rank, *frame_size))
        self.delta = nn.Parameter(torch.zeros(*self.coef.shape, kernel_size, kernel_size))  # (..., l, k, k)
        self.register_buffer("bias_basis", bb.clone())
        self.bias = nn.Parameter(torch.zeros(n_out, bb.shape[1])) if bias and bb.shape[1] else None

    @property
    def weight(self) -> torch.Tensor:
        """The paper's relaxed weights ``w_l(y) = coef_l + delta_l(y)``: ``((r,) o, i, l, k, k)``."""
        return self.coef[..., None, None] + self.delta

    def kernel(self) -> torch.Tensor:
        """The assembled conv2d kernel (``(r *) out_channels, in_channels, k, k``)."""
        d_in = self.basis.shape[2]
        k = torch.einsum("...oilyx,labyx->...oaibyx", self.weight, self.basis)
        return k.reshape(-1, self.n_in * d_in, self.k, self.k)

    def expanded_bias(self) -> torch.Tensor | None:
        if self.bias is None:
            return None
        return torch.einsum("db,ob->od", self.bias_basis, self.bias).reshape(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.expanded_bias()
        if self.a is None:
            return F.conv2d(x, self.kernel(), bias, padding=self.k // 2)
        if tuple(x.shape[-2:]) != tuple(self.a.shape[-2:]):
            raise ValueError(f"built for frames {tuple(self.a.shape[-2:])}, got {tuple(x.shape[-2:])}")
        y = F.conv2d(x, self.kernel(), padding=self.k // 2)
        y = torch.einsum("brchw,rhw->bchw", y.reshape(x.shape[0], self.rank, -1, *x.shape[-2:]), self.a)
        return y if bias is None else y + bias[:, None, None]

    def constraint(self) -> torch.Tensor:
        """The paper's L_sconv, ``sum |dw/dm| + |dw/dn|`` over the kernel grid (first differences); with the
        translation relaxation also the same penalty on ``a`` over the frame. Zero iff equivariant weights.
        ``coef`` is constant over the grid, so the differences of ``w`` are exactly those of ``delta``."""
        total = finite_differences_l1(self.delta, (-2, -1))
        if self.a is not None:
            total = total + finite_differences_l1(self.a, (-2, -1))
        return total


class RSteer(Model):
    """Relaxed C4 steerable CNN: ``T_in`` vector fields -> ``hidden`` regular fields (ReLU) x ``layers - 1`` ->
    one vector field, every layer a :class:`RelaxedSteerableConv` (``rank`` given: the translation-relaxed
    version of eq. 8-9). ``regularizer() = alpha * sum of the layers' constraints``."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, alpha: float,
                 rank: int | None = None, frame_size: tuple[int, int] | None = None):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.alpha = float(alpha)
        spec = [("vector", in_frames)] + [("regular", hidden)] * (layers - 1) + [("vector", 1)]
        self.convs = nn.ModuleList(
            RelaxedSteerableConv(a[0], a[1], b[0], b[1], kernel_size, rank=rank, frame_size=frame_size)
            for a, b in zip(spec[:-1], spec[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_escnn_frame(relu_between(self.convs, frames_to_channels(to_escnn_frame(x))))

    def regularizer(self) -> torch.Tensor:
        return self.alpha * sum(c.constraint() for c in self.convs)


# --------------------------------------------------------------------------------------------------------
# relax-then-project (Pertigkiozoglou et al. 2024) on E2CNN
# --------------------------------------------------------------------------------------------------------

class TensorR2Conv(nn.Module):
    """An escnn ``R2Conv`` between plain tensors (the channels of ``in_type`` -> those of ``out_type``)."""

    def __init__(self, in_type, out_type, kernel_size: int):
        super().__init__()
        from escnn import nn as enn
        self.in_type = in_type
        self.conv = enn.R2Conv(in_type, out_type, kernel_size, padding=kernel_size // 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        from escnn import nn as enn
        return self.conv(enn.GeometricTensor(h, self.in_type)).tensor


class E2CNNTerms:
    """Mixin of the additive relaxations on the C4 E2CNN (:class:`E2CNN`'s field types, frame and ReLU): every escnn
    layer paired with a bias-free plain convolution of the same channels (:meth:`layers`)."""

    @staticmethod
    def layers(in_frames: int, hidden: int, layers: int, kernel_size: int) -> tuple[list, list]:
        _check_kernel(kernel_size)
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        types = [_field_type(("vector", in_frames))] + [_field_type(("regular", hidden))] * (layers - 1) \
            + [_field_type(("vector", 1))]
        pairs = list(zip(types[:-1], types[1:]))
        return ([TensorR2Conv(a, b, kernel_size) for a, b in pairs],
                [nn.Conv2d(a.size, b.size, kernel_size, padding=kernel_size // 2, bias=False) for a, b in pairs])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return frames_to_channels(to_escnn_frame(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return from_escnn_frame(h)


class CRelax(E2CNNTerms, RelaxThenProject):
    """Relax-then-project on the C4 E2CNN: the plain terms weighted by the schedule in training and dropped in
    evaluation, when the model is exactly :class:`E2CNN`. ``g W``: the kernel turned a quarter (the authors'
    ``rot90``)."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, alpha: float,
                 schedule: str = "triangle"):
        super().__init__(*self.layers(in_frames, hidden, layers, kernel_size), alpha, schedule)

    def moved_kernel(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.rot90(weight, 1, dims=(-2, -1))


class ACENet(E2CNNTerms, ACE):
    """ACE on the C4 E2CNN: every layer ``E2CNN layer + gamma_i * plain conv``; ``gamma = 0`` is :class:`E2CNN`."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, dual_lr: float,
                 slack_penalty: float):
        super().__init__(*self.layers(in_frames, hidden, layers, kernel_size), dual_lr, slack_penalty)


class SBI(SymmetryBreakingInputs):
    """Symmetry-breaking inputs (Ashman et al. 2024) on the C4 E2CNN: the learned fields enter :class:`E2CNN` as
    trivial-representation fields beside the ``T_in`` vector fields (as Lift's encoder output does), so a rotation
    of the input does not move them. Fields zeroed: exactly the E2CNN function."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int, kernel_size: int,
                 fields: int, dropout: float):
        super().__init__(fields, frame_size, dropout)
        self.net = E2CNN(in_frames, hidden, layers, kernel_size, extra_trivial=fields)

    def predict(self, x: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        h = torch.cat((frames_to_channels(to_escnn_frame(x)), fields), dim=1)
        return from_escnn_frame(self.net.backbone(h))


# --------------------------------------------------------------------------------------------------------
# constrained locally connected net (CLCNN), our frame
# --------------------------------------------------------------------------------------------------------

def _rep_matrices(kind: str, count: int) -> torch.Tensor:
    """``(4, n, n)`` block-diagonal matrices of ``count`` fields in our frame: ``vector`` -> ``R^g``,
    ``regular`` -> the cyclic shift ``(g . f)(i) = f(i - g)``."""
    if kind == "vector":
        block = _rotation_powers(1)
    elif kind == "regular":
        block = torch.stack([torch.roll(torch.eye(N_ROT), g, dims=0) for g in range(N_ROT)])
    else:
        raise ValueError(kind)
    return torch.stack([torch.block_diag(*[block[g]] * count) for g in range(N_ROT)])


class CLCNN(Model):
    """Locally connected net with the soft C4 kernel constraint (paper section 3.4):
    ``regularizer() = alpha * sum_{layers, x, g != e} || rho_out(g) K_x(R^-g .) rho_in(g)^-1 - K_x ||_F``,
    zero iff every position's kernel is C4-steerable. Inputs ``T_in`` vector fields, hidden regular fields
    (``4 * hidden`` channels, one invariant bias per field), output a vector field (no bias).

    The untied weights cost ``H W k^2`` per channel pair: the width is lowered below ``hidden`` until the count is
    under ``max_params`` (at 64x64, 10 frames, kernel 3, 5 layers that leaves 1 regular field)."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int, kernel_size: int,
                 alpha: float, max_params: float = PARAMETER_BUDGET):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.alpha = float(alpha)
        n = max(1, int(hidden))
        while n > 1 and self.count(in_frames, frame_size, n, layers, kernel_size) >= max_params:
            n -= 1
        self.hidden = n
        spec = [("vector", in_frames)] + [("regular", n)] * (layers - 1) + [("vector", 1)]
        dims = [2 * c if kind == "vector" else N_ROT * c for kind, c in spec]
        self.layers = nn.ModuleList(LocallyConnected2d(a, b, kernel_size, frame_size, bias=False, weight_init="he")
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n)) for _ in range(layers - 1))
        for i, (a, b) in enumerate(zip(spec[:-1], spec[1:])):
            self.register_buffer(f"rho_out{i}", _rep_matrices(*b)[1:], persistent=False)
            self.register_buffer(f"rho_in_inv{i}", _rep_matrices(*a)[1:].transpose(-1, -2).contiguous(),
                                 persistent=False)
        self.register_buffer("rot_idx", _kernel_rotation_index(kernel_size)[1:], persistent=False)

    @staticmethod
    def count(in_frames, frame_size, n, layers, kernel_size) -> int:
        dims = [2 * in_frames] + [N_ROT * n] * (layers - 1) + [2]
        return sum(LocallyConnected2d.count(a, b, kernel_size, frame_size, bias=False)
                   for a, b in zip(dims[:-1], dims[1:])) + n * (layers - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = frames_to_channels(x)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = F.relu(h + self.biases[i].repeat_interleave(N_ROT)[:, None, None])
        return h

    def rotated_kernels(self, i: int) -> torch.Tensor:
        """``(3, H*W, out, in, k, k)``: ``rho_out(g) K_x(R^-g y) rho_in(g)^-1`` for ``g = 1, 2, 3``."""
        w = self.layers[i].position_kernels()
        flat = w.reshape(*w.shape[:3], -1)[..., self.rot_idx]               # (L, o, i, g, p)
        rot = torch.einsum("gab,lbcgp,gcd->gladp", getattr(self, f"rho_out{i}"), flat,
                           getattr(self, f"rho_in_inv{i}"))
        return rot.reshape(3, *w.shape)

    def constraint(self) -> torch.Tensor:
        total = None
        for i, layer in enumerate(self.layers):
            diff = self.rotated_kernels(i) - layer.position_kernels()[None]
            term = torch.linalg.vector_norm(diff.flatten(3), dim=-1).sum()
            total = term if total is None else total + term
        return total

    def regularizer(self) -> torch.Tensor:
        return self.alpha * self.constraint()


# --------------------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------------------

def build_mlp(in_frames: int = 10, frame_size=(64, 64), hidden: int = 92, layers: int = 5) -> Model:
    return MLP(in_frames, tuple(frame_size), hidden, layers)


def build_conv(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3) -> Model:
    return ConvNet(in_frames, hidden, layers, kernel_size)


def build_equiv(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3) -> Model:
    return E2CNN(in_frames, hidden, layers, kernel_size)


def build_rpp(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3,
              alpha: float = 1e-4) -> Model:
    return RPP(in_frames, hidden, layers, kernel_size, alpha)


def build_combo(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3,
                plain_layers: int | None = None) -> Model:
    return Combo(in_frames, hidden, layers, kernel_size, plain_layers)


def build_clcnn(in_frames: int = 10, frame_size=(64, 64), hidden: int = 92, layers: int = 5,
                kernel_size: int = 3, alpha: float = 1e-4) -> Model:
    return CLCNN(in_frames, tuple(frame_size), hidden, layers, kernel_size, alpha)


def build_lift(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3,
               encoder_channels: int | None = None) -> Model:
    return LiftExpansion(in_frames, hidden, layers, kernel_size, encoder_channels)


def build_rgroup(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3,
                 banks: int = 3, alpha: float = 1e-5) -> Model:
    return RGroup(in_frames, hidden, layers, kernel_size, banks, alpha)


def build_rsteer(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3,
                 alpha: float = 1e-5) -> Model:
    return RSteer(in_frames, hidden, layers, kernel_size, alpha)


def build_rsteer_tr(in_frames: int = 10, frame_size=(64, 64), hidden: int = 92, layers: int = 5,
                    kernel_size: int = 3, alpha: float = 1e-5, rank: int = 1) -> Model:
    return RSteer(in_frames, hidden, layers, kernel_size, alpha, rank=int(rank), frame_size=tuple(frame_size))


def build_crelax(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3,
                 alpha: float = 1e-2, schedule: str = "triangle") -> Model:
    return CRelax(in_frames, hidden, layers, kernel_size, alpha, schedule)


def build_ace(in_frames: int = 10, hidden: int = 92, layers: int = 5, kernel_size: int = 3, dual_lr: float = 1e-2,
              slack_penalty: float = 1.0) -> Model:
    return ACENet(in_frames, hidden, layers, kernel_size, dual_lr, slack_penalty)


def build_sbi(in_frames: int = 10, frame_size=(64, 64), hidden: int = 92, layers: int = 5, kernel_size: int = 3,
              fields: int = 4, field_dropout: float = 0.5) -> Model:
    return SBI(in_frames, tuple(frame_size), hidden, layers, kernel_size, fields, field_dropout)


MODELS = {
    "mlp": build_mlp,
    "conv": build_conv,
    "equiv": build_equiv,
    "rpp": build_rpp,
    "combo": build_combo,
    "clcnn": build_clcnn,
    "lift": build_lift,
    "rgroup": build_rgroup,
    "rsteer": build_rsteer,
    "rsteer_tr": build_rsteer_tr,
    "crelax": build_crelax,
    "sbi": build_sbi,
    "ace": build_ace,
    "gmcnn": build_gmcnn,
}
