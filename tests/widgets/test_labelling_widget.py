"""Labelling in a real napari viewer (under Xvfb): edits through the layer API and its events.

QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/widgets/test_labelling_widget.py
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari.layers.base import ActionType

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.labelling import LabellingWidget
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import PREDICTED, USER, assert_labels_equal
from napari_posetrack.core.sample import write_sample
from napari_posetrack.core.session import autosave_path
from napari_posetrack.layers import labels_to_points

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, str]:
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture
def sample_copy(sample_files, tmp_path) -> Path:
    """A private copy of the sample labels (the video stays shared)."""
    target = tmp_path / "project.slp"
    shutil.copy(sample_files["labels"], target)
    return target


def _drag(layer, rows: list[int], shift: tuple[float, float]) -> None:
    """What napari's select mode does for a drag: CHANGING, move with events blocked, CHANGED."""
    layer.events.data(value=layer.data, action=ActionType.CHANGING, data_indices=tuple(rows),
                      vertex_indices=((),))
    with layer.events.data.blocker():
        data = layer.data
        data[rows, 1:] += np.asarray(shift)
        layer.data = data
    layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=tuple(rows),
                      vertex_indices=((),))


def _layer_yx(layer, instance_id: int, node: str) -> np.ndarray:
    """Where the layer draws one node of one instance (rows move when frames are redrawn)."""
    f = layer.features
    (row,) = np.flatnonzero((f["instance"].to_numpy() == instance_id) & (f["node"].to_numpy() == node))
    return np.asarray(layer.data)[row, 1:]


def _point(labels, instance_id: int, node: str) -> np.ndarray:
    row = labels.row_of_id(np.array([instance_id]))[0]
    return labels.instances.points[row, labels.skeleton.node_index(node)]


def test_drag_undo_redo_save_reload(make_napari_viewer, sample_copy):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    assert widget.open_path(sample_copy)
    project = project_for(viewer)
    layer = project.points_layer
    assert layer.name == "poses: sample.mp4" and "sample.mp4" in widget.video_label.text()
    original = load_labels(sample_copy)

    row = 5
    instance_id = int(layer.features["instance"][row])
    node = str(layer.features["node"][row])
    before = _point(project.labels, instance_id, node).copy()
    project.go_to(int(layer.data[row, 0]))  # points are dragged on the frame shown
    vectors_before = viewer.layers["skeleton: sample.mp4"].data.copy()
    # only the shown frame's skeleton is drawn
    assert set(vectors_before[:, 0, 0].tolist()) == {layer.data[row, 0]}
    _drag(layer, [row], (4.0, -3.0))  # dy, dx
    after = _point(project.labels, instance_id, node)
    np.testing.assert_allclose(after, before + [-3.0, 4.0])  # the store is x, y
    # the skeleton line ending at the dragged point follows it
    assert not np.array_equal(viewer.layers["skeleton: sample.mp4"].data, vectors_before)
    assert project.session.dirty and widget.file_label.text().startswith("*")

    widget.undo()
    np.testing.assert_allclose(_point(project.labels, instance_id, node), before)
    np.testing.assert_allclose(_layer_yx(layer, instance_id, node), before[::-1])  # the layer shows the undo
    widget.redo()
    np.testing.assert_allclose(_point(project.labels, instance_id, node), before + [-3.0, 4.0])

    saved = widget.save()
    assert saved == sample_copy and not project.session.dirty
    reloaded = load_labels(sample_copy)
    assert_labels_equal(reloaded, project.labels)
    moved = _point(reloaded, instance_id, node)
    np.testing.assert_allclose(moved, before + [-3.0, 4.0])
    assert not np.allclose(_point(original, instance_id, node), moved)


def test_alt_drag_moves_whole_instance_as_one_step(make_napari_viewer, sample_copy):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    layer = project.points_layer
    instance_id = int(layer.features["instance"][0])
    rows = np.flatnonzero(layer.features["instance"].to_numpy() == instance_id).tolist()
    row = project.labels.row_of_id(np.array([instance_id]))[0]
    before = project.labels.instances.points[row].copy()
    _drag(layer, rows, (10.0, 10.0))
    np.testing.assert_allclose(project.labels.instances.points[row], before + 10.0)
    widget.undo()
    np.testing.assert_allclose(project.labels.instances.points[row], before)


