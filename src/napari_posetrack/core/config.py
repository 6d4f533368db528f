"""The training configuration: one typed, validated schema written as YAML or JSON.

A :class:`TrainingConfig` has four sections:

- ``data``: how labelled frames become network inputs (split, scaling, crops, channels);
- ``model``: which pipeline is trained and the network that does it (UNet backbone + heads);
- ``optimization``: optimiser, learning-rate schedule, stopping, augmentation;
- ``outputs``: where the run folder goes and which checkpoints are kept.

Every field has a plain-language explanation in :data:`FIELD_HELP` (dotted names, e.g.
``"optimization.batch_size"``) that the training widget shows as a tooltip.

SLEAP's ``training_config.json`` (and its baseline profiles) is read by
:meth:`TrainingConfig.from_sleap_json`; :meth:`TrainingConfig.from_file` detects it.

Nothing here imports torch: the receptive field and parameter count of a configured model are in
:mod:`napari_posetrack.core.models.receptive_field`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from napari_posetrack.core.errors import ConfigError, FileFormatError, MissingFileError, atomic_write

PIPELINES = ("single_instance", "centroid", "centered_instance", "bottomup", "topdown")
"""Model pipelines. ``topdown`` is a job that trains a ``centroid`` and a ``centered_instance``
model (split it with :func:`topdown_configs` before building a model)."""
TRAINABLE_PIPELINES = ("single_instance", "centroid", "centered_instance", "bottomup")
BACKBONES = ("unet",)
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("reduce_on_plateau", "multi_step", "one_cycle", "none")
CHANNELS = ("auto", "grayscale", "rgb")
FLIP_DIRECTIONS = ("horizontal", "vertical")
KEEP_CHECKPOINTS = ("best", "last", "both")


# --------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    """How labelled frames become network inputs (see :data:`FIELD_HELP` for each field)."""

    validation_fraction: float = 0.1
    input_scaling: float = 1.0
    centroid_input_scaling: float | None = None
    crop_size: int | None = None
    crop_padding: int = 16
    anchor_part: str | None = None
    channels: str = "auto"
    user_instances_only: bool = True
    seed: int = 0


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
class ConfmapHeadConfig:
    """Gaussian confidence-map head: spread, resolution and weight in the loss."""

    sigma: float = 2.5
    output_stride: int = 4
    loss_weight: float = 1.0


@dataclass
class PAFHeadConfig:
    """Part-affinity-field head (bottom-up only)."""

    sigma: float = 15.0
    output_stride: int = 8
    loss_weight: float = 1.0


@dataclass
class HeadsConfig:
    """Output heads; the pipeline decides which are built."""

    confmaps: ConfmapHeadConfig = field(default_factory=ConfmapHeadConfig)
    centroids: ConfmapHeadConfig = field(
        default_factory=lambda: ConfmapHeadConfig(sigma=5.0, output_stride=2)
    )
    pafs: PAFHeadConfig = field(default_factory=PAFHeadConfig)


@dataclass
class ModelConfig:
    """Which pipeline is trained and the network that does it."""

    pipeline: str = "single_instance"
    backbone: str = "unet"
    unet: UNetConfig = field(default_factory=UNetConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)


@dataclass
class ScheduleConfig:
    """Learning-rate schedule."""

    kind: str = "reduce_on_plateau"
    factor: float = 0.5
    patience: int = 5
    min_delta: float = 1e-6
    cooldown: int = 3
    min_learning_rate: float = 1e-8
    milestones: list[int] = field(default_factory=list)
    initial_factor: float = 0.04
    final_factor: float = 1e-4
    warmup_fraction: float = 0.3


@dataclass
class EarlyStoppingConfig:
    """Stop when the validation loss stops improving."""

    enabled: bool = True
    min_delta: float = 1e-6
    patience: int = 10


@dataclass
class HardKeypointMiningConfig:
    """Online hard keypoint mining: weight the worst-predicted body parts more in the loss."""

    enabled: bool = False
    hard_to_easy_ratio: float = 2.0
    min_hard_keypoints: int = 2
    max_hard_keypoints: int | None = None
    loss_scale: float = 5.0


@dataclass
class AugmentationConfig:
    """Random changes applied to each training image; each kind has its own probability."""

    rotation_probability: float = 1.0
    rotation_min_angle: float = -15.0
    rotation_max_angle: float = 15.0
    scale_probability: float = 0.0
    scale_min: float = 0.9
    scale_max: float = 1.1
    translate_probability: float = 0.0
    translate_min: float = -5.0
    translate_max: float = 5.0
    flip_probability: float = 0.0
    flip_direction: str = "horizontal"
    uniform_noise_probability: float = 0.0
    uniform_noise_min: float = 0.0
    uniform_noise_max: float = 10.0
    gaussian_noise_probability: float = 0.0
    gaussian_noise_mean: float = 5.0
    gaussian_noise_std: float = 1.0
    contrast_probability: float = 0.0
    contrast_min_gamma: float = 0.5
    contrast_max_gamma: float = 2.0
    brightness_probability: float = 0.0
    brightness_min: float = 0.0
    brightness_max: float = 10.0

    @property
    def geometric(self) -> bool:
        """Whether any geometric (affine) augmentation can happen."""
        return any(
            p > 0
            for p in (
                self.rotation_probability,
                self.scale_probability,
                self.translate_probability,
                self.flip_probability,
            )
        )

    @property
    def photometric(self) -> bool:
        """Whether any intensity augmentation can happen."""
        return any(
            p > 0
            for p in (
                self.uniform_noise_probability,
                self.gaussian_noise_probability,
                self.contrast_probability,
                self.brightness_probability,
            )
        )


@dataclass
class OptimizationConfig:
    """How the network is fitted."""

    batch_size: int = 4
    epochs: int = 200
    batches_per_epoch: int | None = None
    min_batches_per_epoch: int = 200
    initial_learning_rate: float = 1e-4
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    gradient_clip_norm: float | None = None
    max_iterations: int | None = None
    max_training_hours: float | None = None
    hard_keypoint_mining: HardKeypointMiningConfig = field(default_factory=HardKeypointMiningConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    initialization: str = "random"
    mixed_precision: bool = False
    compile: bool = False


@dataclass
class OutputsConfig:
    """Where the run folder is written and what is kept."""

    runs_folder: str = "models"
    run_name_prefix: str = ""
    run_name: str | None = None
    keep: str = "best"


# --------------------------------------------------------------------------- help texts

FIELD_HELP: dict[str, str] = {
    # data
    "data.validation_fraction": "Share of the labelled frames held out to measure progress (0.1 = one frame "
    "in ten). These frames are never trained on; the best checkpoint is the one that does best on them.",
    "data.input_scaling": "Resize every frame by this factor before the network sees it (0.5 = half width and "
    "height). Smaller is faster and sees more context per pixel, but loses fine detail.",
    "data.centroid_input_scaling": "Top-down only: resize factor for the centroid (animal-finding) model. "
    "Empty = same as input scaling. Large frames often work well at 0.5 or 0.25.",
    "data.crop_size": "Top-down only: side of the square box cut around each animal, in pixels of the scaled "
    "frame. Empty = automatic (largest animal plus padding, rounded up). Must be a multiple of the max stride.",
    "data.crop_padding": "Extra pixels added on each side of the largest animal when the crop size is chosen "
    "automatically, so poses a bit bigger than any labelled one still fit.",
    "data.anchor_part": "Body part used as the centre of each animal (top-down centroid and crops). Empty = the "
    "mean of the visible body parts. Pick a part that is almost always visible and near the body centre.",
    "data.channels": "Colour handling: 'grayscale' (1 channel), 'rgb' (3 channels) or 'auto' (grayscale when "
    "the video content is grayscale).",
    "data.user_instances_only": "Train only on poses a person placed or corrected (not on raw predictions).",
    "data.seed": "Random seed for the train/validation split and augmentation; the same seed repeats a run.",
    # model
    "model.pipeline": "What the model predicts: 'single_instance' (one animal per frame), 'centroid' (where "
    "each animal is), 'centered_instance' (the pose of the animal in the middle of a crop), 'bottomup' (all "
    "body parts plus part affinity fields to group them) or 'topdown' (trains centroid + centered_instance).",
    "model.backbone": "The network architecture that turns an image into features ('unet').",
    "model.unet.stem_stride": "Downsample the image by this factor with a first 'stem' layer before the UNet "
    "(empty = no stem). Saves memory and time on large images at the cost of fine detail.",
    "model.unet.max_stride": "How many times the UNet halves the image at its deepest point (16 = four "
    "halvings). Larger sees more context (bigger receptive field) but needs input sizes divisible by it.",
    "model.unet.filters": "Number of feature channels in the first layer. More filters = a bigger, slower, "
    "more capable network.",
    "model.unet.filters_rate": "Factor by which the number of filters grows at each halving (2 = doubles).",
    "model.unet.middle_block": "Add an extra block of convolutions at the deepest, coarsest level.",
    "model.unet.up_interpolate": "Upsample with bilinear interpolation (on: fewer parameters, smoother) or "
    "with learned transposed convolutions (off).",
    "model.unet.convs_per_block": "Number of 3x3 convolutions in each block of the UNet.",
    "model.heads.confmaps.sigma": "Spread (standard deviation, in input pixels) of the Gaussian blob drawn at "
    "each body part in the training targets. Smaller = more precise but harder to learn.",
    "model.heads.confmaps.output_stride": "The body-part maps are this many times smaller than the input "
    "(1 = full resolution). Peaks are refined below the grid, so 2 or 4 is usually enough.",
    "model.heads.confmaps.loss_weight": "Weight of the body-part maps in the total loss.",
    "model.heads.centroids.sigma": "Spread (in input pixels) of the Gaussian blob at each animal's centre "
    "for the centroid model.",
    "model.heads.centroids.output_stride": "The centroid map is this many times smaller than the input.",
    "model.heads.centroids.loss_weight": "Weight of the centroid map in the total loss.",
    "model.heads.pafs.sigma": "Bottom-up only: width (in input pixels) of the band around each skeleton edge "
    "where the part affinity field points along the edge. Roughly the thickness of a limb.",
    "model.heads.pafs.output_stride": "The part affinity fields are this many times smaller than the input.",
    "model.heads.pafs.loss_weight": "Weight of the part affinity fields in the total loss.",
    # optimization
    "optimization.batch_size": "Images per training step. Larger is smoother and faster per image but needs "
    "more GPU memory.",
    "optimization.epochs": "Maximum number of passes (epochs) over the training data.",
    "optimization.batches_per_epoch": "Training steps per epoch. Empty = one pass over the training frames, "
    "but at least the minimum below.",
    "optimization.min_batches_per_epoch": "Lower bound on steps per epoch, so tiny datasets still train "
    "enough between validation checks.",
    "optimization.initial_learning_rate": "Step size of the optimiser at the start. Too high diverges, too low "
    "learns slowly; 1e-4 suits Adam.",
    "optimization.optimizer": "Optimisation algorithm: 'adam', 'adamw' (Adam with decoupled weight decay) or "
    "'sgd' (with momentum).",
    "optimization.momentum": "SGD only: how much of the previous step is carried into the next one.",
    "optimization.weight_decay": "Pulls weights towards zero to limit overfitting (0 = off).",
    "optimization.schedule.kind": "How the learning rate changes: 'reduce_on_plateau' (cut it when the "
    "validation loss stalls), 'multi_step' (cut it at fixed epochs), 'one_cycle' (warm up then anneal) or "
    "'none'.",
    "optimization.schedule.factor": "Multiply the learning rate by this when it is cut (plateau and "
    "multi-step).",
    "optimization.schedule.patience": "Plateau: epochs without improvement before the learning rate is cut.",
    "optimization.schedule.min_delta": "Plateau: smallest drop in validation loss that counts as improvement.",
    "optimization.schedule.cooldown": "Plateau: epochs to wait after a cut before watching for a plateau again.",
    "optimization.schedule.min_learning_rate": "The learning rate is never cut below this.",
    "optimization.schedule.milestones": "Multi-step: epochs at which the learning rate is multiplied by the "
    "factor, e.g. [100, 150].",
    "optimization.schedule.initial_factor": "One-cycle: the starting learning rate as a fraction of the "
    "initial (peak) learning rate.",
    "optimization.schedule.final_factor": "One-cycle: the final learning rate as a fraction of the peak.",
    "optimization.schedule.warmup_fraction": "One-cycle: share of training spent raising the learning rate "
    "to its peak.",
    "optimization.early_stopping.enabled": "Stop training when the validation loss has stopped improving.",
    "optimization.early_stopping.min_delta": "Smallest drop in validation loss that counts as improvement.",
    "optimization.early_stopping.patience": "Epochs without improvement before training stops.",
    "optimization.gradient_clip_norm": "Rescale gradients whose overall size exceeds this value (empty = off). "
    "Helps when the loss occasionally spikes.",
    "optimization.max_iterations": "Stop after this many training steps in total (empty = no limit).",
    "optimization.max_training_hours": "Stop after this many hours of training (empty = no limit).",
    "optimization.hard_keypoint_mining.enabled": "Give the body parts the model currently gets most wrong "
    "extra weight in the loss (online hard keypoint mining).",
    "optimization.hard_keypoint_mining.hard_to_easy_ratio": "A body part counts as hard when its loss is at "
    "least this many times the smallest body-part loss.",
    "optimization.hard_keypoint_mining.min_hard_keypoints": "Always treat at least this many body parts as "
    "hard.",
    "optimization.hard_keypoint_mining.max_hard_keypoints": "Treat at most this many body parts as hard "
    "(empty = no limit).",
    "optimization.hard_keypoint_mining.loss_scale": "Extra weight given to the hard body parts' loss.",
    "optimization.augmentation.rotation_probability": "Chance that a training image is rotated by a random "
    "angle (1 = always, 0 = never).",
    "optimization.augmentation.rotation_min_angle": "Smallest random rotation, in degrees.",
    "optimization.augmentation.rotation_max_angle": "Largest random rotation, in degrees (use -180..180 when "
    "animals face any direction).",
    "optimization.augmentation.scale_probability": "Chance that a training image is zoomed by a random factor.",
    "optimization.augmentation.scale_min": "Smallest random zoom (0.9 = 10% smaller).",
    "optimization.augmentation.scale_max": "Largest random zoom (1.1 = 10% larger).",
    "optimization.augmentation.translate_probability": "Chance that a training image is shifted.",
    "optimization.augmentation.translate_min": "Smallest random shift, in pixels (applied to x and y).",
    "optimization.augmentation.translate_max": "Largest random shift, in pixels.",
    "optimization.augmentation.flip_probability": "Chance that a training image is mirrored; left/right body "
    "parts (the skeleton's symmetries) are swapped so labels stay correct.",
    "optimization.augmentation.flip_direction": "Mirror 'horizontal' (left-right) or 'vertical' (up-down).",
    "optimization.augmentation.uniform_noise_probability": "Chance of adding random per-pixel noise drawn "
    "evenly between the min and max (in 0-255 intensity units).",
    "optimization.augmentation.uniform_noise_min": "Smallest uniform noise value (0-255 units).",
    "optimization.augmentation.uniform_noise_max": "Largest uniform noise value (0-255 units).",
    "optimization.augmentation.gaussian_noise_probability": "Chance of adding bell-shaped random per-pixel "
    "noise.",
    "optimization.augmentation.gaussian_noise_mean": "Average Gaussian noise value (0-255 units).",
    "optimization.augmentation.gaussian_noise_std": "Spread of the Gaussian noise (0-255 units).",
    "optimization.augmentation.contrast_probability": "Chance of a random contrast change (gamma curve).",
    "optimization.augmentation.contrast_min_gamma": "Smallest gamma (below 1 brightens dark areas).",
    "optimization.augmentation.contrast_max_gamma": "Largest gamma (above 1 darkens mid-tones).",
    "optimization.augmentation.brightness_probability": "Chance of a random brightness shift.",
    "optimization.augmentation.brightness_min": "Smallest brightness added (0-255 units).",
    "optimization.augmentation.brightness_max": "Largest brightness added (0-255 units).",
    "optimization.initialization": "'random' to start from scratch, or the path of a previous run's "
    "checkpoint to start from its weights (fine-tuning).",
    "optimization.mixed_precision": "Train in 16-bit floating point where safe: faster and lighter on recent "
    "GPUs, no effect on CPU.",
    "optimization.compile": "Compile the network with torch.compile: slower start, faster steps.",
    # outputs
    "outputs.runs_folder": "Folder in which each training run gets its own sub-folder.",
    "outputs.run_name_prefix": "Text put in front of automatically generated run names.",
    "outputs.run_name": "Name of the run folder (empty = date, time and pipeline).",
    "outputs.keep": "Which checkpoints to keep: 'best' (lowest validation loss), 'last' or 'both'.",
}


# --------------------------------------------------------------------------- the config


@dataclass
class TrainingConfig:
    """The whole training configuration.

    Examples
    --------
    >>> cfg = TrainingConfig()
    >>> cfg.set("optimization.batch_size", "8")
    >>> cfg.optimization.batch_size
    8
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)

    # conversion ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML-safe types only)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingConfig:
        """Build from a nested dict; missing fields take defaults, unknown fields raise :class:`ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError(f"a training config must be a mapping, got {type(d).__name__}")
        return _from_dict(cls, d, "")

    def copy(self) -> TrainingConfig:
        return copy.deepcopy(self)

    def to_yaml(self, path: str | os.PathLike[str]) -> None:
        """Write as YAML (atomically)."""
        with atomic_write(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write as JSON (atomically)."""
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as JSON when ``path`` ends in ``.json``, else YAML."""
        if str(path).lower().endswith(".json"):
            self.to_json(path)
        else:
            self.to_yaml(path)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrainingConfig:
        """Read a YAML or JSON config; a SLEAP ``training_config.json`` is recognised and converted."""
        raw = _read_mapping(path)
        if _looks_like_sleap(raw):
            return _from_sleap_dict(raw, path)
        try:
            return cls.from_dict(raw)
        except ConfigError as exc:
            raise FileFormatError(path, f"invalid training config: {exc}") from exc

    @classmethod
    def from_sleap_json(cls, path: str | os.PathLike[str]) -> TrainingConfig:
        """Import SLEAP's ``training_config.json`` (or a SLEAP baseline profile)."""
        raw = _read_mapping(path)
        if not _looks_like_sleap(raw):
            raise FileFormatError(
                path, "not a SLEAP training config (no model.backbone / model.heads sections)"
            )
        return _from_sleap_dict(raw, path)

    # edits -------------------------------------------------------------------
    def set(self, key: str, value: Any) -> None:
        """Set a field by dotted name (``"optimization.batch_size"``), converting strings to the field's type.

        This is what the CLI's ``--set key=value`` calls. ``"none"``/``"null"`` clear optional fields.
        """
        parts = key.split(".")
        obj: Any = self
        for i, part in enumerate(parts):
            if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
                raise ConfigError(f"unknown config field {'.'.join(parts[: i + 1])!r}")
            if i == len(parts) - 1:
                hint = typing.get_type_hints(type(obj))[part]
                if dataclasses.is_dataclass(hint) or _is_dataclass_hint(hint):
                    raise ConfigError(f"{key!r} is a section; set one of its fields")
                setattr(obj, part, _coerce_cli(value, hint, key))
            else:
                obj = getattr(obj, part)

    def get(self, key: str) -> Any:
        """Value of a field by dotted name."""
        obj: Any = self
        for part in key.split("."):
            if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
                raise ConfigError(f"unknown config field {key!r}")
            obj = getattr(obj, part)
        return obj

    # validation --------------------------------------------------------------
    def validate(self, skeleton: Any = None, *, check_paths: bool = True) -> TrainingConfig:
        """Raise :class:`ConfigError` naming the first invalid field; returns ``self`` when valid.

        Parameters
        ----------
        skeleton
            A :class:`~napari_posetrack.core.labels.Skeleton`; when given, the anchor part must be one of
            its nodes and a bottom-up model needs at least one edge.
        check_paths
            Check that an initialisation checkpoint exists.
        """
        _validate(self, skeleton, check_paths)
        return self

    # derived values ------------------------------------------------------------
    @property
    def head_configs(self) -> dict[str, ConfmapHeadConfig | PAFHeadConfig]:
        """The heads the pipeline trains, by output name (``confmaps``, ``centroids``, ``pafs``)."""
        return head_configs(self)

    @property
    def output_stride(self) -> int:
        """Finest output stride among the pipeline's heads (the stride the decoder goes up to)."""
        return min(h.output_stride for h in self.head_configs.values())


