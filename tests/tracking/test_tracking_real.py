"""Re-tracking real SLEAP predictions and scoring identities against proofread ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.evaluation import evaluate_tracking
from napari_posetrack.core.io.slp import load_slp
from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels

SLEAP_SWITCHES = 14  # SLEAP's identity model on these detections (thorax within 50 px)
SLEAP_IDF1 = 0.905


@pytest.mark.slow
def test_retracked_fly_clip_has_fewer_switches_than_sleap(flies) -> None:
    gt = load_slp(flies / "clip.2node.slp")
    pred = load_slp(flies / "clip.predictions.slp")

    stored = evaluate_tracking(gt, pred, node="thorax", max_dist=50)
    print(f"\nSLEAP stored tracks: {stored['id_switches']} switches, IDF1 {stored['idf1']:.3f}")
    assert stored["id_switches"] == SLEAP_SWITCHES
    assert stored["idf1"] == pytest.approx(SLEAP_IDF1, abs=0.005)

    pred.remove_tracks()
    ours = {}
    for stitch in (True, False):
        out = track_labels(pred, TrackerConfig(max_tracks=2, stitch=stitch))
        assert len(out.tracks) == 2
        ours[stitch] = evaluate_tracking(gt, out, node="thorax", max_dist=50)
        r = ours[stitch]
        print(
            f"ours stitch={stitch}: {r['id_switches']} switches, IDF1 {r['idf1']:.3f}, MOTA {r['mota']:.3f}, "
            f"untracked {int((out.instances.track < 0).sum())}"
        )
    assert ours[True]["id_switches"] < SLEAP_SWITCHES
    assert ours[True]["idf1"] >= SLEAP_IDF1 - 0.01


@pytest.mark.slow
def test_retracking_27_fragments_gives_two_tracks(flies) -> None:
    pred = load_slp(flies / "centered_pair_predictions.slp")
    assert len(pred.tracks) == 27
    counts = np.bincount(np.unique(pred.instances.frame, return_inverse=True)[1])
    assert counts.max() == 5  # up to 5 detections on a frame for 2 flies
    for stitch in (True, False):
        out = track_labels(pred, TrackerConfig(max_tracks=2, stitch=stitch))
        t = out.instances
        assert [tr.name for tr in out.tracks] == ["track_0", "track_1"]
        assert out.n_instances == pred.n_instances  # extra instances are kept, untracked (-1)
        tracked = t.track >= 0
        keys = t.frame[tracked] * 2 + t.track[tracked]
        assert len(np.unique(keys)) == len(keys)
        per_frame = np.bincount(t.frame[tracked])
        assert per_frame.max() == 2
        # nearly every frame has both flies tracked
        assert (per_frame == 2).mean() > 0.9


@pytest.mark.slow
def test_hierarchical_stitching_is_robust_across_settings_on_the_fly_clip(flies) -> None:
    gt = load_slp(flies / "clip.2node.slp")
    pred = load_slp(flies / "clip.predictions.slp")
    pred.remove_tracks()
    for similarity, matching in (
        ("instance", "hungarian"),
        ("instance", "greedy"),
        ("iou", "greedy"),
        ("centroid", "hungarian"),
    ):
        cfg = TrackerConfig(
            max_tracks=2,
            similarity=similarity,
            matching=matching,
            stitch_min_length=10,
            stitch_motion_horizon=30,
        )
        r = evaluate_tracking(gt, track_labels(pred, cfg), node="thorax", max_dist=50)
        print(f"hierarchical {similarity}/{matching}: {r['id_switches']} switches, IDF1 {r['idf1']:.3f}")
        assert r["id_switches"] < SLEAP_SWITCHES
        assert r["idf1"] >= SLEAP_IDF1 - 0.01
