"""The skeleton dock widget in a real napari viewer: edits reach the labels and the layers, undoably."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.skeleton import SkeletonWidget
from napari_posetrack.core.io.skeleton_json import load_skeleton_json
from napari_posetrack.core.sample import write_sample

pytestmark = pytest.mark.gui


@pytest.fixture
def sample_files(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("sample"), n_animals=2, n_frames=12, size=(96, 96))


def _widget(make_napari_viewer, qtbot) -> tuple[SkeletonWidget, object]:
    viewer = make_napari_viewer()
    widget = SkeletonWidget(viewer)
    qtbot.addWidget(widget)
    return widget, viewer


def _node_names_in_points(project) -> set[str]:
    layer = project.points_layer
    return set(layer.features["node"].astype(str))


def test_draft_skeleton_and_new_project(make_napari_viewer, qtbot) -> None:
    widget, viewer = _widget(make_napari_viewer, qtbot)
    project = project_for(viewer)
    assert project.labels is None
    assert "no nodes" in widget.status_label.text()
    # typed names and clicks, as a user would
    for name in ("thorax", "head", "abdomen"):
        widget.node_name_edit.setText(name)
        widget.add_node_button.click()
    assert widget.skeleton.nodes == ["thorax", "head", "abdomen"]
    assert widget.node_list.count() == 3
    assert "No edges yet" in widget.status_label.text()
    widget.edge_parent_combo.setCurrentText("thorax")
    widget.edge_child_combo.setCurrentText("head")
    widget.add_edge_button.click()
    widget.edge_child_combo.setCurrentText("abdomen")
    widget.add_edge_button.click()
    assert widget.edge_table.rowCount() == 2
    assert widget.status_label.text().startswith("✓ One root: thorax")
    # a refused edit explains itself and changes nothing
    widget.add_edge_button.click()
    assert "exists already" in widget.message_label.text()
    assert widget.edge_table.rowCount() == 2

    # start from a template instead, then edit symmetries, order, edges and name with the buttons
    widget.template_combo.setCurrentText("ant")
    widget.template_button.click()
    assert widget.skeleton.name == "ant" and widget.symmetry_table.rowCount() == 4
    widget.symmetry_table.selectRow(0)
    widget.remove_symmetry_button.click()
    assert ("antennaL", "antennaR") not in widget.skeleton.symmetry_names
    widget.symmetry_a_combo.setCurrentText("antennaR")
    widget.symmetry_b_combo.setCurrentText("antennaL")
    widget.add_symmetry_button.click()
    assert ("antennaR", "antennaL") in widget.skeleton.symmetry_names
    widget.symmetry_a_combo.setCurrentText("head")
    widget.add_symmetry_button.click()
    assert "already symmetric" in widget.message_label.text()
    widget.node_list.setCurrentRow(1)  # thorax
    widget.node_up_button.click()
    assert widget.skeleton.nodes[:2] == ["thorax", "head"]
    assert widget.node_list.currentItem().text() == "thorax"
    widget.edge_table.selectRow(0)
    widget.remove_edge_button.click()
    assert len(widget.skeleton.edges) == 9
    assert widget.status_label.text().startswith("⚠")
    widget.name_edit.setText("my ant")
    widget.name_edit.returnPressed.emit()
    assert widget.skeleton.name == "my ant"

    widget.new_project_button.click()
    assert project.labels is not None
    assert project.labels.skeleton == widget.skeleton
    assert project.labels.n_instances == 0
    assert not widget.new_project_button.isEnabled()


@pytest.mark.slow
def test_edits_update_open_labels_and_layers_and_undo(
    make_napari_viewer, qtbot, sample_files, screenshot_dir
) -> None:
    viewer = make_napari_viewer()
    project = project_for(viewer)
    widget = SkeletonWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Skeleton", area="right")
    project.open(sample_files["labels"])
    before = project.labels.copy()
    assert widget.node_list.count() == before.n_nodes
    assert widget.symmetry_table.rowCount() == 2

    # rename through the list and the Rename button: points stay, layers show the new name
    widget.node_list.setCurrentRow(0)
    assert widget.node_name_edit.text() == "head"
    widget.node_name_edit.setText("snout")
    widget.rename_node_button.click()
    labels = project.labels
    assert labels.skeleton.nodes[0] == "snout"
    np.testing.assert_array_equal(labels.instances.points, before.instances.points)
    assert "snout" in _node_names_in_points(project) and "head" not in _node_names_in_points(project)

    # add a node: missing everywhere, every other point kept
    widget.node_name_edit.setText("tail")
    widget.add_node_button.click()
    labels = project.labels
    assert labels.skeleton.nodes[-1] == "tail"
    assert np.isnan(labels.instances.points[:, -1]).all()
    np.testing.assert_array_equal(labels.instances.points[:, :-1], before.instances.points)
    assert "tail" in widget.status_label.text()  # a second root until it gets an edge
    assert widget.add_edge("abdomen", "tail")
    assert widget.status_label.text().startswith("✓")

    # remove a node: its column goes, the rest stays exactly
    widget.node_list.setCurrentRow(project.labels.skeleton.nodes.index("legL"))
    widget.remove_node_button.click()
    labels = project.labels
    assert "legL" not in labels.skeleton.nodes
    assert "legL" not in _node_names_in_points(project)
    legr_before = before.instances.points[:, before.skeleton.node_index("legR")]
    np.testing.assert_array_equal(labels.instances.points[:, labels.skeleton.node_index("legR")], legr_before)
    assert widget.symmetry_table.rowCount() == 1  # legL <-> legR went with legL
    assert "Points of legL were removed" in widget.message_label.text()

    # each edit was one undo step; undoing them all brings the original skeleton back
    for _ in range(4):
        project.session.undo()
    assert project.labels.skeleton == before.skeleton
    np.testing.assert_array_equal(project.labels.instances.points, before.instances.points)
    assert [widget.node_list.item(i).text() for i in range(widget.node_list.count())] == before.skeleton.nodes

    # a picture of the widget docked in the viewer (with the root warning showing)
    assert widget.remove_edge("thorax", "abdomen")
    qtbot.wait(50)
    path = screenshot_dir / "skeleton.png"
    assert widget.grab().save(str(path))
    assert path.stat().st_size > 0
    window_path = screenshot_dir / "skeleton_viewer.png"
    viewer.screenshot(str(window_path), canvas_only=False)
    assert window_path.stat().st_size > 0


def test_templates_files_and_bad_input(make_napari_viewer, qtbot, tmp_path, flies) -> None:
    widget, viewer = _widget(make_napari_viewer, qtbot)
    project = project_for(viewer)
    project.open(flies / "clip.slp")
    n_before = project.labels.n_instances
    points_before = project.labels.instances.points.copy()
    # the fly template has the same nodes as the real clip: using it adds its symmetries, moves nothing
    widget.template_combo.setCurrentText("fly13")
    widget.template_button.click()
    assert widget.symmetry_table.rowCount() == 5
    np.testing.assert_array_equal(project.labels.instances.points, points_before)
    assert project.labels.n_instances == n_before

    saved = tmp_path / "fly.json"
    assert widget.save_skeleton_file(saved)
    assert load_skeleton_json(saved) == project.labels.skeleton

    # an unreadable file changes nothing
    bad = tmp_path / "broken.json"
    bad.write_text("{ not json")
    skeleton_before = project.labels.skeleton.copy()
    assert not widget.load_skeleton_file(bad)
    assert "broken.json" in widget.message_label.text()
    assert project.labels.skeleton == skeleton_before
    not_a_skeleton = tmp_path / "other.json"
    not_a_skeleton.write_text(json.dumps({"hello": 1}))
    assert not widget.load_skeleton_file(not_a_skeleton)
    assert project.labels.skeleton == skeleton_before

    # loading a different skeleton keeps the points of shared nodes (head) and drops the rest
    widget.template_combo.setCurrentText("head_tail")
    assert widget.use_template("head_tail")
    labels = project.labels
    assert labels.skeleton.nodes == ["head", "tail"]
    np.testing.assert_array_equal(labels.instances.points[:, 0], points_before[:, 0])
    assert np.isnan(labels.instances.points[:, 1]).all()
    assert widget.load_skeleton_file(saved)
    assert project.labels.skeleton.nodes == skeleton_before.nodes
    np.testing.assert_array_equal(project.labels.instances.points[:, 0], points_before[:, 0])
