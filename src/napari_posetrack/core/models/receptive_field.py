"""What a configured model looks like, computed from the config alone (no torch).

- :func:`unet_plan`: the layer-by-layer channel plan of the UNet (used to build it, too);
- :func:`count_parameters`: the exact number of trainable parameters of ``build_model(config, ...)``;
- :func:`receptive_field`: how many input pixels can influence one output pixel, in network-input
  pixels and in original-image pixels (divided by the input scaling).

The receptive field is exact for this architecture: the dependency interval of one output pixel is
propagated backwards through every convolution, pooling and upsampling layer (and through both the
skip and the deep path of each decoder level), and the widest interval over the output-pixel
alignments is reported. ``tests/training/test_models.py`` checks it against the gradient of a built
model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from napari_posetrack.core.config import ConfigError, TrainingConfig, UNetConfig, head_configs

STEM_KERNEL = 7
"""Kernel size of the stem convolution (applied before the stem's pooling)."""
KERNEL = 3
"""Kernel size of every UNet block convolution."""


@dataclass(frozen=True)
class DecoderLevel:
    """One decoder step: upsample from ``stride * 2`` to ``stride``, concatenate the skip, convolve."""

    stride: int
    up_in: int  # channels entering the upsampling
    up_out: int  # channels after upsampling (== up_in for bilinear)
    skip: int  # channels of the encoder skip at this stride
    out: int  # channels after the block


@dataclass(frozen=True)
class UNetPlan:
    """Channel plan of a UNet (see :class:`napari_posetrack.core.models.unet.UNet`)."""

    in_channels: int
    stem_stride: int  # 1 = no stem
    stem_filters: int
    encoder: tuple[int, ...]  # filters of encoder level i, at stride stem_stride * 2**i
    middle: int | None  # filters of the middle block at max_stride (None = no middle block)
    decoder: tuple[DecoderLevel, ...]
    convs_per_block: int
    up_interpolate: bool
    max_stride: int
    output_stride: int

    @property
    def bottom_channels(self) -> int:
        return self.middle if self.middle is not None else self.encoder[-1]

    @property
    def out_channels(self) -> dict[int, int]:
        """Feature channels by stride of every map the UNet returns (bottom and each decoder level)."""
        chans = {self.max_stride: self.bottom_channels}
        for level in self.decoder:
            chans[level.stride] = level.out
        return chans

    def stride_of_level(self, i: int) -> int:
        return self.stem_stride * 2**i


def _log2(n: int) -> int:
    return round(math.log2(n))


def unet_plan(unet: UNetConfig, in_channels: int, output_stride: int) -> UNetPlan:
    """The channel plan of a UNet going down to ``unet.max_stride`` and back up to ``output_stride``."""
    stem = unet.stem_stride or 1
    if unet.max_stride % stem or unet.max_stride <= stem:
        raise ConfigError(
            f"model.unet.stem_stride: {stem} must divide and be below max_stride {unet.max_stride}"
        )
    if unet.max_stride % output_stride or output_stride < stem:
        raise ConfigError(
            f"output stride {output_stride} must divide max_stride {unet.max_stride} and be >= stem stride {stem}"
        )

    def filters_at(level: int) -> int:
        return max(1, round(unet.filters * unet.filters_rate**level))

    n_down = _log2(unet.max_stride // stem)
    encoder = tuple(filters_at(i) for i in range(n_down))
    middle = filters_at(n_down) if unet.middle_block else None
    prev = middle if middle is not None else encoder[-1]
    decoder = []
    stride = unet.max_stride
    while stride > output_stride:
        stride //= 2
        level = _log2(stride // stem)
        out = encoder[level]
        up_out = prev if unet.up_interpolate else out
        decoder.append(DecoderLevel(stride=stride, up_in=prev, up_out=up_out, skip=encoder[level], out=out))
        prev = out
    return UNetPlan(
        in_channels=in_channels,
        stem_stride=stem,
        stem_filters=unet.filters,
        encoder=encoder,
        middle=middle,
        decoder=tuple(decoder),
        convs_per_block=unet.convs_per_block,
        up_interpolate=unet.up_interpolate,
        max_stride=unet.max_stride,
        output_stride=output_stride,
    )


def input_channels(config: TrainingConfig, in_channels: int | None = None) -> int:
    """Network input channels: ``in_channels`` if given, else 3 for ``data.channels == "rgb"``, else 1."""
    if in_channels is not None:
        return int(in_channels)
    return 3 if config.data.channels == "rgb" else 1


def plan_for(config: TrainingConfig, in_channels: int | None = None) -> UNetPlan:
    """The UNet plan of ``config`` (decoder up to the finest head output stride)."""
    if config.model.pipeline == "topdown":
        raise ConfigError(
            "model.pipeline: 'topdown' trains two models; split it with topdown_configs() first"
        )
    return unet_plan(config.model.unet, input_channels(config, in_channels), config.output_stride)


# --------------------------------------------------------------------------- parameters


def _conv_params(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def unet_parameters(plan: UNetPlan) -> int:
    """Trainable parameters of the UNet described by ``plan``."""
    n = 0
    cpb = plan.convs_per_block
    prev = plan.in_channels
    if plan.stem_stride > 1:
        n += _conv_params(prev, plan.stem_filters, STEM_KERNEL)
        prev = plan.stem_filters
    for f in plan.encoder:
        n += _conv_params(prev, f, KERNEL) + (cpb - 1) * _conv_params(f, f, KERNEL)
        prev = f
    if plan.middle is not None:
        n += _conv_params(prev, plan.middle, KERNEL) + (cpb - 1) * _conv_params(
            plan.middle, plan.middle, KERNEL
        )
    for lvl in plan.decoder:
        if not plan.up_interpolate:
            n += _conv_params(lvl.up_in, lvl.up_out, 2)  # transposed conv, kernel 2 stride 2
        n += _conv_params(lvl.up_out + lvl.skip, lvl.out, KERNEL) + (cpb - 1) * _conv_params(
            lvl.out, lvl.out, KERNEL
        )
    return n


def head_channels(config: TrainingConfig, n_nodes: int, n_edges: int) -> dict[str, int]:
    """Output channels of each head of the pipeline."""
    out = {}
    for name in head_configs(config):
        out[name] = {"confmaps": n_nodes, "centroids": 1, "pafs": 2 * n_edges}[name]
    return out


def count_parameters(
    config: TrainingConfig, n_nodes: int, n_edges: int = 0, in_channels: int | None = None
) -> int:
    """Exact number of trainable parameters of ``build_model(config, skeleton)``.

    Parameters
    ----------
    n_nodes, n_edges
        Body parts and skeleton edges (edges only matter for bottom-up PAFs).
    in_channels
        Image channels; default from ``config.data.channels`` (1 unless ``"rgb"``).
    """
    plan = plan_for(config, in_channels)
    n = unet_parameters(plan)
    feats = plan.out_channels
    for name, h in head_configs(config).items():
        n += _conv_params(feats[h.output_stride], head_channels(config, n_nodes, n_edges)[name], 1)
    return n


# --------------------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output pixel.

    Attributes
    ----------
    input_pixels
        Width (= height) of the input region that can influence one output pixel, in network-input pixels.
    image_pixels
        The same in original-image pixels (``input_pixels / data.input_scaling``).
    output_stride
        The output the value refers to.
    """

    input_pixels: int
    image_pixels: float
    output_stride: int


def _union(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (min(a[0], b[0]), max(a[1], b[1]))


def receptive_interval(plan: UNetPlan, index: int, output_stride: int | None = None) -> tuple[int, int]:
    """Input-pixel interval ``[lo, hi]`` (1-D) that can influence output index ``index``.

    ``output_stride`` selects which UNet output (default: the finest). Assumes the pixel is far from the
    image border (no clamping or zero padding in the way).
    """
    h = (KERNEL - 1) // 2
    grow = h * plan.convs_per_block  # a block of 3x3 convs widens the interval by 1 per conv per side

    def from_input_of_level(i: int, a: int, b: int) -> tuple[int, int]:
        # (a, b) indexes the input of encoder block i
        if i > 0:
            return from_encoder(i - 1, 2 * a, 2 * b + 1)  # 2x2 max pooling of level i-1
        if plan.stem_stride > 1:
            s = plan.stem_stride
            a, b = a * s, b * s + s - 1  # stem pooling
            k = (STEM_KERNEL - 1) // 2
            return (a - k, b + k)
        return (a, b)

    def from_encoder(i: int, a: int, b: int) -> tuple[int, int]:
        return from_input_of_level(i, a - grow, b + grow)

    def from_bottom(a: int, b: int) -> tuple[int, int]:
        if plan.middle is not None:
            a, b = a - grow, b + grow
        n = len(plan.encoder)
        return from_encoder(n - 1, 2 * a, 2 * b + 1)

    def from_decoder(j: int, a: int, b: int) -> tuple[int, int]:
        a, b = a - grow, b + grow
        level = _log2(plan.decoder[j].stride // plan.stem_stride)
        skip = from_encoder(level, a, b)
        if plan.up_interpolate:
            # bilinear x2, align_corners=False: even outputs read (j/2 - 1, j/2), odd ones ((j-1)/2, (j+1)/2)
            lo = a // 2 - (1 if a % 2 == 0 else 0)
            hi = b // 2 + (1 if b % 2 == 1 else 0)
        else:
            lo, hi = a // 2, b // 2  # transposed conv, kernel 2 stride 2
        deep = from_decoder(j - 1, lo, hi) if j > 0 else from_bottom(lo, hi)
        return _union(skip, deep)

    stride = plan.output_stride if output_stride is None else output_stride
    if stride == plan.max_stride:
        return from_bottom(index, index)
    for j, lvl in enumerate(plan.decoder):
        if lvl.stride == stride:
            return from_decoder(j, index, index)
    raise ConfigError(f"the UNet has no output at stride {stride} (strides: {sorted(plan.out_channels)})")


def receptive_field(
    config: TrainingConfig, output_stride: int | None = None, in_channels: int | None = None
) -> ReceptiveField:
    """Receptive field of the configured model's output (default: its finest output stride).

    The largest size over the ``output_stride`` possible alignments of an output pixel is reported.
    """
    plan = plan_for(config, in_channels)
    stride = plan.output_stride if output_stride is None else output_stride
    base = 1 << 20  # far from any border
    n_align = max(1, plan.max_stride // stride)
    size = 0
    for p in range(base, base + n_align):
        lo, hi = receptive_interval(plan, p, stride)
        size = max(size, hi - lo + 1)
    return ReceptiveField(
        input_pixels=size, image_pixels=size / config.data.input_scaling, output_stride=stride
    )
