"""The inference and tracking dock widget in a real napari viewer, with a real (tiny) trained model."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets._tracker_form import TrackerForm
from napari_posetrack._widgets.inference import InferenceWidget
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import PREDICTED, USER
from napari_posetrack.core.sample import write_sample
from napari_posetrack.core.tracking.tracker import TrackerConfig

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def sample(small_sample) -> dict[str, str]:
    return small_sample


@pytest.fixture(scope="module")
def runs_folder(single_instance_run) -> Path:
    """A runs folder holding one single-instance run trained for two steps on one animal (CPU)."""
    return single_instance_run.parent


def _user_only(path: str):
    """The sample's labels with only its user instances on frames 0-9 (predictions come from us)."""
    labels = load_labels(path)
    t = labels.instances
    return labels.subset(np.flatnonzero((t.kind == USER) & (t.frame < 10)))


def _widget(
    make_napari_viewer, qtbot, labels, runs_folder: Path | None = None
) -> tuple[InferenceWidget, object]:
    viewer = make_napari_viewer()
    project_for(viewer).set_labels(labels)
    widget = InferenceWidget(viewer)
    qtbot.addWidget(widget)
    if runs_folder is not None:
        widget.runs_folder_edit.setText(str(runs_folder))
        widget.runs_folder_edit.editingFinished.emit()
    # no threshold: a model trained for two steps still gives one instance per frame
    widget.options_form.set_values({"peak_threshold": 0.0, "device": "cpu", "batch_size": 4})
    return widget, viewer


def _wait_done(qtbot, widget: InferenceWidget) -> None:
    qtbot.waitUntil(lambda: widget.worker is None and widget.predict_button.isEnabled(), timeout=WAIT_MS)


def _errors() -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [n.message for n in notification_manager.records if n.severity == NotificationSeverity.ERROR]


def _predicted_frames(labels) -> set[int]:
    t = labels.instances
    return set(t.frame[t.kind == PREDICTED].tolist())


def _layer_predicted_frames(project) -> set[int]:
    layer = project.points_layer
    kind = layer.features["kind"].astype(str).to_numpy()
    return set(np.round(np.asarray(layer.data)[kind == "predicted", 0]).astype(int).tolist())


@pytest.mark.slow  # trains the module's model once (a few seconds on CPU)
def test_predict_all_frames_shows_points_and_is_one_undo_step(make_napari_viewer, qtbot, sample, runs_folder):
    widget, viewer = _widget(make_napari_viewer, qtbot, _user_only(sample["labels"]), runs_folder)
    project = project_for(viewer)
    assert widget.model_combo.count() == 1 and "single_instance" in widget.model_combo.currentText()
    user_before = int((project.labels.instances.kind == USER).sum())
    widget.target_combo.setCurrentText("All frames")
    widget.predict_button.click()
    assert not widget.predict_button.isEnabled() and widget.cancel_button.isEnabled()
    _wait_done(qtbot, widget)
    assert widget.last_outcome.error is None, widget.last_outcome.error
    assert widget.last_outcome.added == 40
    assert _predicted_frames(project.labels) == set(range(40))
    assert _layer_predicted_frames(project) == set(range(40))
    assert int((project.labels.instances.kind == USER).sum()) == user_before
    assert "Added 40 predicted instances" in widget.status_label.text()
    assert not widget.cancel_button.isEnabled()
    project.session.undo()
    assert _predicted_frames(project.labels) == set()
    assert _layer_predicted_frames(project) == set()


@pytest.mark.slow  # trains the module's model once (a few seconds on CPU)
def test_predict_range_and_current_frame(make_napari_viewer, qtbot, sample, runs_folder):
    widget, viewer = _widget(make_napari_viewer, qtbot, _user_only(sample["labels"]), runs_folder)
    project = project_for(viewer)
    widget.target_combo.setCurrentText("Frame range")
    assert widget.range_row.isEnabled() and not widget.video_scope_combo.isEnabled()
    assert widget.range_stop_spin.maximum() == 39
    widget.range_start_spin.setValue(12)
    widget.range_stop_spin.setValue(17)
    assert widget.target() == "12-17"
    widget.predict_button.click()
    _wait_done(qtbot, widget)
    assert _predicted_frames(project.labels) == set(range(12, 18))
    # the current frame, given as a run folder's config file instead of the runs list
    project.go_to(30)
    widget.target_combo.setCurrentText("Current frame")
    run = next(p for p in runs_folder.iterdir() if p.is_dir())
    widget.model_path_edit.setText(str(run / "training_config.yaml"))
    widget.predict_button.click()
    _wait_done(qtbot, widget)
    assert _predicted_frames(project.labels) == set(range(12, 18)) | {30}
    assert 30 in _layer_predicted_frames(project)