def test_new_instance_add_mode_occlusion_delete(make_napari_viewer, sample_copy):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    labels = project.labels
    n_nodes = labels.n_nodes
    project.go_to(7)
    n_before = labels.n_instances

    # a new instance from the mean pose, at a given place
    (new_id,) = widget.new_instance(at_xy=(100.0, 80.0))
    row = labels.row_of_id(np.array([new_id]))[0]
    assert labels.instances.frame[row] == 7 and labels.instances.kind[row] == USER
    np.testing.assert_allclose(np.nanmean(labels.instances.points[row], axis=0), [100.0, 80.0], atol=1e-6)
    layer = project.points_layer
    shown = layer.features["instance"].to_numpy() == new_id
    assert shown.sum() == n_nodes

    # copy of the nearest labelled frame: all its instances
    widget.new_source.setCurrentIndex(1)
    ids = widget.new_instance()
    assert len(ids) == len(labels.frame_rows(0, 6)) or len(ids) >= 1

    # occlude one point by key action: it stays in the data, drawn hollow
    point_row = int(np.flatnonzero(layer.features["instance"].to_numpy() == new_id)[2])
    layer.selected_data = {point_row}
    widget.toggle_visible()
    node = project.node_index_of(layer.features["node"].to_numpy()[[point_row]])[0]
    assert not labels.instances.visible[labels.row_of_id(np.array([new_id]))[0], node]
    assert not np.isnan(labels.instances.points[labels.row_of_id(np.array([new_id]))[0], node]).any()
    hollow = layer.face_color[int(np.flatnonzero(layer.features["instance"].to_numpy() == new_id)[2]), 3]
    assert hollow == 0.0

    # the same from the point's right-click menu: occluded -> visible again
    menu = widget.point_menu(point_row)
    actions = {a.text(): a for a in menu.actions()}
    assert set(actions) == {"Mark visible", "Delete this instance"}
    actions["Mark visible"].trigger()
    assert labels.instances.visible[labels.row_of_id(np.array([new_id]))[0], node]

    # delete the instance, undo brings it back with the same id
    layer.selected_data = {int(np.flatnonzero(layer.features["instance"].to_numpy() == new_id)[0])}
    widget.delete_selected_instances()
    assert labels.row_of_id(np.array([new_id]))[0] == -1
    widget.undo()
    assert labels.row_of_id(np.array([new_id]))[0] >= 0

    # click-to-place in napari's add mode: node after node of a new instance
    project.active_instance = None
    layer.mode = "add"
    layer.add(np.array([[7.0, 20.0, 30.0]]))
    first = project.active_instance
    layer.add(np.array([[7.0, 25.0, 35.0]]))
    assert project.active_instance == first
    pts = labels.instances.points[labels.row_of_id(np.array([first]))[0]]
    np.testing.assert_allclose(pts[:2], [[30.0, 20.0], [35.0, 25.0]])
    assert np.isnan(pts[2:]).all()

    # napari's delete removes one node (it becomes missing); deleting every node removes the instance
    layer.mode = "select"
    rows = np.flatnonzero(layer.features["instance"].to_numpy() == first)
    layer.selected_data = {int(rows[1])}
    layer.remove_selected()
    pts = labels.instances.points[labels.row_of_id(np.array([first]))[0]]
    assert not np.isnan(pts[0]).any() and np.isnan(pts[1]).all()
    rows = np.flatnonzero(layer.features["instance"].to_numpy() == first)
    layer.selected_data = set(rows.tolist())
    layer.remove_selected()
    assert labels.row_of_id(np.array([first]))[0] == -1
    assert labels.n_instances >= n_before + 1


