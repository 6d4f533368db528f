"""How few ID switches the tracking score allows on ``clip.predictions.slp`` (issue #12 item 4).

The score is ``evaluate_tracking(gt, pred, node="thorax", max_dist=50)`` against ``clip.2node.slp``,
as in ``tests/tracking/test_tracking_real.py``. Three labellings of the same detections, each
with two tracks and every instance on a track:

* ``tracker``: the default tracker with max tracks 2;
* ``nearest thorax``: each frame's detections named after the ground-truth fly whose thorax is
  nearest (a Hungarian assignment per frame without a distance limit): identity by position;
* ``score optimum``: the labelling with the fewest switches the score can give, found by dynamic
  programming over the score's own state (which predicted track each fly was last matched to):
  per frame only two labellings exist (keep or swap), so the search is exact.

For each it prints switches, IDF1 and the frames of the switches, then the detections the score
optimum names differently from the tracker, and for how many of them the fly whose thorax is
nearest the detection's head agrees with either.

Run: ``.venv/bin/python bench/switch_floor.py``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from napari_posetrack.core.evaluation import clear_mot_matches, evaluate_tracking
from napari_posetrack.core.io.slp import load_slp
from napari_posetrack.core.labels import Labels
from napari_posetrack.core.tracking.tracker import TrackerConfig, track

DATA = Path(os.environ.get("POSETRACK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MAX_DIST = 50.0
THORAX = 1  # node index in the 2-node skeleton (head, thorax)


def _score_step(
    last: tuple[int, ...], gt_ids: np.ndarray, gt_xy: np.ndarray, det_xy: np.ndarray, det_tracks: tuple[int, ...]
) -> tuple[tuple[int, ...], int]:
    """One frame of ``evaluate_tracking``'s matching: the new state and the switches it counts."""
    state = np.asarray(last)
    if len(gt_ids) == 0:
        return last, 0
    tracks = np.asarray(det_tracks, dtype=np.int64)
    if len(tracks):
        d = np.sqrt(((gt_xy[:, None] - det_xy[None]) ** 2).sum(axis=-1))
        r, c = clear_mot_matches(d, MAX_DIST, state[gt_ids], tracks)
    else:
        r = c = np.zeros(0, dtype=np.int64)
    matched_gt, matched_track = gt_ids[r], tracks[c]
    switches = int(((state[matched_gt] >= 0) & (state[matched_gt] != matched_track)).sum())
    state = state.copy()
    state[matched_gt] = matched_track
    return tuple(state.tolist()), switches


def score_optimum(gt: Labels, pred: Labels) -> Labels:
    """``pred`` relabelled onto two tracks so that the score counts as few switches as it can."""
    g, p = gt.instances, pred.instances
    frames = np.union1d(g.frame, p.frame)
    n_gt = int(g.track.max()) + 1
    best: dict[tuple[int, ...], tuple[int, list[tuple[int, ...]]]] = {tuple([-1] * n_gt): (0, [])}
    rows_per_frame = []
    for f in frames:
        gi, pi = np.flatnonzero(g.frame == f), np.flatnonzero(p.frame == f)
        if len(pi) > 2:
            raise ValueError(f"frame {f} has {len(pi)} detections; this search handles two tracks")
        rows_per_frame.append(pi)
        step: dict[tuple[int, ...], tuple[int, list[tuple[int, ...]]]] = {}
        for state, (count, path) in best.items():
            for labelling in itertools.permutations((0, 1), len(pi)):
                new, sw = _score_step(state, g.track[gi], g.points[gi][:, THORAX], p.points[pi][:, THORAX], labelling)
                if new not in step or count + sw < step[new][0]:
                    step[new] = (count + sw, path + [labelling])
        best = step
    _, path = min(best.values(), key=lambda v: v[0])
    out = pred.copy()
    out.tracks = list(gt.tracks)[:2]
    for rows, labelling in zip(rows_per_frame, path):
        out.instances.track[rows] = np.asarray(labelling, dtype=out.instances.track.dtype)
    return out


def nearest_thorax(gt: Labels, pred: Labels) -> Labels:
    """``pred`` with each frame's detections named after the nearest ground-truth thoraxes."""
    g, p = gt.instances, pred.instances
    out = pred.copy()
    out.tracks = list(gt.tracks)
    for f in np.unique(p.frame):
        pi, gi = np.flatnonzero(p.frame == f), np.flatnonzero(g.frame == f)
        d = np.linalg.norm(p.points[pi][:, None, THORAX] - g.points[gi][None, :, THORAX], axis=-1)
        r, c = linear_sum_assignment(np.nan_to_num(d, nan=1e6))
        out.instances.track[pi[r]] = g.track[gi[c]]
    return out


def head_names(gt: Labels, labels: Labels) -> np.ndarray:
    """The ground-truth fly each detection's head is nearest to (``-1`` without a head)."""
    g, p = gt.instances, labels.instances
    names = np.full(len(p.frame), -1, dtype=np.int64)
    for f in np.unique(p.frame):
        pi, gi = np.flatnonzero(p.frame == f), np.flatnonzero(g.frame == f)
        if len(gi) == 0:
            continue
        d = np.linalg.norm(p.points[pi][:, None, 0] - g.points[gi][None, :, THORAX], axis=-1)
        has_head = ~np.isnan(d).all(axis=1)
        names[pi[has_head]] = g.track[gi[np.nanargmin(d[has_head], axis=1)]]
    return names


def main() -> None:
    flies = DATA / "sleap-flies"
    gt = load_slp(flies / "clip.2node.slp")
    pred = load_slp(flies / "clip.predictions.slp")
    pred.remove_tracks()
    rows = {
        "tracker": track(pred, TrackerConfig(max_tracks=2)).labels,
        "nearest thorax": nearest_thorax(gt, pred),
        "score optimum": score_optimum(gt, pred),
    }
    print("| labelling | switches | IDF1 | switch frames |\n|---|---|---|---|")
    scores = {}
    for name, labels in rows.items():
        r = evaluate_tracking(gt, labels, node="thorax", max_dist=MAX_DIST)
        scores[name] = r
        print(f"| {name} | {r['id_switches']} | {r['idf1']:.4f} | {r['switch_frames']} |")
    named = {}
    heads = head_names(gt, pred)
    gt_names = [t.name for t in gt.tracks]
    for name in ("tracker", "score optimum"):
        labels = rows[name]
        fly_of = {v: gt_names.index(k) for k, v in scores[name]["identity_map"].items()}  # track -> fly
        fly_of_track = np.array([fly_of.get(t.name, -1) for t in labels.tracks])
        named[name] = fly_of_track[labels.instances.track]
    differ = np.flatnonzero(named["tracker"] != named["score optimum"])
    frames = sorted(set(pred.instances.frame[differ].tolist()))
    print(f"\nThe score optimum names {len(differ)} detections differently from the tracker, in frames {frames}.")
    for name in ("tracker", "score optimum"):
        agree = int((heads[differ] == named[name][differ]).sum())
        print(f"  {agree} of them as the {name} does match the fly their head is nearest to")
    print(f"  {int((heads[differ] < 0).sum())} have no head")

if __name__ == "__main__":
    main()
