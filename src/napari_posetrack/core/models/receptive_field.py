"""What a configured model looks like: its receptive field and its size.

- :func:`unet_plan`: the layer-by-layer channel plan of the UNet (used to build it, too);
- :func:`count_parameters`: the exact number of trainable parameters of ``build_model(config, ...)``;
- :func:`receptive_field`: how many input pixels can influence one output pixel, in network-input
  pixels and in original-image pixels.

A UNet without a neck has formulas for both, computed from the config alone (no torch): the
dependency interval of one output pixel is propagated backwards through every convolution, pooling
and upsampling layer (and through both the skip and the deep path of each decoder level), and the
widest interval over the output-pixel alignments is reported. ``tests/training/test_models.py``
checks it against the gradient of a built model.

Every other architecture (torchvision backbones, necks, DeepPoseKit's stacked models) is built once
per distinct architecture and cached: its parameters are counted, and its receptive field is
measured as the support of the gradient of one output pixel with respect to the input
(:func:`measure_receptive_field`). Only that measurement imports torch; this module imports without
it, so the GUI can use it for UNets without loading torch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from napari_posetrack.core.config import ConfigError, TrainingConfig, UNetConfig, head_configs
from napari_posetrack.core.config.model import DPK_BACKBONES

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
    for name, head in head_configs(config).items():
        if name == "class_maps":
            # an identity model's classes are the labels' tracks, known when training starts: two until then
            out[name] = max(2, len(head.classes))
        else:
            out[name] = {"confmaps": n_nodes, "centroids": 1, "pafs": 2 * n_edges}[name]
    return out


def has_formula(config: TrainingConfig) -> bool:
    """Whether the receptive field and parameter count follow from the config alone (a UNet without a neck)."""
    return config.model.backbone == "unet" and config.model.neck.type == "none"


def stand_in_skeleton(n_nodes: int, n_edges: int = 0) -> Any:
    """A :class:`~napari_posetrack.core.labels.Skeleton` of ``n_nodes`` parts and ``n_edges`` edges from the first.

    It builds a model when only the counts are known: the counts decide the size of every layer except
    a posture-graph head's limb maps, which depend on how the edges connect (this star has one limb per
    edge).
    """
    from napari_posetrack.core.labels import Skeleton

    if n_nodes < 1 or (n_edges > 0 and n_nodes < 2):
        raise ConfigError(f"a skeleton of {n_nodes} body parts cannot have {n_edges} edges")
    edges = [(0, 1 + i % (n_nodes - 1)) for i in range(n_edges)]
    return Skeleton([f"part{i}" for i in range(n_nodes)], edges, name="stand-in")


def count_parameters(
    config: TrainingConfig,
    n_nodes: int,
    n_edges: int = 0,
    in_channels: int | None = None,
    *,
    skeleton: Any = None,
) -> int:
    """Exact number of trainable parameters of ``build_model(config, skeleton)``.

    A UNet without a neck is counted by formula. Any other architecture is built once (random
    weights, on the CPU; about a second for the largest) and its count is kept in memory for every
    later config with the same network, image channels and skeleton (:func:`parameter_count_known`
    says whether a call would build).

    Parameters
    ----------
    n_nodes, n_edges
        Body parts and skeleton edges (edges matter for bottom-up PAFs and posture graphs).
    in_channels
        Image channels; default from ``config.data.channels`` (1 unless ``"rgb"``).
    skeleton
        The skeleton itself, when known; its counts are then used instead of ``n_nodes`` and
        ``n_edges``. A posture-graph head's limb maps depend on how its edges connect; without it a
        star (:func:`stand_in_skeleton`) stands in.

    Raises
    ------
    ConfigError
        The network part of the config is invalid (the message names the field).
    """
    if skeleton is None:
        skeleton = stand_in_skeleton(n_nodes, n_edges)
    n_nodes, n_edges = len(skeleton.nodes), len(skeleton.edges)
    if not has_formula(config):
        return _built_parameter_count(config, skeleton, input_channels(config, in_channels))
    from napari_posetrack.core.models.posture_graph import posture_graph_channels

    plan = plan_for(config, in_channels)
    n = unet_parameters(plan)
    feats = plan.out_channels
    channels = head_channels(config, n_nodes, n_edges)
    for name, h in head_configs(config).items():
        out = channels[name]
        if name == "confmaps" and getattr(h, "posture_graph", False):
            out += posture_graph_channels(skeleton)
        n += _conv_params(feats[h.output_stride], out, 1)
    return n


def parameter_count_known(
    config: TrainingConfig,
    n_nodes: int,
    n_edges: int = 0,
    in_channels: int | None = None,
    *,
    skeleton: Any = None,
) -> bool:
    """Whether :func:`count_parameters` answers at once (formula or cached) rather than building a model.

    Raises
    ------
    ConfigError
        The network part of the config is invalid, as :func:`count_parameters` would raise it.
    """
    if has_formula(config):
        plan_for(config, in_channels)
        return True
    _architecture_config(config)
    if skeleton is None:
        skeleton = stand_in_skeleton(n_nodes, n_edges)
    with _LOCK:
        return _parameter_key(config, skeleton, input_channels(config, in_channels)) in _PARAMETER_COUNTS


# --------------------------------------------------------------------------- built architectures

_LOCK = threading.Lock()
"""Guards the caches; held only briefly, so a GUI thread asking what is known never waits for a build."""
_BUILD_LOCK = threading.Lock()
"""One build or measurement at a time (two threads asking for the same network build it once)."""
_PARAMETER_COUNTS: dict[tuple[Any, ...], int] = {}
_MEASURED: dict[str, MeasuredField] = {}
_DISK: dict[str, Any] | None = None  # the disk cache's fields once read (None: not read yet)

TRAINING_ONLY_HEAD_FIELDS = ("sigma", "loss_weight")
"""Head settings that shape the targets and the loss, not the network."""


def architecture_key(config: TrainingConfig) -> str:
    """Text that is equal for two configs exactly when ``build_model`` makes the same network of them
    (for the same image channels and skeleton, which the parameter count's cache adds to it).

    It is the ``model`` section without what the network ignores (the heads the pipeline does not
    build, target spreads and loss weights, the settings of backbones other than the chosen one, the
    neck's settings without a neck); any field added to the section later counts by default.
    """
    m = config.model
    arch = dataclasses.asdict(m)
    used = head_configs(config)
    arch["heads"] = {
        name: {k: v for k, v in arch["heads"][name].items() if k not in TRAINING_ONLY_HEAD_FIELDS} for name in used
    }
    if m.backbone == "unet":
        del arch["top_level"]
    else:
        del arch["unet"]
    for name in DPK_BACKBONES:
        if m.backbone != name:
            del arch[name]
    if m.neck.type == "none":
        arch["neck"] = {"type": "none"}
    return json.dumps(arch, sort_keys=True)


def _architecture_config(config: TrainingConfig) -> TrainingConfig:
    """Default settings with ``config``'s network and image channels, checked: all a model build reads.

    Settings the network does not depend on (a batch size being typed, a missing anchor part of a
    stand-in skeleton) then cannot stop a preview.
    """
    if config.model.pipeline == "topdown":
        raise ConfigError("model.pipeline: 'topdown' trains two models; split it with topdown_configs() first")
    arch = TrainingConfig()
    arch.model = copy.deepcopy(config.model)
    arch.data.channels = config.data.channels
    maps = arch.model.heads.class_maps
    if maps.enabled and len(maps.classes) < 2:
        # the classes come from the labels when training starts; two stand-ins until then (as counted)
        maps.classes = [f"class {i}" for i in range(2)]
    arch.validate(check_paths=False)
    return arch


def _parameter_key(config: TrainingConfig, skeleton: Any, in_channels: int) -> tuple[Any, ...]:
    return (architecture_key(config), int(in_channels), len(skeleton.nodes), tuple(skeleton.edges))


def _built_parameter_count(config: TrainingConfig, skeleton: Any, in_channels: int) -> int:
    arch = _architecture_config(config)
    key = _parameter_key(config, skeleton, in_channels)
    with _LOCK:
        if key in _PARAMETER_COUNTS:
            return _PARAMETER_COUNTS[key]
    with _BUILD_LOCK:
        with _LOCK:
            if key in _PARAMETER_COUNTS:  # built by another thread meanwhile
                return _PARAMETER_COUNTS[key]
        from napari_posetrack.core.models.model import build_model

        model = build_model(arch, skeleton, in_channels=in_channels)
        count = sum(p.numel() for p in model.parameters() if p.requires_grad)
        with _LOCK:
            return _PARAMETER_COUNTS.setdefault(key, count)


def clear_cache() -> None:
    """Forget the parameter counts and receptive fields of built models kept in memory.

    The disk cache (:func:`cache_file`) stays; it is read again on the next lookup.
    """
    global _DISK
    with _LOCK:
        _PARAMETER_COUNTS.clear()
        _MEASURED.clear()
        _DISK = None


# --------------------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output pixel.

    Attributes
    ----------
    input_pixels
        Width (= height) of the input region that can influence one output pixel, in network-input pixels.
    image_pixels
        The same in original-image pixels (``input_pixels`` divided by the input's scale factor).
    output_stride
        The output the value refers to.
    at_least
        The field reached the border of the largest input it was measured on
        (:data:`MAX_MEASURING_INPUT`): it is at least ``input_pixels`` wide, maybe more.
    """

    input_pixels: int
    image_pixels: float
    output_stride: int
    at_least: bool = False


@dataclass(frozen=True)
class MeasuredField:
    """A receptive field measured on a built model (:func:`measure_receptive_field`).

    Attributes
    ----------
    pixels
        Widest dependency interval of one output pixel over its alignments, in network-input pixels.
    at_least
        The interval reached the border of the measuring input, which was already at its largest
        size: the field is at least ``pixels`` wide.
    input_size
        Height of the (narrow) measuring input the value was read on.
    """

    pixels: int
    at_least: bool
    input_size: int


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


def image_scale(config: TrainingConfig, frame_size: tuple[int, int] | None = None) -> float:
    """Network-input pixels per original-image pixel.

    A model that letterboxes (``data.input_size`` set, any pipeline but ``centered_instance``, whose
    crops keep ``data.input_scaling``) scales each frame to fit its input size; that scale is known
    only with the frame's ``(height, width)``. Otherwise, and without ``frame_size``, it is
    ``data.input_scaling``.
    """
    size = config.data.input_size
    if frame_size is not None and size is not None and config.model.pipeline != "centered_instance":
        height, width = frame_size
        if height > 0 and width > 0:
            return min(int(size[0]) / height, int(size[1]) / width)
    return float(config.data.input_scaling)


def receptive_field(
    config: TrainingConfig,
    output_stride: int | None = None,
    in_channels: int | None = None,
    *,
    frame_size: tuple[int, int] | None = None,
) -> ReceptiveField:
    """Receptive field of the configured model's output (default: its finest output stride).

    The largest size over the ``max_stride / output_stride`` possible alignments of an output pixel is
    reported. A UNet without a neck is computed by formula, at once; any other architecture is
    measured on a built model the first time (seconds for the largest networks; see
    :func:`measure_receptive_field`) and cached. :func:`receptive_field_known` says which it will be.

    Parameters
    ----------
    frame_size
        ``(height, width)`` of the original frames; gives a letterboxing model's scale (:func:`image_scale`).

    Raises
    ------
    ConfigError
        The network part of the config is invalid (the message names the field), or no output has
        stride ``output_stride``.
    """
    if has_formula(config):
        plan = plan_for(config, in_channels)
        stride = plan.output_stride if output_stride is None else output_stride
        base = 1 << 20  # far from any border
        n_align = max(1, plan.max_stride // stride)
        size = 0
        for p in range(base, base + n_align):
            lo, hi = receptive_interval(plan, p, stride)
            size = max(size, hi - lo + 1)
        at_least = False
    else:
        stride = int(config.output_stride if output_stride is None else output_stride)
        measured = measure_receptive_field(config, stride)
        size, at_least = measured.pixels, measured.at_least
    return ReceptiveField(
        input_pixels=size,
        image_pixels=size / image_scale(config, frame_size),
        output_stride=stride,
        at_least=at_least,
    )


def receptive_field_known(config: TrainingConfig, output_stride: int | None = None) -> bool:
    """Whether :func:`receptive_field` answers at once (formula or cached) rather than measuring.

    Raises
    ------
    ConfigError
        The network part of the config is invalid, as :func:`receptive_field` would raise it.
    """
    if has_formula(config):
        plan_for(config)
        return True
    _architecture_config(config)
    stride = int(config.output_stride if output_stride is None else output_stride)
    key = _measure_key(config, stride, MAX_MEASURING_INPUT)
    with _LOCK:
        return key in _MEASURED or key in _disk_fields()


# --------------------------------------------------------------------------- measuring

MAX_MEASURING_INPUT = 2048
"""Tallest input a receptive field is measured on; a field that reaches its border is "at least" this.

Frames are rarely taller, and the largest networks (ResNet-152, EfficientNet-B7) take seconds on a CPU
at this size.
"""
FIRST_MEASURING_INPUT = 256
"""Height of the first measuring input; it doubles while the field reaches its border."""
MEASURE_METHOD = 1
"""Version of the measuring method, part of the disk cache's validity."""

IDENTITY_FUNCTIONS = frozenset(
    {
        "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "elu", "elu_", "selu", "selu_", "celu", "celu_",
        "leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_", "gelu", "silu", "mish", "hardswish",
        "hardsigmoid", "sigmoid", "sigmoid_", "tanh", "tanh_", "softplus",
    }
)
"""Pointwise activations made the identity while measuring (see :func:`measure_receptive_field`)."""


def measure_receptive_field(
    config: TrainingConfig, output_stride: int | None = None, *, max_input: int = MAX_MEASURING_INPUT
) -> MeasuredField:
    """Measure the receptive field of ``config``'s output at ``output_stride`` on a built model.

    The model is built (random initialisation, eval mode, float64) and made a network whose input
    gradient is non-zero exactly on the theoretical receptive field: every weight positive (each
    convolution averages its inputs), biases zero, batch norms the identity, activations the identity,
    max pooling replaced by average pooling over the same window, and global pooling (squeeze-and-
    excitation gates) held constant. With random weights instead, dead ReLUs and max pooling's single
    winner would hide parts of the field, by an amount that changes with the seed; global gates see the
    whole image but only rescale channels, so they are not counted.

    The gradient of one output pixel is read on a tall input as narrow as the model allows (its max
    stride), once per alignment of the pixel on the max-stride grid, and the widest row interval is
    kept. A narrow input costs a fraction of a square one and loses nothing: the networks are
    symmetric in height and width, and every path to the field's top and bottom rows has a way through
    the middle column. The input starts :data:`FIRST_MEASURING_INPUT` tall and doubles while the
    interval reaches its border, up to ``max_input``.

    Results are cached per architecture (:func:`architecture_key`) in memory and on disk
    (:func:`cache_file`), so each network is measured once. Only this measurement imports torch.

    Raises
    ------
    ConfigError
        The network part of the config is invalid, a backbone cannot be built, or no output has
        stride ``output_stride``.
    """
    arch = _architecture_config(config)
    stride = int(config.output_stride if output_stride is None else output_stride)
    key = _measure_key(config, stride, max_input)
    with _LOCK:
        found = _cached_measurement(key)
    if found is not None:
        return found
    with _BUILD_LOCK:
        with _LOCK:
            found = _cached_measurement(key)  # measured by another thread meanwhile
        if found is not None:
            return found
        field = _measure(arch, stride, int(max_input))
        with _LOCK:
            _MEASURED[key] = field
            _store_on_disk(key, field)
        return field


def _cached_measurement(key: str) -> MeasuredField | None:
    """The measurement kept in memory or on disk (call with ``_LOCK`` held); one object per key."""
    if key not in _MEASURED:
        stored = _disk_fields().get(key)
        if stored is None:
            return None
        try:
            _MEASURED[key] = MeasuredField(int(stored[0]), bool(stored[1]), int(stored[2]))
        except (TypeError, ValueError, IndexError):
            return None  # a damaged entry: measure again
    return _MEASURED[key]


def _measure_key(config: TrainingConfig, stride: int, max_input: int) -> str:
    return json.dumps([architecture_key(config), int(stride), int(max_input)])


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def _measure(config: TrainingConfig, stride: int, max_input: int) -> MeasuredField:
    """Build the model of a checked ``config`` and read its field (see :func:`measure_receptive_field`)."""
    import torch

    from napari_posetrack.core.models.model import build_model

    model = build_model(config, stand_in_skeleton(2, 1), in_channels=1).eval()
    head = next((name for name, s in model.output_strides.items() if s == stride), None)
    if head is None:
        raise ConfigError(f"the model has no output at stride {stride} (outputs: {model.output_strides})")
    _make_positive(model)
    model.to(torch.float64)
    max_stride = int(model.max_stride)
    largest = max(max_stride, (int(max_input) // max_stride) * max_stride)
    size = min(largest, _round_up(max(FIRST_MEASURING_INPUT, 4 * max_stride), max_stride))
    # first one alignment, on inputs doubling until its field fits
    while True:
        first, clipped = _widest_interval(model, head, size, max_stride, stride, [0])
        if not clipped:
            break
        if size >= largest:
            return MeasuredField(first, True, size)
        size = min(largest, 2 * size)
    # then the others, on an input just taller than that field (each pass costs in proportion to it):
    # another alignment's field is at most a few max strides wider and its centre one max stride lower
    others = list(range(1, max(1, max_stride // stride)))
    tight = min(size, _round_up(first + 4 * max_stride, max_stride))
    widest, clipped = _widest_interval(model, head, tight, max_stride, stride, others)
    while clipped and tight < largest:
        tight = max(size, min(largest, 2 * tight))
        widest, clipped = _widest_interval(model, head, tight, max_stride, stride, others)
    return MeasuredField(max(first, widest), clipped, max(size, tight))


def _make_positive(model: Any) -> None:
    """Averaging positive weights, zero biases, identity batch norms (see :func:`measure_receptive_field`)."""
    import torch
    from torch import nn

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                module.reset_running_stats()
        for name, p in model.named_parameters():
            p.requires_grad_(False)  # only the input's gradient is needed
            if p.dim() >= 2:
                p.fill_(1.0 / p[0].numel())  # a convolution's output is the mean of what it reads
            elif name.rsplit(".", 1)[-1] == "bias":
                p.zero_()
            else:
                p.fill_(1.0)  # norm scales, fusion weights


def _widest_interval(
    model: Any, head: str, size: int, width: int, stride: int, alignments: list[int]
) -> tuple[int, bool]:
    """Widest input-row interval one output pixel depends on, over ``alignments``; and whether one was clipped.

    The input is ``size`` tall and ``width`` (the max stride) wide; alignment ``k`` reads a middle
    column's row ``r0 + k``, ``r0`` on the max-stride grid. A clipped interval ends the search.
    """
    import torch

    if not alignments:
        return 0, False
    image = torch.ones(1, 1, size, width, dtype=torch.float64, requires_grad=True)
    with _linearised_mode()():
        out = model(image)[head]
    period = max(1, width // stride)
    row0 = (out.shape[-2] // 2 // period) * period
    col = out.shape[-1] // 2
    widest = 0
    for i, k in enumerate(alignments):
        last = i == len(alignments) - 1
        (grad,) = torch.autograd.grad(out[0, 0, row0 + k, col], image, retain_graph=not last)
        rows = torch.nonzero(grad[0].abs().sum(dim=(0, 2))).flatten()
        if rows.numel() == 0:
            raise ConfigError(f"output {head!r} does not depend on the input: cannot measure its receptive field")
        lo, hi = int(rows.min()), int(rows.max())
        widest = max(widest, hi - lo + 1)
        if lo == 0 or hi == size - 1:
            return widest, True
    return widest, False


@lru_cache(maxsize=1)
def _linearised_mode() -> type:
    """A torch function mode: activations become the identity, max pooling average pooling, global pools constant."""
    import torch
    from torch.nn import functional as F
    from torch.overrides import TorchFunctionMode

    def avg_pool(
        input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
        ceil_mode: bool = False, return_indices: bool = False,
    ) -> Any:
        if return_indices or dilation not in (1, (1, 1)):
            return F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        return F.avg_pool2d(input, kernel_size, stride, padding, ceil_mode)

    class Linearised(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if name in IDENTITY_FUNCTIONS and args:
                return args[0]
            if func is F.max_pool2d:
                return avg_pool(*args, **kwargs)
            out = func(*args, **kwargs)
            if name.startswith("adaptive_") and isinstance(out, torch.Tensor) and tuple(out.shape[-2:]) == (1, 1):
                # a global pool (squeeze-and-excitation): a constant keeps the gate at 1 and out of the field
                return torch.ones_like(out)
            return out

    return Linearised


# --------------------------------------------------------------------------- in a child process

RESULT_PREFIX = "posetrack-measurement "
"""Marks the child's result lines on its standard output (libraries may print there too)."""


@dataclass
class Request:
    """One value :func:`compute_in_child` computes: a parameter count or a receptive field.

    Attributes
    ----------
    kind
        ``"parameters"`` (:func:`count_parameters` for ``skeleton``) or ``"receptive_field"``
        (:func:`receptive_field` of the finest output).
    config
        The model's config (one pipeline, not ``topdown``).
    skeleton
        For ``"parameters"``: the skeleton the model is sized for.
    """

    kind: str
    config: TrainingConfig
    skeleton: Any = None

    def to_json(self) -> dict[str, Any]:
        job: dict[str, Any] = {"kind": self.kind, "config": self.config.to_dict()}
        if self.skeleton is not None:
            job["nodes"] = list(self.skeleton.nodes)
            job["edges"] = [list(e) for e in self.skeleton.edges]
        return job


class ChildMeasurement:
    """Parameter counts and receptive fields computed in a child Python process.

    Each value is kept in this process's caches as it arrives, so :func:`count_parameters` and
    :func:`receptive_field` then answer at once, and this process never imports torch or torchvision.
    That is how a GUI should ask: besides not freezing, torchvision loads triton, which crashes a
    process whose OpenGL (napari's canvas on Mesa) already loaded another LLVM.

    Parameters
    ----------
    requests
        What to compute, in order.
    """

    def __init__(self, requests: list[Request]) -> None:
        self.requests = list(requests)
        self.stopped = False
        self._child: Any = None
        self._child_lock = threading.Lock()

    def results(self) -> Iterator[tuple[int, str | None]]:
        """Start the child and yield ``(index of a request, error text or None)`` as each is done.

        Call it once (it blocks between results: from a worker thread in a GUI). After :meth:`stop` it
        yields nothing more.
        """
        import subprocess
        import sys
        import tempfile

        code = "from napari_posetrack.core.models.receptive_field import serve_requests; serve_requests()"
        # stderr to a file: a pipe nobody reads while results stream could fill and stall the child
        with tempfile.TemporaryFile(mode="w+") as stderr:
            with self._child_lock:
                if self.stopped or not self.requests:
                    return
                child = self._child = subprocess.Popen(
                    [sys.executable, "-c", code],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                )
            done = 0
            try:
                with contextlib.suppress(OSError):  # the child already gone: said below
                    child.stdin.write(json.dumps([r.to_json() for r in self.requests]))
                    child.stdin.close()
                for line in child.stdout:
                    if not line.startswith(RESULT_PREFIX) or done >= len(self.requests):
                        continue
                    answer = json.loads(line[len(RESULT_PREFIX):])
                    error = answer.get("error")
                    if error is None:
                        _remember(self.requests[done], answer["value"])
                    yield done, error
                    done += 1
                status = child.wait()
                if done < len(self.requests) and not self.stopped:
                    stderr.seek(0)
                    last = next((ln for ln in reversed(stderr.read().splitlines()) if ln.strip()), "")
                    why = f"the measuring process ended with exit code {status}" + (f": {last}" if last else "")
                    for index in range(done, len(self.requests)):
                        yield index, why
            finally:
                with self._child_lock:  # ended early (the caller closed the generator): end the child too
                    if child.poll() is None:
                        child.kill()
                child.wait()
                child.stdout.close()

    def stop(self) -> None:
        """End the child now (from any thread); :meth:`results` then ends without yielding more."""
        with self._child_lock:
            self.stopped = True
            if self._child is not None and self._child.poll() is None:
                self._child.kill()


def _remember(request: Request, value: Any) -> None:
    """Keep a value the child computed in this process's caches."""
    config = request.config
    if request.kind == "parameters":
        key = _parameter_key(config, request.skeleton, input_channels(config))
        with _LOCK:
            _PARAMETER_COUNTS[key] = int(value)
    else:
        field = MeasuredField(int(value[0]), bool(value[1]), int(value[2]))
        with _LOCK:
            _MEASURED.setdefault(_measure_key(config, config.output_stride, MAX_MEASURING_INPUT), field)


def serve_requests() -> None:
    """The child of :func:`compute_in_child`: read requests (JSON) on stdin, write one result line each."""
    import sys

    from napari_posetrack.core.labels import Skeleton

    for job in json.loads(sys.stdin.read()):
        try:
            config = TrainingConfig.from_dict(job["config"])
            if job["kind"] == "parameters":
                skeleton = Skeleton(job["nodes"], [tuple(e) for e in job["edges"]], name="requested")
                value: Any = count_parameters(config, 0, skeleton=skeleton)
            else:
                field = measure_receptive_field(config)
                value = [field.pixels, field.at_least, field.input_size]
            answer: dict[str, Any] = {"value": value}
        except Exception as err:  # noqa: BLE001 - every request gets an answer; the parent shows why it failed
            answer = {"error": str(err) or type(err).__name__}
        print(RESULT_PREFIX + json.dumps(answer), flush=True)


# --------------------------------------------------------------------------- disk cache


def cache_file() -> Path:
    """Where measured receptive fields are kept between sessions: ``$XDG_CACHE_HOME/napari-posetrack`` or ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-posetrack" / "receptive_fields.json"


@lru_cache(maxsize=1)
def _code_version() -> str:
    """Changes whenever a measurement could: the model code, the architecture rules, torch, torchvision."""
    from importlib import metadata

    digest = hashlib.sha1(f"method {MEASURE_METHOD}".encode())
    here = Path(__file__).resolve().parent
    for path in [*sorted(here.glob("*.py")), here.parent / "config" / "model.py"]:
        with contextlib.suppress(OSError):
            digest.update(path.name.encode() + path.read_bytes())
    for package in ("torch", "torchvision"):
        try:
            digest.update(f"{package} {metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{package} absent".encode())
    return digest.hexdigest()


def _disk_fields() -> dict[str, Any]:
    """The disk cache's measurements for this code version (read once; call with ``_LOCK`` held)."""
    global _DISK
    if _DISK is None:
        _DISK = {}
        try:
            stored = json.loads(cache_file().read_text())
        except (OSError, ValueError):
            stored = None  # absent or damaged: measure again
        if isinstance(stored, dict) and stored.get("version") == _code_version():
            fields = stored.get("fields")
            if isinstance(fields, dict):
                _DISK = fields
    return _DISK


def _store_on_disk(key: str, field: MeasuredField) -> None:
    """Add one measurement to the disk cache (call with ``_LOCK`` held); a read-only home only loses the cache."""
    from napari_posetrack.core.errors import atomic_write

    fields = _disk_fields()
    fields[key] = [field.pixels, field.at_least, field.input_size]
    payload = json.dumps({"version": _code_version(), "fields": fields})
    with contextlib.suppress(OSError), atomic_write(cache_file()) as tmp:
        tmp.write_text(payload)