def test_prediction_promotion_and_bulk_delete(make_napari_viewer, sample_copy):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    labels = project.labels
    # predictions: a copy of frames 20-29 shifted, as inference would return them
    result = labels.copy()
    t = result.instances
    rows = np.flatnonzero((t.frame >= 20) & (t.frame < 30))
    result.add_instances(
        t.video[rows], t.frame[rows], t.points[rows] + 2.0, kind=PREDICTED, score=np.linspace(0.1, 0.9, len(rows))
    )
    project.apply_predictions(result, "predict")
    n_pred = int((labels.instances.kind == PREDICTED).sum())
    assert n_pred == len(rows)
    layer = project.points_layer
    pred_rows = np.flatnonzero(layer.features["kind"].to_numpy() == "predicted")
    assert len(pred_rows) == len(rows) * labels.n_nodes  # drawn as diamonds beside the user instances
    assert set(layer.symbol[pred_rows].tolist()) == {"diamond"} or len(set(map(str, layer.symbol[pred_rows]))) == 1
    layer.selected_data = {int(pred_rows[0])}
    widget.promote_selected()
    promoted = project.active_instance
    prow = labels.row_of_id(np.array([promoted]))[0]
    assert labels.instances.kind[prow] == USER and labels.instances.from_predicted[prow] >= 0
    # only that frame was redrawn: its rows match the store, with the right marker per kind
    frame = int(labels.instances.frame[prow])
    layer = project.points_layer
    on_frame = np.flatnonzero(np.rint(layer.data[:, 0]) == frame)
    _, expected_features, _ = labels_to_points(labels, 0, np.array([frame]))
    shown = sorted(zip(layer.features["instance"].to_numpy()[on_frame], layer.features["node"].to_numpy()[on_frame]))
    assert shown == sorted(zip(expected_features["instance"], expected_features["node"]))
    kinds = layer.features["kind"].to_numpy()[on_frame]
    symbols = np.array([str(x) for x in layer.symbol[on_frame]])
    assert set(symbols[kinds == "predicted"]) == {"diamond"} and set(symbols[kinds == "user"]) == {"disc"}
    assert len(layer.data) == len(labels_to_points(labels, 0)[0])
    # the promoted prediction is now hidden under its user copy
    assert len(np.flatnonzero(project.points_layer.features["kind"].to_numpy() == "predicted")) == len(pred_rows) - labels.n_nodes

    # bulk deletion below a score is one undo step
    removed = project.session.delete_predictions(video=0, below_score=0.5)
    assert removed > 0
    assert int((labels.instances.kind == PREDICTED).sum()) == n_pred - removed
    widget.undo()
    assert int((labels.instances.kind == PREDICTED).sum()) == n_pred
    # undoing the whole prediction run takes every prediction away again
    for _ in range(2):
        widget.undo()
    assert int((labels.instances.kind == PREDICTED).sum()) == 0


def test_navigation_and_videos(make_napari_viewer, sample_copy, sample_files):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    labels = project.labels
    # keep only a few labelled frames so labelled / unlabelled differ
    t = labels.instances
    project.session.delete_instances(t.instance_id[~np.isin(t.frame, [10, 50, 90])])
    project.go_to(0)
    widget.next_labelled()
    assert project.current_frame == 10
    widget.next_labelled()
    assert project.current_frame == 50
    widget.previous_labelled()
    assert project.current_frame == 10
    widget.next_unlabelled()
    assert project.current_frame == 11
    # held key: steps grow with auto-repeat
    start = project.current_frame
    for _ in range(40):
        widget.step_forward()
    assert project.current_frame - start > 40

    # a second video: shown when added, next/previous video, the name always shown
    index = widget.add_video(sample_files["video"])
    assert index == 1 and len(project.labels.videos) == 2
    assert project.video_index == 1 and "(2 of 2)" in widget.video_label.text()
    assert viewer.title.endswith("sample.mp4 (2 of 2)")  # the video's name is always in sight
    assert len(project.points_layer.data) == 0  # nothing labelled on the new video yet
    widget.previous_video()
    assert project.video_index == 0 and "(1 of 2)" in widget.video_label.text()
    assert len(project.points_layer.data) > 0
    widget.next_video()
    assert project.video_index == 1
    widget.undo()  # adding the video is undoable
    assert len(project.labels.videos) == 1 and project.video_index == 0

    # suggested frames, across the video
    from napari_posetrack.core.labels import Suggestion

    new = project.labels.copy()
    new.suggestions = [Suggestion(0, 33), Suggestion(0, 120)]
    project.apply(new, "suggest frames")
    project.go_to(0)
    widget.next_suggested()
    assert project.current_frame == 33
    widget.next_suggested()
    assert project.current_frame == 120
    widget.previous_suggested()
    assert project.current_frame == 33


