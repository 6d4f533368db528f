"""Necks: modules that mix a backbone's levels, ``{stride: features} -> {stride: features}``.

- :class:`IdentityNeck` passes features through (optionally only some strides);
- :class:`FPNNeck` is torchvision's ``FeaturePyramidNetwork`` on the chosen levels;
- :class:`BiFPNNeck` is EfficientDet's weighted bidirectional pyramid (Tan et al., 2020), which no
  maintained package provides on its own.

Levels above the backbone's top level (e.g. 6 and 7 on a backbone that stops at 5) are made by
stride-2 3x3 convolutions from the level below. Every output level has ``channels`` channels, so one
head can be shared across levels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class IdentityNeck(nn.Module):
    """A neck that passes the backbone's features through, keeping only ``strides`` when given."""

    def __init__(self, out_channels: Mapping[int, int], strides: Sequence[int] | None = None) -> None:
        super().__init__()
        keep = set(out_channels) if strides is None else set(strides)
        self.out_channels = {s: c for s, c in out_channels.items() if s in keep}
        self._all = keep == set(out_channels)

    def forward(self, features: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        if self._all:
            return features
        return {s: f for s, f in features.items() if s in self.out_channels}


class ExtraLevels(nn.Module):
    """Stride-2 3x3 convolutions that make levels above the backbone's top one, each from the one below."""

    def __init__(self, in_channels: int, channels: int, count: int) -> None:
        super().__init__()
        convs = []
        for i in range(count):
            convs.append(nn.Conv2d(in_channels if i == 0 else channels, channels, 3, stride=2, padding=1))
        self.convs = nn.ModuleList(convs)

    def forward(self, top: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = top
        for i, conv in enumerate(self.convs):
            x = conv(x if i == 0 else torch.relu(x))
            out.append(x)
        return out


def _split_levels(levels: Sequence[int], backbone_channels: Mapping[int, int]) -> tuple[list[int], int]:
    """``(strides taken from the backbone, number of extra levels made above them)``."""
    strides = [2 ** int(level) for level in sorted(levels)]
    taken = [s for s in strides if s in backbone_channels]
    if not taken:
        raise ValueError(f"neck levels {list(levels)} share no level with the backbone ({sorted(backbone_channels)})")
    return taken, len(strides) - len(taken)


class FPNNeck(nn.Module):
    """A feature pyramid (torchvision's ``FeaturePyramidNetwork``) on ``levels``, ``channels`` each.

    Extra levels above the backbone's are made from the pyramid's top output.
    """

    def __init__(self, backbone_channels: Mapping[int, int], levels: Sequence[int], channels: int) -> None:
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.taken, n_extra = _split_levels(levels, backbone_channels)
        self.fpn = FeaturePyramidNetwork([int(backbone_channels[s]) for s in self.taken], int(channels))
        self.extra = ExtraLevels(int(channels), int(channels), n_extra)
        strides = [*self.taken, *(self.taken[-1] * 2 ** (i + 1) for i in range(n_extra))]
        self.out_channels = {s: int(channels) for s in strides}

    def forward(self, features: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        pyramid = self.fpn({str(s): features[s] for s in self.taken})
        out = {s: pyramid[str(s)] for s in self.taken}
        top = self.taken[-1]
        for i, f in enumerate(self.extra(out[top])):
            out[top * 2 ** (i + 1)] = f
        return out


class SeparableConvBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 convolution, batch norm, SiLU: BiFPN's fusion convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.pointwise(self.depthwise(x))))


class FastFusion(nn.Module):
    """Fast normalised fusion: ``sum(relu(w_i) * x_i) / (sum(relu(w_i)) + eps)``, then a separable conv."""

    def __init__(self, n_inputs: int, channels: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(n_inputs))
        self.eps = eps
        self.conv = SeparableConvBlock(channels)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        w = torch.relu(self.weights)
        w = w / (w.sum() + self.eps)
        fused = inputs[0] * w[0]
        for i in range(1, len(inputs)):
            fused = fused + inputs[i] * w[i]
        return self.conv(fused)


class BiFPNLayer(nn.Module):
    """One bidirectional pass over ``n_levels`` levels of equal channels (finest first).

    Top-down: ``td_i = fuse(P_i, up(td_{i+1}))``; bottom-up: ``out_i = fuse(P_i, td_i, down(out_{i-1}))``
    (the coarsest level fuses ``P_n`` with ``down(out_{n-1})``).
    """

    def __init__(self, n_levels: int, channels: int) -> None:
        super().__init__()
        self.n_levels = int(n_levels)
        self.top_down = nn.ModuleList([FastFusion(2, channels) for _ in range(self.n_levels - 1)])
        self.bottom_up = nn.ModuleList(
            [FastFusion(3 if i < self.n_levels - 1 else 2, channels) for i in range(1, self.n_levels)]
        )

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        n = self.n_levels
        if n == 1:
            return levels
        td = [None] * n
        td[n - 1] = levels[n - 1]
        for i in range(n - 2, -1, -1):
            up = nn.functional.interpolate(td[i + 1], size=levels[i].shape[-2:], mode="nearest")
            td[i] = self.top_down[i]([levels[i], up])
        out = [td[0]]
        for i in range(1, n):
            down = nn.functional.max_pool2d(out[i - 1], kernel_size=3, stride=2, padding=1)
            inputs = [levels[i], td[i], down] if i < n - 1 else [levels[i], down]
            out.append(self.bottom_up[i - 1](inputs))
        return out


class BiFPNNeck(nn.Module):
    """EfficientDet's BiFPN on ``levels``: 1x1 projections to ``channels``, extra levels, ``layers`` passes."""

    def __init__(
        self, backbone_channels: Mapping[int, int], levels: Sequence[int], channels: int, layers: int = 1
    ) -> None:
        super().__init__()
        self.taken, n_extra = _split_levels(levels, backbone_channels)
        channels = int(channels)
        self.project = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(int(backbone_channels[s]), channels, 1, bias=False), nn.BatchNorm2d(channels))
                for s in self.taken
            ]
        )
        self.extra = ExtraLevels(int(backbone_channels[self.taken[-1]]), channels, n_extra)
        self.strides = [*self.taken, *(self.taken[-1] * 2 ** (i + 1) for i in range(n_extra))]
        self.layers = nn.ModuleList([BiFPNLayer(len(self.strides), channels) for _ in range(int(layers))])
        self.out_channels = {s: channels for s in self.strides}

    def forward(self, features: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        levels = [proj(features[s]) for proj, s in zip(self.project, self.taken)]
        levels += self.extra(features[self.taken[-1]])
        for layer in self.layers:
            levels = layer(levels)
        return dict(zip(self.strides, levels))


def build_neck(config: object, backbone_channels: Mapping[int, int], head_strides: Sequence[int]) -> nn.Module:
    """The neck ``config.model.neck`` describes; without one, heads see ``head_strides`` of the backbone."""
    neck = config.model.neck  # type: ignore[attr-defined]
    if neck.type == "fpn":
        return FPNNeck(backbone_channels, neck.levels, neck.channels)
    if neck.type == "bifpn":
        return BiFPNNeck(backbone_channels, neck.levels, neck.channels, neck.layers)
    return IdentityNeck(backbone_channels, head_strides)
