"""Pose and tracking metrics: ground truth ``Labels`` against predicted ``Labels``.

Poses (:func:`evaluate_poses`): per frame, ground-truth and predicted instances are paired by the
Hungarian algorithm on OKS (or on mean node distance); the pairs give per-node distance statistics,
PCK, visibility precision/recall and mean OKS; COCO-style OKS mAP (thresholds 0.50:0.05:0.95,
101-point interpolated precision) ranks predictions by instance score.

OKS follows COCO: ``exp(-d^2 / (2 * area * (2 * sigma)^2))`` averaged over the ground-truth
instance's visible nodes, with per-node ``sigma`` from ``skeleton.node_sigmas`` of the ground truth,
or :data:`napari_posetrack.core.labels.DEFAULT_OKS_SIGMA` (0.05, close to COCO's median body-part
sigma) for every node when the skeleton declares none; ``area`` is the ground-truth bounding box
area of its visible nodes (at least 1 px^2). Note that thin or two-node instances have small boxes,
so their OKS is strict.

Tracking (:func:`evaluate_tracking`): objects are the tracked instances (``track >= 0``) placed at
one node (instances where that node is missing or invisible are not objects; with ``node=None``
the centroid of the present nodes places them); a ground-truth object and a
prediction can match within ``max_dist`` pixels. CLEAR-MOT matching keeps last frame's pairs while
they stay within range, then assigns the rest by the Hungarian algorithm on distance. Reported:
ID switches (a ground-truth identity matched to a different predicted identity than at its
previous match), fragments (a ground-truth identity matched again after being unmatched while
present), MOTA, MOTP, and IDF1 / IDP / IDR from the globally optimal one-to-one identity
correspondence (Ristani et al. 2016). Untracked predictions (``track == -1``) are not outputs of the
tracker and are ignored.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .labels import DEFAULT_OKS_SIGMA, PREDICTED, USER, Labels

DEFAULT_PCK_THRESHOLDS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
OKS_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


# --------------------------------------------------------------------------- helpers


def _rows_of(labels: Labels, video: int | None, prefer: int) -> np.ndarray:
    """Rows of ``video`` of kind ``prefer`` when it has any, else all rows of that video."""
    t = labels.instances
    mask = np.ones(len(t), dtype=bool) if video is None else t.video == video
    preferred = mask & (t.kind == prefer)
    if prefer == PREDICTED:
        preferred &= ~labels.shadowed_predictions()
    return np.flatnonzero(preferred if preferred.any() else mask)


def _points(labels: Labels, rows: np.ndarray, node_names: list[str]) -> np.ndarray:
    """Points of ``rows`` on the node order ``node_names`` (absent or invisible nodes are NaN)."""
    t = labels.instances
    pts = t.points[rows].copy()
    pts[~t.visible[rows]] = np.nan
    out = np.full((len(rows), len(node_names), 2), np.nan)
    for j, name in enumerate(node_names):
        if name in labels.skeleton.nodes:
            out[:, j] = pts[:, labels.skeleton.node_index(name)]
    return out


def node_sigmas(labels: Labels) -> np.ndarray:
    """Per-node OKS sigmas of the skeleton, defaulting to ``DEFAULT_OKS_SIGMA`` for every node."""
    sig = labels.skeleton.node_sigmas
    if sig is None:
        return np.full(labels.n_nodes, DEFAULT_OKS_SIGMA)
    return np.asarray(sig, dtype=np.float64)


def gt_areas(gt_points: np.ndarray) -> np.ndarray:
    """Bounding-box area of each instance's present nodes, at least 1 px^2 (``(n,)``)."""
    present = ~np.isnan(gt_points[..., 0])
    lo = np.where(present[..., None], gt_points, np.inf).min(axis=1)
    hi = np.where(present[..., None], gt_points, -np.inf).max(axis=1)
    wh = np.where(np.isfinite(hi - lo), hi - lo, 0.0)
    return np.maximum(wh[:, 0] * wh[:, 1], 1.0)


