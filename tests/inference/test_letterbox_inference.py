"""Letterboxed models at inference: points come back in each frame's own pixels, resize on or off.

Stand-in networks draw their confidence maps at chosen network-input positions, so the expected
original-pixel coordinates follow from the letterbox arithmetic alone (written out here, apart from
the code under test) and are checked to a thousandth of a pixel. A grey-level oracle on drawn frames
then checks the whole path, real resizing included, more loosely.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.inference.pipelines import (
    BottomUpPipeline,
    InferenceOptions,
    LoadedModel,
    SingleInstancePipeline,
    TopDownPipeline,
)
from napari_posetrack.core.labels import Skeleton

SKELETON = Skeleton(["head", "thorax", "tail"], [("thorax", "head"), ("thorax", "tail")], name="toy")
INPUT_SIZE = (256, 256)
MAX_STRIDE = 16
EXACT = InferenceOptions(peak_threshold=0.3, refinement="none", overlap="none")


def expected_original(q: np.ndarray, height: int, width: int, resize: bool) -> np.ndarray:
    """Network-input ``x, y`` -> frame pixels, by the letterbox arithmetic (pixel centres)."""
    if not resize:
        return q  # own resolution: only padded at the bottom and right
    factor = min(INPUT_SIZE[0] / height, INPUT_SIZE[1] / width)
    h, w = round(height * factor), round(width * factor)
    top, left = (INPUT_SIZE[0] - h) // 2, (INPUT_SIZE[1] - w) // 2
    return np.stack([(q[..., 0] - left + 0.5) * width / w - 0.5, (q[..., 1] - top + 0.5) * height / h - 0.5], -1)


def gaussians(positions: torch.Tensor, shape: tuple[int, int], stride: int, sigma: float = 1.5) -> torch.Tensor:
    """``(C, h, w)`` maps with a unit Gaussian at each ``positions[c]`` (``x, y`` input pixels)."""
    h, w = shape[0] // stride, shape[1] // stride
    ys, xs = torch.meshgrid(torch.arange(h) * stride, torch.arange(w) * stride, indexing="ij")
    d2 = (xs[None] - positions[:, 0, None, None]) ** 2 + (ys[None] - positions[:, 1, None, None]) ** 2
    return torch.exp(-0.5 * d2 / (sigma * stride) ** 2)


class FixedMaps(nn.Module):
    """A network that ignores its input and draws peaks at fixed input pixels; records what it was fed.

    ``positions`` ``(C, 2)`` go to head ``head``; with ``pafs`` set, part affinity fields pointing along
    each edge of ``positions`` (constant over the frame) go to a ``pafs`` head of that stride.
    """

    def __init__(self, head: str, stride: int, positions: np.ndarray, pafs: int | None = None) -> None:
        super().__init__()
        self.head, self.stride, self.pafs, self.max_stride = head, stride, pafs, MAX_STRIDE
        self.positions = torch.as_tensor(positions, dtype=torch.float32)
        self.seen: list[tuple[int, ...]] = []

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(tuple(images.shape))
        shape = (int(images.shape[-2]), int(images.shape[-1]))
        maps = gaussians(self.positions, shape, self.stride)
        out = {self.head: maps.expand(len(images), *maps.shape)}
        if self.pafs is not None:
            fields = []
            for source, destination in SKELETON.edge_array():
                direction = self.positions[destination] - self.positions[source]
                direction = direction / direction.norm()
                fields.append(direction[:, None, None].expand(2, shape[0] // self.pafs, shape[1] // self.pafs))
            pafs = torch.cat(fields)
            out["pafs"] = pafs.expand(len(images), *pafs.shape)
        return out


def letterbox_config(pipeline: str, resize: bool = True) -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.pipeline = pipeline
    cfg.data.input_size = list(INPUT_SIZE)
    cfg.data.resize_input = resize
    cfg.data.channels = "grayscale"
    cfg.data.anchor_part = "thorax"
    cfg.model.heads.confmaps.sigma, cfg.model.heads.confmaps.output_stride = 3.0, 2
    cfg.model.heads.centroids.sigma, cfg.model.heads.centroids.output_stride = 3.0, 2
    cfg.model.heads.pafs.output_stride = 4
    return cfg


# frames of every shape: wider, taller, square, larger and smaller than the input size
FRAME_SIZES = [(300, 500), (480, 640), (1024, 1024), (500, 300), (100, 60)]
POSITIONS = np.array([[100.0, 120.0], [124.0, 128.0], [150.0, 140.0]])  # on the stride-2 grid, inside every frame


@pytest.mark.parametrize("resize", [True, False])
@pytest.mark.parametrize("size", FRAME_SIZES)
def test_single_instance_points_come_back_exactly(size, resize):
    height, width = size
    # at its own resolution a small frame is a small input: bring the peaks inside it (on the grid)
    positions = POSITIONS if resize else np.floor(POSITIONS * min(1.0, height / 160, width / 160) / 2) * 2
    net = FixedMaps("confmaps", 2, positions)
    model = LoadedModel(letterbox_config("single_instance", resize), SKELETON, net, torch.device("cpu"))
    frames = np.zeros((2, height, width, 1), dtype=np.uint8)
    results = SingleInstancePipeline(model, EXACT).predict(frames, [3, 4])
    padded = (-(-height // MAX_STRIDE) * MAX_STRIDE, -(-width // MAX_STRIDE) * MAX_STRIDE)
    assert net.seen == [(2, 1, *(INPUT_SIZE if resize else padded))]
    for r in results:
        np.testing.assert_allclose(r.points[0], expected_original(positions, height, width, resize), atol=1e-3)


@pytest.mark.parametrize("resize", [True, False])
def test_bottom_up_points_come_back_exactly(resize):
    height, width = 300, 500
    net = FixedMaps("confmaps", 2, POSITIONS, pafs=4)
    model = LoadedModel(letterbox_config("bottomup", resize), SKELETON, net, torch.device("cpu"))
    (r,) = BottomUpPipeline(model, EXACT).predict(np.zeros((1, height, width, 1), np.uint8), [0])
    assert r.points.shape == (1, 3, 2)
    np.testing.assert_allclose(r.points[0], expected_original(POSITIONS, height, width, resize), atol=1e-3)


@pytest.mark.parametrize("resize", [True, False])
@pytest.mark.parametrize("size", [(300, 500), (500, 300)])
def test_top_down_centroids_letterbox_and_crops_keep_their_scaling(size, resize):
    """The centroid model letterboxes; the crops come from the frame scaled by the centered model's 0.5."""
    height, width = size
    centre_in = np.array([[128.0, 128.0]])  # the centroid model's peak, in its input pixels
    in_crop = np.array([[10.0, 12.0], [16.0, 16.0], [22.0, 20.0]])  # the centered model's peaks (stride 2)
    centroid = LoadedModel(
        letterbox_config("centroid", resize), SKELETON, FixedMaps("centroids", 2, centre_in), torch.device("cpu")
    )
    centered_cfg = letterbox_config("centered_instance", resize)
    centered_cfg.data.input_scaling, centered_cfg.data.crop_size = 0.5, 32
    centered_net = FixedMaps("confmaps", 2, in_crop)
    centered = LoadedModel(centered_cfg, SKELETON, centered_net, torch.device("cpu"))
    (r,) = TopDownPipeline(centroid, centered, EXACT).predict(np.zeros((1, height, width, 1), np.uint8), [0])
    # the centered model saw a 32 px crop; its frame was the original scaled by 0.5, never letterboxed
    assert centered_net.seen == [(1, 1, 32, 32)]
    centre = expected_original(centre_in, height, width, resize)[0]
    crop_offset = np.floor(centre * 0.5 + 0.5) - 16
    np.testing.assert_allclose(r.points[0], (in_crop + crop_offset) / 0.5, atol=1e-3)


