"""Peak finding: subpixel accuracy on noisy synthetic maps with known peaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_posetrack.core.inference.peaks import find_global_peaks, find_local_peaks


def gaussian_maps(centres: np.ndarray, shape: tuple[int, int], sigma: float) -> torch.Tensor:
    """(B, C, H, W) maps with one unit Gaussian per map at ``centres`` (B, C, 2) in (x, y) cells."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = centres[..., 0][..., None, None]
    cy = centres[..., 1][..., None, None]
    return torch.from_numpy(np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))).float()


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_global_peaks_subpixel_error_below_a_tenth_of_a_cell(noise):
    rng = np.random.default_rng(0)
    sigma = 1.5  # e.g. sigma 3 px at output stride 2
    centres = rng.uniform(6, 40, size=(16, 4, 2))
    maps = gaussian_maps(centres, (48, 48), sigma)
    maps = maps + noise * torch.from_numpy(rng.standard_normal(maps.shape)).float()
    xy, values = find_global_peaks(maps, threshold=0.1, refinement="gaussian", sigma=sigma)
    err = np.linalg.norm(xy.numpy() - centres, axis=-1)
    if noise == 0:
        assert err.max() < 0.01, err.max()  # the log-parabola is exact on clean Gaussian maps
    else:
        assert err.mean() < 0.1 and np.percentile(err, 90) < 0.15, (err.mean(), np.percentile(err, 90))
    assert torch.all(values > 0.8)


def test_gaussian_refinement_beats_integral_regression_on_noisy_maps():
    rng = np.random.default_rng(1)
    sigma = 1.5
    centres = rng.uniform(6, 40, size=(32, 4, 2))
    maps = (
        gaussian_maps(centres, (48, 48), sigma)
        + 0.05 * torch.from_numpy(rng.standard_normal((32, 4, 48, 48))).float()
    )
    err = {}
    for method in ("gaussian", "integral", "none"):
        xy, _ = find_global_peaks(maps, threshold=0.1, refinement=method, sigma=sigma)
        err[method] = float(np.linalg.norm(xy.numpy() - centres, axis=-1).mean())
    assert err["gaussian"] < err["integral"] < err["none"], err


def test_global_peaks_below_threshold_are_nan():
    maps = torch.zeros(1, 2, 16, 16)
    maps[0, 0, 5, 7] = 1.0
    xy, values = find_global_peaks(maps, threshold=0.5, refinement="none")
    assert xy[0, 0].tolist() == [7.0, 5.0]
    assert torch.isnan(xy[0, 1]).all()


def test_local_peaks_find_every_instance_with_subpixel_accuracy():
    sigma = 1.0
    centres = np.array([[10.3, 12.7], [30.6, 8.2], [20.1, 35.9]])
    h, w = 48, 48
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    m = np.zeros((h, w))
    for cx, cy in centres:
        m = np.maximum(m, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    maps = torch.from_numpy(np.stack([m, np.zeros_like(m)])[None]).float()
    sample, channel, xy, values = find_local_peaks(maps, threshold=0.3, refinement="gaussian", sigma=sigma)
    assert sample.tolist() == [0, 0, 0] and channel.tolist() == [0, 0, 0]
    found = xy.numpy()
    d = np.linalg.norm(found[:, None] - centres[None], axis=-1)
    assert np.all(d.min(axis=1) < 0.1), d.min(axis=1)


def test_local_peaks_plateau_gives_one_peak():
    maps = torch.zeros(1, 1, 8, 8)
    maps[0, 0, 3, 3:5] = 1.0
    _, _, xy, _ = find_local_peaks(maps, threshold=0.5, refinement="none")
    assert xy.tolist() == [[3.0, 3.0]]


def test_peaks_at_the_border_stay_inside_the_map():
    maps = gaussian_maps(np.array([[[0.0, 0.0]]]), (16, 16), 1.0)
    xy, _ = find_global_peaks(maps, threshold=0.1, refinement="gaussian", sigma=1.0)
    assert (xy >= -0.5).all() and (xy <= 15.5).all()
