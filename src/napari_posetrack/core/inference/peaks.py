"""Peak finding on confidence maps, batched on the maps' device, with subpixel refinement.

Two refinements are offered:

``"gaussian"`` (default)
    Smooth the map with the Gaussian used to train it (a matched filter), then fit a parabola to
    the logarithm of the 3x3 neighbourhood of the integer maximum. The log of a Gaussian is
    exactly a parabola, and a Gaussian smoothed by a Gaussian is still a Gaussian, so the fit is
    exact for clean maps while the smoothing averages noise away. This is the idea behind
    DeepPoseKit's subpixel maxima, at the cost of one separable convolution.
``"integral"``
    The weighted centroid of a 5x5 window around the maximum (SLEAP's integral regression).

Coordinates are ``(x, y)`` in grid cells of the map (multiply by the output stride, and add
``(stride - 1) / 2`` if the targets were centred on cells, to get input pixels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Refinement = Literal["gaussian", "integral", "none"]


def gaussian_kernel_1d(sigma: float, device: torch.device | None = None) -> torch.Tensor:
    """A normalised 1-D Gaussian kernel of radius ``ceil(3 sigma)``."""
    import torch

    radius = max(1, int(round(3.0 * float(sigma))))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return k / k.sum()


def smooth_maps(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(B, C, H, W)`` maps, border values replicated."""
    import torch.nn.functional as F

    if sigma <= 0:
        return maps
    b, c, h, w = maps.shape
    k = gaussian_kernel_1d(sigma, maps.device).to(maps.dtype)
    r = (len(k) - 1) // 2
    x = maps.reshape(b * c, 1, h, w)
    x = F.pad(x, (r, r, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def _neighbourhood(maps: torch.Tensor, flat_bc: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, radius: int):
    """Values of ``maps`` (flattened to (B*C, H, W)) in a (2r+1)^2 window around each peak, clamped at borders."""
    import torch

    _, _, h, w = maps.shape
    flat = maps.reshape(-1, h, w)
    offs = torch.arange(-radius, radius + 1, device=maps.device)
    rr = (rows[:, None] + offs[None, :]).clamp(0, h - 1)  # (K, 2r+1)
    cc = (cols[:, None] + offs[None, :]).clamp(0, w - 1)
    return flat[flat_bc[:, None, None], rr[:, :, None], cc[:, None, :]]  # (K, 2r+1, 2r+1)


def refine_log_parabola(window: torch.Tensor, limit: float = 0.5) -> torch.Tensor:
    """Subpixel ``(dx, dy)`` offsets from 3x3 windows ``(K, 3, 3)`` by a parabola fit to log values.

    Offsets are relative to the window's centre and clipped to ``[-limit, limit]``.
    """
    import torch

    logs = torch.log(window.clamp_min(1e-12))
    centre = logs[:, 1, 1]
    left, right = logs[:, 1, 0], logs[:, 1, 2]
    up, down = logs[:, 0, 1], logs[:, 2, 1]
    denom_x = left - 2 * centre + right
    denom_y = up - 2 * centre + down
    # a flat or non-concave neighbourhood gives no information: keep the integer peak there
    dx = torch.where(denom_x < -1e-12, 0.5 * (left - right) / denom_x, torch.zeros_like(centre))
    dy = torch.where(denom_y < -1e-12, 0.5 * (up - down) / denom_y, torch.zeros_like(centre))
    return torch.stack([dx, dy], dim=-1).clamp(-limit, limit)


def refine_integral(window: torch.Tensor) -> torch.Tensor:
    """Subpixel ``(dx, dy)`` offsets as the weighted centroid of square windows ``(K, S, S)``."""
    import torch

    s = window.shape[-1]
    r = (s - 1) / 2
    weights = window.clamp_min(0)
    total = weights.sum(dim=(1, 2)).clamp_min(1e-12)
    offs = torch.arange(s, dtype=window.dtype, device=window.device) - r
    dx = (weights.sum(dim=1) * offs).sum(dim=1) / total
    dy = (weights.sum(dim=2) * offs).sum(dim=1) / total
    return torch.stack([dx, dy], dim=-1)


def _locating_maps(maps: torch.Tensor, refinement: Refinement, sigma: float | None) -> torch.Tensor:
    """Maps on which peaks are located: the matched-filtered maps for ``"gaussian"``, else the maps.

    Locating on the smoothed map matters as much as refining on it: on noisy maps the raw argmax
    is often one cell off, and no 3x3 fit recovers from that.
    """
    if refinement == "gaussian":
        return smooth_maps(maps.float(), sigma if sigma is not None else 1.0)
    if refinement not in ("integral", "none"):
        raise ValueError(f"unknown peak refinement {refinement!r}; use 'gaussian', 'integral' or 'none'")
    return maps


def _refine(
    maps: torch.Tensor,
    located: torch.Tensor,
    flat_bc: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    refinement: Refinement,
    sigma: float | None,
) -> torch.Tensor:
    import torch

    xy = torch.stack([cols, rows], dim=-1).to(torch.float32)
    if refinement == "none" or len(rows) == 0:
        return xy
    if refinement == "gaussian":
        _, _, h, w = maps.shape
        # a 3-point log-parabola is exact anywhere on a Gaussian: fit around the nearest interior
        # cell so that peaks on the last row or column still have two neighbours
        fit_rows = rows.clamp(1, max(h - 2, 0)) if h >= 3 else rows
        fit_cols = cols.clamp(1, max(w - 2, 0)) if w >= 3 else cols
        shift = torch.stack([fit_cols - cols, fit_rows - rows], dim=-1).to(torch.float32)
        smoothed_fit = refine_log_parabola(_neighbourhood(located, flat_bc, fit_rows, fit_cols, 1), 1.5)
        # padding biases the smoothed map within a kernel radius of the border; the raw map's
        # log-parabola is exact there for a clean Gaussian, so use it at the border
        radius = (len(gaussian_kernel_1d(sigma if sigma is not None else 1.0)) - 1) // 2
        near_border = (rows < radius) | (cols < radius) | (rows >= h - radius) | (cols >= w - radius)
        raw_fit = refine_log_parabola(_neighbourhood(maps.float(), flat_bc, fit_rows, fit_cols, 1), 1.5)
        offsets = (torch.where(near_border[:, None], raw_fit, smoothed_fit) + shift).clamp(-1.0, 1.0)
    else:
        offsets = refine_integral(_neighbourhood(maps.float(), flat_bc, rows, cols, 2))
    return xy + offsets


def find_global_peaks(
    maps: torch.Tensor,
    threshold: float = 0.2,
    refinement: Refinement = "gaussian",
    sigma: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The single strongest peak of every map.

    Parameters
    ----------
    maps
        ``(B, C, H, W)`` confidence maps.
    threshold
        Peaks whose raw map value is below it are returned as NaN.
    refinement
        ``"gaussian"``, ``"integral"`` or ``"none"`` (see the module docstring).
    sigma
        The training Gaussian's sigma in grid cells (``sigma_px / output_stride``), for ``"gaussian"``.

    Returns
    -------
    points, values
        ``(B, C, 2)`` ``(x, y)`` grid coordinates (NaN below threshold) and ``(B, C)`` raw peak values.
    """
    import torch

    b, c, h, w = maps.shape
    located = _locating_maps(maps, refinement, sigma)
    flat_idx = located.reshape(b, c, h * w).argmax(dim=-1)
    values = maps.reshape(b, c, h * w).gather(-1, flat_idx[..., None])[..., 0]
    rows, cols = flat_idx // w, flat_idx % w
    flat_bc = torch.arange(b * c, device=maps.device)
    xy = _refine(maps, located, flat_bc, rows.reshape(-1), cols.reshape(-1), refinement, sigma).reshape(b, c, 2)
    xy = torch.where((values >= threshold)[..., None], xy, torch.full_like(xy, float("nan")))
    return xy, values


def find_local_peaks(
    maps: torch.Tensor,
    threshold: float = 0.2,
    refinement: Refinement = "gaussian",
    sigma: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every local maximum (3x3 non-maximum suppression) whose raw value reaches ``threshold``.

    Returns
    -------
    sample, channel, points, values
        For ``K`` peaks: ``(K,)`` batch indices, ``(K,)`` channel indices, ``(K, 2)`` ``(x, y)``
        grid coordinates and ``(K,)`` raw peak values, ordered by sample, channel, then position.
    """
    import torch
    import torch.nn.functional as F

    b, c, h, w = maps.shape
    located = _locating_maps(maps, refinement, sigma)
    pooled = F.max_pool2d(located, kernel_size=3, stride=1, padding=1)
    # plateaus (equal neighbours) would give several peaks: keep the first in raster order
    left = F.pad(located, (1, 0, 0, 0), value=float("-inf"))[..., :, :-1]
    up = F.pad(located, (0, 0, 1, 0), value=float("-inf"))[..., :-1, :]
    is_peak = (located == pooled) & (located > left) & (located > up) & (maps >= threshold)
    sample, channel, rows, cols = torch.nonzero(is_peak, as_tuple=True)
    values = maps[sample, channel, rows, cols]
    xy = _refine(maps, located, sample * c + channel, rows, cols, refinement, sigma)
    return sample, channel, xy, values