@pytest.mark.slow  # trains the module's model once (a few seconds on CPU)
def test_cancel_leaves_labels_unchanged_and_resets(make_napari_viewer, qtbot, sample, runs_folder):
    widget, viewer = _widget(make_napari_viewer, qtbot, _user_only(sample["labels"]), runs_folder)
    project = project_for(viewer)
    widget.options_form.set_values({"batch_size": 1})  # many batches: the engine checks Cancel between them
    n_before = project.labels.n_instances
    progressed = []

    def cancel_on_first_frames(p) -> None:
        if p.stage == "predicting" and p.done > 0 and not progressed:
            progressed.append(p.done)
            widget.cancel_button.click()

    widget.predict_button.click()
    widget.worker.yielded.connect(cancel_on_first_frames)
    _wait_done(qtbot, widget)
    assert progressed, "no progress was reported before the run ended"
    assert widget.last_outcome.cancelled
    assert project.labels.n_instances == n_before
    assert _predicted_frames(project.labels) == set()
    assert "Cancelled" in widget.status_label.text()
    assert widget.predict_button.isEnabled() and widget.track_button.isEnabled()
    assert not widget.cancel_button.isEnabled()
    assert not project.session.can_undo  # nothing was recorded


@pytest.mark.slow  # trains the module's model once (a few seconds on CPU)
def test_errors_notify_and_reset(make_napari_viewer, qtbot, sample, runs_folder, tmp_path):
    empty = tmp_path / "no_models"
    empty.mkdir()
    widget, viewer = _widget(make_napari_viewer, qtbot, _user_only(sample["labels"]), empty)
    assert widget.model_combo.count() == 0
    n_errors = len(_errors())
    widget.predict_button.click()
    assert len(_errors()) == n_errors + 1
    assert "no trained models" in _errors()[-1] and str(empty) in _errors()[-1]
    assert widget.predict_button.isEnabled() and not widget.cancel_button.isEnabled()
    # an error inside the worker: a run folder whose checkpoint is gone
    broken = tmp_path / "broken_run"
    shutil.copytree(next(p for p in runs_folder.iterdir() if p.is_dir()), broken)
    for ckpt in broken.glob("*.ckpt"):
        ckpt.unlink()
    widget.model_path_edit.setText(str(broken))
    widget.predict_button.click()
    _wait_done(qtbot, widget)
    assert widget.last_outcome.error is not None
    assert len(_errors()) == n_errors + 2 and "ckpt" in _errors()[-1]
    assert widget.predict_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert "Failed" in widget.status_label.text()
    assert _predicted_frames(project_for(viewer).labels) == set()


@pytest.mark.slow  # trains the module's model once (a few seconds on CPU)
def test_track_after_predicting_and_track_only(make_napari_viewer, qtbot, sample, runs_folder):
    widget, viewer = _widget(make_napari_viewer, qtbot, _user_only(sample["labels"]), runs_folder)
    project = project_for(viewer)
    widget.track_check.setChecked(True)
    widget.target_combo.setCurrentText("Frame range")
    widget.range_start_spin.setValue(0)
    widget.range_stop_spin.setValue(9)
    # fewer tracks than the animals labelled on a frame is refused before predicting, nothing changes
    widget.tracker_form.set_values({"window": 3, "max_tracks": 1, "stitch": False})
    n_errors = len(_errors())
    widget.predict_button.click()
    _wait_done(qtbot, widget)
    assert len(_errors()) == n_errors + 1 and "set max tracks to at least 2" in _errors()[-1]
    assert not (project.labels.instances.kind == PREDICTED).any()
    widget.tracker_form.set_values({"window": 3, "max_tracks": 2, "stitch": False})
    widget.predict_button.click()
    _wait_done(qtbot, widget)
    t = project.labels.instances
    predicted = t.kind == PREDICTED
    assert predicted.sum() == 10 and (t.track[predicted] >= 0).all()
    assert len(np.unique(t.track[predicted])) == 1  # one animal followed through ten frames: one identity
    # Track only, on the user instances this time (two animals, ten frames)
    widget.tracker_form.set_values({"kind": "user", "max_tracks": 2, "stitch": True})
    for instance in t.instance_id[t.kind == USER]:
        project.session.set_track(int(instance), -1)
    widget.track_button.click()
    qtbot.waitUntil(lambda: widget.worker is None and widget.track_button.isEnabled(), timeout=WAIT_MS)
    t = project.labels.instances
    user = t.kind == USER
    assert (t.track[user] >= 0).all()
    assert len(np.unique(t.track[user])) == 2
    assert "Tracked into" in widget.status_label.text()


