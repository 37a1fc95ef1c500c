"""Models of the scaling family: SESN (scale-equivariant steerable nets) and its relaxations.

Scale-equivariant steerable convolution (Sosnovik, Szmaja & Smeulders, ICLR 2020), written from the
paper's mathematics:

* A fixed multi-scale basis: 2D Hermite-Gaussian functions ``psi_b`` (orders ``n, m < basis_size``)
  dilated to every scale ``s`` of the scale set, ``psi_b^s(y) = s^-2 psi_b(y / s)``, sampled on the full
  ``kernel_size x kernel_size`` grid at every scale (no scale gets a smaller support). The ``s^-2``
  factor is what makes ``conv(zoom_r f, psi^{r s}) = zoom_r conv(f, psi^s)``. It is computed once and
  kept as a buffer ``(S, nb, k, k)``.
* Lifting ``Z2 -> scales x Z2``: ``F_s = f * sum_b w_b psi_b^s`` for every scale ``s``: one conv with the
  ``S`` kernels stacked on the output axis.
* Scale convolution ``scales x Z2 -> scales x Z2``: ``F'_s = sum_{j < scale_mix} F_{s+j} * kappa_j^s``
  with ``kappa_j^s = sum_b w_{j b} psi_b^s``: one grouped conv (``groups = S``). With ``scale_mix = 1``
  (default) every scale is processed by the same dilated kernel and the network is equivariant to any
  zoom mapping one scale of the set onto another; ``scale_mix > 1`` mixes neighbouring *indices* of the
  scale set (zero-padded beyond the largest scale), a group operation only for a geometric scale set.
* Output: the last layer gives 2 channels at every scale, then a pool over scales (mean by default,
  ``pool="max"`` optional): every scale channel reaches the output.

Features inside are ``(B, S * C, H, W)``, scale-major (block ``s`` holds the ``C`` channels of scale ``s``).
Velocity components are treated as scalar channels (a zoom does not rotate vectors).

Relaxations (paper sections 3.1-3.4), all with one conv per layer and kernels assembled by einsum:

* ``rsteer`` (eq. 7): the basis coefficients depend on the position ``y`` inside the kernel, ``w_b(y)``, one
  set shared by all scales: the kernel at scale ``s`` is ``kappa^s(y) = sum_b w_b(y) psi_b^s(y)``, the pointwise
  product on the ``k x k`` grid of the relaxed weight and the basis dilated to ``s``. Parametrised as
  ``w_b(y) = w_b + delta_b(y)`` with ``delta = 0`` at init, so the layer starts as the exact SESN with the
  coefficients ``w_b`` (drawn as for ``equiv``). Regulariser: the paper's L_sconv,
  ``alpha * sum |dw/dm| + |dw/dn|`` by first differences along the two kernel axes (those of ``delta``),
  exactly zero at the equivariant point.
* ``rgroup`` (eq. 4-5): ``L = banks`` steerable kernels ``Psi_l`` combined with scale-dependent weights,
  ``Psi(s) = sum_l w_l(s) Psi_l^s``, initialised equal over ``s``; regulariser
  ``alpha * sum_l sum_{g,h} |w_l(h) - w_l(g)|`` (paper section 3.3).
* ``rpp``: residual pathway prior, SESN path + plain (per-scale, untied) conv path in every layer,
  regulariser ``alpha * ||plain weights||^2``.
* ``combo``: plain CNN layers then SESN layers. ``lift``: a non-equivariant CNN encoder tiled over the
  scale axis as extra (scale-invariant) channels of a SESN backbone.
* ``clcnn``: a locally connected net (per-position kernels) with a soft scale-consistency loss on each
  position's kernel: ``kappa(y) ~ r^2 kappa(r y)`` for every ratio ``r`` of two scales of the set (the
  kernel constraint of eq. 3 for scalar channels under dilation), sampled bilinearly at the offsets
  ``y != 0`` with ``r y`` inside the kernel. Its width is capped so that it stays under the parameter
  budget (a locally connected layer on a 64 x 64 frame costs 4096 kernels).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import PARAMETER_BUDGET
from .common import (ACE, MLP, ConvNet, LayerNet, LocallyConnected2d, Model, RelaxThenProject,
                     SymmetryBreakingInputs, build_gmcnn, conv_stack, finite_differences_l1, frames_to_channels)

DEFAULT_SCALES = (1.0, 1.5, 2.0, 2.5)


# ----------------------------------------------------------------------------------------------------
# Basis
# ----------------------------------------------------------------------------------------------------

def _hermite(n: int, u: torch.Tensor) -> torch.Tensor:
    """Probabilists' Hermite polynomial ``He_n(u)`` by recurrence."""
    h0, h1 = torch.ones_like(u), u
    if n == 0:
        return h0
    for k in range(1, n):
        h0, h1 = h1, u * h1 - k * h0
    return h1


