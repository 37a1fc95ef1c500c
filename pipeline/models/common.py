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
