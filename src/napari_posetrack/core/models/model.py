"""The backbone -> neck -> heads assembly and ``build_model(config, skeleton)``.

- a **backbone** maps images ``(B, C, H, W)`` to ``{stride: features}`` and has ``max_stride`` and
  ``out_channels`` (``{stride: channels}``); a stacked backbone (DeepPoseKit's models) returns a list of
  such dicts, one per stack, the last one final;
- a **neck** maps that dict to another ``{stride: features}`` dict (:mod:`.necks`) and has
  ``out_channels`` too;
- **heads** each read the neck's features at their ``read_stride`` (upsampling to their
  ``output_stride`` when that is finer), and a head on several levels reads each of them.

The trainer and the predictors only see :class:`PoseModel`: ``model(images) -> {output: maps}``. In
eval mode the outputs are the heads' main outputs (what inference reads); in training mode every
extra output (other levels, intermediate stacks, posture-graph maps) comes too, keyed as
:func:`~napari_posetrack.core.config.model.training_outputs` names them. Adding a backbone or neck is a
module with this interface and a branch in :func:`build_backbone` or :func:`~.necks.build_neck`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from napari_posetrack.core.config import (
    ConfigError,
    TrainingConfig,
    class_head_config,
    class_maps_config,
    head_configs,
)
from napari_posetrack.core.config.model import (
    TORCHVISION_BACKBONES,
    backbone_strides,
    head_inputs,
    head_strides,
    readable_strides,
)
from napari_posetrack.core.models.heads import (
    CenteredInstanceHead,
    CentroidHead,
    ClassMapHead,
    ClassVectorHead,
    ConfidenceMapHead,
    Head,
    PAFHead,
)
from napari_posetrack.core.models.necks import IdentityNeck, build_neck
from napari_posetrack.core.models.posture_graph import posture_graph_channels
from napari_posetrack.core.models.receptive_field import input_channels
from napari_posetrack.core.models.unet import UNet

__all__ = ["IdentityNeck", "PoseModel", "build_backbone", "build_model", "pad_to_stride"]


class PoseModel(nn.Module):
    """Backbone -> neck -> heads.

    Parameters
    ----------
    backbone
        Module returning ``{stride: features}`` (or a list of them, one per stack); must have
        ``max_stride`` and ``out_channels``.
    neck
        Module mapping those features to ``{stride: features}`` with ``out_channels``; ``None`` = identity.
    heads
        ``{output name: head}``; each head reads the features at its ``read_stride``. A
        :class:`~.heads.ClassVectorHead` (``class_vectors``) gives ``(B, n_classes)`` logits, not maps.
    head_levels
        ``{output name: strides}``: extra strides a head is also trained at (one head, shared weights).

    Attributes
    ----------
    pipeline
        The pipeline it was built for (set by :func:`build_model`, else ``None``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module | None,
        heads: Mapping[str, Head],
        head_levels: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck if neck is not None else IdentityNeck(backbone.out_channels)
        self.heads = nn.ModuleDict(dict(heads))
        self.head_levels = {name: [int(s) for s in strides] for name, strides in (head_levels or {}).items()}
        available = dict(self.neck.out_channels)
        for name, head in self.heads.items():
            reads = [head.read_stride, *(s for s in self.head_levels.get(name, ()) if s != head.output_stride)]
            for stride in reads:
                if stride not in available:
                    raise ConfigError(
                        f"model.heads.{name}.output_stride: the backbone has no features at stride "
                        f"{stride} (available: {sorted(available)})"
                    )
                if available[stride] != head.in_channels:
                    raise ConfigError(
                        f"head {name!r} expects {head.in_channels} channels but stride {stride} "
                        f"features have {available[stride]}"
                    )
        self.pipeline: str | None = None

    @property
    def max_stride(self) -> int:
        """Input height and width must be multiples of this."""
        stride = int(self.backbone.max_stride)
        return max(stride, *self.neck.out_channels) if self.neck.out_channels else stride

    @property
    def output_strides(self) -> dict[str, int]:
        """``{name: output stride}`` of the main outputs."""
        return {name: int(h.output_stride) for name, h in self.heads.items()}

    def _head_outputs(self, features: dict[int, torch.Tensor], suffix: str, out: dict[str, torch.Tensor]) -> None:
        for name, head in self.heads.items():
            maps = {head.output_stride: head(features[head.read_stride])}
            if self.training:
                for stride in self.head_levels.get(name, ()):
                    if stride != head.output_stride:
                        maps[stride] = head.at(features[stride])
            extra = getattr(head, "extra_channels", 0)
            for stride, m in maps.items():
                level = "" if stride == head.output_stride else f"@{stride}"
                if extra:
                    main = m.shape[1] - extra
                    out[f"{name}{level}{suffix}"] = m[:, :main]
                    if self.training:
                        out[f"{name}.graph{level}{suffix}"] = m[:, main:]
                else:
                    out[f"{name}{level}{suffix}"] = m

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` (B, C, H, W), H and W multiples of ``max_stride`` -> ``{output: (B, K, H/s, W/s)}``."""
        features = self.backbone(images)
        stacks = features if isinstance(features, list) else [features]
        if not self.training:
            stacks = stacks[-1:]
        out: dict[str, torch.Tensor] = {}
        for i, stack in enumerate(stacks):
            suffix = "" if i == len(stacks) - 1 else f"#{i}"
            self._head_outputs(self.neck(stack), suffix, out)
        return out


def build_backbone(config: TrainingConfig, in_channels: int) -> nn.Module:
    """The backbone ``config.model.backbone`` names, for images of ``in_channels`` channels."""
    from napari_posetrack.core.config.model import DPK_BACKBONES

    name = config.model.backbone
    if name == "unet":
        return UNet.from_config(config.model.unet, in_channels, min(backbone_strides(config)))
    if name in TORCHVISION_BACKBONES:
        from napari_posetrack.core.models.torchvision_backbones import build_torchvision_backbone

        return build_torchvision_backbone(config, in_channels)
    if name in DPK_BACKBONES:
        from napari_posetrack.core.models.dpk import build_dpk_backbone

        return build_dpk_backbone(config, in_channels)
    raise ConfigError(f"model.backbone: unknown backbone {name!r}")


def build_model(config: TrainingConfig, skeleton: Any, in_channels: int | None = None) -> PoseModel:
    """Build the model ``config`` describes for ``skeleton``.

    Parameters
    ----------
    config
        A training config; its ``model.pipeline`` picks the heads (``topdown`` must be split with
        :func:`~napari_posetrack.core.config.topdown_configs` first).
    skeleton
        A :class:`~napari_posetrack.core.labels.Skeleton` (node count; edges for bottom-up PAFs and
        posture graphs).
    in_channels
        Image channels; default 3 when ``config.data.channels == "rgb"``, else 1.
    """
    config.validate(skeleton, check_paths=False)
    pipeline = config.model.pipeline
    if pipeline == "topdown":
        raise ConfigError(
            "model.pipeline: 'topdown' trains two models; split it with topdown_configs() first"
        )
    backbone = build_backbone(config, input_channels(config, in_channels))
    neck = build_neck(config, backbone.out_channels, readable_strides(config))
    feats = neck.out_channels
    n_nodes = len(skeleton.nodes)
    heads: dict[str, Head] = {}
    levels: dict[str, list[int]] = {}
    for name, h in head_configs(config).items():
        stride = h.output_stride
        read, steps = head_inputs(config, name)[stride]
        kwargs: dict[str, Any] = {"upsample_steps": steps}
        if h.levels and steps:
            kwargs["upsample_channels"] = feats[read]  # the other levels share the 1x1 convolution
        if name == "centroids":
            heads[name] = CentroidHead(feats[read], stride, **kwargs)
        elif name == "pafs":
            heads[name] = PAFHead(len(skeleton.edges), feats[read], stride, **kwargs)
        elif name == "class_maps":
            if len(h.classes) < 2:
                raise ConfigError(
                    "model.heads.class_maps.classes: the identity model's classes are not known yet; they are "
                    "the labels' track names, filled in by training (give at least two)"
                )
            heads[name] = ClassMapHead(len(h.classes), feats[read], stride, **kwargs)
        else:
            extra = posture_graph_channels(skeleton) if getattr(h, "posture_graph", False) else 0
            cls = CenteredInstanceHead if pipeline == "centered_instance" else ConfidenceMapHead
            heads[name] = cls(n_nodes, feats[read], stride, extra_channels=extra, **kwargs)
        if h.levels:
            levels[name] = head_strides(h)
    class_head = class_head_config(config)
    identity = class_head is not None or class_maps_config(config) is not None
    if identity and config.model.backbone == "unet" and config.optimization.initialization == "random":
        _signal_preserving_init(backbone)
    if class_head is not None:
        if len(class_head.classes) < 2:
            raise ConfigError(
                "model.heads.class_vectors.classes: the identity model's classes are not known yet; they are "
                "the labels' track names, filled in by training (give at least two)"
            )
        deepest = max(feats)
        heads["class_vectors"] = ClassVectorHead(
            len(class_head.classes), feats[deepest], deepest,
            num_fc_layers=class_head.num_fc_layers, num_fc_units=class_head.num_fc_units,
        )
    model = PoseModel(backbone, neck, heads, levels)
    model.pipeline = pipeline
    return model


def _signal_preserving_init(module: nn.Module) -> None:
    """He-normal convolution weights and zero biases (as Keras-trained SLEAP models start).

    Applied to a UNet under an identity head (top-down class vectors or bottom-up class maps). With
    torch's default initialisation a UNet's deepest features are driven by the biases and barely
    depend on the image (their spread across crops is about 1e-4 of their size): the pose heads do
    not mind, the skip connections carry the detail, but an identity head that reads the deepest
    features sees the same vector for every animal and cannot learn.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


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