def oks_matrix(
    gt_points: np.ndarray, pred_points: np.ndarray, sigmas: np.ndarray, areas: np.ndarray
) -> np.ndarray:
    """``(G, P)`` COCO object keypoint similarity (ground truth as reference; see module docs)."""
    d2 = ((gt_points[:, None] - pred_points[None]) ** 2).sum(axis=-1)  # (G, P, K)
    e = d2 / (2.0 * areas[:, None, None] * (2.0 * sigmas) ** 2)
    kernel = np.exp(-e)
    gt_vis = ~np.isnan(gt_points[..., 0])
    total = np.where(np.isnan(kernel), 0.0, kernel).sum(axis=-1)
    n_vis = gt_vis.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_vis[:, None] > 0, total / n_vis[:, None], 0.0)


def mean_distance_matrix(gt_points: np.ndarray, pred_points: np.ndarray) -> np.ndarray:
    """``(G, P)`` mean distance over nodes present in both (inf when none)."""
    d = np.sqrt(((gt_points[:, None] - pred_points[None]) ** 2).sum(axis=-1))
    ok = ~np.isnan(d)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, d, 0.0).sum(axis=-1) / n, np.inf)


def _stats(values: np.ndarray) -> dict[str, float]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return {
            "mean": float("nan"),
            "median": float("nan"),
            "p90": float("nan"),
            "p95": float("nan"),
            "n": 0,
        }
    p = np.percentile(v, [50, 90, 95])
    return {
        "mean": float(v.mean()),
        "median": float(p[0]),
        "p90": float(p[1]),
        "p95": float(p[2]),
        "n": len(v),
    }


def _nanmean(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


def _interpolated_ap(tp: np.ndarray, n_gt: int) -> tuple[float, float]:
    """COCO 101-point interpolated average precision and final recall from TP flags in score order."""
    if n_gt == 0:
        return float("nan"), float("nan")
    if len(tp) == 0:
        return 0.0, 0.0
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1)
    # make precision monotone non-increasing from the right, as COCO does
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    grid = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, grid, side="left")
    sampled = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sampled.mean()), float(recall[-1])


# --------------------------------------------------------------------------- per-frame matching, in bulk

MAX_ENUMERATED_ASSIGNMENTS = 720
"""Frames whose assignment has at most this many candidates are solved by enumeration in bulk."""
FRAME_CHUNK = 32768
"""Frames of one size class handled per array operation (bounds the ``(F, G, P, K)`` temporaries)."""


def oks_batch(gt_points: np.ndarray, pred_points: np.ndarray, sigmas: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """:func:`oks_matrix` of many frames at once: ``(F, G, K, 2)``, ``(F, P, K, 2)`` -> ``(F, G, P)``.

    The same arithmetic in the same order as :func:`oks_matrix`, so each frame's values are identical.
    """
    d2 = ((gt_points[:, :, None] - pred_points[:, None]) ** 2).sum(axis=-1)  # (F, G, P, K)
    e = d2 / (2.0 * areas[:, :, None, None] * (2.0 * sigmas) ** 2)
    kernel = np.exp(-e)
    gt_vis = ~np.isnan(gt_points[..., 0])
    total = np.where(np.isnan(kernel), 0.0, kernel).sum(axis=-1)
    n_vis = gt_vis.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_vis[:, :, None] > 0, total / n_vis[:, :, None], 0.0)


def mean_distance_batch(gt_points: np.ndarray, pred_points: np.ndarray) -> np.ndarray:
    """:func:`mean_distance_matrix` of many frames at once -> ``(F, G, P)``."""
    d = np.sqrt(((gt_points[:, :, None] - pred_points[:, None]) ** 2).sum(axis=-1))
    ok = ~np.isnan(d)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, d, 0.0).sum(axis=-1) / n, np.inf)