def head_configs(config: TrainingConfig) -> dict[str, ConfmapHeadConfig | PAFHeadConfig]:
    """The head configs used by ``config.model.pipeline``, keyed by output name."""
    heads = config.model.heads
    pipeline = config.model.pipeline
    if pipeline in ("single_instance", "centered_instance"):
        return {"confmaps": heads.confmaps}
    if pipeline == "centroid":
        return {"centroids": heads.centroids}
    if pipeline == "bottomup":
        return {"confmaps": heads.confmaps, "pafs": heads.pafs}
    if pipeline == "topdown":
        return {"centroids": heads.centroids, "confmaps": heads.confmaps}
    raise ConfigError(f"model.pipeline: unknown pipeline {pipeline!r}; use one of {', '.join(PIPELINES)}")


def topdown_configs(base: TrainingConfig) -> tuple[TrainingConfig, TrainingConfig]:
    """Split a top-down job into its ``(centroid, centered_instance)`` configs.

    The centroid model uses ``data.centroid_input_scaling`` (when set) and the centroid head; the
    centered-instance model uses ``data.input_scaling`` and the confidence-map head. Run names get
    ``.centroid`` / ``.centered_instance`` suffixes.
    """
    centroid = base.copy()
    centroid.model.pipeline = "centroid"
    if base.data.centroid_input_scaling is not None:
        centroid.data.input_scaling = base.data.centroid_input_scaling
    centered = base.copy()
    centered.model.pipeline = "centered_instance"
    for cfg, suffix in ((centroid, "centroid"), (centered, "centered_instance")):
        cfg.data.centroid_input_scaling = None
        if cfg.outputs.run_name:
            cfg.outputs.run_name = f"{cfg.outputs.run_name}.{suffix}"
        else:
            cfg.outputs.run_name_prefix = f"{cfg.outputs.run_name_prefix}{suffix}."
    return centroid, centered