# --------------------------------------------------------------------------- drawn frames, real resizing


class DiscOracle(nn.Module):
    """Finds node ``n`` as the bright disc of colour channel ``n`` and draws the map a perfect model would.

    The disc's centre is its intensity-weighted centre: area resampling keeps it where it was.
    """

    max_stride = MAX_STRIDE

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = images.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        mass = images.sum(dim=(-2, -1)).clamp(min=1e-6)
        centres = torch.stack([(images * xs).sum(dim=(-2, -1)), (images * ys).sum(dim=(-2, -1))], -1) / mass[..., None]
        return {"confmaps": torch.stack([gaussians(c, (h, w), 2, sigma=1.5) for c in centres])}


def drawn(points: np.ndarray, size: tuple[int, int], radius: float) -> np.ndarray:
    """An RGB frame with node ``n`` of ``points`` as a white disc in channel ``n``."""
    rows, cols = np.mgrid[: size[0], : size[1]]
    image = np.zeros((*size, 3), dtype=np.uint8)
    for n, (x, y) in enumerate(points):
        image[(cols - x) ** 2 + (rows - y) ** 2 <= radius**2, n] = 255
    return image


@pytest.mark.parametrize("resize", [True, False])
def test_drawn_markers_come_back_to_their_pixels_in_frames_of_two_sizes(resize):
    cfg = letterbox_config("single_instance", resize)
    cfg.data.channels = "rgb"
    cfg.model.heads.confmaps.sigma = 3.0  # 1.5 grid cells, as the oracle draws
    model = LoadedModel(cfg, SKELETON, DiscOracle(), torch.device("cpu"))
    options = InferenceOptions(peak_threshold=0.3, refinement="gaussian", overlap="none")
    for size, truth in [((300, 500), [[120.3, 80.6], [250.0, 150.2], [400.7, 210.9]]),
                        ((500, 300), [[80.2, 120.5], [150.6, 250.1], [210.4, 400.8]])]:
        truth = np.asarray(truth)
        (r,) = SingleInstancePipeline(model, options).predict(drawn(truth, size, radius=9.0)[None], [0])
        # pixelated discs and the peak refinement cost ~0.1 px; mapping corners instead of pixel centres
        # would add half a pixel per halving of the frame
        assert np.abs(r.points[0] - truth).max() < 0.25
