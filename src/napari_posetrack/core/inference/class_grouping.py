"""Grouping body-part peaks into animals by identity (bottom-up identity model, SLEAP's multi-class bottom-up).

A bottom-up identity model has no part affinity fields: every body-part peak is read on the class
maps (one map per identity), and on each frame, for each node type, peaks and classes are paired by
a Hungarian assignment that maximises the class-map values, so each class gets at most one peak of
each node. The peaks class ``k`` got form instance ``k``. Its class probabilities are the mean
class-map values over its nodes, normalised to sum to one; they then go through the same temporal
smoothing as a top-down identity model's
(:func:`~napari_posetrack.core.tracking.identity.assign_identities`).

Everything is vectorised over frames and node types: one padded ``(frames x nodes, classes, peaks)``
table for the batch matcher of :mod:`~napari_posetrack.core.tracking.matching`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from napari_posetrack.core.tracking.identity import frame_slots
from napari_posetrack.core.tracking.matching import hungarian_match_batch

_PAD = -1e12  # similarity of padding cells (no peak there)
_FORBIDDEN_BELOW = -1e11  # every real class-map value is allowed, however low


class ClassGroups(NamedTuple):
    """Instances of a batch of frames, one per class and frame (instance ``k`` of a frame is class ``k``).

    Attributes
    ----------
    points
        ``(F, K, N, 2)`` the peaks' ``x, y`` (in the coordinates they were given in); NaN = no peak.
    point_scores
        ``(F, K, N)`` the peaks' body-part map values; NaN = no peak.
    class_probs
        ``(F, K, K)`` each instance's class probabilities: the mean class-map values over its peaks
        (clipped at zero), normalised; uniform for an instance without peaks or with all values zero.
    """

    points: np.ndarray
    point_scores: np.ndarray
    class_probs: np.ndarray


def group_by_class(
    sample: np.ndarray,
    node: np.ndarray,
    xy: np.ndarray,
    values: np.ndarray,
    class_values: np.ndarray,
    n_frames: int,
    n_nodes: int,
) -> ClassGroups:
    """One instance per class on every frame, from body-part peaks and their class-map values.

    Parameters
    ----------
    sample
        ``(P,)`` frame (row of the batch) of each peak.
    node
        ``(P,)`` node type of each peak.
    xy
        ``(P, 2)`` peak positions.
    values
        ``(P,)`` body-part map value at each peak.
    class_values
        ``(P, K)`` every class map's value at each peak.
    n_frames, n_nodes
        Frames of the batch and nodes of the skeleton.

    Returns
    -------
    ClassGroups
        Instance ``k`` of each frame holds, for every node, the peak the per-node Hungarian
        assignment (peaks x classes, maximising class-map values) gave class ``k``.
    """
    sample = np.asarray(sample, dtype=np.int64)
    node = np.asarray(node, dtype=np.int64)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    values = np.asarray(values, dtype=np.float64)
    class_values = np.asarray(class_values, dtype=np.float64)
    n_classes = class_values.shape[1]
    points = np.full((n_frames, n_classes, n_nodes, 2), np.nan)
    scores = np.full((n_frames, n_classes, n_nodes), np.nan)
    sums = np.zeros((n_frames, n_classes, n_classes))
    counts = np.zeros((n_frames, n_classes))
    if len(sample):
        # one matching problem per (frame, node type): classes (rows) x that node's peaks (columns)
        unique, row, slot, width = frame_slots(sample * n_nodes + node)
        sim = np.full((len(unique), n_classes, width), _PAD)
        sim[row, :, slot] = class_values
        peak_at = np.full((len(unique), width), -1, dtype=np.int64)
        peak_at[row, slot] = np.arange(len(sample))
        cols = hungarian_match_batch(sim, _FORBIDDEN_BELOW)  # (W, K): slot of each class's peak
        w, k = np.nonzero(cols >= 0)
        p = peak_at[w, cols[w, k]]
        f, n = unique[w] // n_nodes, unique[w] % n_nodes
        points[f, k, n] = xy[p]
        scores[f, k, n] = values[p]
        np.add.at(sums, (f, k), np.clip(class_values[p], 0.0, None))
        np.add.at(counts, (f, k), 1.0)
    mean = sums / np.maximum(counts, 1.0)[..., None]
    total = mean.sum(axis=-1, keepdims=True)
    probs = np.where(total > 0, mean / np.where(total > 0, total, 1.0), 1.0 / max(n_classes, 1))
    return ClassGroups(points, scores, probs)


__all__ = ["ClassGroups", "group_by_class"]
