"""Moved videos from the GUI: opening a labels file whose videos moved shows the "Videos not found" dialog.

Real viewer, real fly clip: the labels and the video are copied into tmp_path, the video is moved,
the file is opened, and the dialog (driven without blocking: set paths, accept) points it at its
new place; the frames then show.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_posetrack._widgets._missing_videos import MissingVideosDialog
from napari_posetrack._widgets._project import has_project, project_for
from napari_posetrack.core.errors import MissingFileError
from napari_posetrack.core.io import load_labels, save_labels

pytestmark = pytest.mark.gui


@pytest.fixture
def moved_clip(flies: Path, tmp_path: Path) -> tuple[Path, Path]:
    """clip.slp + clip.mp4 copied into tmp_path, then the video moved elsewhere: (labels, video's new path)."""
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    shutil.copy(flies / "clip.mp4", project_dir / "clip.mp4")
    labels = load_labels(flies / "clip.slp")
    labels.replace_video(0, str(project_dir / "clip.mp4"))
    save_labels(labels, project_dir / "clip.slp")
    moved = tmp_path / "moved" / "videos" / "clip.mp4"
    moved.parent.mkdir(parents=True)
    shutil.move(project_dir / "clip.mp4", moved)
    return project_dir / "clip.slp", moved


def _frames_show(project, n_frames: int) -> None:
    layer = project.video_layer
    assert layer is not None and "(not found)" not in layer.name
    assert layer.data.shape[0] == n_frames
    frame = np.asarray(layer.data[7])
    assert frame.shape[:2] == (1024, 1024) and frame.std() > 0  # real pixels, not the black stand-in


def _infos() -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [n.message for n in notification_manager.records if n.severity == NotificationSeverity.INFO]


def test_open_with_a_moved_video_asks_for_it_and_shows_its_frames(make_napari_viewer, qtbot, moved_clip):
    labels_path, moved = moved_clip
    viewer = make_napari_viewer()
    project = project_for(viewer)
    with pytest.warns(UserWarning, match="not found"):
        project.open(labels_path)
    dialog = project.missing_videos_dialog
    assert isinstance(dialog, MissingVideosDialog) and dialog.isVisible()
    old = str(labels_path.parent / "clip.mp4")
    assert dialog.old_paths() == [old]
    assert dialog.table.item(0, 0).text() == old  # the old path is listed
    assert not dialog.apply_button.isEnabled()  # nothing found yet
    assert project.video_layer is None or "(not found)" in project.video_layer.name

    with pytest.raises(MissingFileError, match="nothere.mp4"):
        dialog.set_new_path(0, moved.parent / "nothere.mp4")
    assert dialog.set_new_path(0, moved) == {old: str(moved)}
    assert dialog.table.item(0, 1).text() == str(moved) and dialog.apply_button.isEnabled()
    n_instances = project.labels.n_instances
    dialog.accept()
    assert not dialog.isVisible() and dialog.applied == {old: str(moved)}
    assert project.labels.videos[0].path == str(moved)
    assert project.labels.n_instances == n_instances
    _frames_show(project, 1500)
    assert any("Replaced 1 video path" in m for m in _infos())
    # one undoable step, saved like any edit
    assert project.session.can_undo and project.session.dirty
    project.save()
    assert load_labels(labels_path).videos[0].path == str(moved)


def test_the_other_videos_that_moved_the_same_way_follow(make_napari_viewer, qtbot, flies, tmp_path):
    """Two videos under one folder; the folder moves; picking one finds the other (File > Open path)."""
    old_root = tmp_path / "rig" / "experiment"
    for name in ("day1", "day2"):
        (old_root / name).mkdir(parents=True)
        shutil.copy(flies / "clip.mp4", old_root / name / "clip.mp4")
    labels = load_labels(flies / "clip.slp")
    labels.replace_video(0, str(old_root / "day1" / "clip.mp4"))
    second = labels.videos[0].copy()
    second.path = str(old_root / "day2" / "clip.mp4")
    labels.add_video(second)
    labels_path = tmp_path / "labels" / "two_days.slp"
    labels_path.parent.mkdir()
    save_labels(labels, labels_path)
    new_root = tmp_path / "archive" / "2024" / "experiment"
    new_root.parent.mkdir(parents=True)
    shutil.move(old_root, new_root)

    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="not found"):
        viewer.open(str(labels_path), plugin="napari-posetrack")
    # no PoseTrack widget is open: once napari has added the layers, the project takes them over and asks
    qtbot.waitUntil(lambda: has_project(viewer), timeout=10_000)
    project = project_for(viewer)
    dialog = project.missing_videos_dialog
    assert dialog is not None and dialog.isVisible()
    assert project.path == labels_path  # saving goes back to the file opened
    day1, day2 = str(old_root / "day1" / "clip.mp4"), str(old_root / "day2" / "clip.mp4")
    assert dialog.old_paths() == [day1, day2]
    changed = dialog.set_new_path(day1, new_root / "day1" / "clip.mp4")
    assert changed == {day1: str(new_root / "day1" / "clip.mp4"), day2: str(new_root / "day2" / "clip.mp4")}
    assert dialog.table.item(1, 1).text() == str(new_root / "day2" / "clip.mp4")
    dialog.accept()
    assert [v.path for v in project.labels.videos] == [
        str(new_root / "day1" / "clip.mp4"),
        str(new_root / "day2" / "clip.mp4"),
    ]
    assert project.labels.missing_videos() == []
    _frames_show(project, 1500)
    project.show_video(1)
    _frames_show(project, 1500)


def test_search_a_folder_and_not_now(make_napari_viewer, qtbot, moved_clip, flies, tmp_path):
    labels_path, moved = moved_clip
    viewer = make_napari_viewer()
    project = project_for(viewer)
    with pytest.warns(UserWarning):
        project.open(labels_path)
    dialog = project.missing_videos_dialog
    old = dialog.old_paths()[0]
    assert dialog.search_folder(tmp_path / "moved") == {old: str(moved)}
    assert "found 1 video" in dialog.status.text()
    dialog.reject()  # "Not now": the labels stay as they were
    assert project.labels.videos[0].path == old and not project.session.can_undo
    # every video found: no dialog
    other = make_napari_viewer()
    other_project = project_for(other)
    other_project.open(flies / "clip.slp")
    assert other_project.missing_videos_dialog is None


def test_file_open_into_a_viewer_with_a_project_does_not_replace_it(
    make_napari_viewer, qtbot, moved_clip, small_sample
):
    labels_path, _ = moved_clip
    viewer = make_napari_viewer()
    project = project_for(viewer)
    project.open(small_sample["labels"])
    before = project.labels
    with pytest.warns(UserWarning, match="not found"):
        viewer.open(str(labels_path), plugin="napari-posetrack")
    qtbot.wait(200)  # the reader's scheduled check has run
    assert project.labels is before and project.missing_videos_dialog is None
