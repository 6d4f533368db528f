"""Proofreading identities on real SLEAP predictions (``clip.predictions.slp``, tracks female/male
from SLEAP's identity model), scored against the proofread ground truth (``clip.2node.slp``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.evaluation import evaluate_tracking
from napari_posetrack.core.io.slp import load_slp, save_slp
from napari_posetrack.core.labels import NO_TRACK, REJECT_SURPLUS
from napari_posetrack.core.session import LabelsSession
from napari_posetrack.core.tracking.proofread import (
    ProofreadError,
    merge_tracks,
    recolour_track,
    rename_track,
    review_queue,
    set_track,
    split_track,
    swap_tracks,
)

SLEAP_SWITCHES = 14  # SLEAP's identity model on these detections (thorax within 50 px)


@pytest.fixture
def pred(flies):
    return load_slp(flies / "clip.predictions.slp")


@pytest.fixture(scope="module")
def gt(flies):
    return load_slp(flies / "clip.2node.slp")


def _switches(gt, labels) -> dict:
    return evaluate_tracking(gt, labels, "thorax")


def test_swap_over_a_range_makes_two_switches_the_queue_ranks_first_and_swapping_back_undoes(pred, gt):
    before = pred.instances.track.copy()
    assert _switches(gt, pred)["id_switches"] == SLEAP_SWITCHES
    rows = swap_tracks(pred, "female", "male", 700, 900)
    t = pred.instances
    inside = (t.frame >= 700) & (t.frame < 900)
    assert sorted(rows.tolist()) == np.flatnonzero(inside).tolist()
    assert (t.track[inside] == 1 - before[inside]).all() and (t.track[~inside] == before[~inside]).all()
    result = _switches(gt, pred)
    assert {700, 900} <= set(result["switch_frames"])
    # the queue finds the two frames where the identities jump from one fly to the other
    top = review_queue(pred, limit=3)
    assert {700, 900} <= {item.frame for item in top}
    assert all(item.value < 0 for item in top if item.frame in (700, 900))
    assert {item.tracks for item in top} == {(0, 1)}
    swap_tracks(pred, 0, 1, 700, 900)
    assert np.array_equal(pred.instances.track, before)


def test_review_queue_on_the_identity_model_lists_its_switches_first(pred, gt):
    switch_frames = set(_switches(gt, pred)["switch_frames"])
    queue = review_queue(pred)
    frames = [item.frame for item in queue]
    assert frames == sorted(frames, key=lambda f: next(i.value for i in queue if i.frame == f))
    # the two clearest switches of SLEAP's identity model lead the queue, with negative margins
    assert [item.frame for item in queue[:2]] == [1101, 1077]
    assert all(item.value < 0 for item in queue[:2])
    assert {1101, 1077} <= switch_frames
    # neighbouring frames of one event are listed once
    assert all(abs(a - b) > 5 for a in frames[:10] for b in frames[:10] if a != b)
    # fixing the first one by swapping from there to the next listed event removes switches
    swap_tracks(pred, 0, 1, 1101, None)
    assert _switches(gt, pred)["id_switches"] < SLEAP_SWITCHES
    assert review_queue(pred, limit=1)[0].frame != 1101  # the fixed frame is no longer the least sure
    # the identity model's own scores rank its least sure instances
    scores = review_queue(pred, by="tracking_score", limit=5)
    t = pred.instances
    assert scores[0].value == pytest.approx(float(t.tracking_score[t.track >= 0].min()), abs=1e-6)
    with pytest.raises(ProofreadError, match="review by"):
        review_queue(pred, by="luck")


def test_set_track_on_a_frame_swaps_with_the_holder_and_from_here_on_swaps_the_rest(pred):
    t = pred.instances
    rows = pred.rows(video=0, frame=500)
    male = int(rows[t.track[rows] == 1][0])
    female = int(rows[t.track[rows] == 0][0])
    before = t.track.copy()
    changed = set_track(pred, int(t.instance_id[male]), "female")
    assert sorted(changed.tolist()) == sorted([male, female])
    assert t.track[male] == 0 and t.track[female] == 1
    assert ((t.track != before).sum()) == 2
    set_track(pred, int(t.instance_id[male]), "male")  # back
    assert np.array_equal(t.track, before)
    set_track(pred, int(t.instance_id[male]), 0, from_here_on=True)
    later = t.frame >= 500
    assert (t.track[later] == 1 - before[later]).all() and (t.track[~later] == before[~later]).all()
    # a new name makes a new track
    new_id = int(t.instance_id[female])
    set_track(pred, new_id, "intruder")
    assert pred.tracks[-1].name == "intruder" and t.track[female] == 2
    # a rejected instance put on a track is no longer rejected
    t.track[female] = NO_TRACK
    t.rejected[female] = REJECT_SURPLUS
    set_track(pred, new_id, "intruder")
    assert t.rejected[female] == 0 and t.track[female] == 2


def test_split_merge_rename_recolour_and_the_file_keeps_them(pred, tmp_path):
    t = pred.instances
    male_before = np.flatnonzero(t.track == 1)
    new = split_track(pred, "male", 1000, name="male_late")
    assert pred.tracks[new].name == "male_late" and pred.tracks[new].spawned_on == 1000
    moved = np.flatnonzero(t.track == new)
    assert (t.frame[moved] >= 1000).all()
    assert sorted(np.concatenate([moved, np.flatnonzero(t.track == 1)]).tolist()) == male_before.tolist()
    with pytest.raises(ProofreadError, match="both have an instance"):
        merge_tracks(pred, "female", "male_late")
    merge_tracks(pred, "male", "male_late")
    assert [tr.name for tr in pred.tracks] == ["female", "male"]
    assert np.flatnonzero(t.track == 1).tolist() == male_before.tolist()
    rename_track(pred, "male", "M")
    with pytest.raises(ProofreadError, match="exists already"):
        rename_track(pred, "M", "female")
    recolour_track(pred, "M", (1.0, 0.0, 0.5))
    with pytest.raises(ProofreadError, match="0..1"):
        recolour_track(pred, "M", (2.0, 0.0, 0.0))
    path = tmp_path / "proofread.slp"
    save_slp(pred, path)
    back = load_slp(path)
    assert [tr.name for tr in back.tracks] == ["female", "M"]
    assert back.tracks[1].color == pytest.approx((1.0, 0.0, 0.5)) and back.tracks[0].color is None
    assert np.array_equal(back.instances.track, pred.instances.track)


def test_identity_edits_are_one_undo_step_each_and_a_failed_edit_changes_nothing(pred):
    session = LabelsSession(pred)
    before = pred.instances.track.copy()
    seen = []
    session.changed.append(seen.append)
    session.edit_identities("swap tracks", lambda lab: swap_tracks(lab, 0, 1, 200))
    assert seen[-1].frames == {(0, f) for f in np.unique(pred.instances.frame[pred.instances.frame >= 200])}
    assert not seen[-1].tracks_changed
    session.edit_identities("split", lambda lab: split_track(lab, 0, 1200))
    assert seen[-1].tracks_changed and len(pred.tracks) == 3
    with pytest.raises(ProofreadError):
        session.edit_identities("merge", lambda lab: merge_tracks(lab, 1, 2))  # overlap
    assert len(pred.tracks) == 3 and session.can_undo
    session.edit_identities("rename", lambda lab: rename_track(lab, 2, "late"))
    assert session.dirty
    for _ in range(3):
        session.undo()
    assert [tr.name for tr in pred.tracks] == ["female", "male"]
    assert np.array_equal(pred.instances.track, before) and not session.dirty
    session.redo()
    session.redo()
    assert [tr.name for tr in pred.tracks] == ["female", "male", "track_2"]
    n_changes = len(seen)
    session.edit_identities("nothing", lambda lab: swap_tracks(lab, 0, 1, 5000))
    assert len(seen) == n_changes  # an edit that changes nothing is no step
    session.undo()
    assert len(pred.tracks) == 2  # the step before it was the split
