"""Batched augmentation on the training device: random affine warps and intensity changes.

Images are float tensors ``(B, C, H, W)`` with intensities in [0, 1]; keypoints are ``(B, I, N, 2)``
``x, y`` in the same pixels (pixel centres at integer coordinates), NaN = missing. The same 3x3
matrix moves an image and its keypoints, so labels stay on the body parts.

Noise and brightness amounts in :class:`~napari_posetrack.core.config.AugmentationConfig` are in 8-bit
units (0-255, as in SLEAP) and are divided by 255 here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from napari_posetrack.core.config import AugmentationConfig


def _rand(n: int | tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) samples drawn with ``generator`` (on its own device), returned on ``device``."""
    shape = (n,) if isinstance(n, int) else n
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def _uniform(
    n: int, lo: float, hi: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return lo + (hi - lo) * _rand(n, generator, device)


def _chosen(
    n: int, probability: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``(n,)`` bool: which samples get an augmentation applied with ``probability``."""
    return _rand(n, generator, device) < probability


def affine_matrices(
    image_size: tuple[int, int],
    angles: torch.Tensor,
    scales: torch.Tensor,
    translations: torch.Tensor,
    flips: torch.Tensor,
    flip_direction: str = "horizontal",
) -> torch.Tensor:
    """``(B, 3, 3)`` matrices mapping input pixel ``(x, y, 1)`` to output pixel coordinates.

    The warp is, about the image centre: flip (when ``flips``), scale, rotate by ``angles`` degrees, then
    shift by ``translations`` ``(B, 2)`` pixels.
    """
    device = angles.device
    h, w = int(image_size[0]), int(image_size[1])
    b = angles.shape[0]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    theta = angles.to(torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    s = scales.to(torch.float64)
    fx = torch.ones(b, dtype=torch.float64, device=device)
    fy = torch.ones(b, dtype=torch.float64, device=device)
    sign = torch.where(flips.to(device), -1.0, 1.0).to(torch.float64)
    if flip_direction == "vertical":
        fy = sign
    else:
        fx = sign
    # linear part A = R(theta) @ diag(s, s) @ diag(fx, fy)
    a00, a01 = cos * s * fx, -sin * s * fy
    a10, a11 = sin * s * fx, cos * s * fy
    t = translations.to(torch.float64)
    # x' = A (x - c) + c + t
    b0 = cx + t[:, 0] - (a00 * cx + a01 * cy)
    b1 = cy + t[:, 1] - (a10 * cx + a11 * cy)
    m = torch.zeros((b, 3, 3), dtype=torch.float64, device=device)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = a00, a01, b0
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = a10, a11, b1
    m[:, 2, 2] = 1.0
    return m.to(torch.float32)


def random_affine(
    batch_size: int,
    image_size: tuple[int, int],
    config: AugmentationConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one random affine per sample.

    Returns
    -------
    matrices
        ``(B, 3, 3)`` input-pixel -> output-pixel matrices (see :func:`affine_matrices`).
    flipped
        ``(B,)`` bool, the samples that were mirrored (their symmetric nodes must be swapped).
    """
    device = torch.device(device)
    n = int(batch_size)
    rot = _chosen(n, config.rotation_probability, generator, device)
    angles = torch.where(
        rot, _uniform(n, config.rotation_min_angle, config.rotation_max_angle, generator, device), 0.0
    )
    sc = _chosen(n, config.scale_probability, generator, device)
    scales = torch.where(sc, _uniform(n, config.scale_min, config.scale_max, generator, device), 1.0)
    tr = _chosen(n, config.translate_probability, generator, device)
    shift = config.translate_min + (config.translate_max - config.translate_min) * _rand(
        (n, 2), generator, device
    )
    translations = torch.where(tr[:, None], shift, 0.0)
    flipped = _chosen(n, config.flip_probability, generator, device)
    return affine_matrices(image_size, angles, scales, translations, flipped, config.flip_direction), flipped


def warp_points(points: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply ``(B, 3, 3)`` matrices to ``(B, ..., 2)`` points (NaN stays NaN)."""
    m = matrices.to(device=points.device, dtype=points.dtype)
    shape = points.shape
    flat = points.reshape(shape[0], -1, 2)
    out = flat @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    return out.reshape(shape)


def _normaliser(size: int) -> tuple[float, float]:
    """Pixel -> [-1, 1] (align_corners=False): ``x_n = a x + b``."""
    return 2.0 / size, 1.0 / size - 1.0


def warp_images(images: torch.Tensor, matrices: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Warp ``(B, C, H, W)`` images so that input pixel ``p`` lands on output pixel ``M p``.

    Areas that come from outside the image are zero.
    """
    _, _, h, w = images.shape
    ax, bx = _normaliser(w)
    ay, by = _normaliser(h)
    norm = torch.tensor(
        [[ax, 0.0, bx], [0.0, ay, by], [0.0, 0.0, 1.0]], dtype=torch.float64, device=images.device
    )
    inv = torch.linalg.inv(matrices.to(device=images.device, dtype=torch.float64))
    # grid_sample looks up, for each output location, where to read in the input (normalised coords)
    theta = norm @ inv @ torch.linalg.inv(norm)
    grid = F.affine_grid(theta[:, :2, :].to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


def swap_flipped_nodes(
    points: torch.Tensor, flipped: torch.Tensor, flip_permutation: np.ndarray | torch.Tensor | None
) -> torch.Tensor:
    """Reorder nodes of mirrored samples so a left part stays labelled "left" (``points`` is ``(B, I, N, 2)``)."""
    if flip_permutation is None:
        return points
    if isinstance(flip_permutation, torch.Tensor):
        perm = flip_permutation.to(device=points.device, dtype=torch.long)
    else:
        perm = torch.as_tensor(np.asarray(flip_permutation, dtype=np.int64), device=points.device)
    swapped = points[:, :, perm]
    return torch.where(flipped.to(points.device)[:, None, None, None], swapped, points)


def photometric(
    images: torch.Tensor, config: AugmentationConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Noise, contrast (gamma) and brightness changes, each drawn per sample with its probability.

    ``images`` are floats in [0, 1]; the result is clipped to [0, 1].
    """
    b = images.shape[0]
    device = images.device
    shape = (b, 1, 1, 1)
    out = images
    if config.uniform_noise_probability > 0:
        on = _chosen(b, config.uniform_noise_probability, generator, device).view(shape)
        lo, hi = config.uniform_noise_min / 255.0, config.uniform_noise_max / 255.0
        noise = lo + (hi - lo) * _rand(tuple(images.shape), generator, device).to(images.dtype)
        out = out + noise * on
    if config.gaussian_noise_probability > 0:
        on = _chosen(b, config.gaussian_noise_probability, generator, device).view(shape)
        noise = (
            config.gaussian_noise_mean
            + config.gaussian_noise_std * _randn(tuple(images.shape), generator, device)
        ) / 255.0
        out = out + noise.to(images.dtype) * on
    if config.contrast_probability > 0:
        on = _chosen(b, config.contrast_probability, generator, device)
        gamma = torch.where(
            on, _uniform(b, config.contrast_min_gamma, config.contrast_max_gamma, generator, device), 1.0
        ).view(shape)
        out = out.clamp(0.0, 1.0) ** gamma.to(images.dtype)
    if config.brightness_probability > 0:
        on = _chosen(b, config.brightness_probability, generator, device)
        shift = torch.where(
            on, _uniform(b, config.brightness_min, config.brightness_max, generator, device), 0.0
        )
        out = out + (shift / 255.0).view(shape).to(images.dtype)
    return out.clamp(0.0, 1.0)


def augment(
    images: torch.Tensor,
    points: torch.Tensor,
    config: AugmentationConfig,
    flip_permutation: np.ndarray | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch: one random affine per sample (images and keypoints), then intensity changes.

    Parameters
    ----------
    images
        ``(B, C, H, W)`` float in [0, 1], on any device.
    points
        ``(B, I, N, 2)`` ``x, y`` in image pixels; NaN = missing.
    config
        ``config.optimization.augmentation``.
    flip_permutation
        Node permutation swapping left/right parts (``Skeleton.flip_permutation()``); ``None`` = no swap.
    generator
        Random generator (for reproducible runs); ``None`` uses torch's global one.

    Returns
    -------
    images, points
        Augmented copies (the inputs are not modified).
    """
    if config.geometric:
        b, _, h, w = images.shape
        matrices, flipped = random_affine(b, (h, w), config, generator, images.device)
        images = warp_images(images, matrices)
        points = warp_points(points.to(torch.float32), matrices)
        points = swap_flipped_nodes(points, flipped, flip_permutation)
    if config.photometric:
        images = photometric(images, config, generator)
    return images, points