# --------------------------------------------------------------------------- baseline profiles

RF_PROFILES = {
    # receptive field size -> (max_stride, filters); cf. SLEAP's baseline_{medium,large}_rf profiles
    "small": (8, 32),
    "medium": (16, 24),
    "large": (32, 16),
}


def baseline_profile(
    name: str,
    *,
    receptive_field: str = "medium",
    frame_size: tuple[int, int] | None = None,
) -> TrainingConfig:
    """A starting configuration like SLEAP's baseline profiles.

    Parameters
    ----------
    name
        ``"single"`` (single_instance), ``"topdown"`` (centroid + centered_instance),
        ``"bottomup"``, or one pipeline name (``"centroid"``, ``"centered_instance"``).
    receptive_field
        ``"small"``, ``"medium"`` or ``"large"``: how much context the network sees (sets max stride and
        filters).
    frame_size
        ``(height, width)`` of the videos; large frames get an input scaling so the longest side of what the
        network sees (the whole frame, or the centroid model's frame) stays near 512 px.
    """
    pipeline = {"single": "single_instance"}.get(name, name)
    if pipeline not in PIPELINES:
        raise ConfigError(f"unknown baseline profile {name!r}; use single, topdown or bottomup")
    if receptive_field not in RF_PROFILES:
        raise ConfigError(f"receptive_field: unknown size {receptive_field!r}; use small, medium or large")
    max_stride, filters = RF_PROFILES[receptive_field]
    cfg = TrainingConfig()
    cfg.model.pipeline = pipeline
    cfg.model.unet = UNetConfig(max_stride=max_stride, filters=filters, filters_rate=2.0)
    cfg.model.heads.confmaps = ConfmapHeadConfig(sigma=2.5, output_stride=2 if pipeline != "bottomup" else 4)
    cfg.model.heads.centroids = ConfmapHeadConfig(sigma=5.0, output_stride=2)
    cfg.model.heads.pafs = PAFHeadConfig(sigma=15.0, output_stride=min(8, max_stride))
    aug = cfg.optimization.augmentation
    if pipeline in ("centroid", "bottomup", "topdown"):
        # whole frames: animals appear in any orientation
        aug.rotation_min_angle, aug.rotation_max_angle = -180.0, 180.0
    if pipeline == "bottomup":
        cfg.model.unet.filters = 16
        cfg.model.unet.max_stride = max(16, max_stride)
    if frame_size is not None:
        scale = _scale_for(max(frame_size), 512)
        if pipeline in ("single_instance", "bottomup", "centroid"):
            cfg.data.input_scaling = scale
        elif pipeline == "topdown":
            cfg.data.centroid_input_scaling = scale
    cfg.outputs.run_name_prefix = ""
    return cfg


