"""Similarity between candidate instances (from past frames) and the detections of a frame.

Every function takes candidates ``(..., C, K, 2)`` and detections ``(..., D, K, 2)`` (``x, y``;
NaN = missing node) and returns a ``(..., C, D)`` float64 array in ``[0, 1]`` (1 = identical),
computed for all pairs in one numpy expression. Leading axes are a batch (the tracker scores a
whole window of frames at once); a batched call gives, element for element, the same bits as one
call per frame, because every reduction runs over the same trailing axis in the same order.

Distances go through the Cauchy kernel ``1 / (1 + (d / scale)^2)``: it is monotone, never
underflows to a tie at large distances (so unmatched-by-gate pairs are still ranked), and one
wildly wrong node (a mislocalised head) cannot zero a whole instance.

:class:`PoseSimilarity` splits each similarity into per-instance *features* (centroids, padded
boxes and their areas, present-node counts) and the pairwise step, so the tracker computes the
detections' features once for the whole video and only the candidates' per window.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..labels import DEFAULT_OKS_SIGMA

SIMILARITIES = ("instance", "centroid", "iou", "oks")

Features = tuple[np.ndarray, ...]


def _present(points: np.ndarray) -> np.ndarray:
    return ~np.isnan(points[..., 0])


def squared_norm(v: np.ndarray) -> np.ndarray:
    """``(v ** 2).sum(axis=-1)`` for 2-vectors ``(..., 2)``, bit for bit, without numpy's slow
    reduction over a length-2 axis (its inner sum is exactly ``x*x + y*y``)."""
    x, y = v[..., 0], v[..., 1]
    return x * x + y * y


def centroids(points: np.ndarray) -> np.ndarray:
    """Mean of the present nodes of each instance, ``(..., 2)``; NaN for instances with no node."""
    present = _present(points)
    count = present.sum(axis=-1)
    if present.all():
        values = points
    else:
        # the mask repeated for x and y rather than broadcast: numpy then runs one long loop
        # instead of one per node
        values = np.where(np.repeat(present, 2, axis=-1).reshape(points.shape), points, 0.0)
    # the same sum as values.sum(axis=-2) (numpy starts from +0.0 and adds node after node), but
    # node by node over whole arrays instead of numpy's per-instance loops over 2 coordinates
    total = values[..., 0, :] + 0.0 if points.shape[-2] else np.zeros(points.shape[:-2] + (2,))
    for k in range(1, points.shape[-2]):
        total += values[..., k, :]
    out = total / np.maximum(count, 1)[..., None]
    out[count == 0] = np.nan
    return out


def bounding_boxes(points: np.ndarray, padding: float = 0.0) -> np.ndarray:
    """``(..., 4)`` boxes ``x0, y0, x1, y1`` of the present nodes, grown by ``padding`` on every side.

    Instances with no node get NaN boxes (``fmin``/``fmax`` skip NaN nodes).
    """
    # node after node, as np.fmin.reduce(points, axis=-2) would, but over whole arrays at a time
    lo = points[..., 0, :].copy()
    hi = lo.copy()
    for k in range(1, points.shape[-2]):
        np.fmin(lo, points[..., k, :], out=lo)
        np.fmax(hi, points[..., k, :], out=hi)
    return np.concatenate([lo - padding, hi + padding], axis=-1)


def _box_area(box: np.ndarray) -> np.ndarray:
    return (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])


def _pair_d2(cands: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """``(..., C, D, K)`` squared node distances (NaN where either node is missing)."""
    # x*x + y*y: the same bits as np.einsum("...kx,...kx->...k", diff, diff), several times faster
    return squared_norm(cands[..., :, None, :, :] - dets[..., None, :, :, :])


def _mean_kernel(kernel: np.ndarray, n_ref: np.ndarray) -> np.ndarray:
    """Mean of ``kernel`` ``(..., C, D, K)`` over the candidate's present nodes (NaN counts as 0)."""
    kernel[np.isnan(kernel)] = 0.0
    return kernel.sum(axis=-1) / n_ref[..., :, None]