@pytest.mark.slow  # trains a tiny top-down identity job (centroid + centered instance, 2 steps each)
def test_an_identity_model_names_the_tracks_and_the_tracker_does_not_replace_them(
    make_napari_viewer, qtbot, sample, tmp_path
):
    """Predict + track with a top-down identity model: tracks are the class names, with a warning."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    from napari_posetrack.core.config import baseline_profile
    from napari_posetrack.core.training.run import train_topdown

    labels = load_labels(sample["labels"])
    names = list(dict.fromkeys(t.name for t in labels.tracks))
    cfg = baseline_profile("topdown-id", receptive_field="small")
    cfg.model.unet.filters = 4
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = 2
    cfg.optimization.batch_size = 4
    cfg.outputs.runs_folder = str(tmp_path / "runs")
    train_topdown(cfg, labels, device="cpu")
    widget, _ = _widget(make_napari_viewer, qtbot, _user_only(sample["labels"]), tmp_path / "runs")
    assert widget.model_combo.count() == 1 and "topdown" in widget.model_combo.currentText()
    project = project_for(widget.viewer)
    widget.track_check.setChecked(True)
    widget.tracker_form.set_values({"window": 3, "max_tracks": 2, "stitch": False})
    widget.options_form.set_values({"max_instances": 2})
    widget.target_combo.setCurrentText("Frame range")
    widget.range_start_spin.setValue(0)
    widget.range_stop_spin.setValue(3)
    widget.predict_button.click()
    _wait_done(qtbot, widget)
    t = project.labels.instances
    predicted = np.flatnonzero(t.kind == PREDICTED)
    assert len(predicted) and (t.track[predicted] >= 0).all()
    assert {project.labels.tracks[i].name for i in t.track[predicted]} <= set(names)
    warnings = [n.message for n in notification_manager.records if n.severity == NotificationSeverity.WARNING]
    assert any("identity model" in w and "tracker was not run" in w for w in warnings)


@pytest.mark.slow  # trains the module's model once (a few seconds on CPU)
def test_viewer_answers_within_200_ms_while_inference_runs(make_napari_viewer, qtbot, runs_folder, tmp_path):
    """A timer on the GUI thread keeps firing every 50 ms while a long prediction runs."""
    from qtpy.QtCore import QTimer

    long_clip = write_sample(tmp_path, n_animals=1, n_frames=120, size=(64, 64), seed=5)
    widget, viewer = _widget(make_napari_viewer, qtbot, load_labels(long_clip["labels"]), runs_folder)
    widget.options_form.set_values({"batch_size": 2})
    # opening a project finishes with one idle-time step (whole-video metadata and the tracks layer,
    # about 0.3 s on the GUI thread); let it run first, this test is about inference
    project = project_for(viewer)
    qtbot.waitUntil(lambda: not project._idle_timer.isActive(), timeout=WAIT_MS)
    qtbot.wait(100)
    fired: list[float] = []
    progress_times: list[float] = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: fired.append(time.perf_counter()))
    timer.start()
    widget.predict_button.click()
    widget.worker.yielded.connect(
        lambda p: progress_times.append(time.perf_counter()) if p.stage == "predicting" else None
    )
    _wait_done(qtbot, widget)
    timer.stop()
    assert widget.last_outcome.error is None
    # while inference ran: from the first to the last progress report of the worker
    start, end = progress_times[0], progress_times[-1]
    during = [t for t in fired if start <= t <= end]
    assert end - start > 0.5, f"inference too short ({end - start:.2f} s) to measure responsiveness"
    gaps = np.diff(during)
    assert len(gaps) >= 5
    assert gaps.max() < 0.2, f"the event loop stalled for {gaps.max() * 1000:.0f} ms"


def _with_predictions(path: str):
    """The sample labels (40 frames) plus one predicted instance per user instance, score = frame / 40."""
    labels = load_labels(path)
    t = labels.instances
    user = np.flatnonzero(t.kind == USER)
    labels.add_instances(
        t.video[user], t.frame[user], t.points[user] + 1.0, kind=PREDICTED, score=t.frame[user] / 40.0
    )
    return labels


def test_bulk_delete_predictions_and_undo(make_napari_viewer, qtbot, sample):
    widget, viewer = _widget(make_napari_viewer, qtbot, _with_predictions(sample["labels"]))
    project = project_for(viewer)
    n_pred = int((project.labels.instances.kind == PREDICTED).sum())
    n_user = int((project.labels.instances.kind == USER).sum())
    assert n_pred == n_user > 0

    widget.delete_scope_combo.setCurrentText("Below a score")
    assert widget.delete_score_spin.isEnabled() and not widget.delete_range_row.isEnabled()
    widget.delete_score_spin.setValue(0.25)  # frames 0-9
    widget.delete_button.click()
    assert _predicted_frames(project.labels) == set(range(10, 40))
    assert _layer_predicted_frames(project) == set(range(10, 40))

    widget.delete_scope_combo.setCurrentText("In a frame range")
    widget.delete_start_spin.setValue(20)
    widget.delete_stop_spin.setValue(29)
    widget.delete_button.click()
    assert _predicted_frames(project.labels) == set(range(10, 20)) | set(range(30, 40))

    widget.delete_scope_combo.setCurrentText("All predictions")
    widget.delete_button.click()
    assert _predicted_frames(project.labels) == set() == _layer_predicted_frames(project)
    assert int((project.labels.instances.kind == USER).sum()) == n_user
    assert "Deleted" in widget.status_label.text()

    for expected in (set(range(10, 20)) | set(range(30, 40)), set(range(10, 40)), set(range(40))):
        project.session.undo()
        assert _predicted_frames(project.labels) == expected
        assert _layer_predicted_frames(project) == expected
    assert int((project.labels.instances.kind == PREDICTED).sum()) == n_pred


def test_track_only_on_the_current_or_the_chosen_videos(make_napari_viewer, qtbot, sample, tmp_path):
    """Issue #12 item 6: 'Track only' on all videos, the one shown, or the ticked ones; others keep theirs."""
    from napari_posetrack.core.labels import Video

    labels = _with_predictions(sample["labels"])
    second = tmp_path / "second.mp4"
    shutil.copy(sample["video"], second)
    v1 = labels.add_video(Video(str(second), n_frames=labels.videos[0].n_frames, shape=labels.videos[0].shape))
    t = labels.instances
    pred = np.flatnonzero(t.kind == PREDICTED)
    labels.add_instances(v1, t.frame[pred], t.points[pred], kind=PREDICTED, score=t.score[pred])
    widget, viewer = _widget(make_napari_viewer, qtbot, labels)
    project = project_for(viewer)
    widget.tracker_form.set_values({"kind": "predicted", "max_tracks": 2})

    def tracked(video: int) -> np.ndarray:
        t = project.labels.instances
        return t.track[(t.kind == PREDICTED) & (t.video == video)] >= 0

    assert not tracked(0).any() and not tracked(1).any()
    # chosen, nothing ticked: a clear error, nothing runs
    widget.track_videos_combo.setCurrentText("Chosen videos")
    assert widget.track_videos_list.isVisibleTo(widget) and widget.track_videos_list.count() == 2
    assert widget.track_videos_list.item(1).text() == "1: second.mp4"
    n_errors = len(_errors())
    widget.track_button.click()
    assert len(_errors()) == n_errors + 1 and "tick at least one video" in _errors()[-1]
    assert widget.worker is None and widget.track_button.isEnabled()
    # the ticked second video only
    widget.track_videos_list.item(1).setCheckState(Qt.CheckState.Checked)
    widget.track_button.click()
    qtbot.waitUntil(lambda: widget.worker is None and widget.track_button.isEnabled(), timeout=WAIT_MS)
    assert tracked(1).all() and not tracked(0).any()
    # the video shown (video 0), and the second keeps its tracks
    before = project.labels.instances.track[project.labels.instances.video == 1].copy()
    widget.track_videos_combo.setCurrentText("Current video")
    assert not widget.track_videos_list.isVisibleTo(widget)
    widget.track_button.click()
    qtbot.waitUntil(lambda: widget.worker is None and widget.track_button.isEnabled(), timeout=WAIT_MS)
    assert tracked(0).all()
    assert np.array_equal(project.labels.instances.track[project.labels.instances.video == 1], before)
    # each run is one undo step
    project.session.undo()
    assert tracked(1).all() and not tracked(0).any()