def _scale_for(size: int, target: int) -> float:
    """Largest of 1, 1/2, 1/4, ... that brings ``size`` to at most ~``target``."""
    scale = 1.0
    while size * scale > target * 1.5 and scale > 1 / 16:
        scale /= 2
    return scale


# --------------------------------------------------------------------------- dict conversion helpers


def _is_dataclass_hint(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _from_dict(cls: type, d: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        name = prefix + min(unknown)
        raise ConfigError(f"unknown config field {name!r}")
    kwargs = {}
    for key, value in d.items():
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert ``value`` to the type ``hint`` of field ``name`` or raise :class:`ConfigError`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{name}: a value is required")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{name}: invalid value {value!r}")
    if _is_dataclass_hint(hint):
        if isinstance(value, hint):
            return copy.deepcopy(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a section (mapping), got {value!r}")
        return _from_dict(hint, value, name + ".")
    if value is None:
        raise ConfigError(f"{name}: a value is required")
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        if isinstance(value, str):
            value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "yes",
            "on",
            "1",
            "false",
            "no",
            "off",
            "0",
        ):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                f = None
            if f is not None and f.is_integer():
                return int(f)
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name}: expected text, got {value!r}")
    return value


def _coerce_cli(value: Any, hint: Any, name: str) -> Any:
    """Like :func:`_coerce`, but a string from the command line is parsed first (``none``, lists, numbers)."""
    if not isinstance(value, str):
        return _coerce(value, hint, name)
    text = value.strip()
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if text.lower() in ("none", "null", "~", "") and type(None) in args:
        return None
    if str in args:
        return text
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    if isinstance(parsed, str):
        parsed = text
    return _coerce(parsed, hint, name)


