"""The backbone -> neck -> heads assembly and ``build_model(config, skeleton)``.

- a **backbone** maps images ``(B, C, H, W)`` to ``{stride: features}`` and has ``max_stride`` and
  ``out_channels`` (``{stride: channels}``);
- a **neck** maps that dict to another ``{stride: features}`` dict (``IdentityNeck`` passes it through;
  an FPN would mix levels) and has ``out_channels`` too;
- **heads** each read the neck's features at their ``output_stride``.

The trainer and the predictors only see :class:`PoseModel`: ``model(images) -> {head name: maps}``.
Adding another backbone or neck means writing a module with this interface and a branch in
:func:`build_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from napari_posetrack.core.config import ConfigError, TrainingConfig, head_configs
from napari_posetrack.core.models.heads import (
    CenteredInstanceHead,
    CentroidHead,
    ConfidenceMapHead,
    Head,
    PAFHead,
)
from napari_posetrack.core.models.receptive_field import input_channels
from napari_posetrack.core.models.unet import UNet


class IdentityNeck(nn.Module):
    """A neck that passes the backbone's features through unchanged."""

    def __init__(self, out_channels: Mapping[int, int]) -> None:
        super().__init__()
        self.out_channels = dict(out_channels)

    def forward(self, features: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        return features


class PoseModel(nn.Module):
    """Backbone -> neck -> heads.

    Parameters
    ----------
    backbone
        Module returning ``{stride: features}``; must have ``max_stride`` and ``out_channels``.
    neck
        Module mapping those features to ``{stride: features}`` with ``out_channels``; ``None`` = identity.
    heads
        ``{output name: head}``; each head has ``output_stride`` and must find features at that stride.

    Attributes
    ----------
    pipeline
        The pipeline it was built for (set by :func:`build_model`, else ``None``).
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module | None, heads: Mapping[str, Head]) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck if neck is not None else IdentityNeck(backbone.out_channels)
        self.heads = nn.ModuleDict(dict(heads))
        available = dict(self.neck.out_channels)
        for name, head in self.heads.items():
            if head.output_stride not in available:
                raise ConfigError(
                    f"model.heads.{name}.output_stride: the backbone has no features at stride "
                    f"{head.output_stride} (available: {sorted(available)})"
                )
            if available[head.output_stride] != head.in_channels:
                raise ConfigError(
                    f"head {name!r} expects {head.in_channels} channels but stride {head.output_stride} "
                    f"features have {available[head.output_stride]}"
                )
        self.pipeline: str | None = None

    @property
    def max_stride(self) -> int:
        """Input height and width must be multiples of this."""
        return int(self.backbone.max_stride)

    @property
    def output_strides(self) -> dict[str, int]:
        """``{output name: output stride}``."""
        return {name: int(h.output_stride) for name, h in self.heads.items()}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` (B, C, H, W), H and W multiples of ``max_stride`` -> ``{name: (B, K, H/s, W/s)}``."""
        features = self.neck(self.backbone(images))
        return {name: head(features[head.output_stride]) for name, head in self.heads.items()}


def build_model(config: TrainingConfig, skeleton: Any, in_channels: int | None = None) -> PoseModel:
    """Build the model ``config`` describes for ``skeleton``.

    Parameters
    ----------
    config
        A training config; its ``model.pipeline`` picks the heads (``topdown`` must be split with
        :func:`~napari_posetrack.core.config.topdown_configs` first).
    skeleton
        A :class:`~napari_posetrack.core.labels.Skeleton` (node count; edges for bottom-up PAFs).
    in_channels
        Image channels; default 3 when ``config.data.channels == "rgb"``, else 1.
    """
    config.validate(skeleton, check_paths=False)
    pipeline = config.model.pipeline
    if pipeline == "topdown":
        raise ConfigError(
            "model.pipeline: 'topdown' trains two models; split it with topdown_configs() first"
        )
    if config.model.backbone != "unet":
        raise ConfigError(f"model.backbone: unknown backbone {config.model.backbone!r}")
    backbone = UNet.from_config(config.model.unet, input_channels(config, in_channels), config.output_stride)
    neck = IdentityNeck(backbone.out_channels)
    feats = neck.out_channels
    n_nodes = len(skeleton.nodes)
    heads: dict[str, Head] = {}
    for name, h in head_configs(config).items():
        stride = h.output_stride
        if name == "centroids":
            heads[name] = CentroidHead(feats[stride], stride)
        elif name == "pafs":
            heads[name] = PAFHead(len(skeleton.edges), feats[stride], stride)
        elif pipeline == "centered_instance":
            heads[name] = CenteredInstanceHead(n_nodes, feats[stride], stride)
        else:
            heads[name] = ConfidenceMapHead(n_nodes, feats[stride], stride)
    model = PoseModel(backbone, neck, heads)
    model.pipeline = pipeline
    return model


def pad_to_stride(images: torch.Tensor, max_stride: int) -> torch.Tensor:
    """Zero-pad ``images`` (..., H, W) at the bottom and right to multiples of ``max_stride``.

    Padding at the far edges keeps pixel coordinates unchanged, so keypoints need no shift.
    """
    h, w = images.shape[-2:]
    pad_h = (-h) % max_stride
    pad_w = (-w) % max_stride
    if pad_h == 0 and pad_w == 0:
        return images
    return nn.functional.pad(images, (0, pad_w, 0, pad_h))
