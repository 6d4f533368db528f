"""The suggestions dock widget in a real napari viewer, on the generated sample and the real fly clip."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.suggestions import ALL_VIDEOS, SuggestionsWidget
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import USER, Video
from napari_posetrack.core.sample import write_sample
from napari_posetrack.core.tools.suggestion_rounds import METHODS

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"), n_animals=2, n_frames=40, size=(96, 96))


def _partly_labelled(sample_files):
    """The sample with user instances kept on every 10th frame only (the rest is to be labelled)."""
    labels = load_labels(sample_files["labels"])
    labels.delete(np.flatnonzero(labels.instances.frame % 10 != 0))
    return labels


def _run(widget, qtbot, timeout=60_000):
    # the worker may finish before a waitSignal could connect: wait for the widget to reset instead
    assert widget.generate() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def _column(widget, col):
    return [widget.table.item(r, col).text() for r in range(widget.table.rowCount())]


def test_uniform_round_list_jump_undo_clear(make_napari_viewer, qtbot, sample_files, screenshot_dir) -> None:
    viewer = make_napari_viewer()
    project = project_for(viewer)
    widget = SuggestionsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Suggestions", area="right")
    assert not widget.generate_button.isEnabled()  # no project yet
    project.set_labels(_partly_labelled(sample_files), None)
    assert widget.generate_button.isEnabled()

    widget.set_method("uniform")
    widget.count_spin.setValue(5)
    assert not widget.sample_spin.isVisibleTo(widget) and not widget.z_spin.isVisibleTo(widget)
    _run(widget, qtbot)
    labels = project.labels
    frames = sorted(s.frame for s in labels.suggestions)
    assert len(frames) == 5
    assert all(f % 10 != 0 for f in frames), "labelled frames are not suggested"
    assert {s.group for s in labels.suggestions} == {METHODS["uniform"].group}
    assert _column(widget, 1) == [str(f) for f in frames]
    assert set(_column(widget, 2)) == {"uniform"} and set(_column(widget, 3)) == {"no"}
    assert "5 suggested frames, 0 labelled" in widget.summary_label.text()

    # clicking a row shows its frame; Next / Previous walk the list from the current frame
    widget.table.setCurrentCell(2, 0)
    assert viewer.dims.current_step[0] == frames[2]
    widget.next_button.click()
    assert viewer.dims.current_step[0] == frames[3]
    assert widget.table.currentRow() == 3
    widget.previous_button.click()
    widget.previous_button.click()
    assert viewer.dims.current_step[0] == frames[1]
    project.go_to(frames[-1] + 1)
    widget.next_button.click()  # wraps around to the first
    assert viewer.dims.current_step[0] == frames[0]

    # labelling a suggested frame marks it labelled (after the short debounce)
    points = labels.instances.points[0].copy()
    project.session.add_instance(0, frames[0], points)
    qtbot.waitUntil(lambda: _column(widget, 3)[0] == "yes", timeout=3_000)
    assert "1 labelled" in widget.summary_label.text()
    project.session.undo()

    # a second round adds no duplicates; the round is one undo step
    _run(widget, qtbot)
    n_after_second = len(project.labels.suggestions)
    assert n_after_second >= 5
    assert len({(s.video, s.frame) for s in project.labels.suggestions}) == n_after_second
    if n_after_second > 5:
        project.session.undo()
        assert len(project.labels.suggestions) == 5
        assert widget.table.rowCount() == 5

    widget.clear_button.click()
    assert project.labels.suggestions == []
    assert widget.table.rowCount() == 0
    project.session.undo()
    assert widget.table.rowCount() == len(project.labels.suggestions) > 0

    # a picture of the widget docked in the viewer, for reviewers and the user guide
    widget.next_button.click()
    qtbot.wait(50)
    path = screenshot_dir / "suggestions.png"
    assert widget.grab().save(str(path))
    assert path.stat().st_size > 0
    window_path = screenshot_dir / "suggestions_viewer.png"
    viewer.screenshot(str(window_path), canvas_only=False)
    assert window_path.stat().st_size > 0


def test_motion_outliers_and_a_missing_video(make_napari_viewer, qtbot, sample_files, tmp_path) -> None:
    viewer = make_napari_viewer()
    project = project_for(viewer)
    labels = load_labels(sample_files["labels"])
    # one head point jumps 40 px on frame 23 and comes back: implausible motion on frames 23 and 24
    row = labels.rows(video=0, frame=23, track=0, kind=USER)[0]
    labels.instances.points[row, 0] += 40.0
    project.set_labels(labels, None)
    widget = SuggestionsWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_method("motion")
    assert widget.z_spin.isVisibleTo(widget)
    widget.count_spin.setValue(2)
    _run(widget, qtbot)
    assert sorted(s.frame for s in project.labels.suggestions) == [23, 24]
    assert set(_column(widget, 2)) == {"motion"}
    assert set(_column(widget, 3)) == {"yes"}  # proofreading: labelled frames are kept

    # k-means over all videos of a project whose second video is missing: that one is skipped
    labels = _partly_labelled(sample_files)
    labels.add_video(Video(str(tmp_path / "gone.mp4"), n_frames=30))
    project.set_labels(labels, None)
    assert widget.table.rowCount() == 0
    widget.set_method("kmeans")
    widget.scope_combo.setCurrentText(ALL_VIDEOS)
    widget.sample_spin.setValue(8)
    _run(widget, qtbot)
    assert {s.video for s in project.labels.suggestions} == {0}
    assert len(project.labels.suggestions) == 2
    assert "gone.mp4" in widget.summary_label.text()
    assert widget.generate_button.isEnabled()
    assert not widget.progress.isVisible()


@pytest.mark.slow
def test_real_fly_predictions_kmeans_and_low_scores(make_napari_viewer, qtbot, flies) -> None:
    viewer = make_napari_viewer()
    project = project_for(viewer)
    project.open(flies / "clip.predictions.slp")
    widget = SuggestionsWidget(viewer)
    qtbot.addWidget(widget)

    widget.set_method("kmeans")
    assert widget.sample_spin.isVisibleTo(widget)
    widget.count_spin.setValue(3)
    widget.sample_spin.setValue(6)  # a few frames of the real 1024x1024 video
    _run(widget, qtbot)
    kmeans = [s for s in project.labels.suggestions if s.group == METHODS["kmeans"].group]
    assert len(kmeans) == 3
    assert all(0 <= s.frame < 1500 for s in kmeans)

    widget.set_method("low_scores")
    widget.count_spin.setValue(4)
    _run(widget, qtbot)
    low = [s for s in project.labels.suggestions if s.group == METHODS["low_scores"].group]
    assert len(low) == 4
    # they are the frames whose worst instance scores lowest
    t = project.labels.instances
    worst = {f: t.score[t.frame == f].min() for f in np.unique(t.frame)}
    cutoff = sorted(worst.values())[3]
    assert all(worst[s.frame] <= cutoff for s in low)
    assert set(_column(widget, 2)) == {"k-means", "low score"}
    widget.table.setCurrentCell(0, 0)
    assert viewer.dims.current_step[0] == int(_column(widget, 1)[0])
