"""SmallNet: a residual CNN whose hidden kernels are pulled towards 90-degree rotation symmetry by its regulariser.

An example of a model of one's own for the pipeline (docs/custom-models.md): ``build``'s keyword arguments are the
hyper-parameters it takes (the pipeline passes those it names, and its search varies those of them in the space),
``forward`` maps ``(B, T_in, 2, H, W)`` past frames to the next frame ``(B, 2, H, W)``, and ``regularizer()``
returns the scalar added to the training loss.
"""
from __future__ import annotations

import torch
from torch import nn


class SmallNet(nn.Module):
    def __init__(self, in_frames: int, hidden: int, layers: int, kernel_size: int, alpha: float):
        super().__init__()
        pad = kernel_size // 2
        self.lift = nn.Conv2d(2 * in_frames, hidden, kernel_size, padding=pad)
        self.hidden = nn.ModuleList(nn.Conv2d(hidden, hidden, kernel_size, padding=pad) for _ in range(layers - 2))
        self.project = nn.Conv2d(hidden, 2, kernel_size, padding=pad)
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        z = torch.relu(self.lift(x.reshape(b, t * c, h, w)))
        for conv in self.hidden:
            z = z + torch.relu(conv(z))
        return x[:, -1] + self.project(z)  # the next frame as a change of the last one

    def regularizer(self) -> torch.Tensor:
        """``alpha`` times the squared distance of the hidden kernels from their quarter-turn rotations: zero for
        kernels that a 90-degree rotation leaves unchanged (those layers then commute with the rotation of their
        scalar feature maps)."""
        total = self.project.weight.new_zeros(())
        for conv in self.hidden:
            total = total + (conv.weight - torch.rot90(conv.weight, 1, dims=(-2, -1))).pow(2).sum()
        return self.alpha * total


def build(in_frames: int, hidden: int, layers: int, kernel_size: int = 3, alpha: float = 0.0) -> SmallNet:
    """The pipeline's builder: ``in_frames`` (input frames), ``hidden`` (channels), ``layers`` (convolutions),
    ``kernel_size``, ``alpha`` (weight of the regulariser)."""
    return SmallNet(in_frames, hidden, max(layers, 2), kernel_size, alpha)
