"""The "Proofread identities" dock widget in a real napari viewer, on a copy of SLEAP's tracked
predictions of the fly clip (``clip.predictions.slp``: tracks female/male from an identity model);
and the tracking summary the inference widget shows after "Track only"."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.proofread import ProofreadWidget
from napari_posetrack.core.evaluation import evaluate_tracking
from napari_posetrack.core.io.slp import load_slp, save_slp
from napari_posetrack.core.labels import NO_TRACK, REJECT_SURPLUS
from napari_posetrack.layers import REJECTED_BORDER, layers_to_labels

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


@pytest.fixture
def clip(flies, tmp_path):
    """A copy of the predictions in tmp_path, one instance marked as rejected by a tracker."""
    labels = load_slp(flies / "clip.predictions.slp")
    t = labels.instances
    rejected = int(labels.rows(video=0, frame=20, track=1)[0])
    t.track[rejected] = NO_TRACK
    t.rejected[rejected] = REJECT_SURPLUS
    path = tmp_path / "clip.predictions.slp"
    save_slp(labels, path)
    shutil.copy(flies / "clip.2node.slp", tmp_path / "gt.slp")
    return path, int(t.instance_id[rejected])


def _layer_tracks_on(project, frame: int) -> dict[int, str]:
    """instance id -> track name of the points the Points layer shows on ``frame``."""
    layer = project.points_layer
    on = np.flatnonzero(np.rint(np.asarray(layer.data)[:, 0]) == frame)
    inst = layer.features["instance"].to_numpy()[on].astype(int)
    track = layer.features["track"].astype(str).to_numpy()[on]
    return dict(zip(inst.tolist(), track.tolist()))


def _viewer_with(make_napari_viewer, path):
    """A real viewer with ``path`` open, and its project."""
    viewer = make_napari_viewer()
    project = project_for(viewer)
    project.open(path)
    return viewer, project


def _rows_of_instance(project, instance_id: int) -> np.ndarray:
    return np.flatnonzero(project.points_layer.features["instance"].to_numpy().astype(int) == instance_id)


def test_proofread_identities_in_a_real_viewer(make_napari_viewer, qtbot, clip, tmp_path):
    path, rejected_id = clip
    viewer, project = _viewer_with(make_napari_viewer, path)
    widget = ProofreadWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Proofread identities", area="right")
    qtbot.waitUntil(lambda: not widget.refreshing, timeout=WAIT_MS)  # ranked in a worker thread
    gt = load_slp(tmp_path / "gt.slp")
    switches = evaluate_tracking(gt, project.labels, "thorax")["id_switches"]

    # the instance the tracker rejected is drawn apart, and napari's layer -> labels write-back keeps it
    project.go_to(20)
    layer = project.points_layer
    rows = _rows_of_instance(project, rejected_id)
    assert len(rows) and set(layer.features["rejected"].to_numpy()[rows]) == {"surplus"}
    assert np.allclose(np.asarray(layer.border_color)[rows], REJECTED_BORDER)
    project._sync_metadata_and_tracks()
    features = {c: layer.features[c].to_numpy() for c in layer.features}
    back = layers_to_labels(np.asarray(layer.data), features, layer.metadata)
    assert back.instances.rejected[back.row_of_id(rejected_id)[0]] == REJECT_SURPLUS

    # the review queue: least sure first, Next / Previous and a click jump there
    queue = widget.queue
    assert len(queue) > 10 and widget.review_list.count() == len(queue)
    assert [q.frame for q in queue[:2]] == [1101, 1077] and queue[0].value < 0
    widget.next_button.click()
    assert project.current_frame == 1101 and widget.queue_label.text() == f"1 of {len(queue)}"
    widget.next_button.click()
    assert project.current_frame == 1077
    widget.prev_button.click()
    assert project.current_frame == 1101
    widget.review_list.setCurrentRow(2)
    assert project.current_frame == queue[2].frame
    widget.review_list.setCurrentRow(0)
    assert widget.track_a_combo.currentText() == "female" and widget.track_b_combo.currentText() == "male"

    # swap the two flies from the first queued frame on: one undo step, fewer identity switches
    before = _layer_tracks_on(project, 1101)
    widget.swap_from_button.click()
    after = _layer_tracks_on(project, 1101)
    assert after == {i: {"female": "male", "male": "female"}[n] for i, n in before.items()}
    assert evaluate_tracking(gt, project.labels, "thorax")["id_switches"] < switches
    project.session.undo()
    assert _layer_tracks_on(project, 1101) == before
    project.session.redo()
    assert _layer_tracks_on(project, 1101) == after
    qtbot.waitUntil(lambda: not widget.refreshing, timeout=WAIT_MS)
    assert widget.queue[0].frame != 1101  # fixed: no longer the least sure frame

    # swap over a range, then back
    widget.swap_start_spin.setValue(300)
    widget.swap_stop_spin.setValue(309)
    t = project.labels.instances
    in_range = (t.frame >= 300) & (t.frame <= 309) & (t.track >= 0)
    old = t.track[in_range].copy()
    widget.swap_range_button.click()
    assert (t.track[in_range] == 1 - old).all()
    widget.swap_range_button.click()
    assert (t.track[in_range] == old).all()

    # split female at frame 1400, merge it back
    project.go_to(1400)
    widget.track_a_combo.setCurrentText("female")
    widget.split_button.click()
    labels = project.labels
    assert [tr.name for tr in labels.tracks] == ["female", "male", "track_2"]
    assert "track_2" in set(_layer_tracks_on(project, 1400).values())
    assert widget.track_b_combo.findText("track_2") >= 0
    widget.track_a_combo.setCurrentText("male")
    widget.track_b_combo.setCurrentText("track_2")
    widget.merge_button.click()  # male and the split-off female overlap: refused, nothing changes
    assert "both have an instance" in widget.status_label.text()
    assert [tr.name for tr in labels.tracks] == ["female", "male", "track_2"]
    widget.track_a_combo.setCurrentText("female")
    widget.merge_button.click()
    assert [tr.name for tr in labels.tracks] == ["female", "male"]

    # rename and recolour the male; the points follow
    widget.track_a_combo.setCurrentText("male")
    widget.rename_edit.setText("M")
    widget.rename_button.click()
    assert [tr.name for tr in labels.tracks] == ["female", "M"]
    assert set(_layer_tracks_on(project, 1400).values()) == {"female", "M"}
    widget.recolour((1.0, 0.0, 0.5))
    layer = project.points_layer
    is_m = layer.features["track"].astype(str).to_numpy() == "M"
    assert is_m.any() and np.allclose(np.asarray(layer.face_color)[is_m, :3], (1.0, 0.0, 0.5))
    # the M path on the Tracks layer too, and the female's keeps the colour of her points
    paths = project.tracks_layer
    path_colours = np.asarray(paths.track_colors)[:, :3]
    on_m = np.asarray(paths.data)[:, 0] == 1
    assert on_m.any() and np.allclose(path_colours[on_m], (1.0, 0.0, 0.5))
    is_f = layer.features["track"].astype(str).to_numpy() == "female"
    assert np.allclose(path_colours[~on_m], np.asarray(layer.face_color)[is_f, :3][0])
    project.session.undo()
    project.session.undo()
    assert [tr.name for tr in labels.tracks] == ["female", "male"] and labels.tracks[1].color is None
    project.session.redo()
    project.session.redo()
    assert labels.tracks[1].name == "M" and labels.tracks[1].color == (1.0, 0.0, 0.5)

    # the rejected instance, selected, goes on the female track on its frame: the female there becomes
    # untracked (the rejected one had no track), and it is no longer rejected
    project.go_to(20)
    layer = project.points_layer
    layer.selected_data = set(_rows_of_instance(project, rejected_id).tolist())
    female_here = int(labels.rows(video=0, frame=20, track=0)[0])
    widget.instance_track_combo.setCurrentText("female")
    widget.set_frame_button.click()
    row = labels.row_of_id(rejected_id)[0]
    assert labels.instances.track[row] == 0 and labels.instances.rejected[row] == 0
    assert labels.instances.track[female_here] == NO_TRACK
    assert set(layer.features["rejected"].to_numpy()) == {""}
    widget.instance_track_combo.setCurrentText("M")
    t = labels.instances
    old = t.track.copy()
    widget.set_onwards_button.click()  # from frame 20 on, female and M swap
    assert labels.instances.track[row] == 1
    later = (t.frame >= 20) & (old >= 0)
    assert (t.track[later] == 1 - old[later]).all() and (t.track[~later] == old[~later]).all()

    # saved by the normal Save; the re-opened file holds every edit
    expected = labels.instances.track.copy()
    project.save()
    assert not project.session.dirty
    reopened = load_slp(path)
    assert [tr.name for tr in reopened.tracks] == ["female", "M"]
    assert reopened.tracks[1].color == pytest.approx((1.0, 0.0, 0.5))
    assert reopened.tracks[0].color is None
    order = np.argsort(labels.instances.instance_id)
    assert np.array_equal(reopened.instances.track, expected[order])
    assert reopened.instances.rejected.sum() == 0
    assert evaluate_tracking(gt, reopened, "thorax") == evaluate_tracking(gt, labels, "thorax")


def test_track_only_shows_the_tracking_summary(make_napari_viewer, qtbot, clip):
    from napari_posetrack._widgets.inference import InferenceWidget

    path, _ = clip
    viewer, project = _viewer_with(make_napari_viewer, path)
    widget = InferenceWidget(viewer)
    qtbot.addWidget(widget)
    assert not widget.tracking_summary_label.isVisibleTo(widget)
    widget.tracker_form.set_values({"kind": "predicted", "max_tracks": 2, "stitch": True})
    widget.track_button.click()
    qtbot.waitUntil(lambda: widget.worker is None and widget.track_button.isEnabled(), timeout=WAIT_MS)
    summary = widget.last_outcome.tracking_summary
    assert summary is not None and summary.n_instances == 2948
    text = widget.tracking_summary_label.text()
    assert widget.tracking_summary_label.isVisibleTo(widget)
    assert "tracked 2948 predicted instances" in text and f"on a track: {summary.n_assigned}" in text
    assert "least certain decisions" in text and str(summary.uncertain[0].frame) in text
    assert (project.labels.instances.track >= 0).sum() == summary.n_assigned


def test_the_review_queue_is_ranked_off_the_gui_thread_and_again_after_an_edit_meanwhile(
    make_napari_viewer, qtbot, clip, monkeypatch
):
    import threading

    from napari_posetrack.core.tracking import proofread

    ranked_on: list[bool] = []
    rank = proofread.review_queue

    def recording(*args, **kwargs):
        ranked_on.append(threading.current_thread() is threading.main_thread())
        return rank(*args, **kwargs)

    monkeypatch.setattr(proofread, "review_queue", recording)
    path, _ = clip
    viewer, project = _viewer_with(make_napari_viewer, path)
    widget = ProofreadWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.refreshing
    qtbot.waitUntil(lambda: not widget.refreshing, timeout=WAIT_MS)
    assert ranked_on and not any(ranked_on)  # every ranking ran in a worker thread
    queued = [(q.frame, q.value) for q in widget.queue]
    assert queued and widget.review_list.count() == len(queued)

    # an edit while a ranking runs: that ranking is dropped and another one is made
    ranked_on.clear()
    widget.refresh_queue_in_background()
    project.events.labels_changed.emit(None)
    qtbot.waitUntil(lambda: not widget.refreshing, timeout=WAIT_MS)
    assert len(ranked_on) == 2 and not any(ranked_on)
    assert [(q.frame, q.value) for q in widget.queue] == queued
    # the synchronous refresh gives the same queue
    widget.refresh_queue()
    assert [(q.frame, q.value) for q in widget.queue] == queued and ranked_on[-1]
