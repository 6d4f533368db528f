"""Identities from an identity (class) model: per-frame assignment of class probabilities, smoothed in time.

A top-down identity model gives every predicted instance a probability for each class (the track
names of the labelled animals). Classes are assigned with exclusivity on each frame (one animal
per class, a Hungarian assignment on log-probabilities), but not from each frame's probabilities
alone: instances are first linked frame to frame into conservative **tracklets** (nearest centroid,
accepted only when the link is clearly better than any alternative), the log-probabilities of each
tracklet are summed, and the frame's assignment uses those sums. One ambiguous frame inside a
tracklet then cannot flip its identity, while a tracklet's identity still has to be exclusive with
the tracklets beside it.

Everything is vectorised over frames: padded ``(frames, instances, ...)`` arrays and the batch
matcher of :mod:`~napari_posetrack.core.tracking.matching`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from napari_posetrack.core.tracking.matching import hungarian_match_batch
from napari_posetrack.core.tracking.similarity import centroids

if TYPE_CHECKING:
    from napari_posetrack.core.labels import Labels

SMOOTHINGS = ("tracklets", "none")
"""``tracklets``: assign summed tracklet evidence per frame; ``none``: each frame on its own."""

MIN_PROBABILITY = 1e-6
"""Class probabilities are clipped to this before the logarithm, so one overconfident zero cannot
outweigh a whole tracklet."""

_PAD = -1e12  # similarity of padding cells: below every threshold used here
_FORBIDDEN_BELOW = -1e11


def frame_slots(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Where each instance goes in a padded ``(frames, width)`` table.

    Returns ``(unique frames, frame row of each instance, slot of each instance, width)``; slots keep
    the instances' order within their frame.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    unique, row = np.unique(frames, return_inverse=True)
    row = row.reshape(-1)
    counts = np.bincount(row, minlength=len(unique))
    order = np.argsort(row, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.empty(len(frames), dtype=np.int64)
    slot[order] = np.arange(len(frames)) - starts[row[order]]
    return unique, row, slot, int(counts.max())


def assign_per_frame(frames: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Exclusive class of every instance, frame by frame: the assignment maximising the summed scores.

    Parameters
    ----------
    frames
        ``(n,)`` frame of each instance.
    scores
        ``(n, K)`` score of each class for each instance (log-probabilities, or their sums over a
        tracklet); higher is better.

    Returns
    -------
    np.ndarray
        ``(n,)`` int64 class; ``-1`` for instances left over on frames with more instances than classes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n, k = scores.shape
    out = np.full(n, -1, dtype=np.int64)
    if n == 0 or k == 0:
        return out
    unique, row, slot, width = frame_slots(frames)
    sim = np.full((len(unique), width, k), _PAD)
    sim[row, slot] = scores
    cols = hungarian_match_batch(sim, _FORBIDDEN_BELOW)
    out[:] = cols[row, slot]
    return out


def link_tracklets(
    frames: np.ndarray, points: np.ndarray, *, max_distance: float | None = None, margin: float = 1.5
) -> np.ndarray:
    """Conservative tracklets: each instance linked to one on the next predicted frame, or to none.

    Consecutive predicted frames are matched by centroid distance (Hungarian). A link is kept only
    when it is shorter than ``max_distance`` and ``margin`` times shorter than any other pairing of
    either instance, so tracklets break where animals come close rather than swap.

    Parameters
    ----------
    frames
        ``(n,)`` frame of each instance.
    points
        ``(n, nodes, 2)``; NaN = missing node.
    max_distance
        Longest link in pixels; default half the median instance size (the larger side of its box).
    margin
        How much shorter than the alternatives a link must be.

    Returns
    -------
    np.ndarray
        ``(n,)`` int64 tracklet index of each instance (``0 .. n_tracklets - 1``).
    """
    frames = np.asarray(frames, dtype=np.int64)
    points = np.asarray(points, dtype=np.float64)
    n = len(frames)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    centre = centroids(points)
    if max_distance is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # instances with no node: NaN, dropped below
            span = np.nanmax(points, axis=1) - np.nanmin(points, axis=1)
        size = np.nanmax(span, axis=1)
        size = size[np.isfinite(size) & (size > 0)]
        max_distance = 0.5 * float(np.median(size)) if len(size) else np.inf
    unique, row, slot, width = frame_slots(frames)
    index = np.full((len(unique), width), -1, dtype=np.int64)
    index[row, slot] = np.arange(n)
    xy = np.full((len(unique), width, 2), np.nan)
    xy[row, slot] = centre
    prev = np.full(n, -1, dtype=np.int64)
    if len(unique) > 1:
        a, b = xy[:-1, :, None, :], xy[1:, None, :, :]  # (F-1, w, 1, 2), (F-1, 1, w, 2)
        dist = np.sqrt(((a - b) ** 2).sum(axis=-1))
        dist = np.where(np.isfinite(dist), dist, np.inf)
        sim = np.where(np.isfinite(dist), -dist, _PAD)
        cols = hungarian_match_batch(sim, -float(max_distance))  # (F-1, w): slot on the next frame
        f, r = np.nonzero(cols >= 0)
        c = cols[f, r]
        best = dist[f, r, c]
        row_other = np.where(np.arange(width) == c[:, None], np.inf, dist[f, r, :]).min(axis=1, initial=np.inf)
        col_other = np.where(np.arange(width) == r[:, None], np.inf, dist[f, :, c]).min(axis=1, initial=np.inf)
        keep = (best <= max_distance) & (best * margin < np.minimum(row_other, col_other))
        prev[index[f[keep] + 1, c[keep]]] = index[f[keep], r[keep]]
    # every instance points at the first instance of its chain (pointer jumping: log2(n) rounds)
    root = np.where(prev >= 0, prev, np.arange(n))
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return np.unique(root, return_inverse=True)[1].reshape(-1).astype(np.int64)


def assign_identities(
    frames: np.ndarray,
    points: np.ndarray,
    class_probs: np.ndarray,
    *,
    smoothing: Literal["tracklets", "none"] = "tracklets",
    max_distance: float | None = None,
    margin: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Class of every predicted instance from its class probabilities, exclusive per frame.

    Parameters
    ----------
    frames
        ``(n,)`` frame of each instance (one video).
    points
        ``(n, nodes, 2)`` the instances' points (for linking tracklets).
    class_probs
        ``(n, K)`` probability of each class (rows sum to 1).
    smoothing
        ``"tracklets"``: sum log-probabilities over conservative tracklets (:func:`link_tracklets`)
        and assign those sums per frame; ``"none"``: each frame's own probabilities.
    max_distance, margin
        Tracklet linking (see :func:`link_tracklets`).

    Returns
    -------
    classes, scores
        ``(n,)`` int64 class (``-1`` = none: more instances than classes on the frame) and ``(n,)``
        float32 score: the instance's own probability of the class it got (0 without one).
    """
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"identity smoothing must be one of {', '.join(SMOOTHINGS)}, not {smoothing!r}")
    probs = np.asarray(class_probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(frames):
        raise ValueError(f"class_probs must be (n_instances, n_classes), got {probs.shape} for {len(frames)} instances")
    log_p = np.log(np.clip(probs, MIN_PROBABILITY, 1.0))
    if smoothing == "tracklets":
        tracklet = link_tracklets(frames, points, max_distance=max_distance, margin=margin)
        evidence = np.zeros((int(tracklet.max(initial=-1)) + 1, probs.shape[1]))
        np.add.at(evidence, tracklet, log_p)
        log_p = evidence[tracklet]
    classes = assign_per_frame(frames, log_p)
    got = classes >= 0
    scores = np.zeros(len(classes), dtype=np.float32)
    scores[got] = probs[np.flatnonzero(got), classes[got]]
    return classes, scores


def apply_identities(
    labels: Labels, rows: np.ndarray, class_names: Sequence[str], classes: np.ndarray, scores: np.ndarray
) -> None:
    """Put instances ``rows`` on the tracks named by their classes (tracks made when missing).

    A track of the labels that already has a class's name is reused, so predictions land on the same
    tracks as the labelled animals. ``tracking_score`` gets ``scores``; class ``-1`` leaves no track.
    """
    existing = {t.name: i for i, t in reversed(list(enumerate(labels.tracks)))}
    track_of_class = np.array(
        [existing[name] if name in existing else labels.add_track(str(name)) for name in class_names] + [-1],
        dtype=np.int64,
    )
    classes = np.asarray(classes, dtype=np.int64)
    labels.update(np.asarray(rows, dtype=np.int64), track=track_of_class[classes],
                  tracking_score=np.asarray(scores, dtype=np.float32))


def identity_accuracy(
    frames: np.ndarray, predicted: Sequence[str | None], truth: Sequence[str | None]
) -> dict[str, float]:
    """ID accuracy and switches of predicted identities against true ones, instance by instance.

    Parameters
    ----------
    frames
        ``(n,)`` frame of each matched instance (a prediction paired with a true animal).
    predicted, truth
        The track name each got (``None`` = no track); ``truth`` must name every instance.

    Returns
    -------
    dict
        ``accuracy`` (share of instances whose predicted name is the true one), ``n`` (instances),
        ``switches`` (for each true animal, how often its predicted name changes between consecutive
        frames where it has one), ``unassigned`` (instances with no predicted name).
    """
    frames = np.asarray(frames, dtype=np.int64)
    pred = np.array([p if p is not None else "" for p in predicted], dtype=object)
    true = np.array([str(t) for t in truth], dtype=object)
    n = len(frames)
    if n == 0:
        return {"accuracy": float("nan"), "n": 0, "switches": 0, "unassigned": 0}
    switches = 0
    for animal in np.unique(true):
        sel = np.flatnonzero((true == animal) & (pred != ""))
        sel = sel[np.argsort(frames[sel], kind="stable")]
        switches += int((pred[sel][1:] != pred[sel][:-1]).sum())
    return {
        "accuracy": float((pred == true).mean()),
        "n": int(n),
        "switches": int(switches),
        "unassigned": int((pred == "").sum()),
    }


def score_identities(
    predicted: Labels,
    truth: Labels,
    *,
    video: int = 0,
    frames: np.ndarray | None = None,
    max_distance: float | None = None,
) -> dict[str, float]:
    """Compare the tracks of ``predicted``'s predicted instances with ``truth``'s user instances' tracks.

    On every frame (of ``frames``, default all frames with true instances) predictions are paired
    with true animals by centroid distance (Hungarian; pairs farther than ``max_distance``, default
    the median true animal size, are not paired). The paired instances' track names are then scored
    by :func:`identity_accuracy`.

    Returns
    -------
    dict
        :func:`identity_accuracy`'s figures plus ``true_instances`` (true animals on those frames)
        and ``matched`` (how many were paired with a prediction).
    """
    from napari_posetrack.core.labels import PREDICTED, USER

    t, p = truth.instances, predicted.instances
    true_rows = np.flatnonzero((t.kind == USER) & (t.video == video))
    pred_rows = np.flatnonzero((p.kind == PREDICTED) & (p.video == video))
    if frames is not None:
        wanted = np.asarray(frames, dtype=np.int64)
        true_rows = true_rows[np.isin(t.frame[true_rows], wanted)]
        pred_rows = pred_rows[np.isin(p.frame[pred_rows], wanted)]
    true_c = centroids(t.points[true_rows])
    pred_c = centroids(p.points[pred_rows])
    if max_distance is None:
        pts = t.points[true_rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            size = np.nanmax(np.nanmax(pts, axis=1) - np.nanmin(pts, axis=1), axis=1)
        size = size[np.isfinite(size)]
        max_distance = float(np.median(size)) if len(size) else np.inf
    all_frames = np.unique(t.frame[true_rows])
    tf = np.searchsorted(all_frames, t.frame[true_rows])
    keep_pred = np.isin(p.frame[pred_rows], all_frames)
    pred_rows, pred_c = pred_rows[keep_pred], pred_c[keep_pred]
    pf = np.searchsorted(all_frames, p.frame[pred_rows])
    _, _, t_slot, t_width = frame_slots(all_frames[tf])
    _, _, p_slot, p_width = frame_slots(all_frames[pf]) if len(pf) else (None, None, np.zeros(0, np.int64), 0)
    n_frames = len(all_frames)
    a = np.full((n_frames, t_width, 2), np.nan)
    a[tf, t_slot] = true_c
    b = np.full((n_frames, max(p_width, 1), 2), np.nan)
    b[pf, p_slot] = pred_c
    dist = np.sqrt(((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(axis=-1))
    sim = np.where(np.isfinite(dist), -dist, _PAD)
    cols = hungarian_match_batch(sim, -float(max_distance)) if n_frames else np.zeros((0, t_width), np.int64)
    p_index = np.full((n_frames, max(p_width, 1)), -1, dtype=np.int64)
    p_index[pf, p_slot] = pred_rows
    matched_col = cols[tf, t_slot]
    ok = matched_col >= 0
    matched_pred = p_index[tf[ok], matched_col[ok]]
    true_names = [truth.tracks[i].name if i >= 0 else "" for i in t.track[true_rows[ok]]]
    pred_names = [predicted.tracks[i].name if i >= 0 else None for i in p.track[matched_pred]]
    result = identity_accuracy(t.frame[true_rows[ok]], pred_names, true_names)
    result.update(true_instances=len(true_rows), matched=int(ok.sum()))
    return result
