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

from napari_posetrack.core.config.data import CHANNELS, DataConfig
from napari_posetrack.core.config.help import FIELD_HELP
from napari_posetrack.core.config.model import (
    BACKBONES,
    CLASS_HEAD,
    CLASS_MAPS_HEAD,
    PIPELINES,
    TRAINABLE_PIPELINES,
    ClassMapsHeadConfig,
    ClassVectorsHeadConfig,
    ConfmapHeadConfig,
    HeadsConfig,
    ModelConfig,
    PAFHeadConfig,
    UNetConfig,
    class_head_config,
    class_maps_config,
    head_configs,
    identity_head,
)
from napari_posetrack.core.config.optimization import (
    FLIP_DIRECTIONS,
    OPTIMIZERS,
    SCHEDULES,
    AugmentationConfig,
    EarlyStoppingConfig,
    HardKeypointMiningConfig,
    OptimizationConfig,
    ScheduleConfig,
)
from napari_posetrack.core.config.outputs import KEEP_CHECKPOINTS, OutputsConfig
from napari_posetrack.core.config.training import (
    RF_PROFILES,
    TrainingConfig,
    baseline_profile,
    topdown_configs,
)
from napari_posetrack.core.errors import ConfigError

__all__ = [
    "BACKBONES",
    "CHANNELS",
    "CLASS_HEAD",
    "CLASS_MAPS_HEAD",
    "FIELD_HELP",
    "FLIP_DIRECTIONS",
    "KEEP_CHECKPOINTS",
    "OPTIMIZERS",
    "PIPELINES",
    "RF_PROFILES",
    "SCHEDULES",
    "TRAINABLE_PIPELINES",
    "AugmentationConfig",
    "ClassMapsHeadConfig",
    "ClassVectorsHeadConfig",
    "ConfigError",
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
    "class_head_config",
    "class_maps_config",
    "head_configs",
    "identity_head",
    "topdown_configs",
]
