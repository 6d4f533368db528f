"""What each model type does with a device batch: augment, (crop), render targets, measure errors.

A :class:`TrainingPipeline` receives the batch from
:class:`~napari_posetrack.core.training.data.FrameBatchDataset` already on the device (images float
``(B, C, H, W)`` in [0, 1], keypoints ``(B, M, N, 2)`` in scaled pixels, NaN = missing) and returns the
network input, the targets of every head (:func:`~napari_posetrack.core.training.targets.model_targets`)
and the keypoints the validation pixel error is measured against. Frames of one batch may have been
scaled differently (letterboxed images of different sizes); the batch's per-sample ``scale`` turns
errors back into original-video pixels.
"""

from __future__ import annotations

from typing import Any

import torch

from napari_posetrack.core.config import (
    CLASS_HEAD,
    CLASS_MAPS_HEAD,
    TrainingConfig,
    class_head_config,
    class_maps_config,
    head_configs,
)
from napari_posetrack.core.config.model import n_stacks
from napari_posetrack.core.labels import Skeleton


class TrainingPipeline:
    """Batch preparation and validation decoding for one ``model.pipeline``.

    Parameters
    ----------
    config
        The resolved training config (``data.crop_size`` set for ``centered_instance``).
    skeleton
        Node count, edges (PAFs), symmetries (flip augmentation), anchor part.
    """

    def __init__(self, config: TrainingConfig, skeleton: Skeleton) -> None:
        self.config = config
        self.name = config.model.pipeline
        self.skeleton = skeleton
        self.heads = head_configs(config)
        self.loss_weights = {name: float(h.loss_weight) for name, h in self.heads.items()}
        self.confmap_head = "centroids" if self.name == "centroid" else "confmaps"
        self.per_instance = self.name == "centered_instance"
        self.anchor = skeleton.node_index(config.data.anchor_part) if config.data.anchor_part else None
        self.edges = skeleton.edge_array()
        self.flip_permutation = torch.as_tensor(skeleton.flip_permutation(), dtype=torch.long)
        self.input_scaling = float(config.data.input_scaling)
        if self.per_instance and not config.data.crop_size:
            raise ValueError("centered_instance training needs data.crop_size (resolved automatically by train())")
        self.class_head = class_head_config(config) if self.per_instance else None
        """The identity head's config (top-down ID model), else ``None``."""
        self.class_keys: list[str] = []
        if self.class_head is not None:
            self.loss_weights[CLASS_HEAD] = float(self.class_head.loss_weight)
            stacks = n_stacks(config)
            self.class_keys = [CLASS_HEAD if i == stacks - 1 else f"{CLASS_HEAD}#{i}" for i in range(stacks)]
        self.class_maps = class_maps_config(config)
        """The class-map head's config (bottom-up ID model), else ``None``."""

    def _augment(self, images: torch.Tensor, points: torch.Tensor, generator: Any) -> tuple[torch.Tensor, torch.Tensor]:
        from napari_posetrack.core.training.augmentation import augment

        aug = self.config.optimization.augmentation
        if not (aug.geometric or aug.photometric):
            return images, points
        perm = self.flip_permutation.to(images.device)
        return augment(images, points, aug, perm, generator)

    def prepare(
        self, batch: dict[str, torch.Tensor], *, training: bool, generator: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """``(inputs, targets, keypoints)`` for a device batch; augmentation only when ``training``.

        With an identity head the targets also hold the class of each crop's animal (int64, ``-1`` =
        no track) under ``class_vectors`` (and ``class_vectors#i`` for intermediate stacks). A bottom-up
        identity model's class maps are drawn from the batch's ``classes`` (one per instance slot).
        """
        from napari_posetrack.core.training.targets import crop_instances, instance_centroids, model_targets

        images, points = batch["image"], batch["points"]
        sample = None
        if self.per_instance:
            crop = int(self.config.data.crop_size)
            if training:
                # augment a window around the instance, not the whole frame: a window large enough that
                # the final crop, rotated/scaled/shifted about the window's centre, stays inside it
                window = self._window_size(crop)
                pre = self._crop_sampled(images, points, batch["instance"], window)
                images, points = self._augment(pre.images, pre.points[:, None], generator)
                centers = instance_centroids(points, self.anchor)
                crops = crop_instances(images, points, centers, crop)
                sample = pre.sample[crops.sample]
            else:
                crops = self._crop_sampled(images, points, batch["instance"], crop)
                sample = crops.sample
            images, points = crops.images, crops.points[:, None]
        elif training:
            images, points = self._augment(images, points, generator)
        size = (int(images.shape[-2]), int(images.shape[-1]))
        classes = None
        if self.class_maps is not None:
            if "classes" not in batch:
                raise ValueError("bottom-up identity training needs each instance's class (FrameCache.classes)")
            classes = batch["classes"]
        targets = model_targets(self.config, points, size, self.edges, self.anchor, classes=classes)
        if self.class_head is not None:
            if "class" not in batch:
                raise ValueError("identity training needs each sample's class (FrameCache.classes)")
            target = batch["class"][sample]
            for key in self.class_keys:
                targets[key] = target
        return images, targets, points

    def class_counts(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> tuple[int, int]:
        """``(correct, counted)`` identity predictions of a batch (crops without a class are not counted).

        For a bottom-up identity model: the output cells near labelled body parts of animals with a
        class (target class map above one half), right when the strongest class map there is the
        animal's.
        """
        if self.class_maps is not None and CLASS_MAPS_HEAD in outputs:
            target = targets[CLASS_MAPS_HEAD]
            peak, truth = target.max(dim=1)
            near = peak > 0.5
            guess = outputs[CLASS_MAPS_HEAD].argmax(dim=1)
            return int((guess[near] == truth[near]).sum()), int(near.sum())
        if self.class_head is None or CLASS_HEAD not in outputs:
            return 0, 0
        truth = targets[CLASS_HEAD]
        known = truth >= 0
        guess = outputs[CLASS_HEAD].argmax(dim=-1)
        return int((guess[known] == truth[known]).sum()), int(known.sum())

    def _crop_sampled(self, images: torch.Tensor, points: torch.Tensor, instance: torch.Tensor, size: int) -> Any:
        """One crop per sample around the instance the sampler picked (the others give no crop)."""
        from napari_posetrack.core.training.targets import crop_instances, instance_centroids

        centers = instance_centroids(points, self.anchor)  # (B, M, 2)
        keep = torch.zeros(centers.shape[:2], dtype=torch.bool, device=centers.device)
        keep[torch.arange(len(keep), device=keep.device), instance] = True
        centers = torch.where(keep[..., None], centers, torch.full_like(centers, float("nan")))
        return crop_instances(images, points, centers, size)

    def _window_size(self, crop: int) -> int:
        aug = self.config.optimization.augmentation
        factor = 1.0
        if aug.rotation_probability > 0:
            factor *= 2**0.5
        if aug.scale_probability > 0:
            factor /= min(aug.scale_min, 1.0)
        shift = 2 * max(abs(aug.translate_min), abs(aug.translate_max)) if aug.translate_probability > 0 else 0
        return int(2 * ((crop * factor + shift) // 2 + 1))

    def pixel_errors(
        self, outputs: dict[str, torch.Tensor], keypoints: torch.Tensor, scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Distances between argmax peaks and the nearest ground truth, in original-video pixels.

        Single instance / centered instance: one peak per node against that node. Centroid: the
        strongest centroid peak against the nearest instance centre. Bottom-up: each node's strongest
        peak against that node of the nearest instance. Missing ground truth is skipped.

        ``scale`` ``(B, 2)`` is each sample's ``x, y`` input pixels per original pixel (the batch's
        ``scale``); by default ``data.input_scaling``.
        """
        head = self.confmap_head
        maps = outputs[head].float()
        stride = self.heads[head].output_stride
        b, c, h, w = maps.shape
        flat = maps.reshape(b, c, h * w).argmax(dim=-1)
        peaks = torch.stack([(flat % w).float(), torch.div(flat, w, rounding_mode="floor").float()], dim=-1) * stride
        if self.name == "centroid":
            from napari_posetrack.core.training.targets import instance_centroids

            truth = instance_centroids(keypoints, self.anchor)[:, :, None, :]  # (B, M, 1, 2)
        else:
            truth = keypoints  # (B, M, N, 2)
        if scale is None:
            scale = torch.full((b, 2), self.input_scaling, device=maps.device)
        # per axis and per sample: letterboxed images of different sizes have different scales
        per_sample = scale.to(device=maps.device, dtype=torch.float32)[:, None, None, :]
        d = torch.linalg.vector_norm((truth - peaks[:, None]) / per_sample, dim=-1)  # (B, M, C)
        d = torch.where(torch.isfinite(d), d, torch.full_like(d, float("inf")))
        nearest = d.min(dim=1).values  # (B, C)
        return nearest[torch.isfinite(nearest)]


def make_pipeline(config: TrainingConfig, skeleton: Skeleton) -> TrainingPipeline:
    """The training pipeline of ``config.model.pipeline``."""
    return TrainingPipeline(config, skeleton)
