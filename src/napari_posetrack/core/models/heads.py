"""Output heads: a 1x1 convolution from the features at the head's output stride.

Every head has ``name`` (the key of its output in ``PoseModel.forward``), ``output_stride`` (which
feature map it reads) and ``out_channels``. Outputs are raw (no activation): targets are in [0, 1] for
confidence maps and [-1, 1] for part affinity fields, and the loss is a mean squared error.
"""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """A 1x1 convolution mapping ``in_channels`` features to ``out_channels`` maps."""

    name = "head"

    def __init__(self, in_channels: int, out_channels: int, output_stride: int) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.output_stride = int(output_stride)
        self.conv = nn.Conv2d(self.in_channels, self.out_channels, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)


class ConfidenceMapHead(Head):
    """One confidence map per body part: ``(B, n_nodes, h, w)``."""

    name = "confmaps"

    def __init__(self, n_nodes: int, in_channels: int, output_stride: int) -> None:
        super().__init__(in_channels, n_nodes, output_stride)
        self.n_nodes = int(n_nodes)


class CenteredInstanceHead(ConfidenceMapHead):
    """Confidence maps of the one animal centred in a crop (top-down second stage): ``(B, n_nodes, h, w)``."""

    name = "confmaps"


class CentroidHead(Head):
    """One map of animal centres (anchor part or mean of visible parts): ``(B, 1, h, w)``."""

    name = "centroids"

    def __init__(self, in_channels: int, output_stride: int) -> None:
        super().__init__(in_channels, 1, output_stride)


class PAFHead(Head):
    """Part affinity fields, two channels per edge: ``(B, 2 * n_edges, h, w)``.

    Channel ``2 * e`` is the x component and ``2 * e + 1`` the y component of edge ``e``'s field.
    """

    name = "pafs"

    def __init__(self, n_edges: int, in_channels: int, output_stride: int) -> None:
        super().__init__(in_channels, 2 * n_edges, output_stride)
        self.n_edges = int(n_edges)
