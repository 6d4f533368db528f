"""SLEAP skeleton templates (jsonpickle/networkx JSON): read, write, and agree with sleap-io."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.io.skeleton_json import (
    decode_skeleton_graph,
    encode_skeleton_graph,
    load_skeleton_json,
    load_skeletons_json,
    save_skeleton_json,
)
from napari_posetrack.core.labels import Skeleton

sio = pytest.importorskip("sleap_io")

TEMPLATES = ["bees", "flies13", "fly32", "fly_skeleton_legs", "gerbils", "mice_hc", "mice_of"]
SYMMETRY_PAIRS = {"flies13": 5, "gerbils": 2}


def sio_skeleton(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sio.load_skeleton(str(path))


def assert_same_as_sleap_io(ours: Skeleton, theirs) -> None:
    assert ours.nodes == theirs.node_names
    assert set(ours.edge_names) == {(e.source.name, e.destination.name) for e in theirs.edges}
    assert {frozenset(s) for s in ours.symmetry_names} == {
        frozenset(n.name for n in s.nodes) for s in theirs.symmetries
    }


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_reads_like_sleap_io_and_round_trips(data, tmp_path, name):
    path = data / "skeletons" / f"{name}.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # some templates have several roots
        ours = load_skeleton_json(path)
        assert_same_as_sleap_io(ours, sio_skeleton(path))
        assert len(ours.symmetries) == SYMMETRY_PAIRS.get(name, 0)
        assert len(ours.edges) > 0 and ours.name

        out = tmp_path / f"{name}.json"
        save_skeleton_json(ours, out, description=f"copy of {name}")
        again = load_skeleton_json(out)
    assert again == ours  # nodes, edge order, symmetries and name identical
    assert_same_as_sleap_io(ours, sio_skeleton(out))
    assert json.loads(out.read_text())["description"] == f"copy of {name}"


def test_edges_follow_sleaps_insertion_order(data):
    legs = load_skeleton_json(data / "skeletons" / "fly_skeleton_legs.json")
    # the file lists neck->head first, but thorax->neck was inserted first (edge_insert_idx 0)
    assert legs.edge_names[:2] == [("thorax", "neck"), ("neck", "head")]
    assert legs.name == "skeleton_legs.mat" and legs.n_nodes == 24


def test_slp_flavour_round_trip_keeps_symmetries_and_sigmas():
    sk = Skeleton(
        ["a", "b", "c", "d"],
        [("a", "b"), ("a", "c"), ("a", "d")],
        symmetries=[("b", "c")],
        name="s",
        node_sigmas=np.array([0.1, 0.2, 0.3, 0.4]),
    )
    names = ["z", "a", "b", "c", "d"]  # a file-wide node list the graph indexes into
    graph = json.loads(json.dumps(encode_skeleton_graph(sk, {n: i for i, n in enumerate(names)})))
    assert all(isinstance(link["source"], int) for link in graph["links"])
    assert decode_skeleton_graph(graph, names) == sk
    only_symmetry = Skeleton(["l", "r"], symmetries=[("l", "r")], name="pair")
    assert decode_skeleton_graph(encode_skeleton_graph(only_symmetry)) == only_symmetry


def test_bad_skeleton_files(tmp_path):
    with pytest.raises(MissingFileError):
        load_skeleton_json(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"nx_graph": {"nodes": [')
    with pytest.raises(FileFormatError, match="not valid JSON") as err:
        load_skeleton_json(broken)
    assert err.value.path == str(broken)
    not_skeleton = tmp_path / "other.json"
    not_skeleton.write_text('{"hello": 1}')
    with pytest.raises(FileFormatError, match="not a SLEAP skeleton"):
        load_skeleton_json(not_skeleton)
    dangling = tmp_path / "dangling.json"
    dangling.write_text(
        json.dumps(
            {
                "directed": True,
                "graph": {"name": "x"},
                "multigraph": True,
                "links": [{"source": {"py/id": 7}, "target": {"py/id": 8}}],
                "nodes": [],
            }
        )
    )
    with pytest.raises(FileFormatError, match="py/id 7"):
        load_skeleton_json(dangling)
    two = tmp_path / "two.json"
    sk = Skeleton(["a", "b"], [("a", "b")])
    two.write_text(json.dumps([encode_skeleton_graph(sk), encode_skeleton_graph(sk)]))
    assert len(load_skeletons_json(two)) == 2
    with pytest.raises(FileFormatError, match="2 skeletons"):
        load_skeleton_json(two)