def test_autosave_and_recovery(make_napari_viewer, sample_copy):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    project.go_to(3)
    (new_id,) = widget.new_instance(at_xy=(50.0, 50.0))
    written = project.autosave()
    assert written == autosave_path(sample_copy) and written.exists()
    assert project.autosave_of(sample_copy) == written
    expected = project.labels.copy()

    # a "crash": a fresh viewer opens the project and recovers the unsaved edit
    viewer2 = make_napari_viewer()
    widget2 = LabellingWidget(viewer2)
    assert widget2.open_path(sample_copy, recover=True)
    recovered = project_for(viewer2).labels
    assert recovered.row_of_id(np.array([new_id]))[0] >= 0
    assert_labels_equal(recovered, expected)
    assert project_for(viewer2).session.dirty
    widget2.save()
    assert not autosave_path(sample_copy).exists()
    assert_labels_equal(load_labels(sample_copy), expected)


def test_bad_file_keeps_current_project(make_napari_viewer, sample_copy, tmp_path, qtbot):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    before = project.labels
    broken = tmp_path / "broken.slp"
    broken.write_bytes(b"not an hdf5 file at all")
    assert not widget.open_path(broken)
    assert project.labels is before and project.points_layer in viewer.layers
    # the Open… button reads on a worker thread: a bad file there also keeps the project
    worker = widget.open_path_in_background(broken)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10000)
    assert project.labels is before
    worker = widget.open_path_in_background(sample_copy)
    qtbot.waitUntil(lambda: project.labels is not before, timeout=10000)
    assert_labels_equal(project.labels, load_labels(sample_copy))


def test_reader_layers_are_adopted(make_napari_viewer, sample_copy):
    viewer = make_napari_viewer()
    viewer.open(str(sample_copy), plugin="napari-posetrack")
    widget = LabellingWidget(viewer)
    project = project_for(viewer)
    assert project.session is not None and project.path == sample_copy
    assert [x.name for x in viewer.layers].count("poses: sample.mp4") == 1
    assert_labels_equal(project.labels, load_labels(sample_copy))
    assert "sample.mp4" in widget.video_label.text()


def test_shortcuts_bound_and_help(make_napari_viewer, sample_copy, screenshot_dir):
    from napari_posetrack._widgets._shortcuts import SHORTCUTS

    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    keymap = {str(k) for k in viewer.keymap}
    assert len(SHORTCUTS) == len({s.key for s in SHORTCUTS})
    assert len(keymap) >= len(SHORTCUTS)
    project = project_for(viewer)
    project.go_to(0)
    from napari.utils.key_bindings import KeymapHandler

    handler = KeymapHandler()
    handler.keymap_providers = [viewer]
    handler.press_key("Shift-Right")
    handler.release_key("Shift-Right")
    assert project.current_frame == int(project.labels.user_frames(0)[project.labels.user_frames(0) > 0][0])
    # Ctrl+S saves the project atomically
    widget.new_instance(at_xy=(40.0, 40.0))
    assert project.session.dirty
    handler.press_key("Control-S")
    handler.release_key("Control-S")
    assert not project.session.dirty
    assert_labels_equal(load_labels(sample_copy), project.labels)
    widget.show_help()
    assert widget._help.findChild(object, "shortcuts_table").rowCount() >= len(SHORTCUTS)
    viewer.window.add_dock_widget(widget, name="Labelling")
    out = screenshot_dir / "labelling.png"
    assert widget.grab().save(str(out)) and out.stat().st_size > 0
    viewer.screenshot(str(screenshot_dir / "viewer_labelling.png"), canvas_only=False)


@dataclass
class _MouseEvent:
    """The fields napari's mouse callbacks read from a vispy mouse event."""

    type: str
    position: tuple[float, float, float]
    modifiers: list[str] = field(default_factory=list)
    is_dragging: bool = False
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    view_direction: Any = None
    up_direction: Any = None
    dims_displayed: list[int] = field(default_factory=lambda: [1, 2])
    handled: bool = False
    button: int = 1