def test_tracker_form_round_trip_and_tooltips(qtbot):
    form = TrackerForm()
    qtbot.addWidget(form)
    assert form.config() == TrackerConfig()
    custom = TrackerConfig(
        candidates="flow",
        similarity="oks",
        matching="greedy",
        window=12,
        max_tracks=3,
        min_points=2,
        min_similarity=0.2,
        motion_prior=False,
        stitch=False,
        max_node_jump=None,
        shape_outlier=None,
        distance_scale=7.5,
        stitch_max_gap=40,
        stitch_min_length=10,
        shape_weight=0.5,
        embedding_weight=2.5,
        embedding_seed=7,
        kind="all",
        flow_window=15,
        flow_levels=2,
    )
    form.set_config(custom)
    assert form.config() == custom
    # every TrackerConfig field has a control with a tooltip in words
    from dataclasses import fields

    assert {f.name for f in fields(TrackerConfig)} == set(form.controls)
    for name, control in form.controls.items():
        assert control.objectName() == f"tracker_{name}"
        assert len(control.toolTip()) > 15, name
    assert (
        "elapsed"
        in form.controls["window"].parent().layout().labelForField(form.controls["window"]).text().lower()
    )
    assert "candidate" in form.controls["window"].toolTip().lower()


def _fake_run(folder: Path, name: str, pipeline: str, source: str = "labels.slp") -> Path:
    """A run folder as far as model listing reads it (no weights: never loaded)."""
    run = folder / name
    run.mkdir(parents=True)
    (run / "training_config.yaml").write_text(f"model:\n  pipeline: {pipeline}\n")
    (run / "labels_source.txt").write_text(source)
    return run


