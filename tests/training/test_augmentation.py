"""Augmentation: images and keypoints warped by the same matrices, symmetric flips, intensity changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_posetrack.core.config import AugmentationConfig
from napari_posetrack.core.training.augmentation import (
    affine_matrices,
    augment,
    photometric,
    random_affine,
    warp_images,
    warp_points,
)
from napari_posetrack.core.training.targets import confidence_maps

NAN = float("nan")

STRONG = AugmentationConfig(
    rotation_probability=1.0,
    rotation_min_angle=-180.0,
    rotation_max_angle=180.0,
    scale_probability=1.0,
    scale_min=0.8,
    scale_max=1.25,
    translate_probability=1.0,
    translate_min=-6.0,
    translate_max=6.0,
    flip_probability=0.5,
)


def test_inverse_warp_returns_keypoints():
    g = torch.Generator().manual_seed(1)
    matrices, flipped = random_affine(16, (96, 128), STRONG, g)
    assert (
        matrices.shape == (16, 3, 3) and flipped.dtype == torch.bool and flipped.any() and not flipped.all()
    )
    points = torch.rand(16, 3, 5, 2, generator=g) * torch.tensor([128.0, 96.0])
    points[0, 1, 2] = NAN
    there = warp_points(points, matrices)
    back = warp_points(there, torch.linalg.inv(matrices))
    ok = ~torch.isnan(points)
    assert torch.isnan(back[0, 1, 2]).all()
    assert float((back[ok] - points[ok]).abs().max()) < 0.1
    assert float((there[ok] - points[ok]).abs().max()) > 5  # they did move


def _spot_peak(image: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted centre of a single bright spot."""
    h, w = image.shape
    weights = image.clamp_min(0).double()
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    total = weights.sum()
    return float((weights * xs).sum() / total), float((weights * ys).sum() / total)


def test_warped_spot_lands_on_warped_keypoint():
    g = torch.Generator().manual_seed(3)
    b, h, w = 12, 80, 96
    keypoints = torch.stack(
        [30 + 30 * torch.rand(b, generator=g), 25 + 25 * torch.rand(b, generator=g)], dim=-1
    )
    points = keypoints.view(b, 1, 1, 2)
    images = confidence_maps(points, (h, w), 1, sigma=2.0)  # (B, 1, H, W) spot of height 1
    warped, moved = augment(images, points, STRONG, flip_permutation=None, generator=g)
    assert warped.shape == images.shape
    for i in range(b):
        x, y = _spot_peak(warped[i, 0])
        assert abs(x - float(moved[i, 0, 0, 0])) < 1.0 and abs(y - float(moved[i, 0, 0, 1])) < 1.0
        row, col = divmod(int(warped[i, 0].argmax()), w)
        assert math.hypot(col - float(moved[i, 0, 0, 0]), row - float(moved[i, 0, 0, 1])) < 1.0


def test_pure_rotation_and_flip_matrices():
    size = (64, 64)  # centre at (31.5, 31.5)
    m = affine_matrices(size, torch.tensor([90.0]), torch.ones(1), torch.zeros(1, 2), torch.tensor([False]))
    p = warp_points(torch.tensor([[[[41.5, 31.5]]]]), m)
    assert torch.allclose(p, torch.tensor([[[[31.5, 41.5]]]]), atol=1e-4)
    flip = affine_matrices(size, torch.zeros(1), torch.ones(1), torch.zeros(1, 2), torch.tensor([True]))
    assert torch.allclose(
        warp_points(torch.tensor([[[[10.0, 20.0]]]]), flip), torch.tensor([[[[53.0, 20.0]]]])
    )
    image = torch.rand(1, 1, 64, 64)
    assert torch.allclose(warp_images(image, flip), image.flip(-1), atol=1e-5)
    vflip = affine_matrices(
        size, torch.zeros(1), torch.ones(1), torch.zeros(1, 2), torch.tensor([True]), "vertical"
    )
    assert torch.allclose(warp_images(image, vflip), image.flip(-2), atol=1e-5)


