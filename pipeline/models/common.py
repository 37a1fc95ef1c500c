"""Building blocks shared by every symmetry: frame stacking, the MLP and CNN baselines, base class.

Shape conventions: models take ``(B, T_in, 2, H, W)`` and return ``(B, 2, H, W)``; inside, the input
frames are stacked as channels ``(B, 2 T_in, H, W)`` in the order ``(vx_0, vy_0, vx_1, vy_1, ...)``.
"""
from __future__ import annotations

import torch
from torch import nn


def frames_to_channels(x: torch.Tensor) -> torch.Tensor:
    """``(B, T, 2, H, W)`` -> ``(B, 2T, H, W)``."""
    if x.ndim != 5 or x.shape[2] != 2:
        raise ValueError(f"expected input frames of shape (B, T_in, 2, H, W), got {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1, *x.shape[-2:])


class Model(nn.Module):
    """Base class: a next-frame predictor with a weight regulariser (zero unless overridden)."""

    def regularizer(self) -> torch.Tensor:
        p = next(self.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)


def conv_stack(in_channels: int, hidden: int, out_channels: int, layers: int, kernel_size: int,
               final_activation: bool = False) -> nn.Sequential:
    """``layers`` same-padded convolutions with ReLU between them (and after the last if asked)."""
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    widths = [in_channels] + [hidden] * (layers - 1) + [out_channels]
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Conv2d(widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2))
        if i < layers - 1 or final_activation:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class ConvNet(Model):
    """The CNN baseline: ``layers`` convolutions on the stacked input frames."""

    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int):
        super().__init__()
        self.net = conv_stack(2 * in_frames, hidden, 2, layers, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(frames_to_channels(x))


class MLP(Model):
    """The MLP baseline: a fully connected net from all input pixels to all output pixels."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int):
        super().__init__()
        h, w = frame_size
        self.frame_size = (int(h), int(w))
        sizes = [2 * in_frames * h * w] + [hidden] * (layers - 1) + [2 * h * w]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < layers - 1:
                mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.frame_size:
            raise ValueError(f"MLP built for frames {self.frame_size}, got {tuple(x.shape[-2:])}")
        return self.net(x.reshape(x.shape[0], -1)).reshape(x.shape[0], 2, *self.frame_size)


# ---------------------------------------------------------------------------------------------------------
# Layers with position-dependent (untied / relaxed) weights, shared by the approximately equivariant models.
# ---------------------------------------------------------------------------------------------------------

def _check_frame(x: torch.Tensor, frame_size: tuple[int, int], who: str) -> None:
    if tuple(x.shape[-2:]) != tuple(frame_size):
        raise ValueError(f"{who} built for frames {tuple(frame_size)}, got {tuple(x.shape[-2:])}")


def _uniform_(t: torch.Tensor, fan_in: int) -> torch.Tensor:
    """PyTorch's default conv initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / max(fan_in, 1) ** 0.5
    with torch.no_grad():
        return t.uniform_(-bound, bound)


def neighbour_difference_sq(t: torch.Tensor) -> torch.Tensor:
    """``sum_p sum_{q in N(p)} |t(p) - t(q)|^2`` over the two last (spatial) axes, 4-neighbourhood, no wrap.

    Each unordered pair of horizontally or vertically adjacent positions is counted once. Zero iff ``t`` is
    constant over positions (the grid is connected).
    """
    dy = t[..., 1:, :] - t[..., :-1, :]
    dx = t[..., :, 1:] - t[..., :, :-1]
    return (dy ** 2).sum() + (dx ** 2).sum()


def finite_differences_l1(w: torch.Tensor, dims: tuple[int, int] = (-2, -1)) -> torch.Tensor:
    """The paper's L_sconv (Section 3.3), ``sum |dw/dm| + |dw/dn|`` by first differences along the two ``dims``
    (the kernel axes). Zero iff ``w`` is constant over them."""
    total = w.new_zeros(())
    for d in dims:
        if w.shape[d] > 1:
            total = total + torch.diff(w, dim=d).abs().sum()
    return total


def pairwise_abs_difference(w: torch.Tensor) -> torch.Tensor:
    """The paper's relaxed-weight constraint (Section 3.3): ``sum_l sum_{g, h} |w_l(g) - w_l(h)|``.

    ``w`` is ``(L, *group)``: one scalar weight per filter bank ``l`` and group element (here: position).
    The sum runs over all *ordered* pairs ``(g, h)`` as written in the paper (no normalisation: it grows
    like ``n^2`` with the number of positions ``n``, so ``alpha`` depends on the frame size). Computed exactly
    in ``O(n log n)`` per bank from the sorted values ``v_(1) <= ... <= v_(n)`` and their gaps:
    ``sum_{g,h} |v_g - v_h| = 2 sum_{k<n} k (n - k) (v_(k+1) - v_(k))``, a sum of non-negative terms that is
    exactly zero iff each ``w_l`` is constant over the group, i.e. at the equivariant point.
    """
    flat = w.reshape(w.shape[0], -1)
    n = flat.shape[1]
    v, _ = torch.sort(flat, dim=1)
    k = torch.arange(1, n, device=w.device, dtype=w.dtype)
    return 2.0 * ((v[:, 1:] - v[:, :-1]) * (k * (n - k))).sum()


class LocallyConnected2d(nn.Module):
    """Locally connected layer (untied convolution, Elsayed et al. 2020): a ``k x k`` stencil (``k`` odd) whose
    kernel and bias depend on the output position ``p``, same (zero) padding, stride 1:

        ``out[o](p) = b[o](p) + sum_{i, d in K^2} W_p[o, i, d] x[i](p + d - k//2)``.

    The one locally connected layer of every symmetry family (translation CLCNN / Rpp / Combo, and the rotation
    and scaling CLCNNs, whose kernel constraints read :meth:`position_kernels`).

    ``rank=None``: every ``W_p`` is a free ``(C_out, C_in, k, k)`` array (``H W C_out C_in k^2`` parameters;
    only small layers can afford it), stored as :attr:`weight` of shape ``(H W, C_out, C_in, k, k)`` (row-major
    positions). ``rank=R``: low-rank untied kernels that keep the layer affordable at 64x64 with 128 channels,
    ``W_p[o] = sum_{r<R} A[r, o](p) B[r, o]`` with ``R`` basis kernels ``B[r]`` of shape ``(C_out, C_in, k, k)``
    and per-position, per-output-channel coefficients ``A[r, o](p)``. It is computed as one convolution with
    the ``R C_out`` stacked basis kernels followed by a position-wise weighted sum over ``r`` (no loop over
    ``r``). ``bias=True``: a per-position bias ``(C_out, H, W)``; ``bias=False``: none.

    Initialisation. ``weight_init="uniform"``: PyTorch's default conv initialisation,
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the weights (the low-rank basis) and the bias.
    ``weight_init="he"``: He-normal weights ``N(0, 2 / fan_in)`` and a zero bias. ``init="untied"`` draws every
    position's kernel independently (low rank: ``A ~ N(0, 1/R)``, which keeps the kernel variance of a conv
    init). ``init="tied"`` starts with every position equal: the layer is then exactly a convolution (with a
    tied bias).

    :meth:`neighbour_penalty` is the soft translation-equivariance constraint of CLCNN:
    ``sum_{p ~ q} ||W_p - W_q||^2 + ||b(p) - b(q)||^2`` over adjacent positions, zero iff the layer is a
    convolution. For the low-rank layer it is evaluated through the Gram matrices ``<B[r, o], B[s, o]>``
    without materialising the ``H W`` kernels.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, frame_size: tuple[int, int],
                 rank: int | None = None, bias: bool = True, init: str = "untied", weight_init: str = "uniform"):
        super().__init__()
        if init not in ("untied", "tied"):
            raise ValueError(f"init must be 'untied' or 'tied', got {init!r}")
        if weight_init not in ("uniform", "he"):
            raise ValueError(f"weight_init must be 'uniform' or 'he', got {weight_init!r}")
        if rank is not None and rank < 1:
            raise ValueError(f"rank must be a positive integer or None (full rank), got {rank}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same padding), got {kernel_size}")
        h, w = (int(s) for s in frame_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.frame_size, self.rank, self.weight_init = (h, w), rank, weight_init
        fan_in = in_channels * kernel_size ** 2
        kshape = (out_channels, in_channels, kernel_size, kernel_size)
        if rank is None:
            if weight_init == "he":
                weight = torch.randn(1 if init == "tied" else h * w, *kshape) * (2.0 / fan_in) ** 0.5
                weight = weight.expand(h * w, *kshape).clone()
            else:
                # drawn in the (C_out, C_in, k, k, H, W) order, then stored position-major
                weight = torch.empty(*kshape, h, w)
                if init == "tied":
                    _uniform_(weight[..., :1, :1], fan_in)
                    weight = weight[..., :1, :1].expand_as(weight).clone()
                else:
                    _uniform_(weight, fan_in)
                weight = weight.permute(4, 5, 0, 1, 2, 3).reshape(h * w, *kshape).contiguous()
            self.weight = nn.Parameter(weight)
        else:
            if weight_init == "he":
                basis = torch.randn(rank, *kshape) * (2.0 / fan_in) ** 0.5
            else:
                basis = _uniform_(torch.empty(rank, *kshape), fan_in)
            self.basis = nn.Parameter(basis)
            coef = torch.empty(rank, out_channels, h, w)
            if init == "tied":
                coef.fill_(1.0 / rank ** 0.5)
            else:
                coef.normal_(0.0, 1.0 / rank ** 0.5)
            self.coef = nn.Parameter(coef)
        if not bias:
            self.register_parameter("bias", None)
        elif weight_init == "he":
            self.bias = nn.Parameter(torch.zeros(out_channels, h, w))
        else:
            b = _uniform_(torch.empty(out_channels, 1, 1), fan_in).expand(out_channels, h, w).clone()
            if init == "untied":
                _uniform_(b, fan_in)
            self.bias = nn.Parameter(b)

    @staticmethod
    def count(in_channels: int, out_channels: int, kernel_size: int, frame_size: tuple[int, int],
              rank: int | None = None, bias: bool = True) -> int:
        """Number of parameters of such a layer (without building it)."""
        hw = int(frame_size[0]) * int(frame_size[1])
        kernel = out_channels * in_channels * kernel_size ** 2
        n = hw * kernel if rank is None else rank * (kernel + out_channels * hw)
        return n + (out_channels * hw if bias else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_frame(x, self.frame_size, "LocallyConnected2d")
        k, (h, w) = self.kernel_size, self.frame_size
        if self.rank is None:
            cols = nn.functional.unfold(x, k, padding=k // 2)                         # (B, C_in k k, H W)
            wt = self.weight.reshape(h * w, self.out_channels, -1)                   # (H W, C_out, C_in k k)
            out = torch.einsum("bcp,poc->bop", cols, wt).reshape(x.shape[0], self.out_channels, h, w)
        else:
            y = nn.functional.conv2d(x, self.basis.reshape(-1, self.in_channels, k, k), padding=k // 2)
            y = y.reshape(x.shape[0], self.rank, self.out_channels, h, w)
            out = (y * self.coef).sum(dim=1)
        return out if self.bias is None else out + self.bias

    def kernels(self) -> torch.Tensor:
        """All position kernels ``(C_out, C_in, k, k, H, W)`` (materialised for the low-rank layer)."""
        if self.rank is None:
            return self.weight.reshape(*self.frame_size, *self.weight.shape[1:]).permute(2, 3, 4, 5, 0, 1)
        return torch.einsum("roikl,rohw->oiklhw", self.basis, self.coef)

    def position_kernels(self) -> torch.Tensor:
        """All position kernels ``(H W, C_out, C_in, k, k)``, row-major positions (for the full layer this is
        :attr:`weight` itself; materialised for the low-rank layer)."""
        if self.rank is None:
            return self.weight
        k = torch.einsum("roikl,rohw->hwoikl", self.basis, self.coef)
        return k.reshape(-1, *k.shape[2:])

    def neighbour_penalty(self) -> torch.Tensor:
        """``sum_{p ~ q} ||W_p - W_q||^2 (+ ||b(p) - b(q)||^2)``; zero iff the layer is a convolution."""
        if self.rank is None:
            pen = neighbour_difference_sq(self.kernels())
        else:
            gram = torch.einsum("roikl,soikl->ors", self.basis, self.basis)          # (C_out, R, R)
            pen = self.coef.new_zeros(())
            for d in (self.coef[..., 1:, :] - self.coef[..., :-1, :],
                      self.coef[..., :, 1:] - self.coef[..., :, :-1]):
                pen = pen + torch.einsum("rohw,ors,sohw->", d, gram, d)
        if self.bias is not None:
            pen = pen + neighbour_difference_sq(self.bias)
        return pen

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"frame_size={self.frame_size}, rank={self.rank}, bias={self.bias is not None}, "
                f"weight_init={self.weight_init!r}")


class LayerNet(Model):
    """``layers`` modules applied to the stacked input frames with ReLU between them (not after the last)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_between(self.layers, frames_to_channels(x))


def relu_between(layers, h: torch.Tensor) -> torch.Tensor:
    """Apply ``layers`` in turn to ``h`` with a ReLU between consecutive layers (not after the last)."""
    for i, layer in enumerate(layers):
        h = layer(h)
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h


class RelaxedConv2d(nn.Module):
    """Relaxed group convolution over the translation group ``Z^2`` (paper eq. 4-5).

    ``L`` filter banks ``K_l`` (each ``(C_out, C_in, k, k)``) are mixed by scalar weights ``w_l(h)`` that vary
    over the grid. The paper's eq. 5 puts the weights on the *input* position ``h``:

        ``weighting="input"`` (eq. 5): ``out(g) = sum_h sum_l f(h) w_l(h) K_l(h - g) = sum_l (K_l * (w_l f))(g)``,

    computed as ONE convolution of the ``L C_in``-channel stack ``(w_1 f, ..., w_L f)`` with the kernels
    concatenated along the input channels. ``weighting="output"`` puts them on the output position,
    ``out(g) = sum_l w_l(g) (K_l * f)(g)``: one convolution with the ``L C_out`` stacked kernels, then a
    position-wise weighted sum over banks. Both reduce to a convolution with kernel ``sum_l c_l K_l`` when
    every ``w_l`` is constant over positions (the equivariant point). The weights start there: ``w_l(h) =
    1/sqrt(L)`` for all ``l, h`` (which also keeps the conv-init variance of the summed kernel). The bias is
    tied (shared by all positions), so it never breaks equivariance.

    :meth:`penalty` is the paper's constraint ``sum_l sum_{g,h} |w_l(g) - w_l(h)|`` (Section 3.3), zero
    exactly at the equivariant point.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, frame_size: tuple[int, int],
                 banks: int = 2, bias: bool = True, weighting: str = "input"):
        super().__init__()
        if weighting not in ("input", "output"):
            raise ValueError(f"weighting must be 'input' or 'output', got {weighting!r}")
        if banks < 1:
            raise ValueError(f"banks must be at least 1, got {banks}")
        h, w = (int(s) for s in frame_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.frame_size, self.banks, self.weighting = (h, w), banks, weighting
        fan_in = in_channels * kernel_size ** 2
        self.kernel = nn.Parameter(_uniform_(torch.empty(banks, out_channels, in_channels, kernel_size,
                                                         kernel_size), fan_in))
        self.relaxed_weights = nn.Parameter(torch.full((banks, h, w), 1.0 / banks ** 0.5))
        self.bias = nn.Parameter(_uniform_(torch.empty(out_channels), fan_in)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_frame(x, self.frame_size, "RelaxedConv2d")
        b, (h, w), k, nl = x.shape[0], self.frame_size, self.kernel_size, self.banks
        if self.weighting == "input":
            stacked = (x.unsqueeze(1) * self.relaxed_weights[None, :, None]).reshape(b, -1, h, w)
            kern = self.kernel.permute(1, 0, 2, 3, 4).reshape(self.out_channels, -1, k, k)
            return nn.functional.conv2d(stacked, kern, self.bias, padding=k // 2)
        y = nn.functional.conv2d(x, self.kernel.reshape(-1, self.in_channels, k, k), padding=k // 2)
        out = (y.reshape(b, nl, self.out_channels, h, w) * self.relaxed_weights[None, :, None]).sum(dim=1)
        return out if self.bias is None else out + self.bias[:, None, None]

    def penalty(self) -> torch.Tensor:
        """``sum_l sum_{g,h} |w_l(g) - w_l(h)|`` over all ordered pairs of positions."""
        return pairwise_abs_difference(self.relaxed_weights)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, banks={self.banks}, "
                f"frame_size={self.frame_size}, weighting={self.weighting!r}")


# ---------------------------------------------------------------------------------------------------------
# Generic wrappers for the approximate-equivariance baselines (plain tensor -> tensor modules, so that the
# rotation and scaling families can wrap their equivariant parts and reuse them).
# ---------------------------------------------------------------------------------------------------------

def squared_norm(module: nn.Module) -> torch.Tensor:
    """``sum ||theta||^2`` over the trainable parameters of ``module``."""
    terms = [p.pow(2).sum() for p in module.parameters() if p.requires_grad]
    return torch.stack(terms).sum() if terms else torch.zeros(())


class ResidualPathway(nn.Module):
    """One Residual-Pathway-Prior layer (Finzi et al. 2021): ``y = equivariant(x) + free(x)``.

    ``free`` is a more flexible, non-equivariant path whose function space contains ``equivariant``'s.
    :meth:`prior` is the negative log of the Gaussian priors up to constants and a common factor: an L2
    penalty ``||theta_free||^2 + eq_scale ||theta_equivariant||^2`` with ``eq_scale < 1``, i.e. a tighter
    prior (stronger penalty) on the non-equivariant path, so the data must pay for using it.
    """

    def __init__(self, equivariant: nn.Module, free: nn.Module):
        super().__init__()
        self.equivariant, self.free = equivariant, free

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.equivariant(x) + self.free(x)

    def prior(self, eq_scale: float) -> torch.Tensor:
        return squared_norm(self.free) + eq_scale * squared_norm(self.equivariant)


class Lift(Model):
    """Lift expansion (Wang et al. 2021): a non-equivariant ``encoder`` is fed the same input as the
    equivariant ``backbone``, and its output channels (which carry the trivial representation: they are
    not transformed by the group) are appended to the backbone's input channels.

    ``encoder`` maps ``(B, T, 2, H, W)`` to ``(B, E, H, W)``; ``backbone`` maps the ``2T + E`` channels
    ``(frames_to_channels(x), encoder(x))`` to ``(B, 2, H, W)``.
    """

    def __init__(self, encoder: nn.Module, backbone: nn.Module):
        super().__init__()
        self.encoder, self.backbone = encoder, backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(torch.cat([frames_to_channels(x), self.encoder(x)], dim=1))


class Combo(Model):
    """Non-equivariant layers first, equivariant layers after (paper Section 3.4): ``back(front(x))``.

    ``front`` maps ``(B, T, 2, H, W)`` to features, ``back`` maps them to ``(B, 2, H, W)``; no regulariser.
    """

    def __init__(self, front: nn.Module, back: nn.Module):
        super().__init__()
        self.front, self.back = front, back

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.front(x))


# ---------------------------------------------------------------------------------------------------------
# Relax-then-project (Pertigkiozoglou et al., NeurIPS 2024): an equivariant net trained with non-equivariant
# additive terms whose weight a schedule takes to zero; evaluated without them (exactly equivariant).
# ---------------------------------------------------------------------------------------------------------

def triangle_schedule(progress: float) -> float:
    """The authors' schedule of the relaxed terms' weight: 0 -> 1 over the first half of the maximum epochs,
    1 -> 0 over the second (``2 p`` for ``p <= 1/2``, else ``2 (1 - p)``); zero at ``p = 0`` and ``p = 1``."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 * p if p <= 0.5 else 2.0 * (1.0 - p)


def linear_schedule(progress: float) -> float:
    """``1 - p``: the relaxed terms fully on at the start, zero at ``p = 1``."""
    return 1.0 - min(max(float(progress), 0.0), 1.0)


RELAXATION_SCHEDULES = {"triangle": triangle_schedule, "linear": linear_schedule}


def relaxation_penalty_of_kernel(weight: torch.Tensor, transformed: torch.Tensor) -> torch.Tensor:
    """The authors' penalty on one relaxed kernel: ``||W|| + ||W - g W||`` (Frobenius norms, not squared), ``g W``
    the kernel moved by one group element (a quarter turn, a dilation)."""
    return torch.linalg.vector_norm(weight) + torch.linalg.vector_norm(weight - transformed)


class AdditiveRelaxation(Model):
    """``layers`` equivariant layers ``E_i``, each with an unconstrained additive term ``R_i`` of the same shape:
    ``h_{i+1} = relu(E_i(h_i) + c_i R_i(h_i))`` (no ReLU after the last), the weights ``c_i`` given by
    :meth:`term_weights` (``None``: the terms are off and the model is its equivariant part exactly).

    Subclasses give :meth:`encode` (input frames -> first layer's input), :meth:`decode` (last layer's output ->
    ``(B, 2, H, W)``) and :meth:`term_weights`.
    """

    def __init__(self, equivariant: list[nn.Module], relaxed: list[nn.Conv2d]):
        super().__init__()
        if len(equivariant) != len(relaxed):
            raise ValueError(f"{len(equivariant)} equivariant layers but {len(relaxed)} relaxed terms")
        self.equivariant, self.relaxed = nn.ModuleList(equivariant), nn.ModuleList(relaxed)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def term_weights(self):
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encode(x)
        weights = self.term_weights()
        last = len(self.equivariant) - 1
        for i, (eq, rel) in enumerate(zip(self.equivariant, self.relaxed)):
            h = eq(h) if weights is None else eq(h) + weights[i] * rel(h)
            if i < last:
                h = torch.relu(h)
        return self.decode(h)


class RelaxThenProject(AdditiveRelaxation):
    """Relax-then-project: :class:`AdditiveRelaxation` with ``c_i = m`` in training and the terms off in evaluation
    (``model.eval()``), the projection onto the equivariant model. ``m`` is the schedule's value at the training
    progress, set by the training loop through :meth:`on_training_step` (``pipeline.train.tell_progress``); it
    starts and ends at zero. ``regularizer() = alpha * sum_i (||W_i|| + ||W_i - g W_i||)`` over the relaxed kernels
    ``W_i`` (the authors' penalty that keeps the relaxed terms small and close to equivariant while they are on).
    Subclasses also give :meth:`moved_kernel` (``g W``).
    """

    def __init__(self, equivariant: list[nn.Module], relaxed: list[nn.Conv2d], alpha: float,
                 schedule: str = "triangle"):
        if schedule not in RELAXATION_SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(RELAXATION_SCHEDULES)}, got {schedule!r}")
        super().__init__(equivariant, relaxed)
        self.alpha, self.schedule = float(alpha), schedule
        self.mix = 0.0  # the relaxed terms' weight; zero until the training loop says otherwise

    def on_training_step(self, progress: float) -> None:
        self.mix = RELAXATION_SCHEDULES[self.schedule](progress)

    def term_weights(self):
        return [self.mix] * len(self.relaxed) if self.training and self.mix != 0.0 else None

    def moved_kernel(self, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regularizer(self) -> torch.Tensor:
        return self.alpha * sum(relaxation_penalty_of_kernel(r.weight, self.moved_kernel(r.weight))
                                for r in self.relaxed)


# ---------------------------------------------------------------------------------------------------------
# ACE (Manolache, Chamon, Niepert, NeurIPS 2025): each layer f_eq + gamma_i f_noneq, trained primal-dual.
# ---------------------------------------------------------------------------------------------------------

class ACE(AdditiveRelaxation):
    """Adaptive constrained equivariance, the algorithm for partially symmetric data: :class:`AdditiveRelaxation`
    with learned ``c_i = gamma_i`` (train and evaluation alike), ``gamma_i`` starting at 1 (the flexible model),
    under the resilient constraints ``|gamma_i| <= u_i`` with learned slacks ``u_i >= 0`` (starting at 0).

    Primal-dual: the loss gets the Lagrangian's terms, ``regularizer() = sum_i lambda_i (|gamma_i| - u_i) +
    slack_penalty / 2 * sum_i u_i^2``, which the optimiser descends in the weights, ``gamma`` and ``u``; the
    multipliers ``lambda_i >= 0`` (a buffer, starting at 0) ascend, ``lambda_i <- max(0, lambda_i + dual_lr
    (|gamma_i| - u_i))``, in :meth:`dual_step`, which the training loop's hook calls before every optimisation step
    (after the previous one), where ``u`` is also projected onto ``u >= 0``. At the equilibrium ``slack_penalty u_i =
    lambda_i``: a layer keeps a non-equivariant part only as far as the data pay for its slack. ``gamma = 0`` is
    the equivariant model exactly. :meth:`report` gives ``gamma_i``, ``u_i``, ``lambda_i`` per layer (the training
    log's extra columns, and metrics.json).
    """

    def __init__(self, equivariant: list[nn.Module], relaxed: list[nn.Conv2d], dual_lr: float = 1e-2,
                 slack_penalty: float = 1.0):
        super().__init__(equivariant, relaxed)
        if dual_lr <= 0 or slack_penalty <= 0:
            raise ValueError(f"dual_lr and slack_penalty must be positive, got {dual_lr} and {slack_penalty}")
        n = len(relaxed)
        self.dual_lr, self.slack_penalty = float(dual_lr), float(slack_penalty)
        self.gamma = nn.Parameter(torch.ones(n))
        self.slack = nn.Parameter(torch.zeros(n))
        self.register_buffer("multipliers", torch.zeros(n))

    def term_weights(self):
        return self.gamma

    def violation(self) -> torch.Tensor:
        """``|gamma_i| - u_i``: positive where layer ``i`` breaks its constraint."""
        return self.gamma.abs() - self.slack

    @torch.no_grad()
    def dual_step(self) -> None:
        self.slack.clamp_(min=0.0)
        self.multipliers.add_(self.dual_lr * self.violation()).clamp_(min=0.0)

    def on_training_step(self, progress: float) -> None:
        self.dual_step()

    def regularizer(self) -> torch.Tensor:
        return (self.multipliers * self.violation()).sum() + 0.5 * self.slack_penalty * (self.slack ** 2).sum()

    def report(self) -> dict[str, float]:
        out = {}
        for name, values in (("gamma", self.gamma), ("slack", self.slack), ("multiplier", self.multipliers)):
            out.update({f"{name}_{i + 1}": float(v) for i, v in enumerate(values.detach().cpu())})
        return out


# ---------------------------------------------------------------------------------------------------------
# Symmetry-breaking inputs (Ashman et al., NeurIPS 2024): an equivariant net that also reads learned fields that
# do not transform with the input, dropped out in training; zeroing them gives back the equivariant net.
# ---------------------------------------------------------------------------------------------------------

class SymmetryBreakingInputs(Model):
    """Base of the models that read ``fields`` learned scalar fields over the frame beside the input frames: the
    fields are a parameter ``(fields, H, W)``, the same for every sample and left untouched by any group action on
    the input, so they are what lets the otherwise equivariant net break the symmetry. In training each sample's
    fields are zeroed with probability ``dropout`` (at every call, i.e. every rollout step); in evaluation they are
    on. With the fields zero the model is its equivariant backbone exactly (a convolution of zero input channels
    adds nothing); they start at zero. Subclasses give :meth:`predict` (input frames and the fields
    ``(B, fields, H, W)`` -> ``(B, 2, H, W)``). :meth:`evaluation_variants` names the model with the fields zeroed,
    which ``pipeline.evaluate`` scores beside the model itself.
    """

    def __init__(self, fields: int, frame_size: tuple[int, int], dropout: float):
        super().__init__()
        if fields < 1:
            raise ValueError(f"fields must be at least 1, got {fields}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"field_dropout must be in [0, 1), got {dropout}")
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.fields = nn.Parameter(torch.zeros(int(fields), *self.frame_size))
        self.dropout = float(dropout)

    def predict(self, x: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def breaking_fields(self, batch: int) -> torch.Tensor:
        f = self.fields.expand(batch, *self.fields.shape)
        if self.training and self.dropout > 0:
            keep = torch.rand(batch, 1, 1, 1, device=f.device) >= self.dropout
            f = f * keep.to(f.dtype)
        return f

    def forward(self, x: torch.Tensor, zero_fields: bool = False) -> torch.Tensor:
        _check_frame(x, self.frame_size, type(self).__name__)
        fields = self.breaking_fields(x.shape[0])
        return self.predict(x, torch.zeros_like(fields) if zero_fields else fields)

    def evaluation_variants(self) -> dict[str, nn.Module]:
        return {"fields_zeroed": FieldsZeroed(self)}


class FieldsZeroed(nn.Module):
    """A :class:`SymmetryBreakingInputs` model evaluated with its fields zeroed (its equivariant backbone)."""

    def __init__(self, model: SymmetryBreakingInputs):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, zero_fields=True)



# ---------------------------------------------------------------------------------------------------------
# GM-CNN (Samudre, Petrache, Nord, Trivedi, AISTATS 2025): group-matrix convolutions over the translation group of
# the grid, with a learned per-pixel mask that breaks translation symmetry.
# ---------------------------------------------------------------------------------------------------------

class GMConv2d(nn.Module):
    """Group-matrix convolution over the translation group ``Z_H x Z_W`` of the (periodic) grid, with the kernel
    shared across input channels and a normalised multiplicative mask per pixel:

        ``out[o](p) = m(p) / ||m|| * sum_{d in N} w[o, d] / ||w[o]|| * sum_i x[i](p + d mod (H, W)) + b[o]``,

    ``N`` the ``(2 r + 1)^2`` offsets of the neighbourhood (``r = neighbourhood``), ``m`` an ``(H, W)`` mask. The
    group matrix of the torus gathers, for each output position, the input at the neighbourhood's group elements
    times that position: a periodic (circular) convolution, computed as one. A uniform mask makes the layer exactly
    equivariant to periodic shifts; a learned one breaks it. Parameters: ``C_out (2 r + 1)^2 + C_out + H W``.
    """

    def __init__(self, out_channels: int, frame_size: tuple[int, int], neighbourhood: int = 1):
        super().__init__()
        if neighbourhood < 0:
            raise ValueError(f"neighbourhood must be at least 0, got {neighbourhood}")
        k = 2 * int(neighbourhood) + 1
        self.k, self.frame_size = k, (int(frame_size[0]), int(frame_size[1]))
        self.weight = nn.Parameter(_uniform_(torch.empty(out_channels, 1, k, k), k * k))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.mask = nn.Parameter(_uniform_(torch.empty(*self.frame_size), k * k))

    def normalised_mask(self) -> torch.Tensor:
        return self.mask / torch.linalg.vector_norm(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_frame(x, self.frame_size, "GMConv2d")
        s = x.sum(dim=1, keepdim=True)
        r = self.k // 2
        w = self.weight / torch.linalg.vector_norm(self.weight, dim=(1, 2, 3), keepdim=True)
        out = nn.functional.conv2d(nn.functional.pad(s, (r, r, r, r), mode="circular"), w)
        return out * self.normalised_mask() + self.bias[:, None, None]


class GMCNN(Model):
    """The authors' plume network: a 1x1 convolution lifts the stacked frames to ``hidden`` channels ``h_0``; block
    ``b`` adds ``PReLU(GMConv(u_b))`` to the running sum, ``h_{b+1} = h_b + PReLU(GMConv_b(u_b))`` with ``u_0`` the
    input frames and ``u_b = h_b`` after; a 1x1 convolution maps the last ``h`` to the velocity. Parameters:
    ``(2 T_in + 1) C + blocks (C (2 r + 1)^2 + C + H W + 1) + 2 C + 2`` (:meth:`count`)."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, blocks: int, neighbourhood: int):
        super().__init__()
        if blocks < 1:
            raise ValueError(f"GM-CNN needs at least one block, got layers = {blocks}")
        self.lift = nn.Conv2d(2 * in_frames, hidden, 1)
        self.blocks = nn.ModuleList(GMConv2d(hidden, frame_size, neighbourhood) for _ in range(blocks))
        self.acts = nn.ModuleList(nn.PReLU() for _ in range(blocks))
        self.out = nn.Conv2d(hidden, 2, 1)

    @staticmethod
    def count(in_frames: int, frame_size: tuple[int, int], hidden: int, blocks: int, neighbourhood: int) -> int:
        """The parameter count of the formula above, without building the model."""
        k2, hw = (2 * neighbourhood + 1) ** 2, int(frame_size[0]) * int(frame_size[1])
        return (2 * in_frames + 1) * hidden + blocks * (hidden * k2 + hidden + hw + 1) + 2 * hidden + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = frames_to_channels(x)
        h = self.lift(u)
        for conv, act in zip(self.blocks, self.acts):
            h = h + act(conv(u))
            u = h
        return self.out(h)


def build_gmcnn(in_frames: int = 10, frame_size=(64, 64), hidden: int = 120, layers: int = 2,
                neighbourhood: int = 1) -> GMCNN:
    """GM-CNN at the authors' plume settings by default (120 channels, 2 blocks, 3x3 neighbourhood); ``layers`` is
    the number of GM blocks."""
    return GMCNN(in_frames, tuple(int(v) for v in frame_size), hidden, layers, neighbourhood)
