"""The ``model`` section: which pipeline is trained and the network that does it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from napari_posetrack.core.errors import ConfigError

if TYPE_CHECKING:
    from napari_posetrack.core.config.training import TrainingConfig

PIPELINES = ("single_instance", "centroid", "centered_instance", "bottomup", "topdown")
"""Model pipelines. ``topdown`` is a job that trains a ``centroid`` and a ``centered_instance``
model (split it with :func:`topdown_configs` before building a model)."""
TRAINABLE_PIPELINES = ("single_instance", "centroid", "centered_instance", "bottomup")
TORCHVISION_BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    *(f"efficientnet_b{i}" for i in range(8)),
    "efficientnet_v2_s",
    "efficientnet_v2_m",
    "efficientnet_v2_l",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
)
"""Backbones taken from torchvision (names are torchvision's model builders)."""
DPK_BACKBONES = ("stacked_densenet", "stacked_hourglass")
"""DeepPoseKit's models (repeated encoder-decoders with intermediate supervision)."""
BACKBONES = ("unet", *TORCHVISION_BACKBONES, *DPK_BACKBONES)
NECKS = ("none", "fpn", "bifpn")
ACTIVATIONS = ("selu", "relu")


@dataclass
class UNetConfig:
    """UNet backbone hyperparameters (see :data:`FIELD_HELP`)."""

    stem_stride: int | None = None
    max_stride: int = 16
    filters: int = 16
    filters_rate: float = 2.0
    middle_block: bool = True
    up_interpolate: bool = True
    convs_per_block: int = 2


@dataclass
class NeckConfig:
    """What mixes the backbone's levels before the heads (see :data:`FIELD_HELP`)."""

    type: str = "none"
    levels: list[int] = field(default_factory=lambda: [3, 4, 5])
    channels: int = 128
    layers: int = 1


@dataclass
class StackedDenseNetConfig:
    """DeepPoseKit's Stacked DenseNet: densely connected hourglasses (FC-DenseNet blocks)."""

    growth_rate: int = 48
    bottleneck_factor: int = 1
    compression_factor: float = 0.5
    n_stacks: int = 2
    activation: str = "selu"
    separable: bool = False


@dataclass
class StackedHourglassConfig:
    """DeepPoseKit's Stacked Hourglass: hourglasses of residual bottleneck blocks."""

    filters: int = 64
    bottleneck_factor: int = 2
    n_stacks: int = 2


@dataclass
class ConfmapHeadConfig:
    """Gaussian confidence-map head: spread, resolution, levels, weight in the loss, posture graph."""

    sigma: float = 2.5
    output_stride: int = 4
    loss_weight: float = 1.0
    levels: list[int] | None = None
    posture_graph: bool = False


@dataclass
class PAFHeadConfig:
    """Part-affinity-field head (bottom-up only)."""

    sigma: float = 15.0
    output_stride: int = 8
    loss_weight: float = 1.0
    levels: list[int] | None = None


@dataclass
class ClassVectorsHeadConfig:
    """Identity head of a centered-instance model (SLEAP's multi-class top-down ``class_vectors``).

    When ``enabled``, the deepest features of the crop are averaged over space and a small MLP gives one
    logit per class; the classes are the track names of the labelled (user) instances.
    """

    enabled: bool = False
    classes: list[str] = field(default_factory=list)
    num_fc_layers: int = 1
    num_fc_units: int = 64
    loss_weight: float = 1.0


@dataclass
class ClassMapsHeadConfig:
    """Identity maps of a bottom-up model (SLEAP's multi-class bottom-up ``class_maps``).

    When ``enabled`` (on a ``bottomup`` model), the model draws one confidence map per class instead
    of part affinity fields: a Gaussian of ``sigma`` at every visible body part of each animal of
    that class. The classes are the track names of the labelled (user) instances.
    """

    enabled: bool = False
    classes: list[str] = field(default_factory=list)
    sigma: float = 5.0
    output_stride: int = 4
    loss_weight: float = 1.0
    levels: list[int] | None = None


@dataclass
class HeadsConfig:
    """Output heads; the pipeline decides which are built."""

    confmaps: ConfmapHeadConfig = field(default_factory=ConfmapHeadConfig)
    centroids: ConfmapHeadConfig = field(
        default_factory=lambda: ConfmapHeadConfig(sigma=5.0, output_stride=2)
    )
    pafs: PAFHeadConfig = field(default_factory=PAFHeadConfig)
    class_vectors: ClassVectorsHeadConfig = field(default_factory=ClassVectorsHeadConfig)
    class_maps: ClassMapsHeadConfig = field(default_factory=ClassMapsHeadConfig)


@dataclass
class ModelConfig:
    """Which pipeline is trained and the network that does it."""

    pipeline: str = "single_instance"
    backbone: str = "unet"
    top_level: int = 5
    unet: UNetConfig = field(default_factory=UNetConfig)
    stacked_densenet: StackedDenseNetConfig = field(default_factory=StackedDenseNetConfig)
    stacked_hourglass: StackedHourglassConfig = field(default_factory=StackedHourglassConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)


MapHeadConfig = ConfmapHeadConfig | PAFHeadConfig | ClassMapsHeadConfig
"""A head that outputs maps (everything :func:`head_configs` returns)."""


def head_configs(config: TrainingConfig) -> dict[str, MapHeadConfig]:
    """The head configs used by ``config.model.pipeline``, keyed by output name.

    A bottom-up identity model (``model.heads.class_maps.enabled``) has body-part maps and class maps
    and no part affinity fields, as SLEAP's multi-class bottom-up model.
    """
    heads = config.model.heads
    pipeline = config.model.pipeline
    if pipeline in ("single_instance", "centered_instance"):
        return {"confmaps": heads.confmaps}
    if pipeline == "centroid":
        return {"centroids": heads.centroids}
    if pipeline == "bottomup":
        if heads.class_maps.enabled:
            return {"confmaps": heads.confmaps, CLASS_MAPS_HEAD: heads.class_maps}
        return {"confmaps": heads.confmaps, "pafs": heads.pafs}
    if pipeline == "topdown":
        return {"centroids": heads.centroids, "confmaps": heads.confmaps}
    raise ConfigError(f"model.pipeline: unknown pipeline {pipeline!r}; use one of {', '.join(PIPELINES)}")


CLASS_HEAD = "class_vectors"
"""Output name of the identity head: ``(B, n_classes)`` logits, one row per crop."""

CLASS_PIPELINES = ("centered_instance", "topdown")
"""Pipelines that can carry an identity head (the centered-instance model of a top-down job)."""


def class_head_config(config: TrainingConfig) -> ClassVectorsHeadConfig | None:
    """The identity head's config when this model trains one, else ``None``.

    Only a centered-instance model (or a top-down job, for its centered-instance half) with
    ``model.heads.class_vectors.enabled`` has one. The class head is not among :func:`head_configs`:
    it makes one vector per crop, not maps.
    """
    head = config.model.heads.class_vectors
    if head.enabled and config.model.pipeline in CLASS_PIPELINES:
        return head
    return None


CLASS_MAPS_HEAD = "class_maps"
"""Output name of the bottom-up identity head: ``(B, n_classes, h, w)`` maps, one per class."""


def class_maps_config(config: TrainingConfig) -> ClassMapsHeadConfig | None:
    """The class-map head's config when this model trains one (a bottom-up identity model), else ``None``."""
    head = config.model.heads.class_maps
    if head.enabled and config.model.pipeline == "bottomup":
        return head
    return None


def identity_head(config: TrainingConfig) -> tuple[str, ClassVectorsHeadConfig | ClassMapsHeadConfig] | None:
    """``(field prefix, config)`` of the identity head this model trains, else ``None``.

    The prefix is ``model.heads.class_vectors`` (top-down identity model) or ``model.heads.class_maps``
    (bottom-up identity model); both heads have ``classes``, the track names they tell apart.
    """
    vectors = class_head_config(config)
    if vectors is not None:
        return f"model.heads.{CLASS_HEAD}", vectors
    maps = class_maps_config(config)
    if maps is not None:
        return f"model.heads.{CLASS_MAPS_HEAD}", maps
    return None


def head_strides(head: MapHeadConfig) -> list[int]:
    """Every stride a head outputs at while training, finest (the one inference reads) first."""
    strides = {int(head.output_stride)}
    if head.levels:
        strides.update(2 ** int(level) for level in head.levels)
    return sorted(strides)


def n_stacks(config: TrainingConfig) -> int:
    """How many times the backbone repeats its encoder-decoder (DeepPoseKit models; 1 otherwise)."""
    backbone = config.model.backbone
    if backbone == "stacked_densenet":
        return int(config.model.stacked_densenet.n_stacks)
    if backbone == "stacked_hourglass":
        return int(config.model.stacked_hourglass.n_stacks)
    return 1


def model_max_stride(config: TrainingConfig) -> int:
    """Input height and width must be multiples of this (the model's coarsest stride)."""
    m = config.model
    if m.backbone == "unet":
        stride = int(m.unet.max_stride)
    else:
        stride = 2 ** int(m.top_level)
    if m.neck.type != "none" and m.neck.levels:
        stride = max(stride, 2 ** max(int(level) for level in m.neck.levels))
    return stride


def training_outputs(config: TrainingConfig) -> dict[str, tuple[str, int]]:
    """Every output the model makes while training: ``{output key: (target kind, stride)}``.

    The main output of each head keeps the head's name (``confmaps``, ``centroids``, ``pafs``) and is
    what inference reads. Extra supervision gets its own keys, dropped at inference:
    ``confmaps@16`` (another level of a head on several levels), ``confmaps#0`` (an intermediate
    stack of a stacked model), ``confmaps.graph`` (posture-graph maps of a confidence-map head), and
    their combinations (``confmaps.graph@16#0``). Target kinds are the head names plus ``posture_graph``.
    """
    stacks = n_stacks(config)
    outputs: dict[str, tuple[str, int]] = {}
    for name, head in head_configs(config).items():
        kinds = [(name, name)]
        if isinstance(head, ConfmapHeadConfig) and head.posture_graph and name == "confmaps":
            kinds.append((f"{name}.graph", "posture_graph"))
        finest = int(head.output_stride)
        for stack in range(stacks):
            stack_suffix = "" if stack == stacks - 1 else f"#{stack}"
            for stride in head_strides(head):
                level_suffix = "" if stride == finest else f"@{stride}"
                for key, kind in kinds:
                    outputs[f"{key}{level_suffix}{stack_suffix}"] = (kind, stride)
    return outputs


MAX_EXTRA_NECK_LEVELS = 2
"""A neck makes at most this many levels above the backbone's top level (EfficientDet's P6, P7)."""


def _log2(stride: int) -> int:
    return int(stride).bit_length() - 1


def backbone_strides(config: TrainingConfig) -> list[int]:
    """The strides of the features the backbone returns, finest first."""
    m = config.model
    if m.backbone == "unet":
        finest = int(config.output_stride)
        if m.neck.type != "none" and m.neck.levels:
            finest = min(finest, 2 ** min(int(level) for level in m.neck.levels))
        finest = max(finest, int(m.unet.stem_stride or 1))
        return [2**k for k in range(_log2(finest), _log2(m.unet.max_stride) + 1)]
    if m.backbone in DPK_BACKBONES:
        return [int(config.output_stride)]
    return [2**k for k in range(1, int(m.top_level) + 1)]


def readable_strides(config: TrainingConfig) -> list[int]:
    """The strides heads can read: the neck's levels, else what the backbone offers heads, finest first.

    Without a neck, a torchvision backbone offers only its top level (its shallower levels are too
    raw for a head; heads finer than the top level upsample it, as DeepLabCut's ResNet heads do).
    """
    m = config.model
    if m.neck.type != "none":
        return sorted(2 ** int(level) for level in m.neck.levels)
    if m.backbone in TORCHVISION_BACKBONES:
        return [2 ** int(m.top_level)]
    return backbone_strides(config)


def head_inputs(config: TrainingConfig, name: str) -> dict[int, tuple[int, int]]:
    """For each stride head ``name`` outputs at: ``{output stride: (stride it reads, x2 upsamplings)}``.

    Raises
    ------
    ConfigError
        A stride the backbone and neck cannot give the head (the message names the field).
    """
    head = head_configs(config)[name]
    readable = readable_strides(config)
    prefix = f"model.heads.{name}"
    out: dict[int, tuple[int, int]] = {}
    if head.levels:
        if config.model.neck.type == "none":
            raise ConfigError(
                f"{prefix}.levels: one head shared by several levels needs a neck that gives every level the "
                "same channels; set model.neck.type to fpn or bifpn"
            )
        for level in head.levels:
            if 2 ** int(level) not in readable:
                raise ConfigError(
                    f"{prefix}.levels: level {level} is not one the neck makes "
                    f"(model.neck.levels: {sorted(config.model.neck.levels)})"
                )
        finest = 2 ** min(int(level) for level in head.levels)
        if int(head.output_stride) != finest:
            raise ConfigError(
                f"{prefix}.output_stride: {head.output_stride} is not the finest of the head's levels "
                f"{head.levels}, which inference reads (set it to {finest})"
            )
    for stride in head_strides(head):
        if stride in readable:
            out[stride] = (stride, 0)
        elif stride < readable[0]:
            out[stride] = (readable[0], _log2(readable[0]) - _log2(stride))
        else:
            where = "neck" if config.model.neck.type != "none" else f"backbone {config.model.backbone!r}"
            raise ConfigError(
                f"{prefix}.output_stride: the {where} has no features at stride {stride} "
                f"(heads can read strides {readable}); pick one of those or a finer stride"
            )
    return out


def describe_architecture(config: TrainingConfig) -> str:
    """A short name of the network, e.g. ``unet``, ``resnet18/4 + fpn 2-4``, ``stacked_densenet x2 + graph``."""
    m = config.model
    if m.backbone == "unet":
        text = f"unet/{int(m.unet.max_stride).bit_length() - 1}"
    elif m.backbone in DPK_BACKBONES:
        text = f"{m.backbone} x{n_stacks(config)}/{m.top_level}"
    else:
        text = f"{m.backbone}/{m.top_level}"
    if m.neck.type != "none":
        levels = sorted(int(level) for level in m.neck.levels)
        text += f" + {m.neck.type} {levels[0]}-{levels[-1]}"
    if any(getattr(h, "posture_graph", False) for h in head_configs(config).values()):
        text += " + graph"
    return text