def _assignments(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Every one-to-one assignment of the smaller side: ``(A, m)`` row and column indices, rows ascending.

    Listed in lexicographic order (rows of each assignment ascending, as scipy returns them).
    """
    m = min(n_rows, n_cols)
    if n_rows <= n_cols:
        cols = np.array(list(itertools.permutations(range(n_cols), m)), dtype=np.int64).reshape(-1, m)
        return np.broadcast_to(np.arange(m), cols.shape), cols
    rows_of_col = np.array(list(itertools.permutations(range(n_rows), m)), dtype=np.int64).reshape(-1, m)
    order = np.argsort(rows_of_col, axis=1)
    rows = np.take_along_axis(rows_of_col, order, axis=1)
    cols = np.broadcast_to(np.arange(m), rows.shape)
    return rows, np.take_along_axis(cols, order, axis=1)


def _solve_assignments(gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-total assignment of each ``(G, P)`` matrix in ``gain`` (``(F, G, P)``): rows, cols ``(F, m)``."""
    f, g, p = gain.shape
    rows, cols = _assignments(g, p)
    if len(rows) <= MAX_ENUMERATED_ASSIGNMENTS:
        totals = gain[:, rows, cols].sum(axis=-1)  # (F, A)
        best = totals.argmax(axis=1)
        out_r, out_c = rows[best].copy(), cols[best].copy()
        # equal totals (tiny OKS values vanish in the sum): let scipy's solver decide, as it always did
        tied = np.flatnonzero((totals == totals[np.arange(f), best][:, None]).sum(axis=1) > 1)
    else:
        out_r = np.empty((f, min(g, p)), dtype=np.int64)
        out_c = np.empty_like(out_r)
        tied = np.arange(f)
    for i in tied:
        out_r[i], out_c[i] = linear_sum_assignment(gain[i], maximize=True)
    return out_r, out_c


def _group_positions(frame_of: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(order, start, count)``: instances sorted by frame (stable) and each frame's slice of that order."""
    order = np.argsort(frame_of, kind="stable")
    count = np.bincount(frame_of, minlength=n_frames)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return order, start, count


def _match_frames(
    g_pts: np.ndarray,
    p_pts: np.ndarray,
    g_keys: np.ndarray,
    p_keys: np.ndarray,
    p_score: np.ndarray,
    sigmas: np.ndarray,
    g_area: np.ndarray,
    match_by: str,
    thr: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Pair ground truth and predictions frame by frame, all frames of one size at once.

    Frames are grouped by their counts ``(G, P)``; each group's OKS matrices are one array. The
    optimal pairing (Hungarian on OKS, or on mean distance) is found by enumerating the assignments
    of small frames in bulk (scipy's solver for the rare large ones), and COCO's greedy matching for
    mAP walks the predictions of every frame in score order together.

    Returns
    -------
    matched ground truth, matched predictions, their OKS (in frame order, rows ascending, as a
    frame-by-frame loop gives them), TP flags ``(n_pred, n_thresholds)``, number of ground-truth frames.
    """
    keys = np.concatenate([g_keys, p_keys])
    _, frame_of = np.unique(keys, axis=0, return_inverse=True)
    frame_of = frame_of.ravel()
    n_frames = int(frame_of.max()) + 1 if len(frame_of) else 0
    g_frame, p_frame = frame_of[: len(g_keys)], frame_of[len(g_keys):]
    g_order, g_start, g_count = _group_positions(g_frame, n_frames)
    p_order, p_start, p_count = _group_positions(p_frame, n_frames)
    n_gt_frames = int((g_count > 0).sum())
    tp_flags = np.zeros((len(p_keys), len(thr)), dtype=bool)
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    both = np.flatnonzero((g_count > 0) & (p_count > 0))
    sizes = np.stack([g_count[both], p_count[both]], axis=1)
    for g, p in np.unique(sizes, axis=0) if len(both) else []:
        frames_all = both[(sizes[:, 0] == g) & (sizes[:, 1] == p)]
        for lo in range(0, len(frames_all), FRAME_CHUNK):
            frames = frames_all[lo : lo + FRAME_CHUNK]
            gi = g_order[g_start[frames][:, None] + np.arange(g)]  # (F, G), ascending within a frame
            pi = p_order[p_start[frames][:, None] + np.arange(p)]
            oks = oks_batch(g_pts[gi], p_pts[pi], sigmas, g_area[gi])
            f_idx = np.arange(len(frames))[:, None]
            if match_by == "oks":
                r, c = _solve_assignments(oks)
                keep = oks[f_idx, r, c] > 0
            else:
                dist = mean_distance_batch(g_pts[gi], p_pts[pi])
                r, c = _solve_assignments(-np.where(np.isfinite(dist), dist, 1e12))
                keep = np.isfinite(dist[f_idx, r, c])
            rows_frame = np.broadcast_to(frames[:, None], r.shape)
            pieces.append((rows_frame[keep], r[keep], gi[f_idx, r][keep], pi[f_idx, c][keep], oks[f_idx, r, c][keep]))
            # COCO matching for mAP: predictions by descending score take the best free GT above threshold
            by_score = np.argsort(-p_score[pi], axis=1, kind="stable")
            taken = np.zeros((len(thr), len(frames), g), dtype=bool)
            for j in range(p):
                pj = by_score[:, j]
                cand = np.where(taken, -1.0, oks[np.arange(len(frames)), :, pj][None])  # (T, F, G)
                best = cand.argmax(axis=2)
                hit = np.take_along_axis(cand, best[..., None], axis=2)[..., 0] >= thr[:, None]
                t_idx, f_hit = np.nonzero(hit)
                taken[t_idx, f_hit, best[t_idx, f_hit]] = True
                tp_flags[pi[f_hit, pj[f_hit]], t_idx] = True
    if not pieces:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0), tp_flags, n_gt_frames
    frame_col, row_col, mg, mp, moks = (np.concatenate(col) for col in zip(*pieces))
    order = np.lexsort((row_col, frame_col))
    return mg[order], mp[order], moks[order], tp_flags, n_gt_frames


# --------------------------------------------------------------------------- poses


def evaluate_poses(
    gt: Labels,
    pred: Labels,
    *,
    video: int | None = None,
    match_by: str = "oks",
    pck_thresholds: tuple[float, ...] = DEFAULT_PCK_THRESHOLDS,
    oks_thresholds: tuple[float, ...] = OKS_THRESHOLDS,
) -> dict[str, Any]:
    """Pose accuracy of ``pred`` against ``gt`` (see module docs).

    Ground truth is the user instances of ``gt`` (all instances when it has none); predictions are
    the predicted instances of ``pred`` not replaced by user instances (all when it has none).
    Videos are matched by index. Nodes are matched by name; a ground-truth node missing from the
    prediction skeleton counts as never predicted.

    Returns a JSON-ready dict: counts, ``distance`` (per node and over all nodes: mean, median,
    p90, p95 in pixels, over matched pairs), ``pck`` (fraction of visible ground-truth nodes predicted
    within each threshold, unmatched ground-truth instances counting as misses), ``oks`` (mean OKS of
    matched pairs, ``mAP``, ``mAR``, ``AP`` per threshold), ``visibility`` (precision / recall of
    predicting a node present, over matched pairs).
    """
    if match_by not in ("oks", "distance"):
        raise ValueError(f"match_by must be 'oks' or 'distance', got {match_by!r}")
    names = list(gt.skeleton.nodes)
    sigmas = node_sigmas(gt)
    g_rows = _rows_of(gt, video, USER)
    p_rows = _rows_of(pred, video, PREDICTED)
    g_pts = _points(gt, g_rows, names)
    p_pts = _points(pred, p_rows, names)
    g_keys = np.stack([gt.instances.video[g_rows], gt.instances.frame[g_rows]], axis=1).astype(np.int64)
    p_keys = np.stack([pred.instances.video[p_rows], pred.instances.frame[p_rows]], axis=1).astype(np.int64)
    p_score = np.nan_to_num(pred.instances.score[p_rows].astype(np.float64), nan=1.0)
    g_area = gt_areas(g_pts)
    thr = np.asarray(oks_thresholds, dtype=np.float64)
    mg, mp, moks, tp_flags, n_gt_frames = _match_frames(
        g_pts, p_pts, g_keys, p_keys, p_score, sigmas, g_area, match_by, thr
    )
    dist = np.sqrt(((g_pts[mg] - p_pts[mp]) ** 2).sum(axis=-1))  # (M, K), NaN where either missing

    g_vis_all = ~np.isnan(g_pts[..., 0])
    n_gt_nodes = int(g_vis_all.sum())
    pck: dict[str, float] = {}
    pck_per_node: dict[str, dict[str, float]] = {}
    for th in pck_thresholds:
        hit = np.zeros_like(g_vis_all)
        hit[mg] = np.nan_to_num(dist, nan=np.inf) <= th
        hit &= g_vis_all
        pck[f"{th:g}"] = float(hit.sum() / n_gt_nodes) if n_gt_nodes else float("nan")
        per = hit.sum(axis=0) / np.maximum(g_vis_all.sum(axis=0), 1)
        pck_per_node[f"{th:g}"] = {n: float(x) for n, x in zip(names, per)}

    g_vis = ~np.isnan(g_pts[mg][..., 0])
    p_vis = ~np.isnan(p_pts[mp][..., 0])
    tp = int((g_vis & p_vis).sum())
    fp = int((~g_vis & p_vis).sum())
    fn = int((g_vis & ~p_vis).sum())

    order = np.argsort(-p_score, kind="stable")
    ap = {}
    ar = {}
    for t_i, t in enumerate(thr):
        ap_t, ar_t = _interpolated_ap(tp_flags[order, t_i], len(g_rows))
        ap[f"{t:.2f}"] = ap_t
        ar[f"{t:.2f}"] = ar_t

    return {
        "n_gt_instances": len(g_rows),
        "n_pred_instances": len(p_rows),
        "n_matched": len(mg),
        "n_gt_frames": n_gt_frames,
        "distance": {
            "per_node": {n: _stats(dist[:, j]) for j, n in enumerate(names)},
            "all": _stats(dist.ravel()),
        },
        "pck": pck,
        "pck_per_node": pck_per_node,
        "oks": {
            "mean": float(moks.mean()) if len(moks) else float("nan"),
            "mAP": _nanmean(list(ap.values())),
            "mAR": _nanmean(list(ar.values())),
            "AP": ap,
            "sigmas": sigmas.tolist(),
        },
        "visibility": {
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "true_positive": tp,
            "false_positive": fp,
            "false_negative": fn,
        },
    }


# --------------------------------------------------------------------------- tracking


def _track_objects(labels: Labels, video: int, node: str | None, prefer: int) -> tuple[np.ndarray, ...]:
    """(frame, track, x/y position) of the tracked instances of ``video``."""
    t = labels.instances
    rows = _rows_of(labels, video, prefer)
    rows = rows[t.track[rows] >= 0]
    pts = t.points[rows].copy()
    pts[~t.visible[rows]] = np.nan
    if node is None:
        present = ~np.isnan(pts[..., 0])
        with np.errstate(invalid="ignore", divide="ignore"):
            pos = np.where(present[..., None], pts, 0.0).sum(axis=1) / present.sum(axis=1)[:, None]
    else:
        if node not in labels.skeleton.nodes:
            raise ValueError(
                f"no node {node!r} in skeleton {labels.skeleton.name!r} (nodes: {labels.skeleton.nodes})"
            )
        # an instance without that node is not an object (this reproduces SLEAP's published scores)
        pos = pts[:, labels.skeleton.node_index(node)]
    ok = ~np.isnan(pos).any(axis=1)
    rows = rows[ok]
    return t.frame[rows].astype(np.int64), t.track[rows].astype(np.int64), pos[ok]


def clear_mot_matches(
    dist: np.ndarray, max_dist: float, last_match: np.ndarray, pred_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's CLEAR-MOT correspondences: ``(ground-truth rows, prediction columns)``.

    A ground-truth object keeps the predicted identity it was matched to last (``last_match``, one
    per row, ``-1`` for none) while that prediction is within ``max_dist``; the others are paired by
    a Hungarian assignment on distance (``dist``, rows x columns), within ``max_dist`` only.
    ``pred_ids`` are the columns' predicted identities.
    """
    close = dist <= max_dist
    keep = close & (last_match[:, None] == pred_ids[None, :])
    cost = np.where(close, dist, 1e12)
    cost[keep.any(axis=1), :] = 1e12
    cost[:, keep.any(axis=0)] = 1e12
    cost[keep] = -1.0
    r, c = linear_sum_assignment(cost)
    ok = close[r, c]
    return r[ok], c[ok]


def evaluate_tracking(
    gt: Labels,
    pred: Labels,
    node: str | None = None,
    max_dist: float = 50.0,
    *,
    video: int = 0,
) -> dict[str, Any]:
    """Identity metrics of the tracks in ``pred`` against the identities in ``gt`` (see module docs).

    Parameters
    ----------
    node
        Node that places each object (e.g. ``"thorax"``); ``None`` uses instance centroids.
    max_dist
        Largest distance (pixels) at which a ground-truth object and a prediction can match.
    video
        Video index in both stores.

    Returns a JSON-ready dict with ``id_switches``, ``switches_per_1000_frames``, ``idf1``, ``idp``,
    ``idr``, ``mota``, ``motp``, ``fragments``, ``false_negatives``, ``false_positives``,
    ``matches``, ``n_gt``, ``n_pred``, ``n_frames``, ``gt_tracks``, ``pred_tracks``, the
    ``identity_map`` (ground-truth track name -> predicted track name) behind IDF1 and
    ``switch_frames`` (frames where a switch happened, for review).
    """
    gf, gtk, gpos = _track_objects(gt, video, node, USER)
    pf, ptk, ppos = _track_objects(pred, video, node, PREDICTED)
    frames = np.union1d(gf, pf)
    g_ids, g_idx = np.unique(gtk, return_inverse=True)
    p_ids, p_idx = np.unique(ptk, return_inverse=True)
    g_order = np.argsort(gf, kind="stable")
    p_order = np.argsort(pf, kind="stable")
    g_bounds = np.searchsorted(gf[g_order], frames, "left"), np.searchsorted(gf[g_order], frames, "right")
    p_bounds = np.searchsorted(pf[p_order], frames, "left"), np.searchsorted(pf[p_order], frames, "right")

    overlap = np.zeros((len(g_ids), len(p_ids)), dtype=np.int64)  # frames within max_dist, per identity pair
    last_match = np.full(len(g_ids), -1, dtype=np.int64)  # predicted identity last matched to each gt
    tracked_before = np.zeros(len(g_ids), dtype=bool)
    was_tracked = np.zeros(len(g_ids), dtype=bool)
    switches = fragments = matches = 0
    switch_frames: list[int] = []
    dist_sum = 0.0
    for k in range(len(frames)):
        gi = g_order[g_bounds[0][k] : g_bounds[1][k]]
        pi = p_order[p_bounds[0][k] : p_bounds[1][k]]
        if len(gi) == 0:
            continue
        gid, pid = g_idx[gi], p_idx[pi]
        if len(pi):
            d = np.sqrt(((gpos[gi][:, None] - ppos[pi][None]) ** 2).sum(axis=-1))
            close = d <= max_dist
            np.add.at(overlap, (np.repeat(gid, len(pid)), np.tile(pid, len(gid))), close.ravel())
            r, c = clear_mot_matches(d, max_dist, last_match[gid], pid)
        else:
            r = c = np.zeros(0, dtype=np.int64)
            d = np.zeros((len(gi), 0))
        matched_g = gid[r]
        matched_p = pid[c]
        n_sw = int(((last_match[matched_g] >= 0) & (last_match[matched_g] != matched_p)).sum())
        switches += n_sw
        if n_sw:
            switch_frames.append(int(frames[k]))
        last_match[matched_g] = matched_p
        matches += len(r)
        dist_sum += float(d[r, c].sum()) if len(r) else 0.0
        now = np.zeros(len(g_ids), dtype=bool)
        now[matched_g] = True
        present = np.zeros(len(g_ids), dtype=bool)
        present[gid] = True
        fragments += int((now & tracked_before & ~was_tracked).sum())
        # a present, unmatched ground truth interrupts its track; absent ones keep their state
        was_tracked = np.where(present, now, was_tracked)
        tracked_before |= now

    n_gt, n_pred = len(gf), len(pf)
    fn = n_gt - matches
    fp = n_pred - matches
    if overlap.size:
        r, c = linear_sum_assignment(-overlap)
        idtp = int(overlap[r, c].sum())
        identity_map = {
            _track_name(gt, g_ids[a]): _track_name(pred, p_ids[b]) for a, b in zip(r, c) if overlap[a, b] > 0
        }
    else:
        idtp, identity_map = 0, {}
    n_frames = len(np.unique(gf))
    return {
        "node": node,
        "max_dist": float(max_dist),
        "id_switches": int(switches),
        "switches_per_1000_frames": 1000.0 * switches / n_frames if n_frames else float("nan"),
        "idf1": 2.0 * idtp / (n_gt + n_pred) if n_gt + n_pred else float("nan"),
        "idp": idtp / n_pred if n_pred else float("nan"),
        "idr": idtp / n_gt if n_gt else float("nan"),
        "mota": 1.0 - (fn + fp + switches) / n_gt if n_gt else float("nan"),
        "motp": dist_sum / matches if matches else float("nan"),
        "fragments": int(fragments),
        "matches": int(matches),
        "false_negatives": int(fn),
        "false_positives": int(fp),
        "n_gt": int(n_gt),
        "n_pred": int(n_pred),
        "n_frames": n_frames,
        "gt_tracks": len(g_ids),
        "pred_tracks": len(p_ids),
        "identity_map": identity_map,
        "switch_frames": switch_frames,
    }


def _track_name(labels: Labels, index: int) -> str:
    return labels.tracks[index].name if 0 <= index < len(labels.tracks) else str(index)
