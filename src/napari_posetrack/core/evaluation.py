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


def _frame_groups(keys: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Map ``(video, frame)`` to the positions in ``keys`` (an ``(n, 2)`` array) holding it."""
    if len(keys) == 0:
        return {}
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    k = keys[order]
    change = np.flatnonzero(np.any(k[1:] != k[:-1], axis=1)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(k)]])
    return {(int(k[a, 0]), int(k[a, 1])): order[a:b] for a, b in zip(starts, stops)}


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
    g_groups = _frame_groups(g_keys)
    p_groups = _frame_groups(p_keys)

    match_g: list[np.ndarray] = []
    match_p: list[np.ndarray] = []
    match_oks: list[np.ndarray] = []
    thr = np.asarray(oks_thresholds, dtype=np.float64)
    tp_flags = np.zeros((len(p_rows), len(thr)), dtype=bool)
    for key, gi in g_groups.items():
        pi = p_groups.get(key)
        if pi is None:
            continue
        oks = oks_matrix(g_pts[gi], p_pts[pi], sigmas, g_area[gi])
        if match_by == "oks":
            r, c = linear_sum_assignment(-oks)
            keep = oks[r, c] > 0
        else:
            dist = mean_distance_matrix(g_pts[gi], p_pts[pi])
            r, c = linear_sum_assignment(np.where(np.isfinite(dist), dist, 1e12))
            keep = np.isfinite(dist[r, c])
        match_g.append(gi[r[keep]])
        match_p.append(pi[c[keep]])
        match_oks.append(oks[r[keep], c[keep]])
        # COCO matching for mAP: predictions by descending score take the best free GT above threshold
        by_score = np.argsort(-p_score[pi], kind="stable")
        for t_i, t in enumerate(thr):
            taken = np.zeros(len(gi), dtype=bool)
            for pj in by_score:
                cand = np.where(taken, -1.0, oks[:, pj])
                best = int(np.argmax(cand))
                if cand[best] >= t:
                    taken[best] = True
                    tp_flags[pi[pj], t_i] = True

    mg = np.concatenate(match_g) if match_g else np.zeros(0, np.int64)
    mp = np.concatenate(match_p) if match_p else np.zeros(0, np.int64)
    moks = np.concatenate(match_oks) if match_oks else np.zeros(0)
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
        "n_gt_frames": len(g_groups),
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
            # CLEAR-MOT: keep last frame's correspondences that are still within range
            keep = close & (last_match[gid][:, None] == pid[None, :])
            cost = np.where(close, d, 1e12)
            cost[keep.any(axis=1), :] = 1e12
            cost[:, keep.any(axis=0)] = 1e12
            cost[keep] = -1.0
            r, c = linear_sum_assignment(cost)
            ok = close[r, c]
            r, c = r[ok], c[ok]
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
