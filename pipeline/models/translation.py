"""The translation family (paper Table 1, top): models for the smoke plumes whose buoyancy differs between
the left and right halves of the domain, so that the dynamics are only approximately translation-symmetric.

All models map ``(B, T_in, 2, H, W)`` to ``(B, 2, H, W)``. For translation the equivariant layer is a plain
(zero-padded, stride-1) convolution, equivariant to shifts away from the borders. Models with position-
dependent parameters need ``frame_size = (H, W)``; nothing is tied to 64x64.

| name | class | symmetry bias | ``regularizer()`` |
|---|---|---|---|
| ``mlp`` | :class:`common.MLP` | none | 0 |
| ``conv`` | :class:`common.ConvNet` | exact translation equivariance | 0 |
| ``rpp`` | :class:`ResidualPathwayNet` | conv + locally connected path per layer | ``alpha (||theta_LC||^2 + eq_scale ||theta_conv||^2)`` |
| ``combo`` | :class:`ComboNet` | locally connected layers, then conv layers | 0 |
| ``clcnn`` | :class:`LocallyConnectedNet` | locally connected, soft kernel tying | ``alpha sum_{p~q} ||W_p - W_q||^2`` |
| ``lift`` | :class:`LiftNet` | non-equivariant encoder -> extra conv input channels | 0 |
| ``rgroup`` | :class:`RelaxedGroupConvNet` | relaxed group convolution (eq. 4-5) | ``alpha sum_l sum_{g,h} |w_l(g) - w_l(h)|`` |
"""  # noqa: E501 (a markdown table, one row a line)
from __future__ import annotations

import torch
from torch import nn

from .common import (MLP, Combo, ConvNet, LayerNet, Lift, LocallyConnected2d, RelaxedConv2d, ResidualPathway,
                     SymmetryBreakingInputs, build_gmcnn, conv_stack, frames_to_channels)


def _widths(in_channels: int, hidden: int, out_channels: int, layers: int) -> list[int]:
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    return [in_channels] + [hidden] * (layers - 1) + [out_channels]


def _frame(frame_size) -> tuple[int, int]:
    if frame_size is None:
        raise ValueError("this model has position-dependent weights: give frame_size=(H, W)")
    h, w = (int(s) for s in frame_size)
    return h, w


class RelaxedGroupConvNet(LayerNet):
    """RGroup: ``layers`` relaxed group convolutions over translations (:class:`common.RelaxedConv2d`).

    Translation-equivariant at initialisation (equal relaxed weights). ``regularizer() = alpha * sum over
    layers of sum_l sum_{g,h} |w_l(g) - w_l(h)|`` (paper Section 3.3).
    """

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int,
                 kernel_size: int, banks: int, alpha: float, weighting: str = "input"):
        widths = _widths(2 * in_frames, hidden, 2, layers)
        super().__init__([RelaxedConv2d(widths[i], widths[i + 1], kernel_size, frame_size, banks,
                                        weighting=weighting) for i in range(layers)])
        self.alpha = float(alpha)

    def regularizer(self) -> torch.Tensor:
        return self.alpha * torch.stack([layer.penalty() for layer in self.layers]).sum()


class LocallyConnectedNet(LayerNet):
    """CLCNN: ``layers`` locally connected layers (:class:`common.LocallyConnected2d`, untied weights per
    position) with the soft equivariance loss ``alpha * sum_layers sum_{p~q} ||W_p - W_q||^2 + ||b_p - b_q||^2``
    over adjacent positions, zero iff every layer is a convolution. ``rank=None`` is a full locally connected
    net (``H W C_out C_in k^2`` parameters a layer); ``rank=R`` uses low-rank untied kernels.
    """

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int,
                 kernel_size: int, rank: int | None, alpha: float):
        widths = _widths(2 * in_frames, hidden, 2, layers)
        super().__init__([LocallyConnected2d(widths[i], widths[i + 1], kernel_size, frame_size, rank=rank)
                          for i in range(layers)])
        self.alpha = float(alpha)

    def regularizer(self) -> torch.Tensor:
        return self.alpha * torch.stack([layer.neighbour_penalty() for layer in self.layers]).sum()


class ResidualPathwayNet(LayerNet):
    """Rpp (Finzi et al. 2021): every layer is ``conv(x) + LC(x)`` (:class:`common.ResidualPathway`): the
    convolution is the equivariant path, a low-rank locally connected layer (which contains convolutions)
    the non-equivariant one. ``regularizer() = alpha * sum_layers (||theta_LC||^2 + eq_scale ||theta_conv||^2)``,
    ``eq_scale < 1``: the non-equivariant path has the tighter prior.
    """

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int,
                 kernel_size: int, rank: int | None, alpha: float, eq_scale: float = 0.01):
        widths = _widths(2 * in_frames, hidden, 2, layers)
        super().__init__([ResidualPathway(
            nn.Conv2d(widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2),
            LocallyConnected2d(widths[i], widths[i + 1], kernel_size, frame_size, rank=rank))
            for i in range(layers)])
        self.alpha, self.eq_scale = float(alpha), float(eq_scale)

    def regularizer(self) -> torch.Tensor:
        return self.alpha * torch.stack([layer.prior(self.eq_scale) for layer in self.layers]).sum()