def test_mouse_drag_moves_points_and_skeleton_follows(make_napari_viewer, sample_copy, qtbot):
    """Real napari mouse callbacks (select mode): a drag, then an Alt-drag of a whole instance."""
    import wrapt
    from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    layer = project.points_layer
    layer.mode = "select"
    frame = 12
    project.go_to(frame)
    rows = np.flatnonzero(np.rint(layer.data[:, 0]) == frame)
    row = int(rows[0])
    instance_id = int(layer.features["instance"][row])
    start = tuple(layer.data[row])
    end = (start[0], start[1] + 6.0, start[2] + 4.0)
    vectors = viewer.layers["skeleton: sample.mp4"]

    def event(*args: Any, **kwargs: Any) -> Any:
        # napari swaps the event behind a proxy as the drag goes on, as with vispy's events
        return wrapt.ObjectProxy(_MouseEvent(*args, **kwargs))

    def drag(modifiers: list[str], while_dragging: Any = None) -> None:
        mouse_press_callbacks(layer, event("mouse_press", start, modifiers))
        for k in (0.5, 1.0):
            mid = (start[0], start[1] + 6.0 * k, start[2] + 4.0 * k)
            mouse_move_callbacks(layer, event("mouse_move", mid, modifiers, is_dragging=True))
            if while_dragging is not None:
                while_dragging()
                while_dragging = None
        mouse_release_callbacks(layer, event("mouse_release", end, modifiers))

    before_vectors = vectors.data.copy()

    def skeleton_follows() -> None:  # before the mouse is released
        qtbot.waitUntil(lambda: not np.array_equal(vectors.data, before_vectors), timeout=2000)

    drag([], skeleton_follows)
    node = str(layer.features["node"][row])
    np.testing.assert_allclose(_point(project.labels, instance_id, node), [start[2] + 4.0, start[1] + 6.0])

    # Alt-drag: every point of the instance moves by the same amount, one undo step
    row_index = project.labels.row_of_id(np.array([instance_id]))[0]
    whole_before = project.labels.instances.points[row_index].copy()
    start = (float(frame), *_layer_yx(layer, instance_id, node))
    end = (start[0], start[1] + 6.0, start[2] + 4.0)
    layer.selected_data = set()
    drag(["Alt"])
    np.testing.assert_allclose(project.labels.instances.points[row_index], whole_before + [4.0, 6.0], atol=1e-6)
    widget.undo()
    np.testing.assert_allclose(project.labels.instances.points[row_index], whole_before)

    # a right click on a point asks for its menu
    row = int(np.flatnonzero(np.rint(layer.data[:, 0]) == frame)[0])  # rows move when a frame is redrawn
    start = tuple(layer.data[row])
    with qtbot.waitSignal(project.events.point_menu_requested) as asked:
        mouse_press_callbacks(layer, event("mouse_press", start, [], button=2))
    (clicked,) = asked.args  # the point under the cursor (the topmost where points overlap)
    assert np.linalg.norm(layer.data[clicked, 1:] - np.asarray(start[1:])) <= layer.size[clicked]
    menu = widget.open_menu
    assert menu is not None and menu.isVisible() and layer.selected_data == {clicked}
    menu.close()


def test_widgets_docked_through_the_manifest_share_one_project(make_napari_viewer, sample_copy):
    """napari gives every plugin widget its own proxy of the viewer; they must still share the project."""
    viewer = make_napari_viewer()
    _, labelling = viewer.window.add_plugin_dock_widget("napari-posetrack", "Labelling")
    _, _tools = viewer.window.add_plugin_dock_widget("napari-posetrack", "Tools")
    assert labelling.project is project_for(viewer)
    labelling.open_path(sample_copy)
    assert project_for(viewer).labels is labelling.project.labels
    assert "poses: sample.mp4" in [layer.name for layer in viewer.layers]


