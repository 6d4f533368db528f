"""DeepPoseKit's stacked models (Graving et al., eLife 2019): Stacked DenseNet and Stacked Hourglass.

Both bring the image to the head's output stride ``base_stride`` with a small front end, then repeat an
encoder-decoder ("hourglass") ``n_stacks`` times, each going down to ``2 ** top_level`` and back up to
``base_stride``. ``forward`` returns one ``{base_stride: features}`` dict per stack, the last one
final; :class:`~napari_posetrack.core.models.model.PoseModel` applies the same heads to every stack, so
the intermediate stacks are supervised while training (``confmaps#0``) and dropped at inference.

Unlike DeepPoseKit, the heads live outside the backbone, so a stack's predictions are not fed back into
the next stack: the next stack reads the previous stack's features (concatenated with the front end's
for the DenseNet, added through a 1x1 convolution for the Hourglass). That keeps one interface for every
backbone; what is given up is DeepPoseKit's re-injection of a few prediction channels.

- :class:`StackedDenseNet`: FC-DenseNet hourglasses. A dense block is :data:`DENSE_LAYERS` bottleneck
  layers ``1x1 conv (bottleneck_factor * growth_rate) -> 3x3 conv (growth_rate)`` whose outputs are
  concatenated to their input; a transition is a 1x1 convolution keeping ``compression_factor`` of the
  channels (then 2x2 max pooling going down, or x2 bilinear upsampling going up), and skips are
  compressed the same way before the decoder concatenates them. With ``selu`` every
  convolution is followed by SELU and initialised LeCun-normal, with no batch norm (self-normalising, as
  DeepPoseKit); with ``relu`` it is convolution -> batch norm -> ReLU.
- :class:`StackedHourglass`: Newell et al. (2016): pre-activation residual bottleneck blocks
  (``filters -> filters / bottleneck_factor -> filters``), 2x2 max pooling down, nearest upsampling up,
  skips added at every level.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from napari_posetrack.core.config import ConfigError, TrainingConfig
from napari_posetrack.core.config.model import StackedDenseNetConfig, StackedHourglassConfig

STEM_KERNEL = 7
"""Kernel of the stride-2 convolution both models start with."""

DENSE_LAYERS = 2
"""Bottleneck layers per dense block. Two keep the default Stacked DenseNet near 1.5 M parameters (about 6% of a
ResNet-50); DeepPoseKit uses one layer per block, wider at the deeper levels."""


def _levels(stride: int) -> int:
    return int(stride).bit_length() - 1


def _check_size(x: torch.Tensor, max_stride: int) -> None:
    h, w = x.shape[-2:]
    if h % max_stride or w % max_stride:
        raise ValueError(
            f"input size {h}x{w} is not a multiple of max_stride {max_stride}; pad it with pad_to_stride()"
        )


# --------------------------------------------------------------------------- Stacked DenseNet


def _init_selu(module: nn.Module) -> None:
    """LeCun normal (std = 1 / sqrt(fan_in)) and zero biases: what keeps SELU activations normalised."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def dense_conv(
    in_channels: int, out_channels: int, kernel: int, *, activation: str, separable: bool = False, stride: int = 1
) -> nn.Sequential:
    """Convolution (same padding) then SELU, or convolution -> batch norm -> ReLU.

    ``separable`` splits a kernel larger than 1 into a depthwise convolution and a 1x1 pointwise one.
    """
    selu = activation == "selu"
    pad = kernel // 2
    layers: list[nn.Module]
    if separable and kernel > 1:
        layers = [
            nn.Conv2d(in_channels, in_channels, kernel, stride, pad, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=selu),
        ]
    else:
        layers = [nn.Conv2d(in_channels, out_channels, kernel, stride, pad, bias=selu)]
    if selu:
        layers.append(nn.SELU(inplace=True))
    else:
        layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    block = nn.Sequential(*layers)
    if selu:
        _init_selu(block)
    return block