def test_models_listed_newest_first_and_topdown_pairs(tmp_path):
    """A single-instance run trained long ago, a top-down pair, and a centroid run with no partner."""
    import os

    from napari_posetrack.core.errors import ConfigError, MissingFileError
    from napari_posetrack.core.inference.model_choice import models_in_folder, runs_for_path

    folder = tmp_path / "runs"
    old = _fake_run(folder, "a_old.single_instance", "single_instance")
    os.utime(old / "training_config.yaml", (1, 1))
    centroid = _fake_run(folder, "z_centroid", "centroid")
    centered = _fake_run(folder, "z_centered", "centered_instance")
    lone = _fake_run(folder, "y_lone", "centroid", source="elsewhere.slp")
    models = models_in_folder(folder)
    assert [m.pipeline for m in models] == ["topdown", "single_instance"]
    assert models[0].runs == [centroid, centered]
    assert runs_for_path(centered / "training_config.yaml") == [centroid, centered]
    assert runs_for_path(centroid) == [centroid, centered]
    assert runs_for_path(old) == [old]
    with pytest.raises(ConfigError, match="centered_instance"):
        runs_for_path(lone)
    with pytest.raises(MissingFileError, match="training_config.yaml"):
        runs_for_path(tmp_path)


def test_screenshot(make_napari_viewer, qtbot, sample, screenshot_dir, tmp_path):
    runs = tmp_path / "models"
    _fake_run(runs, "labels_251120_101500.centroid", "centroid")
    _fake_run(runs, "labels_251120_104200.centered_instance", "centered_instance")
    _fake_run(runs, "labels_251121_090000.bottomup", "bottomup")
    widget, viewer = _widget(make_napari_viewer, qtbot, _with_predictions(sample["labels"]), runs)
    assert widget.model_combo.count() == 2
    widget.tracker_toggle.setChecked(True)
    widget.resize(420, 1500)  # tall enough to show every control, tracker settings open
    path = screenshot_dir / "inference.png"
    widget.grab().save(str(path))
    assert path.is_file() and path.stat().st_size > 0
    widget.tracker_toggle.setChecked(False)
    viewer.window.add_dock_widget(widget, name="Inference and tracking", area="right")
    viewer.window.resize(1400, 900)
    viewer.reset_view()
    whole = screenshot_dir / "inference_viewer.png"
    viewer.screenshot(str(whole), canvas_only=False)
    assert whole.is_file() and whole.stat().st_size > 0
