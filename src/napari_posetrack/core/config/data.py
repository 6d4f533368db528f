"""The ``data`` section: how labelled frames become network inputs."""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = ("auto", "grayscale", "rgb")


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
    input_size: list[int] | None = None
    resize_input: bool = True