class ComboNet(Combo):
    """Combo: ``free_layers`` locally connected layers (non-equivariant), then ``layers - free_layers``
    convolutions, ReLU between all layers. No regulariser."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int,
                 kernel_size: int, rank: int | None, free_layers: int):
        if not 1 <= free_layers < layers:
            raise ValueError(f"free_layers must be in [1, layers - 1] = [1, {layers - 1}], got {free_layers}")
        widths = _widths(2 * in_frames, hidden, 2, layers)
        front = [LocallyConnected2d(widths[i], widths[i + 1], kernel_size, frame_size, rank=rank)
                 for i in range(free_layers)]
        super().__init__(nn.Sequential(LayerNet(front), nn.ReLU()),
                         conv_stack(hidden, hidden, 2, layers - free_layers, kernel_size))


class LiftEncoder(nn.Module):
    """Lift's non-equivariant encoder: an MLP over the whole input frame stack,
    ``(B, T, 2, H, W) -> Linear(2 T H W, width) -> ReLU -> Linear(width, E H W) -> (B, E, H, W)``.
    The last layer's bias is a learned position-dependent embedding ``(E, H, W)``."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], width: int, channels: int):
        super().__init__()
        h, w = frame_size
        self.frame_size, self.channels = (h, w), channels
        self.net = nn.Sequential(nn.Linear(2 * in_frames * h * w, width), nn.ReLU(),
                                 nn.Linear(width, channels * h * w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.frame_size:
            raise ValueError(f"LiftEncoder built for frames {self.frame_size}, got {tuple(x.shape[-2:])}")
        return self.net(x.reshape(x.shape[0], -1)).reshape(x.shape[0], self.channels, *self.frame_size)


class LiftNet(Lift):
    """Lift: :class:`LiftEncoder` output appended as ``lift_channels`` extra input channels of a
    ``layers``-deep CNN backbone fed the same frames. No regulariser."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int,
                 kernel_size: int, lift_channels: int, lift_width: int):
        super().__init__(LiftEncoder(in_frames, frame_size, lift_width, lift_channels),
                         conv_stack(2 * in_frames + lift_channels, hidden, 2, layers, kernel_size))


# --- builders (keyword hyper-parameters; defaults are the translation settings of docs/protocol.md) -----------------

class ConvSBI(SymmetryBreakingInputs):
    """The translation family's symmetry-breaking-input model: the CNN baseline reading the fields as extra input
    channels (zeroed: the CNN, translation-equivariant away from the borders)."""

    def __init__(self, in_frames: int, frame_size: tuple[int, int], hidden: int, layers: int, kernel_size: int,
                 fields: int, dropout: float):
        super().__init__(fields, frame_size, dropout)
        self.net = conv_stack(2 * in_frames + fields, hidden, 2, layers, kernel_size)

    def predict(self, x: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((frames_to_channels(x), fields), dim=1))


def build_mlp(*, in_frames: int = 10, frame_size=None, hidden: int = 128, layers: int = 5) -> MLP:
    return MLP(in_frames, _frame(frame_size), hidden, layers)


def build_conv(*, in_frames: int = 10, hidden: int = 128, layers: int = 5, kernel_size: int = 3) -> ConvNet:
    return ConvNet(in_frames, hidden, layers, kernel_size)


def build_rpp(*, in_frames: int = 10, frame_size=None, hidden: int = 128, layers: int = 5,
              kernel_size: int = 3, rank: int | None = 2, alpha: float = 1e-4,
              eq_scale: float = 0.01) -> ResidualPathwayNet:
    return ResidualPathwayNet(in_frames, _frame(frame_size), hidden, layers, kernel_size, rank, alpha, eq_scale)


def build_combo(*, in_frames: int = 10, frame_size=None, hidden: int = 128, layers: int = 5,
                kernel_size: int = 3, rank: int | None = 2, free_layers: int | None = None) -> ComboNet:
    free_layers = max(1, layers // 2) if free_layers is None else free_layers
    return ComboNet(in_frames, _frame(frame_size), hidden, layers, kernel_size, rank, free_layers)


def build_clcnn(*, in_frames: int = 10, frame_size=None, hidden: int = 128, layers: int = 5,
                kernel_size: int = 3, rank: int | None = 2, alpha: float = 1e-4) -> LocallyConnectedNet:
    return LocallyConnectedNet(in_frames, _frame(frame_size), hidden, layers, kernel_size, rank, alpha)


def build_lift(*, in_frames: int = 10, frame_size=None, hidden: int = 128, layers: int = 5,
               kernel_size: int = 3, lift_channels: int = 4, lift_width: int = 32) -> LiftNet:
    return LiftNet(in_frames, _frame(frame_size), hidden, layers, kernel_size, lift_channels, lift_width)


def build_rgroup(*, in_frames: int = 10, frame_size=None, hidden: int = 128, layers: int = 5,
                 kernel_size: int = 3, banks: int = 2, alpha: float = 0.0,
                 weighting: str = "input") -> RelaxedGroupConvNet:
    return RelaxedGroupConvNet(in_frames, _frame(frame_size), hidden, layers, kernel_size, banks, alpha,
                               weighting)


def build_sbi(*, in_frames: int = 10, frame_size=None, hidden: int = 128, layers: int = 5, kernel_size: int = 3,
              fields: int = 4, field_dropout: float = 0.5) -> ConvSBI:
    return ConvSBI(in_frames, _frame(frame_size), hidden, layers, kernel_size, fields, field_dropout)


MODELS = {
    "mlp": build_mlp,
    "conv": build_conv,
    "rpp": build_rpp,
    "combo": build_combo,
    "clcnn": build_clcnn,
    "lift": build_lift,
    "rgroup": build_rgroup,
    "sbi": build_sbi,
    "gmcnn": build_gmcnn,
}
