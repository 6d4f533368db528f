"""Similarity between candidate instances (from past frames) and the detections of a frame.

Every function takes candidates ``(C, K, 2)`` and detections ``(D, K, 2)`` (``x, y``; NaN = missing
node) and returns a ``(C, D)`` float64 array in ``[0, 1]`` (1 = identical), computed for all pairs
in one numpy expression. Distances go through the Cauchy kernel ``1 / (1 + (d / scale)^2)``: it is
monotone, never underflows to a tie at large distances (so unmatched-by-gate pairs are still
ranked), and one wildly wrong node (a mislocalised head) cannot zero a whole instance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..labels import DEFAULT_OKS_SIGMA

SIMILARITIES = ("instance", "centroid", "iou", "oks")


def _present(points: np.ndarray) -> np.ndarray:
    return ~np.isnan(points[..., 0])


def centroids(points: np.ndarray) -> np.ndarray:
    """Mean of the present nodes of each instance, ``(n, 2)``; NaN for instances with no node."""
    present = _present(points)
    count = present.sum(axis=-1)
    total = np.where(present[..., None], points, 0.0).sum(axis=-2)
    out = total / np.maximum(count, 1)[..., None]
    out[count == 0] = np.nan
    return out


def bounding_boxes(points: np.ndarray, padding: float = 0.0) -> np.ndarray:
    """``(n, 4)`` boxes ``x0, y0, x1, y1`` of the present nodes, grown by ``padding`` on every side.

    Instances with no node get NaN boxes (``fmin``/``fmax`` skip NaN nodes).
    """
    lo = np.fmin.reduce(points, axis=-2) - padding
    hi = np.fmax.reduce(points, axis=-2) + padding
    return np.concatenate([lo, hi], axis=-1)


def instance_similarity(cands: np.ndarray, dets: np.ndarray, scale: float) -> np.ndarray:
    """Mean over the candidate's present nodes of the per-node distance kernel (missing in the detection = 0)."""
    diff = cands[:, None] - dets[None]
    d2 = np.einsum("cdkx,cdkx->cdk", diff, diff)  # (C, D, K), NaN where either is missing
    kernel = 1.0 / (1.0 + d2 * (1.0 / (scale * scale)))
    kernel[np.isnan(kernel)] = 0.0
    n_ref = np.maximum(_present(cands).sum(axis=-1), 1)
    return kernel.sum(axis=-1) / n_ref[:, None]


def centroid_similarity(cands: np.ndarray, dets: np.ndarray, scale: float) -> np.ndarray:
    """Distance kernel between instance centroids (0 where either has no node)."""
    d2 = ((centroids(cands)[:, None] - centroids(dets)[None]) ** 2).sum(axis=-1)
    sim = 1.0 / (1.0 + d2 / (scale * scale))
    return np.where(np.isnan(sim), 0.0, sim)


def iou_similarity(cands: np.ndarray, dets: np.ndarray, scale: float) -> np.ndarray:
    """Intersection over union of the point bounding boxes, each padded by ``scale / 2``.

    The padding keeps boxes of thin or two-node instances from having zero area.
    """
    a = bounding_boxes(cands, scale / 2)[:, None]
    b = bounding_boxes(dets, scale / 2)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area_a + area_b - inter)
    return np.where(np.isnan(iou), 0.0, iou)


def oks_similarity(
    cands: np.ndarray, dets: np.ndarray, scale: float, sigmas: np.ndarray | None = None
) -> np.ndarray:
    """COCO object keypoint similarity with the candidate as reference.

    The object area is the candidate's bounding box area, at least ``(4 * scale)**2`` so two-node
    and thin instances are not judged on a near-zero area; ``sigmas`` are per-node COCO sigmas
    (default :data:`napari_posetrack.core.labels.DEFAULT_OKS_SIGMA`).
    """
    k = cands.shape[1]
    sig = np.full(k, DEFAULT_OKS_SIGMA) if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    box = bounding_boxes(cands)
    floor = (4.0 * scale) ** 2  # thin and two-node instances have near-zero boxes
    area = np.maximum((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]), floor)
    area = np.where(np.isnan(area), floor, area)
    diff = cands[:, None] - dets[None]
    d2 = np.einsum("cdkx,cdkx->cdk", diff, diff)  # (C, D, K)
    kernel = np.exp(-d2 / (2.0 * area[:, None, None] * (2.0 * sig) ** 2))
    kernel[np.isnan(kernel)] = 0.0
    n_ref = np.maximum(_present(cands).sum(axis=-1), 1)
    return kernel.sum(axis=-1) / n_ref[:, None]


def get_similarity(name: str) -> Callable[..., np.ndarray]:
    """The similarity function called ``name`` (one of :data:`SIMILARITIES`)."""
    table = {
        "instance": instance_similarity,
        "centroid": centroid_similarity,
        "iou": iou_similarity,
        "oks": oks_similarity,
    }
    try:
        return table[name]
    except KeyError as exc:
        raise ValueError(f"unknown similarity {name!r}; choose one of {', '.join(SIMILARITIES)}") from exc
