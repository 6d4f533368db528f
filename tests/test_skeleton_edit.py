"""Skeleton edits and how they carry over to the poses: every point of a kept node survives exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_posetrack.core.io import load_labels
from napari_posetrack.core.io.skeleton_json import load_skeleton_json, save_skeleton_json
from napari_posetrack.core.labels import Labels, assert_labels_equal
from napari_posetrack.core.sample import generate_sample
from napari_posetrack.core.skeleton_edit import (
    add_edge,
    add_node,
    add_symmetry,
    apply_skeleton_edit,
    list_templates,
    load_template,
    match_by_name,
    move_node,
    remove_edge,
    remove_node,
    remove_symmetry,
    rename_node,
    rename_skeleton,
    root_problem,
    template_description,
    with_skeleton,
)


@pytest.fixture(scope="module")
def sample_labels() -> Labels:
    _, labels = generate_sample(n_animals=2, n_frames=12, size=(96, 96))
    # a few missing and occluded points so the carried-over masks are not trivially all-true
    t = labels.instances
    t.points[0, 3] = np.nan
    t.visible[0, 3] = False
    t.visible[1, 5] = False
    t.complete[2, :2] = True
    return labels


def _column(labels: Labels, name: str, node: str) -> np.ndarray:
    return labels.instances.column(name)[:, labels.skeleton.node_index(node)]


def _assert_node_kept(before: Labels, after: Labels, old: str, new: str | None = None) -> None:
    new = old if new is None else new
    for col in ("points", "visible", "complete", "point_scores"):
        np.testing.assert_array_equal(
            _column(after, col, new), _column(before, col, old), err_msg=f"{col} of {old}"
        )


def test_rename_keeps_points_edges_and_symmetries(sample_labels: Labels) -> None:
    edit = rename_node(sample_labels.skeleton, "head", "snout")
    out = apply_skeleton_edit(sample_labels, edit)
    assert out.skeleton.nodes[0] == "snout"
    assert ("thorax", "snout") in out.skeleton.edge_names
    assert ("snout", "antennaL") in out.skeleton.edge_names
    np.testing.assert_array_equal(out.instances.points, sample_labels.instances.points)
    assert sample_labels.skeleton.nodes[0] == "head", "the input labels must not change"
    assert edit.description == "rename node 'head' to 'snout'"


def test_add_node_is_missing_everywhere_and_keeps_the_rest(sample_labels: Labels) -> None:
    edit = add_node(sample_labels.skeleton, "tail", parent="abdomen")
    out = apply_skeleton_edit(sample_labels, edit)
    assert out.n_nodes == sample_labels.n_nodes + 1
    assert ("abdomen", "tail") in out.skeleton.edge_names
    assert np.isnan(_column(out, "points", "tail")).all()
    for node in sample_labels.skeleton.nodes:
        _assert_node_kept(sample_labels, out, node)
    for col in ("instance_id", "video", "frame", "kind", "track", "score"):
        np.testing.assert_array_equal(out.instances.column(col), sample_labels.instances.column(col))
    assert root_problem(out.skeleton) is None


def test_remove_node_drops_its_column_and_reattaches_children(sample_labels: Labels) -> None:
    edit = remove_node(sample_labels.skeleton, "head")
    out = apply_skeleton_edit(sample_labels, edit)
    assert "head" not in out.skeleton.nodes and out.n_nodes == 6
    assert edit.removed == ["head"]
    # the antennae hung from the head; they now hang from the head's parent, the thorax
    assert ("thorax", "antennaL") in out.skeleton.edge_names
    assert ("thorax", "antennaR") in out.skeleton.edge_names
    assert root_problem(out.skeleton) is None
    for node in out.skeleton.nodes:
        _assert_node_kept(sample_labels, out, node)
    # removing one side of a symmetry pair removes the pair
    out2 = apply_skeleton_edit(out, remove_node(out.skeleton, "legL"))
    assert out2.skeleton.symmetry_names == [("antennaL", "antennaR")]


def test_move_node_reorders_columns(sample_labels: Labels) -> None:
    edit = move_node(sample_labels.skeleton, "legR", 0)
    out = apply_skeleton_edit(sample_labels, edit)
    assert out.skeleton.nodes[0] == "legR"
    assert sorted(out.skeleton.edge_names) == sorted(sample_labels.skeleton.edge_names)
    for node in sample_labels.skeleton.nodes:
        _assert_node_kept(sample_labels, out, node)


def test_edges_and_symmetries_are_checked(sample_labels: Labels) -> None:
    sk = sample_labels.skeleton
    with pytest.raises(ValueError, match="exists already"):
        add_edge(sk, "thorax", "head")
    with pytest.raises(ValueError, match="exists already"):
        add_edge(sk, "head", "thorax")
    with pytest.raises(ValueError, match="loop"):
        add_edge(sk, "antennaL", "thorax")
    with pytest.raises(ValueError, match="already symmetric"):
        add_symmetry(sk, "legL", "abdomen")
    with pytest.raises(ValueError, match="already a node"):
        rename_node(sk, "head", "thorax")
    with pytest.raises(ValueError, match="needs a name"):
        add_node(sk, "  ")
    cut = remove_edge(sk, "thorax", "abdomen").skeleton
    assert "abdomen" in root_problem(cut) and "thorax" in root_problem(cut)
    back = add_edge(cut, "thorax", "abdomen").skeleton
    assert root_problem(back) is None
    nosym = remove_symmetry(sk, "legR", "legL").skeleton
    assert nosym.symmetry_names == [("antennaL", "antennaR")]
    assert add_symmetry(nosym, "legL", "legR").skeleton.flip_permutation().tolist() == [0, 1, 2, 4, 3, 6, 5]
    assert rename_skeleton(sk, "bug").skeleton.name == "bug"


def test_root_problem_messages() -> None:
    from napari_posetrack.core.labels import Skeleton

    assert "no nodes" in root_problem(Skeleton([]))
    assert root_problem(Skeleton(["a"])) is None
    assert "No edges" in root_problem(Skeleton(["a", "b"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert "loop" in root_problem(Skeleton(["a", "b"], [("a", "b"), ("b", "a")]))


def test_edits_do_not_warn_about_roots(sample_labels: Labels) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edit = add_node(sample_labels.skeleton, "loose")  # two roots until it gets an edge
    assert "loose" in root_problem(edit.skeleton)


def test_match_by_name_keeps_shared_nodes(sample_labels: Labels) -> None:
    from napari_posetrack.core.labels import Skeleton

    other = Skeleton(["thorax", "head", "tail"], [("thorax", "head"), ("thorax", "tail")], name="small")
    edit = match_by_name(sample_labels.skeleton, other)
    assert edit.order == (1, 0, -1)
    out = with_skeleton(sample_labels, other)
    _assert_node_kept(sample_labels, out, "head")
    _assert_node_kept(sample_labels, out, "thorax")
    assert np.isnan(_column(out, "points", "tail")).all()
    assert set(edit.removed) == {"abdomen", "antennaL", "antennaR", "legL", "legR"}


def test_json_round_trip_of_an_edited_skeleton(sample_labels: Labels, tmp_path) -> None:
    sk = sample_labels.skeleton
    sk = add_node(sk, "tail", parent="abdomen").skeleton
    sk = rename_node(sk, "legL", "leg_left").skeleton
    sk = remove_symmetry(sk, "antennaL", "antennaR").skeleton
    path = tmp_path / "edited.json"
    save_skeleton_json(sk, path)
    assert load_skeleton_json(path) == sk


def test_templates_load_with_one_root() -> None:
    names = list_templates()
    assert {"fly13", "mouse_top", "ant", "fish", "head_tail"} <= set(names)
    for name in names:
        sk = load_template(name)
        assert root_problem(sk) is None, name
        assert template_description(name), name
        assert sk.name == name
        # a node is in at most one symmetry pair, so flipping twice is the identity
        perm = sk.flip_permutation()
        assert perm[perm].tolist() == list(range(sk.n_nodes)), name
    with pytest.raises(KeyError, match="templates are"):
        load_template("no-such-animal")


def test_real_flies_clip(flies) -> None:
    labels = load_labels(flies / "clip.slp")
    fly = load_template("fly13")
    assert fly.nodes == labels.skeleton.nodes, "the fly template is the node set of the fly example"
    # give the real project the template's symmetries: no point moves
    same = with_skeleton(labels, fly)
    assert same.skeleton.symmetry_names == fly.symmetry_names
    assert_labels_equal(same, labels, check_ids=True)
    # rename, add and remove on 3000 real instances: every other point stays exactly
    sk = labels.skeleton
    edit = rename_node(sk, "thorax", "mesothorax")
    out = apply_skeleton_edit(labels, edit)
    sk2 = out.skeleton
    out = apply_skeleton_edit(out, add_node(sk2, "ovipositor", parent="abdomen"))
    out = apply_skeleton_edit(out, remove_node(out.skeleton, "wingR"))
    assert out.n_instances == labels.n_instances
    for node in labels.skeleton.nodes:
        if node == "wingR":
            continue
        new = "mesothorax" if node == "thorax" else node
        _assert_node_kept(labels, out, node, new)
    assert np.isnan(_column(out, "points", "ovipositor")).all()
    assert root_problem(out.skeleton) is None
    # the missing points of the real file (about 1.6%) stay missing, not filled
    kept = [labels.skeleton.node_index(n) for n in labels.skeleton.nodes if n != "wingR"]
    assert (
        np.isnan(out.instances.points[:, : len(kept)]).sum()
        == np.isnan(labels.instances.points[:, kept]).sum()
    )