def _read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise MissingFileError(p, "training config not found")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(p, f"cannot read training config ({exc})") from exc
    try:
        raw = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise FileFormatError(
            p, f"not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}"
        ) from exc
    if not isinstance(raw, dict):
        raise FileFormatError(p, "a training config must be a mapping of sections")
    return raw


# --------------------------------------------------------------------------- SLEAP import


def _looks_like_sleap(raw: dict[str, Any]) -> bool:
    model = raw.get("model")
    return isinstance(model, dict) and isinstance(model.get("backbone"), dict) and "heads" in model


def _from_sleap_dict(raw: dict[str, Any], path: str | os.PathLike[str]) -> TrainingConfig:
    """Map the fields of SLEAP's training config onto ours (fields with no counterpart are ignored)."""
    try:
        return _convert_sleap(raw)
    except ConfigError as exc:
        raise FileFormatError(path, f"SLEAP training config: {exc}") from exc
    except (TypeError, AttributeError, ValueError) as exc:
        raise FileFormatError(path, f"SLEAP training config has an unexpected structure ({exc})") from exc


def _section(d: Any, *keys: str) -> dict[str, Any]:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d if isinstance(d, dict) else {}


def _convert_sleap(raw: dict[str, Any]) -> TrainingConfig:
    cfg = TrainingConfig()
    data = cfg.data
    labels = _section(raw, "data", "labels")
    prep = _section(raw, "data", "preprocessing")
    crop = _section(raw, "data", "instance_cropping")
    if labels.get("validation_fraction") is not None:
        data.validation_fraction = _coerce(labels["validation_fraction"], float, "data.validation_fraction")
    if prep.get("input_scaling") is not None:
        data.input_scaling = _coerce(prep["input_scaling"], float, "data.input_scaling")
    if prep.get("ensure_rgb"):
        data.channels = "rgb"
    elif prep.get("ensure_grayscale"):
        data.channels = "grayscale"
    if crop.get("crop_size") is not None:
        data.crop_size = _coerce(crop["crop_size"], int, "data.crop_size")
    if crop.get("crop_size_detection_padding") is not None:
        data.crop_padding = _coerce(crop["crop_size_detection_padding"], int, "data.crop_padding")
    if crop.get("center_on_part") is not None:
        data.anchor_part = str(crop["center_on_part"])

    backbone = _section(raw, "model", "backbone")
    unet = backbone.get("unet")
    if not isinstance(unet, dict):
        others = [k for k, v in backbone.items() if v]
        raise ConfigError(f"model.backbone: only the UNet backbone is supported (this file uses {others})")
    u = cfg.model.unet
    if unet.get("stem_stride") is not None:
        u.stem_stride = _coerce(unet["stem_stride"], int, "model.unet.stem_stride")
    for key, hint in (
        ("max_stride", int),
        ("filters", int),
        ("filters_rate", float),
        ("middle_block", bool),
        ("up_interpolate", bool),
        ("convs_per_block", int),
    ):
        if unet.get(key) is not None:
            setattr(u, key, _coerce(unet[key], hint, f"model.unet.{key}"))

    heads = _section(raw, "model", "heads")
    kinds = [
        k for k in ("single_instance", "centroid", "centered_instance", "multi_instance") if heads.get(k)
    ]
    if not kinds:
        others = [k for k, v in heads.items() if v]
        raise ConfigError(f"model.heads: no supported head (this file uses {others or 'none'})")
    kind = kinds[0]
    head = heads[kind]
    if kind == "multi_instance":
        cfg.model.pipeline = "bottomup"
        _sleap_head(head.get("confmaps") or {}, cfg.model.heads.confmaps, "model.heads.confmaps")
        _sleap_head(head.get("pafs") or {}, cfg.model.heads.pafs, "model.heads.pafs")
    elif kind == "centroid":
        cfg.model.pipeline = "centroid"
        _sleap_head(head, cfg.model.heads.centroids, "model.heads.centroids")
    else:
        cfg.model.pipeline = kind
        _sleap_head(head, cfg.model.heads.confmaps, "model.heads.confmaps")
    if isinstance(head, dict) and head.get("anchor_part") is not None:
        data.anchor_part = str(head["anchor_part"])

    opt = _section(raw, "optimization")
    o = cfg.optimization
    for key, hint in (("batch_size", int), ("epochs", int), ("initial_learning_rate", float)):
        if opt.get(key) is not None:
            setattr(o, key, _coerce(opt[key], hint, f"optimization.{key}"))
    if opt.get("batches_per_epoch") is not None:
        o.batches_per_epoch = _coerce(opt["batches_per_epoch"], int, "optimization.batches_per_epoch")
    if opt.get("min_batches_per_epoch") is not None:
        o.min_batches_per_epoch = _coerce(
            opt["min_batches_per_epoch"], int, "optimization.min_batches_per_epoch"
        )
    if opt.get("optimizer") is not None:
        o.optimizer = str(opt["optimizer"]).lower()

    lr = _section(opt, "learning_rate_schedule")
    if lr:
        if lr.get("reduce_on_plateau") is False:
            o.schedule.kind = "none"
        for ours, theirs, hint in (
            ("factor", "reduction_factor", float),
            ("patience", "plateau_patience", int),
            ("min_delta", "plateau_min_delta", float),
            ("cooldown", "plateau_cooldown", int),
            ("min_learning_rate", "min_learning_rate", float),
        ):
            if lr.get(theirs) is not None:
                setattr(o.schedule, ours, _coerce(lr[theirs], hint, f"optimization.schedule.{ours}"))

    es = _section(opt, "early_stopping")
    if es:
        o.early_stopping.enabled = bool(es.get("stop_training_on_plateau", True))
        if es.get("plateau_min_delta") is not None:
            o.early_stopping.min_delta = _coerce(
                es["plateau_min_delta"], float, "optimization.early_stopping.min_delta"
            )
        if es.get("plateau_patience") is not None:
            o.early_stopping.patience = _coerce(
                es["plateau_patience"], int, "optimization.early_stopping.patience"
            )

    hk = _section(opt, "hard_keypoint_mining")
    if hk:
        m = o.hard_keypoint_mining
        m.enabled = bool(hk.get("online_mining", False))
        for key, hint in (("hard_to_easy_ratio", float), ("min_hard_keypoints", int), ("loss_scale", float)):
            if hk.get(key) is not None:
                setattr(m, key, _coerce(hk[key], hint, f"optimization.hard_keypoint_mining.{key}"))
        m.max_hard_keypoints = (
            None
            if hk.get("max_hard_keypoints") is None
            else _coerce(
                hk["max_hard_keypoints"], int, "optimization.hard_keypoint_mining.max_hard_keypoints"
            )
        )

    aug = _section(opt, "augmentation_config")
    if aug:
        _convert_sleap_augmentation(aug, o.augmentation)

    out = _section(raw, "outputs")
    for key in ("runs_folder", "run_name_prefix", "run_name"):
        if out.get(key) is not None:
            setattr(cfg.outputs, key, str(out[key]))
    ckpt = _section(out, "checkpointing")
    if ckpt:
        best, last = (
            bool(ckpt.get("best_model", True)),
            bool(ckpt.get("latest_model") or ckpt.get("final_model")),
        )
        cfg.outputs.keep = "both" if best and last else ("last" if last else "best")
    return cfg


