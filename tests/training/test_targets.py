"""Training targets: confidence maps, part affinity fields, centroids, instance crops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_posetrack.core.config import AugmentationConfig, TrainingConfig
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import build_model
from napari_posetrack.core.training.targets import (
    auto_crop_size,
    centroid_maps,
    confidence_maps,
    crop_instances,
    instance_centroids,
    model_targets,
    part_affinity_fields,
)

NAN = float("nan")


def refine_peak(cmap: torch.Tensor, row: int, col: int, stride: int) -> tuple[float, float]:
    """Sub-cell peak position by a log-parabola fit (exact for a Gaussian) around cell (row, col)."""
    logs = torch.log(cmap.double().clamp_min(1e-300))

    def offset(lm: float, l0: float, lp: float) -> float:
        return 0.5 * (lm - lp) / (lm - 2 * l0 + lp)

    dx = offset(logs[row, col - 1], logs[row, col], logs[row, col + 1])
    dy = offset(logs[row - 1, col], logs[row, col], logs[row + 1, col])
    return (col + float(dx)) * stride, (row + float(dy)) * stride


def test_peak_at_keypoint_sub_grid():
    points = torch.tensor([[[[21.3, 40.7], [50.0, 10.25]]]])  # (1, 1, 2, 2)
    maps = confidence_maps(points, (32, 32), output_stride=2, sigma=2.0)
    assert maps.shape == (1, 2, 32, 32)
    for node in range(2):
        m = maps[0, node]
        row, col = divmod(int(m.argmax()), 32)
        x, y = refine_peak(m, row, col, 2)
        assert x == pytest.approx(float(points[0, 0, node, 0]), abs=1e-3)
        assert y == pytest.approx(float(points[0, 0, node, 1]), abs=1e-3)
        assert float(m.max()) <= 1.0
    # a keypoint exactly on the grid has value 1 there
    assert float(maps[0, 1, 5, 25]) == pytest.approx(math.exp(-(0.25**2) / 8), rel=1e-6)


def test_missing_and_invisible_nodes_draw_nothing():
    points = torch.tensor([[[[NAN, NAN], [10.0, 10.0]], [[NAN, 5.0], [32.0, 32.0]]]])
    maps = confidence_maps(points, (16, 16), 4, 3.0)
    assert torch.all(maps[0, 0] == 0)
    visible = torch.tensor([[[True, False], [True, True]]])
    maps = confidence_maps(points, (16, 16), 4, 3.0, visible=visible)
    assert float(maps[0, 1].max()) == pytest.approx(1.0)
    assert float(maps[0, 1, 10 // 4, 10 // 4]) < 0.1  # the hidden node of instance 0
    assert confidence_maps(torch.zeros((2, 0, 3, 2)), (8, 8), 2, 1.0).shape == (2, 3, 8, 8)


def test_instances_combine_by_max():
    one = torch.tensor([[[[20.0, 20.0]]]])
    two = torch.tensor([[[[20.0, 20.0]], [[24.0, 20.0]]]])
    m1 = confidence_maps(one, (32, 32), 1, 2.0)
    m2 = confidence_maps(two, (32, 32), 1, 2.0)
    assert float(m2.max()) == pytest.approx(1.0)
    assert torch.all(m2 >= m1)
    assert float(m2[0, 0, 20, 22]) == pytest.approx(math.exp(-4 / 8))


def test_paf_unit_vectors_along_edges():
    # edge 0 -> 1 horizontal, edge 1 -> 2 diagonal
    points = torch.tensor([[[[8.0, 32.0], [56.0, 32.0], [88.0, 64.0]]]])
    edges = [(0, 1), (1, 2)]
    pafs = part_affinity_fields(points, edges, (32, 32), output_stride=4, sigma=4.0)
    assert pafs.shape == (1, 4, 32, 32)
    on_edge0 = pafs[0, 0:2, 8, 8]  # (x=32, y=32): on the segment
    assert torch.allclose(on_edge0, torch.tensor([1.0, 0.0]), atol=1e-6)
    on_edge1 = pafs[0, 2:4, 12, 18]  # (x=72, y=48): on the diagonal segment
    assert torch.allclose(on_edge1, torch.tensor([1.0, 1.0]) / math.sqrt(2), atol=1e-6)
    # weight falls with the distance to the segment, and the direction stays along the edge
    off = pafs[0, 0:2, 10, 8]  # 8 px below the segment
    assert float(off[0]) == pytest.approx(math.exp(-64 / 32), rel=1e-5) and float(off[1]) == 0.0
    beyond = pafs[0, 0:2, 8, 18]  # (72, 32): 16 px past the end of the segment
    assert float(beyond.norm()) == pytest.approx(math.exp(-256 / 32), rel=1e-4)
    norms = pafs[0].view(2, 2, 32, 32).norm(dim=1)
    assert float(norms.max()) <= 1.0 + 1e-6


def test_paf_overlaps_average_and_missing_nodes():
    same = torch.tensor([[[[0.0, 16.0], [60.0, 16.0]], [[0.0, 17.0], [60.0, 17.0]]]])
    pafs = part_affinity_fields(same, [(0, 1)], (16, 16), 4, 4.0)
    # both instances point the same way: the average is still (about) a unit vector, not twice one
    assert float(pafs[0, 0, 4, 8]) == pytest.approx(0.5 * (1 + math.exp(-1 / 32)), rel=1e-5)
    missing = torch.tensor([[[[NAN, NAN], [60.0, 16.0]]]])
    assert torch.all(part_affinity_fields(missing, [(0, 1)], (16, 16), 4, 4.0) == 0)


def test_centroids_anchor_or_mean():
    points = torch.tensor(
        [
            [
                [[0.0, 0.0], [10.0, 20.0], [NAN, NAN]],
                [[NAN, NAN], [4.0, 6.0], [8.0, 10.0]],
                [[NAN, NAN], [NAN, NAN], [NAN, NAN]],
            ]
        ]
    )
    mean = instance_centroids(points)
    assert torch.allclose(mean[0, 0], torch.tensor([5.0, 10.0]))
    assert torch.allclose(mean[0, 1], torch.tensor([6.0, 8.0]))
    assert torch.isnan(mean[0, 2]).all()
    anchored = instance_centroids(points, anchor=0)
    assert torch.allclose(anchored[0, 0], torch.tensor([0.0, 0.0]))
    assert torch.allclose(anchored[0, 1], torch.tensor([6.0, 8.0]))  # anchor missing: mean
    cmap = centroid_maps(points, (16, 16), 2, 2.0)
    assert cmap.shape == (1, 1, 16, 16)
    # (5, 10) is half a cell from column 2; (6, 8) sits on cell (4, 3)
    assert float(cmap[0, 0, 5, 2]) == pytest.approx(math.exp(-1 / 8)) and float(
        cmap[0, 0, 4, 3]
    ) == pytest.approx(1.0)


def test_crop_instances_shifts_coordinates():
    images = torch.arange(2 * 3 * 40 * 50, dtype=torch.float32).reshape(2, 3, 40, 50)
    points = torch.full((2, 2, 2, 2), NAN)
    points[0, 0] = torch.tensor([[20.2, 10.6], [25.0, 14.0]])
    points[1, 1] = torch.tensor([[2.0, 38.0], [6.0, 35.0]])
    centers = instance_centroids(points, anchor=0)
    crops = crop_instances(images, points, centers, 16)
    assert crops.images.shape == (2, 3, 16, 16)
    assert crops.sample.tolist() == [0, 1] and crops.instance.tolist() == [0, 1]
    # the centre pixel of the crop is the rounded anchor
    assert torch.equal(crops.images[0, :, 8, 8], images[0, :, 11, 20])
    assert torch.allclose(crops.points[0, 0], torch.tensor([8.2, 7.6]))
    assert torch.allclose(crops.points[0] + crops.offsets[0], points[0, 0])
    # second crop hangs over the bottom-left corner: zero outside the image
    assert torch.equal(crops.offsets[1], torch.tensor([-6.0, 30.0]))
    assert torch.all(crops.images[1, :, :, :6] == 0) and torch.all(crops.images[1, :, 10:, :] == 0)
    assert torch.equal(crops.images[1, :, 0, 6:], images[1, :, 30, 0:10])


def test_auto_crop_size():
    points = np.array(
        [[[10.0, 10.0], [50.0, 40.0], [np.nan, np.nan]], [[0.0, 0.0], [20.0, 20.0], [5.0, 5.0]]]
    )
    assert auto_crop_size(points, 16, padding=8) == 64  # 40 + 16 -> 64
    rotating = AugmentationConfig(rotation_probability=1.0, rotation_min_angle=-180, rotation_max_angle=180)
    assert auto_crop_size(points, 16, padding=8, augmentation=rotating) == 80  # 50 (diagonal) + 16
    assert auto_crop_size(np.full((1, 3, 2), np.nan), 32, padding=0) == 32


@pytest.mark.parametrize("pipeline", ["single_instance", "centroid", "centered_instance", "bottomup"])
def test_model_targets_match_model_outputs(pipeline):
    skeleton = Skeleton(["a", "b", "c"], [(0, 1), (1, 2)])
    cfg = TrainingConfig()
    cfg.model.pipeline = pipeline
    cfg.model.unet.filters = 4
    model = build_model(cfg, skeleton)
    points = torch.tensor([[[[10.0, 12.0], [20.0, 30.0], [NAN, NAN]]]]).repeat(2, 1, 1, 1)
    with torch.no_grad():
        outputs = model(torch.rand(2, 1, 64, 48))
    targets = model_targets(cfg, points, (64, 48), skeleton.edges, anchor=None)
    assert set(targets) == set(outputs)
    for name in outputs:
        assert targets[name].shape == outputs[name].shape


def test_real_fly_labels(flies):
    """Peaks of rendered maps sit on the real (0.25 px grid) fly keypoints of clip.slp."""
    from napari_posetrack.core.io.slp import load_slp

    labels = load_slp(flies / "clip.slp")
    table = labels.instances
    rows = np.flatnonzero(table.frame < 3)
    frames = table.frame[rows]
    points = np.full((3, 2, labels.n_nodes, 2), np.nan, dtype=np.float32)
    for f in range(3):
        pts = table.points[rows[frames == f]].copy()
        pts[~table.visible[rows[frames == f]]] = np.nan
        points[f, : len(pts)] = pts
    scaled = torch.from_numpy(points) * 0.5  # input scaling 0.5: 512 x 512 network input
    stride = 4
    maps = confidence_maps(scaled, (128, 128), stride, sigma=2.5)
    checked = 0
    for f in range(3):
        for i in range(2):
            for n in range(labels.n_nodes):
                x, y = scaled[f, i, n].tolist()
                if math.isnan(x):
                    continue
                row, col = round(y / stride), round(x / stride)
                if not (1 <= row < 127 and 1 <= col < 127):
                    continue
                rx, ry = refine_peak(maps[f, n], row, col, stride)
                # the other fly is far (> 70 px), so the fitted peak is this keypoint
                assert abs(rx - x) < 0.05 and abs(ry - y) < 0.05
                checked += 1
    assert checked > 60
    pafs = part_affinity_fields(scaled, labels.skeleton.edges, (64, 64), 8, sigma=5.0)
    norms = pafs.view(3, -1, 2, 64, 64).norm(dim=2)
    assert float(norms.max()) == pytest.approx(1.0, abs=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_targets_and_augmentation_on_cuda_match_cpu():
    from napari_posetrack.core.config import AugmentationConfig
    from napari_posetrack.core.training.augmentation import augment

    points = torch.tensor([[[[10.0, 12.0], [20.0, 30.0], [NAN, NAN]]]]).repeat(3, 2, 1, 1)
    points[:, 1] += 17.0
    edges = [(0, 1), (1, 2)]
    for fn, args in (
        (confidence_maps, ((32, 32), 2, 2.0)),
        (part_affinity_fields, (edges, (16, 16), 4, 3.0)),
    ):
        cpu = fn(points, *args)
        gpu = fn(points.cuda(), *args)
        assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-5)
    cfg = AugmentationConfig(
        rotation_min_angle=-180, rotation_max_angle=180, flip_probability=0.5, contrast_probability=0.5
    )
    images = torch.rand(3, 1, 64, 64, device="cuda")
    out, moved = augment(
        images, points.cuda(), cfg, torch.tensor([1, 0, 2]), torch.Generator(device="cuda").manual_seed(0)
    )
    assert out.is_cuda and moved.is_cuda and out.shape == images.shape
    crops = crop_instances(images, moved, instance_centroids(moved), 32)
    assert crops.images.is_cuda and crops.images.shape[1:] == (1, 32, 32)