@pytest.mark.slow
def test_real_fly_labels_edit_save_reload(make_napari_viewer, flies, tmp_path):
    """The real SLEAP file: edits through the layer API and its events, saved, reloaded, compared."""
    original = load_labels(flies / "clip.slp")
    target = tmp_path / "clip.slp"
    shutil.copy(flies / "clip.slp", target)
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    assert widget.open_path(target)
    project = project_for(viewer)
    layer = project.points_layer
    project.go_to(700)
    # the layer holds a window of frames around the shown one (the file has 38,363 points)
    frames = np.unique(np.rint(layer.data[:, 0]).astype(int))
    start, stop = int(frames[0]), int(frames[-1]) + 1
    assert start <= 700 < stop and stop - start < 1500
    assert len(layer.data) == len(labels_to_points(original, 0, window=(start, stop))[0])
    # the video is not beside the copy: a black stand-in gives the time slider the video's length
    assert viewer.layers["video: clip.mp4 (not found)"].data.shape[0] == 1500
    assert viewer.dims.range[0].stop >= 1499

    row = int(np.flatnonzero(np.rint(layer.data[:, 0]) == 700)[0])
    instance_id = int(layer.features["instance"][row])
    node = str(layer.features["node"][row])
    before = _point(project.labels, instance_id, node).copy()
    _drag(layer, [row], (2.5, -1.5))
    # napari's own deletion of another point of the same instance
    other = int(np.flatnonzero(layer.features["instance"].to_numpy() == instance_id)[-1])
    other_node = str(layer.features["node"][other])
    layer.selected_data = {other}
    layer.remove_selected()
    widget.save()

    reloaded = load_labels(target)
    assert_labels_equal(reloaded, project.labels)
    np.testing.assert_allclose(_point(reloaded, instance_id, node), before + [-1.5, 2.5])
    assert np.isnan(_point(reloaded, instance_id, other_node)).all()
    # every other instance is exactly as it was
    keep = original.instances.instance_id != instance_id
    np.testing.assert_array_equal(
        original.instances.points[keep], reloaded.instances.points[reloaded.instances.instance_id != instance_id]
    )


def test_new_project_from_a_template_add_video_label_save(make_napari_viewer, sample_files, tmp_path):
    """The guide's project setup: skeleton template -> new project -> add a video -> label -> save."""
    from napari_posetrack._widgets.skeleton import SkeletonWidget

    viewer = make_napari_viewer()
    skeleton_widget = SkeletonWidget(viewer)
    widget = LabellingWidget(viewer)
    assert skeleton_widget.use_template("head_tail")
    assert skeleton_widget.new_project()
    project = project_for(viewer)
    assert project.labels.skeleton.nodes == load_skeleton_template_nodes("head_tail")
    assert project.video is None and project.points_layer is not None

    assert widget.add_video(sample_files["video"]) == 0
    assert "video: sample.mp4" in [layer.name for layer in viewer.layers]
    project.go_to(4)
    (instance_id,) = widget.new_instance(at_xy=(30.0, 40.0))
    widget.undo()
    widget.redo()
    target = tmp_path / "new.slp"
    assert widget.save_to(target) == target
    reloaded = load_labels(target)
    assert_labels_equal(reloaded, project.labels)
    assert reloaded.videos[0].filename.endswith("sample.mp4") and reloaded.n_instances == 1
    assert reloaded.row_of_id(np.array([instance_id]))[0] == 0


def load_skeleton_template_nodes(name: str) -> list[str]:
    from napari_posetrack.core.skeleton_edit import load_template

    return list(load_template(name).nodes)


# --------------------------------------------------------------------------- a video longer than one window


@pytest.fixture
def small_window(monkeypatch) -> int:
    """A window of about 300 points: the 200-frame sample (about 3,000 points) spans many windows."""
    from napari_posetrack._widgets import _project

    monkeypatch.setattr(_project, "WINDOW_POINTS", 300)
    return 300


def _frames_held(layer) -> np.ndarray:
    return np.unique(np.rint(np.asarray(layer.data)[:, 0]).astype(int))


def _shown(layer, frame: int) -> list[tuple[int, str, float, float]]:
    """What the layer draws on ``frame``: ``(instance, node, y, x)`` sorted."""
    rows = np.flatnonzero(np.rint(np.asarray(layer.data)[:, 0]) == frame)
    f = layer.features
    return sorted(
        zip(f["instance"].to_numpy()[rows].tolist(), f["node"].to_numpy()[rows].tolist(),
            np.asarray(layer.data)[rows, 1].tolist(), np.asarray(layer.data)[rows, 2].tolist())
    )


def _expected(labels, frame: int) -> list[tuple[int, str, float, float]]:
    data, features, _ = labels_to_points(labels, 0, np.array([frame]))
    return sorted(zip(features["instance"].tolist(), features["node"].tolist(), data[:, 1].tolist(), data[:, 2].tolist()))