def hermite_gaussian_basis(kernel_size: int, scales: Sequence[float], basis_size: int = 3,
                           base_sigma: float = 0.6) -> torch.Tensor:
    """Multi-scale Hermite-Gaussian basis ``(S, basis_size**2, k, k)``, float64.

    ``psi_{nm}^s(y) = s^-2 He_n(y_x / (sigma s)) He_m(y_y / (sigma s)) exp(-|y|^2 / (2 (sigma s)^2))`` on
    the integer grid ``|y| <= k // 2`` (index ``[y, x]``). Each function is divided by its L2 norm at the
    smallest scale, the same constant at every scale, so the relative ``s^-2`` normalisation is kept.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    scales = tuple(float(s) for s in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive, got {scales}")
    if basis_size < 1:
        raise ValueError(f"basis_size must be at least 1, got {basis_size}")
    r = kernel_size // 2
    grid = torch.arange(-r, r + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    out = []
    for s in scales:
        sig = base_sigma * s
        u, v = xx / sig, yy / sig
        gauss = torch.exp(-(u ** 2 + v ** 2) / 2)
        funcs = [_hermite(n, u) * _hermite(m, v) * gauss / s ** 2
                 for n in range(basis_size) for m in range(basis_size)]
        out.append(torch.stack(funcs))
    basis = torch.stack(out)  # (S, nb, k, k)
    smallest = min(range(len(scales)), key=lambda i: scales[i])
    norm = basis[smallest].flatten(1).norm(dim=1).clamp_min(1e-12)
    return basis / norm[None, :, None, None]


# ----------------------------------------------------------------------------------------------------
# Scale convolution (equivariant and relaxed)
# ----------------------------------------------------------------------------------------------------

RELAXATIONS = ("none", "steer", "group")


class ScaleConv(nn.Module):
    """One SESN layer, lifting (``lift=True``: input ``(B, Cin, H, W)``) or scale-to-scale (input
    ``(B, S*Cin, H, W)``), output ``(B, S*Cout, H, W)``; optionally relaxed (see module docstring).

    ``plain=True`` adds the residual-pathway plain conv (untied per scale) to the output.
    """

    def __init__(self, in_channels: int, out_channels: int, basis: torch.Tensor, lift: bool,
                 scale_mix: int = 1, relax: str = "none", banks: int = 2, plain: bool = False, bias: bool = True):
        super().__init__()
        if relax not in RELAXATIONS:
            raise ValueError(f"relax must be one of {RELAXATIONS}, got {relax!r}")
        self.register_buffer("basis", basis.to(torch.get_default_dtype()).clone(), persistent=False)
        S, nb, k, _ = basis.shape
        self.S, self.nb, self.k = S, nb, k
        self.lift = bool(lift)
        self.mix = 1 if lift else int(scale_mix)
        if self.mix < 1 or self.mix > S:
            raise ValueError(f"scale_mix must be in 1..{S}, got {scale_mix}")
        self.cin, self.cout, self.relax = in_channels, out_channels, relax
        cin_eff = in_channels * self.mix
        # Variance-preserving init: a kernel sum_b w_b psi_b has norm ~ |w| (basis normalised at s_min).
        std = math.sqrt(2.0 / (cin_eff * nb))
        base = torch.randn(out_channels, cin_eff, nb) * std
        if relax == "none":
            self.weight = nn.Parameter(base)
        elif relax == "steer":
            self.weight = nn.Parameter(base)  # (Cout, Cin, nb): the SESN coefficients w_b
            self.delta = nn.Parameter(torch.zeros(*base.shape, k, k))  # delta_b(y), zero: equal over y at init
        else:  # group
            if banks < 1:
                raise ValueError(f"banks must be at least 1, got {banks}")
            self.banks = int(banks)
            self.bank_weight = nn.Parameter(torch.randn(banks, out_channels, cin_eff, nb) * std)
            self.mixing = nn.Parameter(torch.full((S, banks), 1.0 / math.sqrt(banks)))  # w_l(s), equal over s
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.plain = None
        if plain:
            if lift:
                self.plain = nn.Conv2d(in_channels, S * out_channels, k, padding=k // 2, bias=False)
            else:
                self.plain = nn.Conv2d(S * cin_eff, S * out_channels, k, padding=k // 2, groups=S, bias=False)

    # kernel assembly ------------------------------------------------------------------------------
    def relaxed_weight(self) -> torch.Tensor:
        """``relax='steer'``: the paper's ``w_b(y) = w_b + delta_b(y)``, ``(Cout, Cin_eff, nb, k, k)``, no S axis."""
        if self.relax != "steer":
            raise ValueError(f"relaxed_weight is the position-dependent weight of relax='steer', not {self.relax!r}")
        return self.weight[..., None, None] + self.delta

    def coefficients(self) -> torch.Tensor:
        """Per-scale basis coefficients ``(S, Cout, Cin_eff, nb)``; for ``steer`` those of its equivariant part
        (``delta`` left out)."""
        if self.relax in ("none", "steer"):
            return self.weight.expand(self.S, *self.weight.shape)
        return torch.einsum("sl,locb->socb", self.mixing, self.bank_weight)

    def kernel(self) -> torch.Tensor:
        """Stacked conv kernel: ``(S*Cout, Cin_eff, k, k)``."""
        if self.relax == "steer":
            w = torch.einsum("ocbhw,sbhw->sochw", self.relaxed_weight(), self.basis)
        else:
            w = torch.einsum("socb,sbhw->sochw", self.coefficients(), self.basis)
        return w.reshape(-1, w.shape[-3], self.k, self.k)

    def _gather_scales(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, S*Cin, H, W)`` -> ``(B, S*mix*Cin, H, W)``: scale ``s`` block holds scales ``s..s+mix-1``."""
        if self.mix == 1:
            return x
        B, _, H, W = x.shape
        f = x.reshape(B, self.S, self.cin, H, W)
        f = F.pad(f, (0, 0, 0, 0, 0, 0, 0, self.mix - 1))  # zeros beyond the largest scale
        windows = torch.stack([f[:, j:j + self.S] for j in range(self.mix)], dim=2)  # (B, S, mix, C, H, W)
        return windows.reshape(B, self.S * self.mix * self.cin, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.cin if self.lift else self.S * self.cin
        if x.shape[1] != expected:
            raise ValueError(f"ScaleConv expected {expected} input channels, got {x.shape[1]}")
        inp = x if self.lift else self._gather_scales(x)
        groups = 1 if self.lift else self.S
        out = F.conv2d(inp, self.kernel(), padding=self.k // 2, groups=groups)
        if self.plain is not None:
            out = out + self.plain(inp)
        if self.bias is not None:
            out = out + self.bias.repeat(self.S)[None, :, None, None]
        return out

    # regularisers ---------------------------------------------------------------------------------
    def relaxation_penalty(self) -> torch.Tensor:
        """The paper's constraint on the relaxed weights; exactly zero at the equivariant point."""
        if self.relax == "steer":
            return finite_differences_l1(self.delta, (-2, -1))
        if self.relax == "group":
            return (self.mixing[:, None, :] - self.mixing[None, :, :]).abs().sum()
        return self.basis.new_zeros(())

    def plain_penalty(self) -> torch.Tensor:
        if self.plain is None:
            return self.basis.new_zeros(())
        return (self.plain.weight ** 2).sum()


