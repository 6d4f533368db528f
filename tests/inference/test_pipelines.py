"""Inference pipelines recover keypoints exactly when the network is perfect.

An "oracle" network stands in for a trained one: it finds each node's dot by its grey level and
draws the Gaussian confidence map a perfect model would output. Any error in scaling, strides,
padding, cropping or peak refinement then shows up as a coordinate error.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.inference.pipelines import (
    InferenceOptions,
    LoadedModel,
    SingleInstancePipeline,
    TopDownPipeline,
)
from napari_posetrack.core.labels import Skeleton

GREY = np.array([80, 160, 240])  # node n is a dot of grey level GREY[n]
SKELETON = Skeleton(["head", "thorax", "tail"], [("thorax", "head"), ("thorax", "tail")], name="toy")


class OracleMaps(nn.Module):
    """Perfect confidence maps from dot images: one head, ``nodes`` channels (or the anchor for centroids)."""

    def __init__(self, head: str, stride: int, sigma: float, nodes: list[int], max_stride: int = 16) -> None:
        super().__init__()
        self.head, self.stride, self.sigma, self.nodes, self.max_stride = (
            head,
            stride,
            sigma,
            nodes,
            max_stride,
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        grey = images[:, :1] * 255.0
        masks = torch.cat([(torch.abs(grey - float(GREY[n])) < 20).float() for n in self.nodes], dim=1)
        r = int(4 * self.sigma)
        x = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (x / self.sigma) ** 2)
        c = masks.shape[1]
        maps = nn.functional.conv2d(masks, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, r), groups=c)
        maps = nn.functional.conv2d(maps, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(r, 0), groups=c)
        return {self.head: maps[..., :: self.stride, :: self.stride].clamp(max=1.0)}


def draw(instances: np.ndarray, shape=(96, 128), block: int = 1) -> np.ndarray:
    """A (H, W, 1) frame with each node of each instance as a ``block``-sized dot of its grey level."""
    img = np.zeros((*shape, 1), dtype=np.uint8)
    for inst in instances:
        for n, (x, y) in enumerate(inst.astype(int)):
            img[y : y + block, x : x + block] = GREY[n]
    return img


def config(pipeline: str, scaling: float = 1.0, crop: int | None = None) -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.pipeline = pipeline
    cfg.data.input_scaling = scaling
    cfg.data.channels = "grayscale"
    cfg.data.crop_size = crop
    cfg.model.heads.confmaps.sigma, cfg.model.heads.confmaps.output_stride = 4.0, 4
    cfg.model.heads.centroids.sigma, cfg.model.heads.centroids.output_stride = 3.0, 2
    return cfg


def test_single_instance_recovers_keypoints_exactly_with_input_scaling():
    truth = np.array([[[20.0, 30.0], [40.0, 34.0], [62.0, 50.0]]])
    frames = np.stack([draw(truth, block=2), draw(truth + [10, 6], block=2)])
    # 2x2 dots at even positions shrink to single full-intensity pixels at half scale
    model = LoadedModel(
        config("single_instance", scaling=0.5),
        SKELETON,
        OracleMaps("confmaps", 4, 4.0, [0, 1, 2]),
        torch.device("cpu"),
    )
    opts = InferenceOptions(peak_threshold=0.3, overlap="none")
    result = SingleInstancePipeline(model, opts).predict(frames, [7, 8])
    assert [r.frame for r in result] == [7, 8]
    for r, shift in zip(result, ([0, 0], [10, 6])):
        assert r.points.shape == (1, 3, 2)
        assert np.abs(r.points[0] - (truth[0] + shift)).max() < 0.1
        assert np.all(r.point_scores > 0.8) and 0.8 < r.scores[0] <= 1.0  # map values at the nearest cell


def test_single_instance_missing_node_is_nan():
    truth = np.array([[[20.0, 30.0], [40.0, 34.0], [62.0, 50.0]]])
    frame = draw(truth)
    frame[frame == GREY[2]] = 0
    model = LoadedModel(
        config("single_instance"), SKELETON, OracleMaps("confmaps", 4, 4.0, [0, 1, 2]), torch.device("cpu")
    )
    (r,) = SingleInstancePipeline(model, InferenceOptions(overlap="none")).predict(frame[None], [0])
    assert np.isnan(r.points[0, 2]).all() and np.isnan(r.point_scores[0, 2])
    assert np.abs(r.points[0, :2] - truth[0, :2]).max() < 0.1


def test_top_down_finds_every_animal_through_crops():
    truth = np.array(
        [
            [[20.0, 30.0], [30.0, 34.0], [40.0, 40.0]],
            [[90.0, 60.0], [100.0, 62.0], [110.0, 70.0]],
            [[60.0, 80.0], [50.0, 84.0], [42.0, 90.0]],  # near the bottom edge: crop runs off the frame
        ]
    )
    frames = np.stack([draw(truth), draw(truth[:1])])
    centroid_cfg = config("centroid")
    centroid_cfg.data.anchor_part = "thorax"
    centroid = LoadedModel(centroid_cfg, SKELETON, OracleMaps("centroids", 2, 3.0, [1]), torch.device("cpu"))
    centered = LoadedModel(
        config("centered_instance", crop=32),
        SKELETON,
        OracleMaps("confmaps", 4, 4.0, [0, 1, 2]),
        torch.device("cpu"),
    )
    result = TopDownPipeline(centroid, centered, InferenceOptions(overlap="oks")).predict(frames, [0, 1])
    assert len(result[0].scores) == 3 and len(result[1].scores) == 1
    found = result[0].points
    d = np.abs(found[:, None] - truth[None]).max(axis=(-1, -2))  # (found, truth)
    assert sorted(d.argmin(axis=1).tolist()) == [0, 1, 2]
    assert d.min(axis=1).max() < 0.1
    assert np.abs(result[1].points[0] - truth[0]).max() < 0.1


def test_max_instances_and_min_visible_nodes():
    truth = np.array(
        [[[20.0, 30.0], [30.0, 34.0], [40.0, 40.0]], [[90.0, 60.0], [100.0, 62.0], [110.0, 70.0]]]
    )
    centroid_cfg = config("centroid")
    centroid_cfg.data.anchor_part = "thorax"
    centroid = LoadedModel(centroid_cfg, SKELETON, OracleMaps("centroids", 2, 3.0, [1]), torch.device("cpu"))
    centered = LoadedModel(
        config("centered_instance", crop=32),
        SKELETON,
        OracleMaps("confmaps", 4, 4.0, [0, 1, 2]),
        torch.device("cpu"),
    )
    (r,) = TopDownPipeline(centroid, centered, InferenceOptions(max_instances=1)).predict(
        draw(truth)[None], [0]
    )
    assert len(r.scores) == 1
    frame = draw(truth)
    frame[frame == GREY[2]] = 0
    (r,) = TopDownPipeline(centroid, centered, InferenceOptions(min_visible_nodes=3)).predict(
        frame[None], [0]
    )
    assert len(r.scores) == 0


def test_strongest_centroids_are_kept_per_frame():
    from napari_posetrack.core.inference.pipelines import strongest_per_sample

    sample = torch.tensor([0, 0, 0, 1, 1, 2])
    values = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.8, 0.2])
    assert strongest_per_sample(sample, values, 2).tolist() == [1, 2, 3, 4, 5]
    assert strongest_per_sample(sample, values, 1).tolist() == [1, 4, 5]