def test_far_frames_are_shown_from_the_labels_and_edits_there_reach_the_store(
    make_napari_viewer, sample_copy, small_window, qtbot
):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    labels = project.labels
    layer = project.points_layer
    project.go_to(5)
    held = _frames_held(layer)
    assert held[0] <= 5 <= held[-1] and held[-1] < 100  # a window, not the whole video
    assert len(layer.data) <= small_window + 3 * labels.n_nodes
    assert viewer.dims.range[0].stop >= 199  # the slider still spans the whole video

    project.go_to(150)  # far outside the window: it is refilled around frame 150
    held = _frames_held(layer)
    assert held[0] <= 150 <= held[-1] and 5 not in held
    assert _shown(layer, 150) == _expected(labels, 150)
    skeleton = viewer.layers["skeleton: sample.mp4"].data
    assert len(skeleton) and set(skeleton[:, 0, 0].tolist()) == {150.0}

    # a drag there moves that point of that instance in the store, nothing else
    before = labels.instances.points.copy()
    row = int(np.flatnonzero(np.rint(layer.data[:, 0]) == 150)[3])
    instance_id, node = int(layer.features["instance"][row]), str(layer.features["node"][row])
    _drag(layer, [row], (2.0, -1.0))
    store_row = labels.row_of_id(np.array([instance_id]))[0]
    k = labels.skeleton.node_index(node)
    np.testing.assert_allclose(labels.instances.points[store_row, k], before[store_row, k] + [-1.0, 2.0])
    changed = np.argwhere(np.any(labels.instances.points != before, axis=-1) & ~np.isnan(before).any(axis=-1))
    assert changed.tolist() == [[store_row, k]]

    # moving back shows the first window again; the far edit is kept in the store, not in the layer
    project.go_to(5)
    assert 150 not in _frames_held(layer) and _shown(layer, 5) == _expected(labels, 5)
    # the Tracks layer follows the whole video (it comes once the viewer is idle after opening)
    qtbot.waitUntil(lambda: "tracks: sample.mp4" in [x.name for x in viewer.layers], timeout=5000)
    tracks = viewer.layers["tracks: sample.mp4"].data
    assert tracks[:, 1].min() == 0 and tracks[:, 1].max() == 199


def test_add_delete_undo_redo_far_from_the_first_frame(make_napari_viewer, sample_copy, small_window):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    labels = project.labels
    layer = project.points_layer
    project.go_to(170)
    (new_id,) = widget.new_instance(at_xy=(60.0, 70.0))
    row = labels.row_of_id(np.array([new_id]))[0]
    assert labels.instances.frame[row] == 170
    assert _shown(layer, 170) == _expected(labels, 170)
    assert (layer.features["instance"].to_numpy() == new_id).sum() == labels.n_nodes

    layer.selected_data = {int(np.flatnonzero(layer.features["instance"].to_numpy() == new_id)[0])}
    widget.delete_selected_instances()
    assert labels.row_of_id(np.array([new_id]))[0] == -1 and new_id not in layer.features["instance"].to_numpy()
    widget.undo()
    assert labels.row_of_id(np.array([new_id]))[0] >= 0 and _shown(layer, 170) == _expected(labels, 170)
    widget.redo()
    assert labels.row_of_id(np.array([new_id]))[0] == -1 and _shown(layer, 170) == _expected(labels, 170)
    widget.undo()

    # undoing an edit made in another window: the store changes, the layer shows it when we get there
    project.go_to(20)
    row20 = int(np.flatnonzero(np.rint(layer.data[:, 0]) == 20)[0])
    moved_id, moved_node = int(layer.features["instance"][row20]), str(layer.features["node"][row20])
    before = _point(labels, moved_id, moved_node).copy()
    _drag(layer, [row20], (5.0, 5.0))
    project.go_to(170)
    assert 20 not in _frames_held(layer)
    widget.undo()
    np.testing.assert_allclose(_point(labels, moved_id, moved_node), before)
    assert _shown(layer, 170) == _expected(labels, 170)  # the new instance is still there
    project.go_to(20)
    np.testing.assert_allclose(_layer_yx(layer, moved_id, moved_node), before[::-1])
    widget.redo()
    np.testing.assert_allclose(_layer_yx(layer, moved_id, moved_node), before[::-1] + 5.0)


