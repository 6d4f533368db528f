"""Output heads: a 1x1 convolution from the features at the head's output stride.

Every head has ``name`` (the key of its output in ``PoseModel.forward``), ``output_stride`` (where its
main output sits) and ``out_channels``. Outputs are raw (no activation): targets are in [0, 1] for
confidence maps and [-1, 1] for part affinity fields, and the loss is a mean squared error.

A head may read coarser features than its output stride (``upsample_steps`` > 0): a learned
upsampling stage (a 1x1 reduction to at most 128 channels, then 4x4 transposed convolutions, each
doubling the resolution) comes before the 1x1 convolution, as DeepLabCut's ResNet heads do. A head on several levels applies the same 1x1
convolution to each level's features (:meth:`Head.at`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

UPSAMPLE_CHANNELS = 128
"""Channels of a head's learned upsampling stage (fewer when its input has fewer)."""


class Head(nn.Module):
    """A 1x1 convolution mapping ``in_channels`` features to ``out_channels`` maps."""

    name = "head"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        output_stride: int,
        *,
        upsample_steps: int = 0,
        upsample_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.output_stride = int(output_stride)
        self.upsample_steps = int(upsample_steps)
        self.read_stride = self.output_stride * 2**self.upsample_steps
        """Stride of the features the main output is computed from."""
        channels = self.in_channels
        self.upsample: nn.Module | None = None
        if self.upsample_steps:
            wide = int(upsample_channels) if upsample_channels is not None else min(self.in_channels, UPSAMPLE_CHANNELS)
            layers: list[nn.Module] = []
            if wide != channels:
                # a 1x1 reduction first keeps the transposed convolutions small on wide backbones (2048 channels)
                layers += [nn.Conv2d(channels, wide, kernel_size=1, bias=False), nn.BatchNorm2d(wide), nn.ReLU(inplace=True)]
                channels = wide
            for _ in range(self.upsample_steps):
                layers += [
                    nn.ConvTranspose2d(channels, wide, kernel_size=4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(wide),
                    nn.ReLU(inplace=True),
                ]
            self.upsample = nn.Sequential(*layers)
        self.conv = nn.Conv2d(channels, self.out_channels, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Maps at ``output_stride`` from features at ``read_stride``."""
        if self.upsample is not None:
            features = self.upsample(features)
        return self.conv(features)

    def at(self, features: torch.Tensor) -> torch.Tensor:
        """Maps at the stride of ``features`` (another level of a head on several levels), same weights."""
        return self.conv(features)


class ConfidenceMapHead(Head):
    """One confidence map per body part: ``(B, n_nodes, h, w)``, then any ``extra_channels`` (training only)."""

    name = "confmaps"

    def __init__(
        self, n_nodes: int, in_channels: int, output_stride: int, *, extra_channels: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(in_channels, n_nodes + int(extra_channels), output_stride, **kwargs)
        self.n_nodes = int(n_nodes)
        self.extra_channels = int(extra_channels)
        """Training-only maps after the body parts (posture graph); dropped at inference."""


class CenteredInstanceHead(ConfidenceMapHead):
    """Confidence maps of the one animal centred in a crop (top-down second stage): ``(B, n_nodes, h, w)``."""

    name = "confmaps"


class CentroidHead(Head):
    """One map of animal centres (anchor part or mean of visible parts): ``(B, 1, h, w)``."""

    name = "centroids"

    def __init__(self, in_channels: int, output_stride: int, **kwargs: Any) -> None:
        super().__init__(in_channels, 1, output_stride, **kwargs)


class PAFHead(Head):
    """Part affinity fields, two channels per edge: ``(B, 2 * n_edges, h, w)``.

    Channel ``2 * e`` is the x component and ``2 * e + 1`` the y component of edge ``e``'s field.
    """

    name = "pafs"

    def __init__(self, n_edges: int, in_channels: int, output_stride: int, **kwargs: Any) -> None:
        super().__init__(in_channels, 2 * n_edges, output_stride, **kwargs)
        self.n_edges = int(n_edges)


class ClassMapHead(Head):
    """One confidence map per identity class (bottom-up identity model): ``(B, n_classes, h, w)``.

    Class ``k``'s map peaks at every body part of each animal of that class (SLEAP's ``class_maps``).
    """

    name = "class_maps"

    def __init__(self, n_classes: int, in_channels: int, output_stride: int, **kwargs: Any) -> None:
        if n_classes < 2:
            raise ValueError(f"an identity head needs at least two classes, got {n_classes}")
        super().__init__(in_channels, n_classes, output_stride, **kwargs)
        self.n_classes = int(n_classes)


class ClassVectorHead(nn.Module):
    """Identity logits of the animal centred in a crop: ``(B, n_classes)`` (SLEAP's ``class_vectors``).

    The features at ``read_stride`` (the deepest the neck gives) are averaged over space and
    layer-normalised, then ``num_fc_layers`` fully connected layers of ``num_fc_units`` (ReLU) and a linear layer give one
    raw logit per class; softmax turns them into class probabilities at inference.

    Parameters
    ----------
    n_classes
        How many identities (at least two).
    in_channels
        Channels of the features it reads.
    read_stride
        Stride of those features (its ``output_stride`` too: the head has no spatial output).
    num_fc_layers, num_fc_units
        Hidden layers and their width.
    """

    name = "class_vectors"

    def __init__(
        self, n_classes: int, in_channels: int, read_stride: int, *, num_fc_layers: int = 1, num_fc_units: int = 64
    ) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"an identity head needs at least two classes, got {n_classes}")
        self.in_channels = int(in_channels)
        self.out_channels = int(n_classes)
        self.n_classes = int(n_classes)
        self.read_stride = int(read_stride)
        self.output_stride = int(read_stride)
        self.upsample_steps = 0
        layers: list[nn.Module] = []
        width = self.in_channels
        for _ in range(int(num_fc_layers)):
            layers += [nn.Linear(width, int(num_fc_units)), nn.ReLU(inplace=True)]
            width = int(num_fc_units)
        layers.append(nn.Linear(width, self.n_classes))
        # pooled features differ in scale from backbone to backbone and from step to step: normalised,
        # the classifier learned faster (on the fly clip after 110 steps: argmax accuracy 0.93, not 0.80)
        self.norm = nn.LayerNorm(self.in_channels)
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` features -> ``(B, n_classes)`` logits."""
        return self.mlp(self.norm(features.mean(dim=(-2, -1))))
