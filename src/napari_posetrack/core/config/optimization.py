"""The ``optimization`` section: optimiser, schedule, stopping, augmentation, initialisation."""

from __future__ import annotations

from dataclasses import dataclass, field

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("reduce_on_plateau", "multi_step", "one_cycle", "none")
FLIP_DIRECTIONS = ("horizontal", "vertical")


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
    pretrained_weights: str | None = None
    mixed_precision: bool = False
    compile: bool = False
