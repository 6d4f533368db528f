"""Predicting a video outside the project from the Inference widget, in a real viewer, on the real fly clip.

The model is the session's tiny single-instance run (two training steps on the generated sample):
its poses on flies mean nothing, but every frame gets one instance, which is what these tests count.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.inference import InferenceWidget
from napari_posetrack.core.inference.api import journal_path_for
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import PREDICTED

pytestmark = [pytest.mark.gui, pytest.mark.slow]  # trains the session's tiny model once (seconds on CPU)

WAIT_MS = 120_000


@pytest.fixture
def clip(flies: Path, tmp_path: Path) -> Path:
    out = tmp_path / "new_videos" / "clip.mp4"
    out.parent.mkdir()
    shutil.copy(flies / "clip.mp4", out)
    return out


def _notifications(severity: str) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    wanted = NotificationSeverity(severity)
    return [n.message for n in notification_manager.records if n.severity == wanted]


def _widget(make_napari_viewer, qtbot, small_sample, single_instance_run, clip: Path):
    viewer = make_napari_viewer()
    project = project_for(viewer)
    project.open(small_sample["labels"])
    widget = InferenceWidget(viewer)
    qtbot.addWidget(widget)
    widget.model_path_edit.setText(str(single_instance_run))
    widget.options_form.set_values({"peak_threshold": 0.0, "device": "cpu", "batch_size": 1})
    widget.video_file_group.setChecked(True)
    widget.video_file_edit.setText(str(clip))
    widget.video_file_edit.editingFinished.emit()
    widget.target_combo.setCurrentText("Frame range")
    return widget, viewer, project


def _wait_done(qtbot, widget: InferenceWidget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None and widget.predict_button.isEnabled(), timeout=WAIT_MS)


def _predicted_frames(labels, video: int = 0) -> list[int]:
    t = labels.instances
    return sorted(set(t.frame[(t.kind == PREDICTED) & (t.video == video)].tolist()))


def _snapshot(project) -> tuple:
    labels = project.labels
    return (labels.n_instances, [v.path for v in labels.videos], project.session.can_undo, project.session.dirty)


def test_predict_a_new_video_writes_its_own_file_and_opening_it_shows_video_and_poses(
    make_napari_viewer, qtbot, small_sample, single_instance_run, clip
):
    widget, _viewer, project = _widget(make_napari_viewer, qtbot, small_sample, single_instance_run, clip)
    assert widget.range_stop_spin.maximum() == 1499  # the range counts the video file's frames
    assert not widget.video_scope_combo.isEnabled()
    before = _snapshot(project)
    widget.range_start_spin.setValue(2)
    widget.range_stop_spin.setValue(4)
    widget.predict_button.click()
    _wait_done(qtbot, widget)

    outcome = widget.last_outcome
    expected = clip.with_name("clip.mp4.predictions.slp")
    assert outcome.error is None and not outcome.cancelled
    assert outcome.saved_to == expected and expected.is_file()
    assert (outcome.frames_done, outcome.frames_total) == (3, 3)
    assert str(expected) in widget.status_label.text() and "project is unchanged" in widget.status_label.text()
    assert any(str(expected) in m for m in _notifications("info"))
    assert _snapshot(project) == before  # the project did not change
    assert not journal_path_for(expected, 0).exists()

    saved = load_labels(expected)
    assert [Path(v.path) for v in saved.videos] == [clip]
    assert _predicted_frames(saved) == [2, 3, 4]

    # opening that file later (File > Open) shows the video with its predictions
    other = make_napari_viewer()
    other.open(str(expected), plugin="napari-posetrack")
    images = [layer for layer in other.layers if layer.name.startswith("video:")]
    points = [layer for layer in other.layers if layer.name.startswith("poses:")]
    assert len(images) == 1 and len(points) == 1
    assert images[0].data.shape[0] == 1500
    frame = np.asarray(images[0].data[3])
    assert frame.shape[:2] == (1024, 1024) and frame.std() > 0  # real pixels, not a stand-in
    kinds = points[0].features["kind"].astype(str).to_numpy()
    shown = sorted(set(np.round(np.asarray(points[0].data)[kinds == "predicted", 0]).astype(int).tolist()))
    assert shown == [2, 3, 4]


def test_cancel_keeps_the_finished_frames_and_says_so(
    make_napari_viewer, qtbot, small_sample, single_instance_run, clip, tmp_path
):
    widget, _viewer, project = _widget(make_napari_viewer, qtbot, small_sample, single_instance_run, clip)
    before = _snapshot(project)
    output = tmp_path / "chosen" / "fly_predictions.slp"
    widget.video_output_edit.setText(str(output))
    widget.range_start_spin.setValue(0)
    widget.range_stop_spin.setValue(39)
    progressed: list[int] = []

    def cancel_after_two_frames(p) -> None:
        if p.stage == "predicting" and p.done >= 2 and not progressed:
            progressed.append(p.done)
            widget.cancel_button.click()

    n_warnings = len(_notifications("warning"))
    widget.predict_button.click()
    widget.worker.yielded.connect(cancel_after_two_frames)
    _wait_done(qtbot, widget)

    outcome = widget.last_outcome
    assert progressed and outcome.cancelled and outcome.error is None
    assert outcome.saved_to == output and output.is_file()
    assert 2 <= outcome.frames_done < 40 and outcome.frames_total == 40
    assert _predicted_frames(load_labels(output)) == list(range(outcome.frames_done))
    assert journal_path_for(output, 0).exists()  # a second run resumes from it
    status = widget.status_label.text()
    assert "Cancelled" in status and str(output) in status and f"{outcome.frames_done} finished frames" in status
    warnings = _notifications("warning")
    assert len(warnings) == n_warnings + 1 and str(output) in warnings[-1]
    assert _snapshot(project) == before
    assert widget.predict_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_merge_adds_the_video_and_its_predictions_as_one_undo_step(
    make_napari_viewer, qtbot, small_sample, single_instance_run, clip
):
    widget, _viewer, project = _widget(make_napari_viewer, qtbot, small_sample, single_instance_run, clip)
    n_videos, n_instances = len(project.labels.videos), project.labels.n_instances
    widget.video_merge_check.setChecked(True)
    widget.range_start_spin.setValue(0)
    widget.range_stop_spin.setValue(1)
    widget.predict_button.click()
    _wait_done(qtbot, widget)
    assert widget.last_outcome.merged and "added to the project" in widget.status_label.text()
    assert clip.with_name("clip.mp4.predictions.slp").is_file()
    labels = project.labels
    assert len(labels.videos) == n_videos + 1 and Path(labels.videos[-1].path) == clip
    assert _predicted_frames(labels, video=n_videos) == [0, 1]
    project.session.undo()
    assert len(project.labels.videos) == n_videos and project.labels.n_instances == n_instances


def test_labelled_frames_of_a_new_video_are_refused_by_name(
    make_napari_viewer, qtbot, small_sample, single_instance_run, clip
):
    widget, _viewer, _project = _widget(make_napari_viewer, qtbot, small_sample, single_instance_run, clip)
    widget.target_combo.setCurrentText("Labelled frames")
    n_errors = len(_notifications("error"))
    widget.predict_button.click()
    errors = _notifications("error")
    assert len(errors) == n_errors + 1 and "clip.mp4" in errors[-1] and "labelled frames" in errors[-1]
    assert widget.worker is None and widget.predict_button.isEnabled()
    assert not clip.with_name("clip.mp4.predictions.slp").exists()