class PoseSimilarity:
    """One similarity measure at a fixed distance ``scale``, split into features and pairs.

    ``candidate_features`` and ``detection_features`` map poses ``(..., n, K, 2)`` to a tuple
    of per-instance arrays; ``pairs`` turns the two into the ``(..., C, D)`` matrix. Calling the
    object does both, like the module functions.
    """

    def __init__(self, name: str, scale: float, sigmas: np.ndarray | None = None) -> None:
        if name not in SIMILARITIES:
            raise ValueError(f"unknown similarity {name!r}; choose one of {', '.join(SIMILARITIES)}")
        self.name = name
        self.scale = float(scale)
        self.sigmas = sigmas

    def candidate_features(self, points: np.ndarray) -> Features:
        """Features of the candidates (the reference side: OKS area and node counts live here)."""
        name, scale = self.name, self.scale
        if name == "instance":
            return points, np.maximum(_present(points).sum(axis=-1), 1)
        if name == "centroid":
            return (centroids(points),)
        if name == "iou":
            box = bounding_boxes(points, scale / 2)
            return box, _box_area(box)
        box = bounding_boxes(points)
        floor = (4.0 * scale) ** 2  # thin and two-node instances have near-zero boxes
        area = np.maximum(_box_area(box), floor)
        area = np.where(np.isnan(area), floor, area)
        return points, area, np.maximum(_present(points).sum(axis=-1), 1)

    def detection_features(self, points: np.ndarray, centroid: np.ndarray | None = None) -> Features:
        """Features of the detections (``centroid``: ``centroids(points)`` if already known)."""
        if self.name in ("instance", "oks"):
            return (points,)
        if self.name == "centroid":
            return (centroids(points) if centroid is None else centroid,)
        box = bounding_boxes(points, self.scale / 2)
        return box, _box_area(box)

    def pairs(self, cand: Features, det: Features) -> np.ndarray:
        """The ``(..., C, D)`` similarity matrix from candidate and detection features."""
        name, scale = self.name, self.scale
        if name == "instance":
            d2 = _pair_d2(cand[0], det[0])
            return _mean_kernel(1.0 / (1.0 + d2 * (1.0 / (scale * scale))), cand[1])
        if name == "centroid":
            d2 = squared_norm(cand[0][..., :, None, :] - det[0][..., None, :, :])
            sim = 1.0 / (1.0 + d2 / (scale * scale))
            return np.where(np.isnan(sim), 0.0, sim)
        if name == "iou":
            a, b = cand[0][..., :, None, :], det[0][..., None, :, :]
            iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
            ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
            inter = iw * ih
            with np.errstate(invalid="ignore", divide="ignore"):
                iou = inter / (cand[1][..., :, None] + det[1][..., None, :] - inter)
            return np.where(np.isnan(iou), 0.0, iou)
        points, area, n_ref = cand
        k = points.shape[-2]
        sig = np.full(k, DEFAULT_OKS_SIGMA) if self.sigmas is None else np.asarray(self.sigmas, np.float64)
        d2 = _pair_d2(points, det[0])
        kernel = np.exp(-d2 / (2.0 * area[..., :, None, None] * (2.0 * sig) ** 2))
        return _mean_kernel(kernel, n_ref)

    def __call__(self, cands: np.ndarray, dets: np.ndarray) -> np.ndarray:
        return self.pairs(self.candidate_features(cands), self.detection_features(dets))


def instance_similarity(cands: np.ndarray, dets: np.ndarray, scale: float) -> np.ndarray:
    """Mean over the candidate's present nodes of the per-node distance kernel (missing in the detection = 0)."""
    return PoseSimilarity("instance", scale)(cands, dets)


def centroid_similarity(cands: np.ndarray, dets: np.ndarray, scale: float) -> np.ndarray:
    """Distance kernel between instance centroids (0 where either has no node)."""
    return PoseSimilarity("centroid", scale)(cands, dets)


def iou_similarity(cands: np.ndarray, dets: np.ndarray, scale: float) -> np.ndarray:
    """Intersection over union of the point bounding boxes, each padded by ``scale / 2``.

    The padding keeps boxes of thin or two-node instances from having zero area.
    """
    return PoseSimilarity("iou", scale)(cands, dets)


def oks_similarity(
    cands: np.ndarray, dets: np.ndarray, scale: float, sigmas: np.ndarray | None = None
) -> np.ndarray:
    """COCO object keypoint similarity with the candidate as reference.

    The object area is the candidate's bounding box area, at least ``(4 * scale)**2`` so two-node
    and thin instances are not judged on a near-zero area; ``sigmas`` are per-node COCO sigmas
    (default :data:`napari_posetrack.core.labels.DEFAULT_OKS_SIGMA`).
    """
    return PoseSimilarity("oks", scale, sigmas)(cands, dets)


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