def pool_scales(x: torch.Tensor, scales: int, mode: str = "mean") -> torch.Tensor:
    """``(B, S*C, H, W)`` -> ``(B, C, H, W)`` by mean or max over the scale axis."""
    B, SC, H, W = x.shape
    f = x.reshape(B, scales, SC // scales, H, W)
    if mode == "mean":
        return f.mean(dim=1)
    if mode == "max":
        return f.amax(dim=1)
    raise ValueError(f"pool must be 'mean' or 'max', got {mode!r}")


class SESNStack(nn.Module):
    """Lift + ``layers - 1`` scale convolutions with ReLU between, pooled over scales at the end.

    Input ``(B, in_channels, H, W)``, output ``(B, out_channels, H, W)``. ``extra_channels`` of a
    scale-invariant feature map (lift expansion) may be given to ``forward`` and are tiled over the scale
    axis after the lifting layer.
    """

    def __init__(self, in_channels: int, hidden: int, out_channels: int, layers: int, kernel_size: int,
                 scales: Sequence[float], basis_size: int = 3, base_sigma: float = 0.6,
                 scale_mix: int = 1, pool: str = "mean", extra_channels: int = 0, **layer_kw):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.scales = tuple(float(s) for s in scales)
        self.S = len(self.scales)
        self.pool = pool
        pool_scales(torch.zeros(1, self.S, 1, 1), self.S, pool)  # validate the mode
        basis = hermite_gaussian_basis(kernel_size, self.scales, basis_size, base_sigma)
        self.extra_channels = int(extra_channels)
        mods = []
        for i in range(layers):
            cin = in_channels if i == 0 else hidden + (self.extra_channels if i == 1 else 0)
            cout = out_channels if i == layers - 1 else hidden
            mods.append(ScaleConv(cin, cout, basis, lift=(i == 0), scale_mix=scale_mix, **layer_kw))
        if self.extra_channels and layers < 2:
            raise ValueError("lift expansion needs at least 2 SESN layers")
        self.convs = nn.ModuleList(mods)

    def features(self, x: torch.Tensor, extra: torch.Tensor | None = None, upto: int | None = None,
                 hook=None) -> torch.Tensor:
        """Lifted features ``(B, S*C, H, W)`` after layer ``upto`` (all layers if None), before pooling.

        ``hook(i, h)`` may replace the (post-activation) input ``h`` of layer ``i >= 1``.
        """
        h = x
        n = len(self.convs)
        for i, conv in enumerate(self.convs):
            if i == 1 and self.extra_channels:
                B, _, H, W = h.shape
                e = extra[:, None].expand(B, self.S, *extra.shape[1:])
                h = torch.cat([h.reshape(B, self.S, -1, H, W), e], dim=2).reshape(B, -1, H, W)
            if hook is not None and i >= 1:
                h = hook(i, h)
            h = conv(h)
            if i < n - 1:
                h = F.relu(h)
            if upto is not None and i == upto:
                return h
        return h

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None, hook=None) -> torch.Tensor:
        if self.extra_channels and (extra is None or extra.shape[1] != self.extra_channels):
            raise ValueError(f"SESNStack expects {self.extra_channels} extra channels")
        return pool_scales(self.features(x, extra, hook=hook), self.S, self.pool)

    def relaxation_penalty(self) -> torch.Tensor:
        return sum(c.relaxation_penalty() for c in self.convs)

    def plain_penalty(self) -> torch.Tensor:
        return sum(c.plain_penalty() for c in self.convs)


