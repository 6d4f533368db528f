"""Evaluation metrics on small hand-made cases with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.evaluation import evaluate_poses, evaluate_tracking, oks_matrix
from napari_posetrack.core.labels import DEFAULT_OKS_SIGMA, PREDICTED, USER, Labels, Skeleton, Video


def _two_animals(n_frames: int = 10, kind: int = USER) -> Labels:
    """Two animals 200 px apart walking right; 3 nodes; tracks a/b."""
    lab = Labels(Skeleton(["head", "thorax", "tail"], [(1, 0), (1, 2)]), [Video("x.mp4", n_frames=n_frames)])
    lab.add_track("a")
    lab.add_track("b")
    body = np.array([[10.0, 0.0], [0.0, 0.0], [-10.0, 0.0]])
    for f in range(n_frames):
        for k, y in enumerate((100.0, 300.0)):
            lab.add_instances(0, f, body + [50.0 + 2 * f, y], kind=kind, track=k, score=1.0)
    return lab


def _pred_copy(gt: Labels) -> Labels:
    pred = gt.copy()
    pred.instances.kind[:] = PREDICTED
    pred.instances.score[:] = 1.0
    return pred


def test_identical_tracks_score_perfectly() -> None:
    gt = _two_animals()
    r = evaluate_tracking(gt, _pred_copy(gt), node="thorax", max_dist=50)
    assert r["id_switches"] == 0 and r["fragments"] == 0
    assert r["idf1"] == pytest.approx(1.0) and r["mota"] == pytest.approx(1.0)
    assert r["identity_map"] == {"a": "a", "b": "b"}


def test_one_animal_taking_a_new_identity_is_one_switch_and_idf1_by_hand() -> None:
    gt = _two_animals()
    pred = _pred_copy(gt)
    c = pred.add_track("c")
    t = pred.instances
    t.track[(t.track == 0) & (t.frame >= 6)] = c
    r = evaluate_tracking(gt, pred, node="thorax", max_dist=50)
    assert r["id_switches"] == 1
    # animal a: 6 frames as "a", 4 as "c"; animal b: 10 as "b" -> IDTP = 6 + 10 of 20 + 20 objects
    assert r["idf1"] == pytest.approx(2 * 16 / 40)
    assert r["switches_per_1000_frames"] == pytest.approx(100.0)
    assert r["switch_frames"] == [6]


def test_two_animals_exchanging_identities_count_one_switch_each() -> None:
    gt = _two_animals()
    pred = _pred_copy(gt)
    t = pred.instances
    late = t.frame >= 5
    t.track[late] = 1 - t.track[late]
    r = evaluate_tracking(gt, pred, node="thorax", max_dist=50)
    assert r["id_switches"] == 2  # both ground-truth animals change predicted identity once
    assert r["idf1"] == pytest.approx(0.5)  # best correspondence keeps 5 of 10 frames per animal
    assert r["mota"] == pytest.approx(1 - 2 / 20)


def test_missed_frame_counts_a_miss_and_a_fragment() -> None:
    gt = _two_animals()
    pred = _pred_copy(gt)
    pred.delete(pred.rows(video=0, frame=3, track=0))
    r = evaluate_tracking(gt, pred, node="thorax", max_dist=50)
    assert r["false_negatives"] == 1 and r["false_positives"] == 0
    assert r["fragments"] == 1 and r["id_switches"] == 0
    assert r["mota"] == pytest.approx(1 - 1 / 20)


def test_predictions_beyond_max_dist_do_not_match() -> None:
    gt = _two_animals()
    pred = _pred_copy(gt)
    pred.instances.points[:, :, 1] += 60.0
    r = evaluate_tracking(gt, pred, node="thorax", max_dist=50)
    assert r["matches"] == 0 and r["false_negatives"] == 20 and r["false_positives"] == 20


def test_identical_poses_have_oks_one_and_perfect_scores() -> None:
    gt = _two_animals()
    r = evaluate_poses(gt, _pred_copy(gt))
    assert r["n_matched"] == 20
    assert r["oks"]["mean"] == pytest.approx(1.0)
    assert r["oks"]["mAP"] == pytest.approx(1.0)
    assert r["distance"]["all"]["mean"] == 0.0
    assert all(v == 1.0 for v in r["pck"].values())
    assert r["oks"]["sigmas"] == [DEFAULT_OKS_SIGMA] * 3


def test_pck_and_distances_of_a_known_offset() -> None:
    gt = _two_animals()
    pred = _pred_copy(gt)
    pred.instances.points[:, 0, 0] += 3.0  # every head 3 px off, other nodes exact
    r = evaluate_poses(gt, pred, pck_thresholds=(1.0, 5.0))
    assert r["pck"]["1"] == pytest.approx(2 / 3)  # 2 of 3 nodes within 1 px
    assert r["pck"]["5"] == pytest.approx(1.0)
    head = r["distance"]["per_node"]["head"]
    assert head["mean"] == pytest.approx(3.0) and head["p95"] == pytest.approx(3.0)
    assert r["distance"]["per_node"]["tail"]["median"] == 0.0


def test_missing_prediction_nodes_lower_visibility_recall_and_pck() -> None:
    gt = _two_animals()
    pred = _pred_copy(gt)
    rows = pred.rows(video=0, frame=0)
    pred.instances.points[rows, 2] = np.nan
    pred.instances.visible[rows, 2] = False
    r = evaluate_poses(gt, pred)
    assert r["visibility"]["recall"] == pytest.approx(58 / 60)
    assert r["visibility"]["precision"] == pytest.approx(1.0)
    assert r["pck"]["50"] == pytest.approx(58 / 60)


def test_oks_follows_coco_formula_with_skeleton_sigmas() -> None:
    gt_pts = np.array([[[0.0, 0.0], [10.0, 10.0]]])  # bbox 10 x 10 -> area 100
    pred_pts = gt_pts + [[[2.0, 0.0], [0.0, 0.0]]]
    sig = np.array([0.1, 0.1])
    oks = oks_matrix(gt_pts, pred_pts, sig, np.array([100.0]))
    expected = (np.exp(-4.0 / (2 * 100 * (2 * 0.1) ** 2)) + 1.0) / 2
    assert oks[0, 0] == pytest.approx(expected)


def test_unmatched_false_positive_lowers_map() -> None:
    gt = _two_animals(n_frames=2)
    pred = _pred_copy(gt)
    # a confident prediction far from everything ranks first and is a false positive
    pred.add_instances(0, 0, np.full((3, 2), 900.0), kind=PREDICTED, score=5.0)
    r = evaluate_poses(gt, pred)
    assert r["n_pred_instances"] == 5
    assert 0.0 < r["oks"]["mAP"] < 1.0
    assert r["oks"]["mAR"] == pytest.approx(1.0)


def test_evaluate_command_prints_a_table_and_writes_json(tmp_path, capsys) -> None:
    import argparse
    import json

    from napari_posetrack.core.evaluation_cli import add_evaluate_parser
    from napari_posetrack.core.io import save_labels

    gt = _two_animals()
    pred = _pred_copy(gt)
    t = pred.instances
    t.track[t.frame >= 5] = 1 - t.track[t.frame >= 5]
    save_labels(gt, tmp_path / "gt.slp")
    save_labels(pred, tmp_path / "pred.slp")
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    out_json = tmp_path / "metrics.json"
    args = parser.parse_args(
        [
            "evaluate",
            str(tmp_path / "gt.slp"),
            str(tmp_path / "pred.slp"),
            "--node",
            "thorax",
            "--json",
            str(out_json),
        ]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "ID switches 2" in printed and "thorax" in printed
    result = json.loads(out_json.read_text())
    assert result["tracking"]["id_switches"] == 2
    assert result["poses"]["oks"]["mAP"] == pytest.approx(1.0)


def _matching_frame_by_frame(gt_pts, pred_pts, frames_g, frames_p, scores, sigmas, areas, match_by, thr):
    """The definition of the matching, one frame at a time: the reference for the bulk version."""
    from scipy.optimize import linear_sum_assignment

    from napari_posetrack.core.evaluation import mean_distance_matrix

    pairs, tp = [], np.zeros((len(frames_p), len(thr)), dtype=bool)
    for f in np.unique(frames_g):
        gi, pi = np.flatnonzero(frames_g == f), np.flatnonzero(frames_p == f)
        if len(pi) == 0:
            continue
        oks = oks_matrix(gt_pts[gi], pred_pts[pi], sigmas, areas[gi])
        if match_by == "oks":
            r, c = linear_sum_assignment(-oks)
            keep = oks[r, c] > 0
        else:
            dist = mean_distance_matrix(gt_pts[gi], pred_pts[pi])
            r, c = linear_sum_assignment(np.where(np.isfinite(dist), dist, 1e12))
            keep = np.isfinite(dist[r, c])
        pairs += list(zip(gi[r[keep]], pi[c[keep]], oks[r[keep], c[keep]]))
        for t_i, t in enumerate(thr):
            taken = np.zeros(len(gi), dtype=bool)
            for pj in np.argsort(-scores[pi], kind="stable"):
                cand = np.where(taken, -1.0, oks[:, pj])
                if cand.max() >= t:
                    taken[int(np.argmax(cand))] = True
                    tp[pi[pj], t_i] = True
    return pairs, tp


@pytest.mark.parametrize("match_by", ["oks", "distance"])
def test_bulk_matching_equals_the_frame_by_frame_definition(match_by) -> None:
    """Frames of 0-8 animals and 0-8 detections (large ones go to scipy), exact ties, missing nodes."""
    from napari_posetrack.core.evaluation import _match_frames, gt_areas

    rng = np.random.default_rng(7)
    n_frames, k = 400, 5
    n_g = rng.integers(0, 9, n_frames)
    n_p = np.where(rng.random(n_frames) < 0.8, np.minimum(n_g + rng.integers(-2, 3, n_frames), 8), 0).clip(0)
    frames_g = np.repeat(np.arange(n_frames), n_g)
    frames_p = np.repeat(np.arange(n_frames), n_p)
    gt_pts = rng.uniform(0, 300, (len(frames_g), 1, 2)) + rng.normal(0, 8, (len(frames_g), k, 2))
    pred_pts = rng.uniform(0, 300, (len(frames_p), 1, 2)) + rng.normal(0, 8, (len(frames_p), k, 2))
    # predictions near some animals, exact duplicates (ties), far-off detections (OKS exactly 0)
    for f in range(n_frames):
        gi, pi = np.flatnonzero(frames_g == f), np.flatnonzero(frames_p == f)
        for j, p in enumerate(pi[: len(gi)]):
            pred_pts[p] = gt_pts[gi[j]] + rng.normal(0, 2, (k, 2))
        if len(pi) > 1 and f % 5 == 0:
            pred_pts[pi[1]] = pred_pts[pi[0]]
        if len(pi) > 2 and f % 7 == 0:
            pred_pts[pi[2]] += 1e4
    gt_pts[rng.random(gt_pts.shape[:2]) < 0.1] = np.nan
    pred_pts[rng.random(pred_pts.shape[:2]) < 0.1] = np.nan
    scores = rng.choice([0.3, 0.6, 0.9], len(frames_p))  # repeated scores: the stable order matters
    sigmas = np.full(k, DEFAULT_OKS_SIGMA)
    areas = gt_areas(gt_pts)
    thr = np.array([0.5, 0.75, 0.95])
    keys = lambda frames: np.stack([np.zeros_like(frames), frames], axis=1)
    mg, mp, moks, tp, n_gt_frames = _match_frames(
        gt_pts, pred_pts, keys(frames_g), keys(frames_p), scores, sigmas, areas, match_by, thr
    )
    pairs, tp_ref = _matching_frame_by_frame(gt_pts, pred_pts, frames_g, frames_p, scores, sigmas, areas, match_by, thr)
    assert list(zip(mg.tolist(), mp.tolist())) == [(int(a), int(b)) for a, b, _ in pairs]
    np.testing.assert_array_equal(moks, np.array([o for _, _, o in pairs]))
    np.testing.assert_array_equal(tp, tp_ref)
    assert n_gt_frames == len(np.unique(frames_g))
    assert max(n_g) == 8 and len(pairs) > 500  # the large (scipy) and the enumerated paths both ran
