"""Suppression of duplicate detections of one animal: greedy non-maximum suppression by OKS or IoU."""

from __future__ import annotations

from typing import Literal

import numpy as np

from napari_posetrack.core.labels import DEFAULT_OKS_SIGMA


def pairwise_bbox_iou(points: np.ndarray) -> np.ndarray:
    """IoU of the keypoint bounding boxes of ``(n, nodes, 2)`` instances (NaN nodes ignored)."""
    lo = np.nanmin(points, axis=1)
    hi = np.nanmax(points, axis=1)
    inter_lo = np.maximum(lo[:, None], lo[None])
    inter_hi = np.minimum(hi[:, None], hi[None])
    inter = np.prod(np.clip(inter_hi - inter_lo, 0, None), axis=-1)
    area = np.prod(hi - lo, axis=-1)
    union = area[:, None] + area[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def pairwise_oks(points: np.ndarray, sigmas: np.ndarray | None = None) -> np.ndarray:
    """Object keypoint similarity between all pairs of ``(n, nodes, 2)`` instances.

    The scale is each reference instance's bounding-box area; nodes missing in either instance
    do not count. ``sigmas`` defaults to :data:`~napari_posetrack.core.labels.DEFAULT_OKS_SIGMA`.
    """
    n, k, _ = points.shape
    sig = np.full(k, DEFAULT_OKS_SIGMA) if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    lo, hi = np.nanmin(points, axis=1), np.nanmax(points, axis=1)
    area = np.maximum(np.prod(hi - lo, axis=-1), 1.0)  # (n,) reference scale
    d2 = np.sum((points[:, None] - points[None]) ** 2, axis=-1)  # (n, n, k)
    var = (2 * sig) ** 2
    e = d2 / (2 * var[None, None] * area[:, None, None])
    valid = ~np.isnan(d2)
    sim = np.where(valid, np.exp(-np.where(valid, e, 0.0)), 0.0)
    return sim.sum(-1) / np.maximum(valid.sum(-1), 1)


def suppress_overlaps(
    points: np.ndarray,
    scores: np.ndarray,
    method: Literal["oks", "iou", "none"] = "oks",
    threshold: float = 0.8,
    sigmas: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of instances kept by greedy NMS: the best-scoring instance suppresses any other
    whose similarity to it exceeds ``threshold``. Returned in descending score order."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    if method == "none" or len(points) < 2:
        return order
    if method == "oks":
        sim = pairwise_oks(points, sigmas)
        sim = np.maximum(sim, sim.T)
    elif method == "iou":
        sim = pairwise_bbox_iou(points)
    else:
        raise ValueError(f"unknown overlap method {method!r}; use 'oks', 'iou' or 'none'")
    suppressed = np.zeros(len(points), dtype=bool)
    kept = []
    for i in order:
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= sim[i] > threshold
    return np.asarray(kept, dtype=np.int64)