def test_edits_in_two_distant_windows_save_and_round_trip(make_napari_viewer, sample_copy, small_window, qtbot):
    from napari_posetrack._widgets._project import IDLE_SYNC_MS
    from napari_posetrack._writer import layers_to_store

    original = load_labels(sample_copy)
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    layer = project.points_layer
    project.go_to(10)
    row = int(np.flatnonzero(np.rint(layer.data[:, 0]) == 10)[1])
    first = int(layer.features["instance"][row]), str(layer.features["node"][row])
    _drag(layer, [row], (3.0, 4.0))
    project.go_to(185)
    (new_id,) = widget.new_instance(at_xy=(90.0, 40.0))
    # napari's own deletion of one point of an instance on this frame
    rows = np.flatnonzero((np.rint(layer.data[:, 0]) == 185) & (layer.features["instance"].to_numpy() != new_id))
    gone = int(layer.features["instance"][rows[0]]), str(layer.features["node"][rows[0]])
    layer.selected_data = {int(rows[0])}
    layer.remove_selected()

    # the store holds both edits and nothing else changed (ids are the file's: both were loaded from it)
    labels = project.labels
    np.testing.assert_allclose(_point(labels, *first), _point(original, *first) + [4.0, 3.0])
    assert np.isnan(_point(labels, *gone)).all() and labels.row_of_id(np.array([new_id]))[0] >= 0
    assert labels.n_instances == original.n_instances + 1
    keep = ~np.isin(original.instances.instance_id, [first[0], gone[0]])
    same = labels.row_of_id(original.instances.instance_id[keep])
    np.testing.assert_array_equal(original.instances.points[keep], labels.instances.points[same])
    assert widget.save() == sample_copy
    assert_labels_equal(load_labels(sample_copy), labels)
    # napari's own writers save from the layer: its metadata holds the frames outside the window
    qtbot.wait(IDLE_SYNC_MS + 300)
    tuples = [(np.asarray(layer.data), {"features": layer.features, "metadata": layer.metadata}, "points")]
    assert_labels_equal(layers_to_store(tuples), project.labels)


def test_selection_survives_a_refill_and_a_drag_of_it_edits_the_store(
    make_napari_viewer, sample_copy, small_window
):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    labels = project.labels
    layer = project.points_layer
    project.go_to(100)
    held = _frames_held(layer)
    rows = np.flatnonzero(layer.features["instance"].to_numpy() == layer.features["instance"].to_numpy()[
        np.flatnonzero(np.rint(layer.data[:, 0]) == 100)[0]])
    instance_id = int(layer.features["instance"][rows[0]])
    layer.selected_data = set(rows.tolist())
    before = labels.instances.points[labels.row_of_id(np.array([instance_id]))[0]].copy()
    # step towards the end of the window until it is refilled, with frame 100 still in the new one
    frame = 100
    while np.array_equal(_frames_held(layer), held):
        frame += 1
        project.go_to(frame)
    assert 100 in _frames_held(layer) and frame < held[-1]
    selected = np.fromiter(layer.selected_data, dtype=int)
    assert set(layer.features["instance"].to_numpy()[selected].tolist()) == {instance_id}
    assert len(selected) == len(rows)
    # dragging the selection (the whole instance) moves it in the store, as one undo step
    project.go_to(100)
    _drag(layer, sorted(selected.tolist()), (1.5, -2.5))
    row = labels.row_of_id(np.array([instance_id]))[0]
    np.testing.assert_allclose(labels.instances.points[row], before + [-2.5, 1.5])
    widget.undo()
    np.testing.assert_allclose(labels.instances.points[row], before)


def test_next_labelled_frame_beyond_the_window(make_napari_viewer, sample_copy, small_window):
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    widget.open_path(sample_copy)
    project = project_for(viewer)
    t = project.labels.instances
    project.session.delete_instances(t.instance_id[~np.isin(t.frame, [3, 40, 190])])
    project.go_to(3)
    widget.next_labelled()
    assert project.current_frame == 40
    widget.next_labelled()
    assert project.current_frame == 190
    assert _shown(project.points_layer, 190) == _expected(project.labels, 190) != []
    widget.previous_labelled()
    assert project.current_frame == 40
