"""The whole :class:`TrainingConfig`, the top-down split and SLEAP-like baseline profiles."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from napari_posetrack.core.config.coerce import _coerce_cli, _from_dict, _is_dataclass_hint, _read_mapping
from napari_posetrack.core.config.data import DataConfig
from napari_posetrack.core.config.model import (
    PIPELINES,
    ConfmapHeadConfig,
    MapHeadConfig,
    ModelConfig,
    PAFHeadConfig,
    UNetConfig,
    head_configs,
)
from napari_posetrack.core.config.optimization import OptimizationConfig
from napari_posetrack.core.config.outputs import OutputsConfig
from napari_posetrack.core.errors import ConfigError, FileFormatError, atomic_write


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
        from napari_posetrack.core.config.sleap import _from_sleap_dict, _looks_like_sleap

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
        from napari_posetrack.core.config.sleap import _from_sleap_dict, _looks_like_sleap

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
        from napari_posetrack.core.config.validation import _validate

        _validate(self, skeleton, check_paths)
        return self

    # derived values ------------------------------------------------------------
    @property
    def head_configs(self) -> dict[str, MapHeadConfig]:
        """The heads the pipeline trains, by output name (``confmaps``, ``centroids``, ``pafs``, ``class_maps``)."""
        return head_configs(self)

    @property
    def output_stride(self) -> int:
        """Finest output stride among the pipeline's heads (the stride the decoder goes up to)."""
        return min(h.output_stride for h in self.head_configs.values())


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
    centroid.model.heads.class_vectors.enabled = False  # identities are told apart on the crops
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
        ``"topdown-id"`` (top-down whose centered-instance model also tells identities apart, from
        the labels' track names: SLEAP's multi-class top-down), ``"bottomup"``, ``"bottomup-id"``
        (bottom-up with one confidence map per identity instead of part affinity fields: SLEAP's
        multi-class bottom-up), or one pipeline name (``"centroid"``, ``"centered_instance"``).
    receptive_field
        ``"small"``, ``"medium"`` or ``"large"``: how much context the network sees (sets max stride and
        filters).
    frame_size
        ``(height, width)`` of the videos; large frames get an input scaling so the longest side of what the
        network sees (the whole frame, or the centroid model's frame) stays near 512 px.
    """
    pipeline = {"single": "single_instance", "topdown-id": "topdown", "bottomup-id": "bottomup"}.get(name, name)
    if pipeline not in PIPELINES:
        raise ConfigError(
            f"unknown baseline profile {name!r}; use single, topdown, topdown-id, bottomup or bottomup-id"
        )
    if receptive_field not in RF_PROFILES:
        raise ConfigError(f"receptive_field: unknown size {receptive_field!r}; use small, medium or large")
    max_stride, filters = RF_PROFILES[receptive_field]
    cfg = TrainingConfig()
    cfg.model.pipeline = pipeline
    cfg.model.unet = UNetConfig(max_stride=max_stride, filters=filters, filters_rate=2.0)
    cfg.model.heads.confmaps = ConfmapHeadConfig(sigma=2.5, output_stride=2 if pipeline != "bottomup" else 4)
    cfg.model.heads.centroids = ConfmapHeadConfig(sigma=5.0, output_stride=2)
    cfg.model.heads.pafs = PAFHeadConfig(sigma=15.0, output_stride=min(8, max_stride))
    cfg.model.heads.class_vectors.enabled = name == "topdown-id"
    cfg.model.heads.class_maps.enabled = name == "bottomup-id"
    cfg.model.heads.class_maps.sigma = 5.0
    cfg.model.heads.class_maps.output_stride = cfg.model.heads.confmaps.output_stride
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