def _sleap_head(src: dict[str, Any], dst: ConfmapHeadConfig | PAFHeadConfig, prefix: str) -> None:
    for key, hint in (("sigma", float), ("output_stride", int), ("loss_weight", float)):
        if src.get(key) is not None:
            setattr(dst, key, _coerce(src[key], hint, f"{prefix}.{key}"))


def _convert_sleap_augmentation(aug: dict[str, Any], a: AugmentationConfig) -> None:
    def prob(flag: str, on: float = 1.0) -> float:
        return on if aug.get(flag) else 0.0

    a.rotation_probability = prob("rotate")
    a.scale_probability = prob("scale")
    a.translate_probability = prob("translate")
    a.flip_probability = prob("random_flip", 0.5)
    a.uniform_noise_probability = prob("uniform_noise")
    a.gaussian_noise_probability = prob("gaussian_noise")
    a.contrast_probability = prob("contrast")
    a.brightness_probability = prob("brightness")
    if "flip_horizontal" in aug:
        a.flip_direction = "horizontal" if aug["flip_horizontal"] else "vertical"
    for ours, theirs in (
        ("rotation_min_angle", "rotation_min_angle"),
        ("rotation_max_angle", "rotation_max_angle"),
        ("scale_min", "scale_min"),
        ("scale_max", "scale_max"),
        ("translate_min", "translate_min"),
        ("translate_max", "translate_max"),
        ("uniform_noise_min", "uniform_noise_min_val"),
        ("uniform_noise_max", "uniform_noise_max_val"),
        ("gaussian_noise_mean", "gaussian_noise_mean"),
        ("gaussian_noise_std", "gaussian_noise_stddev"),
        ("contrast_min_gamma", "contrast_min_gamma"),
        ("contrast_max_gamma", "contrast_max_gamma"),
        ("brightness_min", "brightness_min_val"),
        ("brightness_max", "brightness_max_val"),
    ):
        if aug.get(theirs) is not None:
            setattr(a, ours, _coerce(aug[theirs], float, f"optimization.augmentation.{ours}"))