class DenseBlock(nn.Module):
    """Bottleneck layers, each reading everything before it; returns the input and every new map concatenated.

    Parameters
    ----------
    in_channels
        Input channels; the block returns ``in_channels + n_layers * spec.growth_rate``.
    spec
        Growth rate, bottleneck factor, activation and separable convolutions.
    n_layers
        Bottleneck layers.
    """

    def __init__(self, in_channels: int, spec: StackedDenseNetConfig, n_layers: int = DENSE_LAYERS) -> None:
        super().__init__()
        k = int(spec.growth_rate)
        wide = int(spec.bottleneck_factor) * k
        self.layers = nn.ModuleList(
            nn.Sequential(
                dense_conv(in_channels + i * k, wide, 1, activation=spec.activation),
                dense_conv(wide, k, 3, activation=spec.activation, separable=spec.separable),
            )
            for i in range(n_layers)
        )
        self.out_channels = in_channels + n_layers * k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C + n_layers * growth_rate, H, W)``."""
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


def _compressed(channels: int, factor: float) -> int:
    return max(1, math.floor(channels * float(factor)))


class DenseHourglass(nn.Module):
    """One FC-DenseNet encoder-decoder from ``base_stride`` down ``depth`` levels and back.

    Parameters
    ----------
    in_channels, out_channels
        Channels read and returned (both at ``base_stride``).
    depth
        How many times the encoder halves the resolution.
    spec
        The Stacked DenseNet options.
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int, spec: StackedDenseNetConfig) -> None:
        super().__init__()
        act, c = spec.activation, spec.compression_factor
        self.entry = DenseBlock(in_channels, spec)
        width = self.entry.out_channels
        skips = [width]
        self.down = nn.ModuleList()
        for _ in range(depth):
            squeeze = _compressed(width, c)
            block = DenseBlock(squeeze, spec)
            self.down.append(nn.Sequential(dense_conv(width, squeeze, 1, activation=act), nn.MaxPool2d(2), block))
            width = block.out_channels
            skips.append(width)
        skips.pop()  # the bottom level is the decoder's input, not a skip
        # skips are compressed too, or the decoder's concatenations would keep widening
        self.skips = nn.ModuleList(dense_conv(skip, _compressed(skip, c), 1, activation=act) for skip in skips)
        self.up_transitions = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for skip in reversed(skips):
            squeeze = _compressed(width, c)
            # compress before upsampling: the 1x1 convolution runs at the coarser resolution
            self.up_transitions.append(
                nn.Sequential(
                    dense_conv(width, squeeze, 1, activation=act),
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                )
            )
            block = DenseBlock(squeeze + _compressed(skip, c), spec)
            self.up_blocks.append(block)
            width = block.out_channels
        self.exit = dense_conv(width, out_channels, 1, activation=act)
        self.out_channels = int(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``."""
        x = self.entry(x)
        skips = []
        for down, squeeze in zip(self.down, self.skips):
            skips.append(squeeze(x))
            x = down(x)
        for up, block, skip in zip(self.up_transitions, self.up_blocks, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.exit(x)


class StackedDenseNet(nn.Module):
    """DeepPoseKit's Stacked DenseNet backbone.

    Front end: a 7x7 stride-2 convolution to ``2 * growth_rate`` channels (DenseNet's stem width), then
    a dense block and a transition down per further halving to ``base_stride``. Stack ``i`` reads the
    front end's features, concatenated with stack ``i - 1``'s for ``i > 0`` (dense connections between
    stacks), and returns as many channels as the front end makes.

    Parameters
    ----------
    spec
        ``config.model.stacked_densenet``.
    in_channels
        Image channels.
    base_stride
        Stride of the returned features (the heads' output stride), 2 to ``2 ** (top_level - 1)``.
    top_level
        The hourglasses go down to stride ``2 ** top_level``.

    Attributes
    ----------
    max_stride
        Input height and width must be multiples of it.
    out_channels
        ``{base_stride: channels}`` of every stack's features.
    """

    def __init__(self, spec: StackedDenseNetConfig, in_channels: int, base_stride: int, top_level: int) -> None:
        super().__init__()
        _check_levels(base_stride, top_level)
        self.base_stride = int(base_stride)
        self.max_stride = 2 ** int(top_level)
        act, c = spec.activation, spec.compression_factor
        width = 2 * int(spec.growth_rate)
        front: list[nn.Module] = [dense_conv(in_channels, width, STEM_KERNEL, activation=act, stride=2)]
        for _ in range(_levels(base_stride) - 1):
            block = DenseBlock(width, spec)
            squeeze = _compressed(block.out_channels, c)
            front += [block, dense_conv(block.out_channels, squeeze, 1, activation=act), nn.MaxPool2d(2)]
            width = squeeze
        self.front = nn.Sequential(*front)
        depth = int(top_level) - _levels(base_stride)
        self.stacks = nn.ModuleList(
            DenseHourglass(width if i == 0 else 2 * width, width, depth, spec) for i in range(int(spec.n_stacks))
        )
        self.out_channels = {self.base_stride: width}

    def forward(self, x: torch.Tensor) -> list[dict[int, torch.Tensor]]:
        """``x`` (B, C, H, W), H and W multiples of ``max_stride`` -> one ``{base_stride: features}`` per stack."""
        _check_size(x, self.max_stride)
        front = self.front(x)
        out = []
        features = None
        for stack in self.stacks:
            features = stack(front if features is None else torch.cat([features, front], dim=1))
            out.append({self.base_stride: features})
        return out


# --------------------------------------------------------------------------- Stacked Hourglass


class Residual(nn.Module):
    """Pre-activation residual bottleneck: BN-ReLU-1x1, BN-ReLU-3x3 at ``channels / bottleneck_factor``,
    BN-ReLU-1x1 back to ``channels``, plus the input."""

    def __init__(self, channels: int, bottleneck_factor: int) -> None:
        super().__init__()
        mid = max(1, int(channels) // int(bottleneck_factor))
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape in and out."""
        return x + self.body(x)


class Hourglass(nn.Module):
    """Newell's hourglass: a residual skip at each level, max pooling down, nearest upsampling up.

    Parameters
    ----------
    channels, bottleneck_factor
        Of every residual block.
    depth
        How many times the resolution halves (>= 1).
    """

    def __init__(self, channels: int, bottleneck_factor: int, depth: int) -> None:
        super().__init__()
        self.skip = Residual(channels, bottleneck_factor)
        self.down = nn.Sequential(nn.MaxPool2d(2), Residual(channels, bottleneck_factor))
        self.inner: nn.Module = (
            Hourglass(channels, bottleneck_factor, depth - 1) if depth > 1 else Residual(channels, bottleneck_factor)
        )
        self.up = nn.Sequential(Residual(channels, bottleneck_factor), nn.Upsample(scale_factor=2, mode="nearest"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape in and out."""
        return self.skip(x) + self.up(self.inner(self.down(x)))


class StackedHourglass(nn.Module):
    """DeepPoseKit's Stacked Hourglass backbone (Newell et al. 2016).

    Front end: a 7x7 stride-2 convolution to ``filters`` channels (BN, ReLU), then a residual block and
    2x2 max pooling per further halving to ``base_stride``, and a residual block. Each stack is an
    hourglass, a residual block and a 1x1 convolution (BN, ReLU) giving the features the heads read; the
    next stack's input is this stack's input plus those features through a 1x1 convolution.

    Parameters
    ----------
    spec
        ``config.model.stacked_hourglass``.
    in_channels, base_stride, top_level
        As for :class:`StackedDenseNet`.

    Attributes
    ----------
    max_stride
        Input height and width must be multiples of it.
    out_channels
        ``{base_stride: filters}``.
    """

    def __init__(self, spec: StackedHourglassConfig, in_channels: int, base_stride: int, top_level: int) -> None:
        super().__init__()
        _check_levels(base_stride, top_level)
        self.base_stride = int(base_stride)
        self.max_stride = 2 ** int(top_level)
        f, b = int(spec.filters), int(spec.bottleneck_factor)
        front: list[nn.Module] = [
            nn.Conv2d(in_channels, f, STEM_KERNEL, stride=2, padding=STEM_KERNEL // 2, bias=False),
            nn.BatchNorm2d(f),
            nn.ReLU(inplace=True),
        ]
        for _ in range(_levels(base_stride) - 1):
            front += [Residual(f, b), nn.MaxPool2d(2)]
        front.append(Residual(f, b))
        self.front = nn.Sequential(*front)
        depth = int(top_level) - _levels(base_stride)
        n = int(spec.n_stacks)
        self.hourglasses = nn.ModuleList(
            nn.Sequential(
                Hourglass(f, b, depth),
                Residual(f, b),
                nn.Conv2d(f, f, 1, bias=False),
                nn.BatchNorm2d(f),
                nn.ReLU(inplace=True),
            )
            for _ in range(n)
        )
        self.merges = nn.ModuleList(nn.Conv2d(f, f, 1) for _ in range(n - 1))
        self.out_channels = {self.base_stride: f}

    def forward(self, x: torch.Tensor) -> list[dict[int, torch.Tensor]]:
        """``x`` (B, C, H, W), H and W multiples of ``max_stride`` -> one ``{base_stride: features}`` per stack."""
        _check_size(x, self.max_stride)
        x = self.front(x)
        out = []
        for i, hourglass in enumerate(self.hourglasses):
            features = hourglass(x)
            out.append({self.base_stride: features})
            if i < len(self.merges):
                x = x + self.merges[i](features)
        return out


# --------------------------------------------------------------------------- factory


def _check_levels(base_stride: int, top_level: int) -> None:
    # the config validation says the same naming the field; this guards direct construction
    if not (2 <= int(base_stride) < 2 ** int(top_level)) or int(base_stride) & (int(base_stride) - 1):
        raise ConfigError(
            f"model.heads: a DeepPoseKit model outputs at a power-of-two stride from 2 to below its top level's "
            f"stride {2 ** int(top_level)}, got {base_stride}"
        )


def build_dpk_backbone(config: TrainingConfig, in_channels: int) -> nn.Module:
    """The DeepPoseKit backbone ``config.model.backbone`` names, returning features at ``config.output_stride``."""
    m = config.model
    if m.backbone == "stacked_densenet":
        return StackedDenseNet(m.stacked_densenet, in_channels, int(config.output_stride), int(m.top_level))
    if m.backbone == "stacked_hourglass":
        return StackedHourglass(m.stacked_hourglass, in_channels, int(config.output_stride), int(m.top_level))
    raise ConfigError(f"model.backbone: {m.backbone!r} is not a DeepPoseKit model")