# ----------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------

class SESN(Model):
    """SESN and its relaxed / residual-pathway variants on stacked input frames.

    ``relax``: ``none`` (SESN), ``steer`` (RSteer), ``group`` (RGroup).
    ``plain=True``: residual pathway prior (Rpp). ``regularizer()`` = ``alpha`` times the relaxation
    constraint plus ``alpha`` times the squared norm of the plain path.
    """

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int,
                 scales: Sequence[float] = DEFAULT_SCALES, alpha: float = 0.0, relax: str = "none",
                 plain: bool = False, **kw):
        super().__init__()
        self.alpha = float(alpha)
        self.net = SESNStack(2 * in_frames, hidden, 2, layers, kernel_size, scales, relax=relax,
                             plain=plain, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(frames_to_channels(x))

    def regularizer(self) -> torch.Tensor:
        return self.alpha * (self.net.relaxation_penalty() + self.net.plain_penalty())


class Combo(Model):
    """Plain CNN layers (``layers // 2``) followed by SESN layers (the rest)."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int,
                 scales: Sequence[float] = DEFAULT_SCALES, **kw):
        super().__init__()
        n_plain = layers // 2
        n_sesn = layers - n_plain
        self.plain = (conv_stack(2 * in_frames, hidden, hidden, n_plain, kernel_size, final_activation=True)
                      if n_plain else nn.Identity())
        cin = hidden if n_plain else 2 * in_frames
        self.sesn = SESNStack(cin, hidden, 2, n_sesn, kernel_size, scales, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sesn(self.plain(frames_to_channels(x)))


class LiftExpansion(Model):
    """Non-equivariant CNN encoder tiled over the scale axis as extra channels of a SESN backbone."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int,
                 scales: Sequence[float] = DEFAULT_SCALES, encoder_channels: int | None = None,
                 encoder_layers: int = 2, **kw):
        super().__init__()
        e = max(1, hidden // 2) if encoder_channels is None else int(encoder_channels)
        self.encoder = conv_stack(2 * in_frames, hidden, e, encoder_layers, kernel_size, final_activation=True)
        self.sesn = SESNStack(2 * in_frames, hidden, 2, layers, kernel_size, scales, extra_channels=e, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = frames_to_channels(x)
        return self.sesn(f, extra=self.encoder(f))


def rescaling_matrix(kernel_size: int, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, valid)``: ``(M @ vec(kappa))[y] = kappa(ratio * y)`` by bilinear interpolation on the kernel
    grid, for the offsets ``y != 0`` whose image ``ratio * y`` lies inside the kernel (``valid``)."""
    r = kernel_size // 2
    k2 = kernel_size ** 2
    M = torch.zeros(k2, k2, dtype=torch.float64)
    valid = torch.zeros(k2, dtype=torch.bool)
    for iy in range(kernel_size):
        for ix in range(kernel_size):
            y, x = iy - r, ix - r
            ty, tx = ratio * y, ratio * x
            if (y == 0 and x == 0) or abs(ty) > r + 1e-9 or abs(tx) > r + 1e-9:
                continue
            row = iy * kernel_size + ix
            valid[row] = True
            y0, x0 = math.floor(ty + 1e-9), math.floor(tx + 1e-9)
            fy, fx = ty - y0, tx - x0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    wgt = wy * wx
                    if wgt < 1e-12:
                        continue
                    M[row, (y0 + dy + r) * kernel_size + (x0 + dx + r)] += wgt
    return M, valid


class CLCNN(LayerNet):
    """Locally connected net with a soft scale-equivariance loss on every position's kernels.

    ``layers`` full-rank :class:`common.LocallyConnected2d` layers (He-normal weights, zero per-position bias),
    ReLU between. ``regularizer() = alpha * sum_layers sum_r sum |kappa(y) - r^2 kappa(r y)|`` over the ratios
    ``r = s_j / s_i > 1`` of the scale set and the valid offsets (see ``rescaling_matrix``).
    """

    def __init__(self, in_frames: int, frame_size: tuple[int, int], width: int, layers: int,
                 kernel_size: int, scales: Sequence[float] = DEFAULT_SCALES, alpha: float = 0.0):
        widths = [2 * in_frames] + [width] * (layers - 1) + [2]
        super().__init__([LocallyConnected2d(widths[i], widths[i + 1], kernel_size, frame_size, weight_init="he")
                          for i in range(layers)])
        self.alpha = float(alpha)
        scales = sorted(float(s) for s in scales)
        ratios = sorted({round(b / a, 9) for i, a in enumerate(scales) for b in scales[i + 1:] if b / a > 1})
        mats, masks, kept = [], [], []
        for r in ratios:
            M, valid = rescaling_matrix(kernel_size, r)
            if valid.any():
                mats.append(M * r ** 2)
                masks.append(valid)
                kept.append(r)
        self.ratios = tuple(kept)
        k2 = kernel_size ** 2
        self.register_buffer("rescale", torch.stack(mats).float() if mats else torch.zeros(0, k2, k2),
                             persistent=False)
        self.register_buffer("valid", torch.stack(masks) if masks else torch.zeros(0, k2, dtype=torch.bool),
                             persistent=False)

    def scale_penalty(self) -> torch.Tensor:
        total = self.rescale.new_zeros(())
        for layer in self.layers:
            kap = layer.position_kernels().flatten(-2)  # (P, Cout, Cin, k*k)
            for M, valid in zip(self.rescale, self.valid):
                diff = kap - torch.einsum("yz,pocz->pocy", M, kap)
                total = total + diff[..., valid].abs().sum()
        return total

    def regularizer(self) -> torch.Tensor:
        return self.alpha * self.scale_penalty()


def clcnn_width(in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int, kernel_size: int,
                budget: int = PARAMETER_BUDGET) -> int:
    """Largest width ``<= hidden`` keeping the locally connected net under ``budget`` parameters."""
    def count(w):
        widths = [2 * in_frames] + [w] * (layers - 1) + [2]
        return sum(LocallyConnected2d.count(widths[i], widths[i + 1], kernel_size, frame_size)
                   for i in range(layers))
    for w in range(int(hidden), 0, -1):
        if count(w) < budget:
            return w
    raise ValueError(f"no locally connected net of {layers} layers on {frame_size} frames fits {budget} parameters")


class SESNTerms:
    """Mixin of the additive relaxations on SESN (:class:`SESNStack`'s layers, ``scale_mix = 1``, pooled over
    scales): every scale convolution paired with a bias-free plain convolution untied over scales (the Rpp plain
    path's shape), built by :meth:`layers`; the model sets ``n_scales`` and ``pool`` (the output pooling)."""

    n_scales: int
    pool: str

    @staticmethod
    def layers(in_frames: int, hidden: int, layers: int, kernel_size: int, scales: Sequence[float],
               basis_size: int, base_sigma: float, pool: str) -> tuple[list, list]:
        stack = SESNStack(2 * in_frames, hidden, 2, layers, kernel_size, scales, basis_size=basis_size,
                          base_sigma=base_sigma, pool=pool)
        S, k = stack.S, kernel_size
        return list(stack.convs), [nn.Conv2d(c.cin if c.lift else S * c.cin, S * c.cout, k, padding=k // 2,
                                             bias=False, groups=1 if c.lift else S) for c in stack.convs]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return frames_to_channels(x)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return pool_scales(h, self.n_scales, self.pool)


class CRelax(SESNTerms, RelaxThenProject):
    """Relax-then-project on SESN: the plain terms weighted by the schedule in training and dropped in evaluation,
    when the model is exactly ``equiv``. ``g W``: the kernel dilated by 1.5 (the authors' choice), ``W(y / 1.5)`` by
    bilinear interpolation on the kernel grid."""

    DILATION = 1.5

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int,
                 scales: Sequence[float] = DEFAULT_SCALES, alpha: float = 1e-2, schedule: str = "triangle",
                 basis_size: int = 3, base_sigma: float = 0.6, pool: str = "mean"):
        terms = self.layers(in_frames, hidden, layers, kernel_size, scales, basis_size, base_sigma, pool)
        super().__init__(*terms, alpha, schedule)
        self.n_scales, self.pool = len(scales), pool
        M, _ = rescaling_matrix(kernel_size, 1.0 / self.DILATION)
        centre = (kernel_size * kernel_size) // 2
        M[centre, centre] = 1.0  # W(0 / 1.5) = W(0)
        self.register_buffer("dilation", M.float(), persistent=False)

    def moved_kernel(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.flatten(-2)
        return torch.einsum("yz,...z->...y", self.dilation, flat).reshape(weight.shape)


class ACENet(SESNTerms, ACE):
    """ACE on SESN: every layer ``scale conv + gamma_i * plain conv``; ``gamma = 0`` is a SESN (``equiv``)."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, scales: Sequence[float],
                 dual_lr: float, slack_penalty: float, basis_size: int = 3, base_sigma: float = 0.6,
                 pool: str = "mean"):
        terms = self.layers(in_frames, hidden, layers, kernel_size, scales, basis_size, base_sigma, pool)
        super().__init__(*terms, dual_lr, slack_penalty)
        self.n_scales, self.pool = len(scales), pool


class SBI(SymmetryBreakingInputs):
    """Symmetry-breaking inputs (Ashman et al. 2024) on SESN: the learned fields are extra input channels of the
    lifting layer, so a zoom of the input does not zoom them. Fields zeroed: exactly a SESN."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int, kernel_size: int,
                 scales: Sequence[float], fields: int, dropout: float, **kw):
        super().__init__(fields, frame_size, dropout)
        self.net = SESNStack(2 * in_frames + fields, hidden, 2, layers, kernel_size, scales, **kw)

    def predict(self, x: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((frames_to_channels(x), fields), dim=1))


# ----------------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------------

def _scales(scales) -> tuple[float, ...]:
    s = tuple(float(v) for v in scales)
    if not s:
        raise ValueError("scales must not be empty")
    return s


def build_mlp(frame_size, in_frames: int = 10, hidden: int = 64, layers: int = 5):
    return MLP(in_frames, tuple(frame_size), hidden, layers)


def build_conv(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5):
    return ConvNet(in_frames, hidden, layers, kernel_size)


def build_equiv(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
                scales=DEFAULT_SCALES, basis_size: int = 3, base_sigma: float = 0.6, scale_mix: int = 1,
                pool: str = "mean"):
    return SESN(in_frames, hidden, layers, kernel_size, _scales(scales), basis_size=basis_size,
                base_sigma=base_sigma, scale_mix=scale_mix, pool=pool)


def build_rpp(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
              scales=DEFAULT_SCALES, alpha: float = 1e-6, basis_size: int = 3, base_sigma: float = 0.6,
              scale_mix: int = 1, pool: str = "mean"):
    return SESN(in_frames, hidden, layers, kernel_size, _scales(scales), alpha=alpha, plain=True,
                basis_size=basis_size, base_sigma=base_sigma, scale_mix=scale_mix, pool=pool)


def build_combo(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
                scales=DEFAULT_SCALES, basis_size: int = 3, base_sigma: float = 0.6, scale_mix: int = 1,
                pool: str = "mean"):
    return Combo(in_frames, hidden, layers, kernel_size, _scales(scales), basis_size=basis_size,
                 base_sigma=base_sigma, scale_mix=scale_mix, pool=pool)


def build_clcnn(frame_size, in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
                scales=DEFAULT_SCALES, alpha: float = 1e-6, max_params: int = PARAMETER_BUDGET):
    frame_size = tuple(int(v) for v in frame_size)
    width = clcnn_width(in_frames, frame_size, hidden, layers, kernel_size, max_params)
    return CLCNN(in_frames, frame_size, width, layers, kernel_size, _scales(scales), alpha)


def build_lift(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
               scales=DEFAULT_SCALES, basis_size: int = 3, base_sigma: float = 0.6, scale_mix: int = 1,
               pool: str = "mean", encoder_channels: int | None = None):
    return LiftExpansion(in_frames, hidden, layers, kernel_size, _scales(scales),
                         encoder_channels=encoder_channels, basis_size=basis_size, base_sigma=base_sigma,
                         scale_mix=scale_mix, pool=pool)


def build_rgroup(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
                 scales=DEFAULT_SCALES, alpha: float = 1e-6, banks: int = 2, basis_size: int = 3,
                 base_sigma: float = 0.6, scale_mix: int = 1, pool: str = "mean"):
    return SESN(in_frames, hidden, layers, kernel_size, _scales(scales), alpha=alpha, relax="group",
                banks=banks, basis_size=basis_size, base_sigma=base_sigma, scale_mix=scale_mix, pool=pool)


def build_rsteer(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
                 scales=DEFAULT_SCALES, alpha: float = 1e-6, basis_size: int = 3, base_sigma: float = 0.6,
                 scale_mix: int = 1, pool: str = "mean"):
    return SESN(in_frames, hidden, layers, kernel_size, _scales(scales), alpha=alpha, relax="steer",
                basis_size=basis_size, base_sigma=base_sigma, scale_mix=scale_mix, pool=pool)


def build_crelax(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
                 scales=DEFAULT_SCALES, alpha: float = 1e-2, schedule: str = "triangle", basis_size: int = 3,
                 base_sigma: float = 0.6, pool: str = "mean"):
    return CRelax(in_frames, hidden, layers, kernel_size, _scales(scales), alpha, schedule, basis_size, base_sigma,
                  pool)


def build_ace(in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5, scales=DEFAULT_SCALES,
              dual_lr: float = 1e-2, slack_penalty: float = 1.0, basis_size: int = 3, base_sigma: float = 0.6,
              pool: str = "mean"):
    return ACENet(in_frames, hidden, layers, kernel_size, _scales(scales), dual_lr, slack_penalty, basis_size,
                  base_sigma, pool)


def build_sbi(frame_size, in_frames: int = 10, hidden: int = 64, layers: int = 5, kernel_size: int = 5,
              scales=DEFAULT_SCALES, fields: int = 4, field_dropout: float = 0.5, basis_size: int = 3,
              base_sigma: float = 0.6, scale_mix: int = 1, pool: str = "mean"):
    return SBI(in_frames, tuple(int(v) for v in frame_size), hidden, layers, kernel_size, _scales(scales), fields,
               field_dropout, basis_size=basis_size, base_sigma=base_sigma, scale_mix=scale_mix, pool=pool)


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
    "crelax": build_crelax,
    "sbi": build_sbi,
    "ace": build_ace,
    "gmcnn": build_gmcnn,
}