# --------------------------------------------------------------------------- validation


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _check(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {problem}")


def _validate(cfg: TrainingConfig, skeleton: Any, check_paths: bool) -> None:
    d, m, o, out = cfg.data, cfg.model, cfg.optimization, cfg.outputs
    # model first: other checks use max_stride
    _check(
        m.pipeline in PIPELINES,
        "model.pipeline",
        f"unknown pipeline {m.pipeline!r}; use one of {', '.join(PIPELINES)}",
    )
    _check(
        m.backbone in BACKBONES,
        "model.backbone",
        f"unknown backbone {m.backbone!r}; use one of {', '.join(BACKBONES)}",
    )
    u = m.unet
    _check(
        _is_power_of_two(u.max_stride) and u.max_stride >= 2,
        "model.unet.max_stride",
        f"must be a power of two >= 2, got {u.max_stride}",
    )
    if u.stem_stride is not None:
        _check(
            _is_power_of_two(u.stem_stride),
            "model.unet.stem_stride",
            f"must be a power of two, got {u.stem_stride}",
        )
        _check(
            u.stem_stride < u.max_stride,
            "model.unet.stem_stride",
            f"must be smaller than max_stride ({u.max_stride}), got {u.stem_stride}",
        )
    _check(u.filters >= 1, "model.unet.filters", f"must be at least 1, got {u.filters}")
    _check(u.filters_rate > 0, "model.unet.filters_rate", f"must be positive, got {u.filters_rate}")
    _check(
        u.convs_per_block >= 1, "model.unet.convs_per_block", f"must be at least 1, got {u.convs_per_block}"
    )
    min_stride = u.stem_stride or 1
    used = head_configs(cfg)
    for head_name, h in (
        ("confmaps", m.heads.confmaps),
        ("centroids", m.heads.centroids),
        ("pafs", m.heads.pafs),
    ):
        prefix = f"model.heads.{head_name}"
        _check(h.sigma > 0, f"{prefix}.sigma", f"must be positive, got {h.sigma}")
        _check(h.loss_weight >= 0, f"{prefix}.loss_weight", f"must not be negative, got {h.loss_weight}")
        if head_name not in used:
            continue  # strides of heads this pipeline does not build do not constrain the backbone
        _check(
            _is_power_of_two(h.output_stride),
            f"{prefix}.output_stride",
            f"must be a power of two, got {h.output_stride}",
        )
        _check(
            u.max_stride % h.output_stride == 0,
            f"{prefix}.output_stride",
            f"{h.output_stride} does not divide model.unet.max_stride ({u.max_stride})",
        )
        _check(
            h.output_stride >= min_stride,
            f"{prefix}.output_stride",
            f"{h.output_stride} is finer than model.unet.stem_stride ({min_stride})",
        )

    _check(
        0 <= d.validation_fraction < 1,
        "data.validation_fraction",
        f"must be in [0, 1), got {d.validation_fraction}",
    )
    _check(d.input_scaling > 0, "data.input_scaling", f"must be positive, got {d.input_scaling}")
    if d.centroid_input_scaling is not None:
        _check(
            d.centroid_input_scaling > 0,
            "data.centroid_input_scaling",
            f"must be positive, got {d.centroid_input_scaling}",
        )
    if d.crop_size is not None:
        _check(d.crop_size > 0, "data.crop_size", f"must be positive, got {d.crop_size}")
        _check(
            d.crop_size % u.max_stride == 0,
            "data.crop_size",
            f"{d.crop_size} is not a multiple of model.unet.max_stride ({u.max_stride})",
        )
    _check(d.crop_padding >= 0, "data.crop_padding", f"must not be negative, got {d.crop_padding}")
    _check(
        d.channels in CHANNELS,
        "data.channels",
        f"unknown value {d.channels!r}; use one of {', '.join(CHANNELS)}",
    )
    if skeleton is not None:
        if d.anchor_part is not None:
            _check(
                d.anchor_part in skeleton.nodes,
                "data.anchor_part",
                f"unknown body part {d.anchor_part!r}; the skeleton has {', '.join(skeleton.nodes)}",
            )
        if m.pipeline == "bottomup":
            _check(
                len(skeleton.edges) > 0, "model.pipeline", "bottomup needs a skeleton with at least one edge"
            )

    _check(o.batch_size >= 1, "optimization.batch_size", f"must be at least 1, got {o.batch_size}")
    _check(o.epochs >= 1, "optimization.epochs", f"must be at least 1, got {o.epochs}")
    if o.batches_per_epoch is not None:
        _check(
            o.batches_per_epoch >= 1,
            "optimization.batches_per_epoch",
            f"must be at least 1, got {o.batches_per_epoch}",
        )
    _check(
        o.min_batches_per_epoch >= 0,
        "optimization.min_batches_per_epoch",
        f"must not be negative, got {o.min_batches_per_epoch}",
    )
    _check(
        o.initial_learning_rate > 0,
        "optimization.initial_learning_rate",
        f"must be positive, got {o.initial_learning_rate}",
    )
    _check(
        o.optimizer in OPTIMIZERS,
        "optimization.optimizer",
        f"unknown optimizer {o.optimizer!r}; use one of {', '.join(OPTIMIZERS)}",
    )
    _check(0 <= o.momentum < 1, "optimization.momentum", f"must be in [0, 1), got {o.momentum}")
    _check(o.weight_decay >= 0, "optimization.weight_decay", f"must not be negative, got {o.weight_decay}")
    s = o.schedule
    _check(
        s.kind in SCHEDULES,
        "optimization.schedule.kind",
        f"unknown schedule {s.kind!r}; use one of {', '.join(SCHEDULES)}",
    )
    _check(0 < s.factor < 1, "optimization.schedule.factor", f"must be in (0, 1), got {s.factor}")
    _check(s.patience >= 0, "optimization.schedule.patience", f"must not be negative, got {s.patience}")
    _check(s.cooldown >= 0, "optimization.schedule.cooldown", f"must not be negative, got {s.cooldown}")
    _check(s.min_delta >= 0, "optimization.schedule.min_delta", f"must not be negative, got {s.min_delta}")
    _check(
        s.min_learning_rate >= 0,
        "optimization.schedule.min_learning_rate",
        f"must not be negative, got {s.min_learning_rate}",
    )
    _check(
        all(x >= 1 for x in s.milestones) and all(a < b for a, b in zip(s.milestones, s.milestones[1:])),
        "optimization.schedule.milestones",
        f"must be increasing positive epochs, got {s.milestones}",
    )
    if s.kind == "multi_step":
        _check(
            bool(s.milestones), "optimization.schedule.milestones", "multi_step needs at least one milestone"
        )
    _check(
        s.initial_factor > 0,
        "optimization.schedule.initial_factor",
        f"must be positive, got {s.initial_factor}",
    )
    _check(
        s.final_factor > 0, "optimization.schedule.final_factor", f"must be positive, got {s.final_factor}"
    )
    _check(
        0 <= s.warmup_fraction < 1,
        "optimization.schedule.warmup_fraction",
        f"must be in [0, 1), got {s.warmup_fraction}",
    )
    es = o.early_stopping
    _check(
        es.patience >= 0, "optimization.early_stopping.patience", f"must not be negative, got {es.patience}"
    )
    _check(
        es.min_delta >= 0,
        "optimization.early_stopping.min_delta",
        f"must not be negative, got {es.min_delta}",
    )
    if o.gradient_clip_norm is not None:
        _check(
            o.gradient_clip_norm > 0,
            "optimization.gradient_clip_norm",
            f"must be positive (or empty for off), got {o.gradient_clip_norm}",
        )
    if o.max_iterations is not None:
        _check(
            o.max_iterations >= 1,
            "optimization.max_iterations",
            f"must be at least 1, got {o.max_iterations}",
        )
    if o.max_training_hours is not None:
        _check(
            o.max_training_hours > 0,
            "optimization.max_training_hours",
            f"must be positive, got {o.max_training_hours}",
        )
    hk = o.hard_keypoint_mining
    _check(
        hk.hard_to_easy_ratio >= 1,
        "optimization.hard_keypoint_mining.hard_to_easy_ratio",
        f"must be at least 1, got {hk.hard_to_easy_ratio}",
    )
    _check(
        hk.min_hard_keypoints >= 0,
        "optimization.hard_keypoint_mining.min_hard_keypoints",
        f"must not be negative, got {hk.min_hard_keypoints}",
    )
    if hk.max_hard_keypoints is not None:
        _check(
            hk.max_hard_keypoints >= max(1, hk.min_hard_keypoints),
            "optimization.hard_keypoint_mining.max_hard_keypoints",
            f"must be at least min_hard_keypoints ({hk.min_hard_keypoints}), got {hk.max_hard_keypoints}",
        )
    _check(
        hk.loss_scale > 0,
        "optimization.hard_keypoint_mining.loss_scale",
        f"must be positive, got {hk.loss_scale}",
    )
    _validate_augmentation(o.augmentation)
    if o.initialization != "random" and check_paths:
        _check(
            Path(o.initialization).exists(),
            "optimization.initialization",
            f"checkpoint {o.initialization!r} not found (use 'random' or an existing checkpoint path)",
        )

    _check(
        out.keep in KEEP_CHECKPOINTS,
        "outputs.keep",
        f"unknown value {out.keep!r}; use one of {', '.join(KEEP_CHECKPOINTS)}",
    )
    _check(bool(out.runs_folder), "outputs.runs_folder", "must not be empty")
    if out.run_name is not None:
        _check(
            out.run_name.strip() != "" and "/" not in out.run_name and "\\" not in out.run_name,
            "outputs.run_name",
            f"must be a folder name without slashes, got {out.run_name!r}",
        )


def _validate_augmentation(a: AugmentationConfig) -> None:
    prefix = "optimization.augmentation."
    for f in dataclasses.fields(a):
        if f.name.endswith("_probability"):
            p = getattr(a, f.name)
            _check(0 <= p <= 1, prefix + f.name, f"must be in [0, 1], got {p}")
    for lo, hi in (
        ("rotation_min_angle", "rotation_max_angle"),
        ("scale_min", "scale_max"),
        ("translate_min", "translate_max"),
        ("uniform_noise_min", "uniform_noise_max"),
        ("contrast_min_gamma", "contrast_max_gamma"),
        ("brightness_min", "brightness_max"),
    ):
        _check(
            getattr(a, lo) <= getattr(a, hi),
            prefix + lo,
            f"must not exceed {hi} ({getattr(a, hi)}), got {getattr(a, lo)}",
        )
    _check(a.scale_min > 0, prefix + "scale_min", f"must be positive, got {a.scale_min}")
    _check(
        a.contrast_min_gamma > 0,
        prefix + "contrast_min_gamma",
        f"must be positive, got {a.contrast_min_gamma}",
    )
    _check(
        a.gaussian_noise_std >= 0,
        prefix + "gaussian_noise_std",
        f"must not be negative, got {a.gaussian_noise_std}",
    )
    _check(
        a.flip_direction in FLIP_DIRECTIONS,
        prefix + "flip_direction",
        f"unknown value {a.flip_direction!r}; use horizontal or vertical",
    )


__all__ = [
    "FIELD_HELP",
    "AugmentationConfig",
    "ConfmapHeadConfig",
    "DataConfig",
    "EarlyStoppingConfig",
    "HardKeypointMiningConfig",
    "HeadsConfig",
    "ModelConfig",
    "OptimizationConfig",
    "OutputsConfig",
    "PAFHeadConfig",
    "ScheduleConfig",
    "TrainingConfig",
    "UNetConfig",
    "baseline_profile",
    "head_configs",
    "topdown_configs",
]