@pytest.mark.parametrize("direction", ["horizontal", "vertical"])
def test_flip_swaps_symmetric_nodes(direction):
    cfg = AugmentationConfig(rotation_probability=0.0, flip_probability=1.0, flip_direction=direction)
    # nodes: head, wingL, wingR; wingL sits on the left (small x) and above (small y)
    points = torch.tensor([[[[32.0, 10.0], [20.0, 30.0], [44.0, 40.0]]]])
    perm = np.array([0, 2, 1])
    images = torch.zeros(1, 1, 64, 64)
    _, flipped = augment(images, points, cfg, flip_permutation=perm)
    if direction == "horizontal":
        mirrored = torch.tensor([[31.0, 10.0], [43.0, 30.0], [19.0, 40.0]])
    else:
        mirrored = torch.tensor([[32.0, 53.0], [20.0, 33.0], [44.0, 23.0]])
    # after the mirror the old right wing is the new left one: nodes 1 and 2 trade places
    assert torch.allclose(flipped[0, 0], mirrored[[0, 2, 1]], atol=1e-4)
    _, unswapped = augment(images, points, cfg, flip_permutation=None)
    assert torch.allclose(unswapped[0, 0], mirrored, atol=1e-4)
    _, as_tensor = augment(images, points, cfg, flip_permutation=torch.as_tensor(perm))
    assert torch.equal(as_tensor, flipped)


def test_real_fly_skeleton_flip(data):
    from napari_posetrack.core.io.skeleton_json import load_skeleton_json

    skeleton = load_skeleton_json(data / "skeletons" / "flies13.json")
    perm = skeleton.flip_permutation()
    g = torch.Generator().manual_seed(0)
    points = torch.rand(4, 2, skeleton.n_nodes, 2, generator=g) * 60
    cfg = AugmentationConfig(rotation_probability=0.0, flip_probability=1.0)
    _, out = augment(torch.zeros(4, 1, 64, 64), points, cfg, flip_permutation=perm, generator=g)
    wing_l, wing_r = skeleton.node_index("wingL1"), skeleton.node_index("wingR1")
    assert torch.allclose(out[..., wing_l, 0], 63 - points[..., wing_r, 0], atol=1e-4)
    assert torch.allclose(out[..., wing_l, 1], points[..., wing_r, 1], atol=1e-4)
    head = skeleton.node_index("head1")
    assert torch.allclose(out[..., head, 0], 63 - points[..., head, 0], atol=1e-4)


def test_photometric_and_probabilities():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(32, 1, 16, 16, generator=g) * 0.5 + 0.25
    points = torch.rand(32, 1, 2, 2, generator=g) * 16
    nothing = AugmentationConfig(rotation_probability=0.0)
    same_images, same_points = augment(images, points, nothing, generator=g)
    assert torch.equal(same_images, images) and torch.equal(same_points, points)
    bright = AugmentationConfig(brightness_probability=1.0, brightness_min=10.0, brightness_max=20.0)
    out = photometric(images, bright, g)
    shift = (out - images).mean(dim=(1, 2, 3)) * 255
    assert torch.all(shift > 10 - 1e-3) and torch.all(shift < 20 + 1e-3)
    half = AugmentationConfig(contrast_probability=0.5, contrast_min_gamma=2.0, contrast_max_gamma=2.0)
    out = photometric(images, half, g)
    changed = ~torch.isclose(out, images).all(dim=(1, 2, 3))
    assert 4 < int(changed.sum()) < 28
    assert torch.allclose(out[changed], images[changed] ** 2)
    noisy = AugmentationConfig(
        uniform_noise_probability=1.0,
        uniform_noise_max=255.0,
        gaussian_noise_probability=1.0,
        gaussian_noise_std=50.0,
    )
    out = photometric(images, noisy, g)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and not torch.allclose(out, images)


def test_reproducible_with_generator():
    images = torch.rand(4, 1, 32, 32)
    points = torch.rand(4, 2, 3, 2) * 32
    a = augment(images, points, STRONG, generator=torch.Generator().manual_seed(7))
    b = augment(images, points, STRONG, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
