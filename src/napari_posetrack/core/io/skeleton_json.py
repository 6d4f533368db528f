"""SLEAP skeleton JSON: the jsonpickle-encoded networkx node-link graph.

SLEAP stores a skeleton as ``networkx.node_link_data`` of a directed multigraph, pickled
with jsonpickle. Two flavours exist:

* standalone template files (``*.json``): nodes are ``sleap.skeleton.Node`` objects
  written inline the first time they occur and as ``{"py/id": k}`` back-references after;
* ``.slp`` metadata: nodes are integer indices into the file-wide ``nodes`` list.

Each link carries a ``type`` (``EdgeType`` 1 = body edge, 2 = symmetry), also inline on
first use and a back-reference after. jsonpickle numbers every object (``py/object``
or ``py/reduce``) in document order starting at 1; :class:`_PyIdTable` replays that
numbering so back-references resolve the way jsonpickle itself would.
Either flavour may be wrapped as ``{"nx_graph": graph, "description": ..., "preview_image": ...}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_posetrack.core.errors import FileFormatError, MissingFileError, atomic_write
from napari_posetrack.core.labels import Skeleton

EDGE = 1
SYMMETRY = 2
_NODE_CLASS = "sleap.skeleton.Node"
_EDGE_TYPE_CLASS = "sleap.skeleton.EdgeType"


class _PyIdTable:
    """Objects of one jsonpickle document, numbered in document order (``py/id`` is 1-based)."""

    def __init__(self) -> None:
        self.objects: list[Any] = []

    def register(self, obj: Any) -> None:
        self.objects.append(obj)

    def get(self, py_id: int) -> Any:
        if 1 <= py_id <= len(self.objects):
            return self.objects[py_id - 1]
        return None


def _node_name(obj: dict[str, Any]) -> str:
    """Name of an inline ``sleap.skeleton.Node`` (``py/state`` as tuple or dict)."""
    state = obj.get("py/state", obj)
    if isinstance(state, dict) and "py/tuple" in state:
        return str(state["py/tuple"][0])
    if isinstance(state, dict) and "name" in state:
        return str(state["name"])
    raise ValueError(f"cannot read a node name from {obj!r}")


def _edge_type_value(obj: dict[str, Any]) -> int:
    """The integer of an inline ``EdgeType`` (``py/reduce`` of the enum with a 1-tuple)."""
    args = obj["py/reduce"][1]
    return int(args["py/tuple"][0] if isinstance(args, dict) else args[0])


class _GraphDecoder:
    """Resolve node and edge-type references of one skeleton graph in document order."""

    def __init__(self, node_names: Sequence[str] | None) -> None:
        self.node_names = node_names
        self.ids = _PyIdTable()

    def node(self, ref: Any) -> str:
        if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            if self.node_names is None:
                raise ValueError(f"node reference {ref} is an index but no node list is given")
            if not 0 <= int(ref) < len(self.node_names):
                raise ValueError(f"node index {ref} out of range for {len(self.node_names)} nodes")
            return str(self.node_names[int(ref)])
        if isinstance(ref, dict) and "py/object" in ref:
            name = _node_name(ref)
            self.ids.register(("node", name))
            return name
        if isinstance(ref, dict) and "py/id" in ref:
            obj = self.ids.get(int(ref["py/id"]))
            if not (isinstance(obj, tuple) and obj[0] == "node"):
                raise ValueError(f"py/id {ref['py/id']} does not refer to a node")
            return obj[1]
        if isinstance(ref, str):
            return ref
        raise ValueError(f"unknown node reference {ref!r}")

    def edge_type(self, ref: Any) -> int:
        if ref is None:
            return EDGE
        if isinstance(ref, (int, np.integer)):
            return int(ref)
        if isinstance(ref, dict) and "py/reduce" in ref:
            value = _edge_type_value(ref)
            self.ids.register(("edge_type", value))
            return value
        if isinstance(ref, dict) and "py/id" in ref:
            py_id = int(ref["py/id"])
            obj = self.ids.get(py_id)
            if isinstance(obj, tuple) and obj[0] == "edge_type":
                return obj[1]
            # Writers that number edge types in their own space (sleap-io writes {"py/id": 2} for
            # every symmetry) leave ids that resolve to nothing; their value is then the type itself.
            if obj is None and py_id in (EDGE, SYMMETRY):
                return py_id
            raise ValueError(f"py/id {py_id} does not refer to an edge type")
        raise ValueError(f"unknown edge type {ref!r}")


def _decode_link(
    decoder: _GraphDecoder,
    link: dict[str, Any],
    edges: list[tuple[int, str, str]],
    symmetries: list[tuple[str, str]],
) -> None:
    refs: dict[str, Any] = {}
    for key in link:  # document order: source, target, type
        if key == "source":
            refs["source"] = decoder.node(link[key])
        elif key == "target":
            refs["target"] = decoder.node(link[key])
        elif key == "type":
            refs["type"] = decoder.edge_type(link[key])
    kind = refs.get("type", EDGE)
    if kind == EDGE:
        edges.append((int(link.get("edge_insert_idx", len(edges))), refs["source"], refs["target"]))
    elif kind == SYMMETRY:
        symmetries.append((refs["source"], refs["target"]))
    else:
        raise ValueError(f"unknown edge type {kind}")


def decode_skeleton_graph(data: dict[str, Any], node_names: Sequence[str] | None = None) -> Skeleton:
    """Build a :class:`Skeleton` from one SLEAP skeleton graph dict (either flavour, wrapped or not).

    Parameters
    ----------
    data
        The node-link graph, or ``{"nx_graph": graph, ...}``.
    node_names
        The file-wide node list that integer node references index (``.slp`` metadata).

    Raises
    ------
    ValueError
        When a reference cannot be resolved or the graph is malformed.
    """
    if not isinstance(data, dict):
        raise ValueError(f"a skeleton must be a JSON object, got {type(data).__name__}")
    graph = data["nx_graph"] if "nx_graph" in data else data
    if not isinstance(graph, dict) or "nodes" not in graph:
        raise ValueError("skeleton graph has no 'nodes' list")
    decoder = _GraphDecoder(node_names)
    edges: list[tuple[int, str, str]] = []
    symmetries: list[tuple[str, str]] = []
    nodes: list[str] = []
    # keys are visited in document order, which is the order jsonpickle numbered objects in
    for section in graph:
        if section in ("links", "edges"):
            for link in graph[section]:
                _decode_link(decoder, link, edges, symmetries)
        elif section == "nodes":
            nodes = [decoder.node(e["id"] if isinstance(e, dict) else e) for e in graph["nodes"]]
    # SLEAP orders edges by insertion index (the link list follows graph adjacency instead)
    edges.sort(key=lambda e: e[0])
    unique_symmetries: list[tuple[str, str]] = []
    seen: set[frozenset[str]] = set()
    for a, b in symmetries:  # SLEAP stores each symmetry in both directions
        key = frozenset((a, b))
        if key not in seen:
            seen.add(key)
            unique_symmetries.append((a, b))
    graph_attrs = graph.get("graph", {}) or {}
    sigmas = graph_attrs.get("node_sigmas")
    return Skeleton(
        nodes,
        [(s, t) for _, s, t in edges],
        unique_symmetries,
        name=str(graph_attrs.get("name", "skeleton")),
        node_sigmas=None if sigmas is None else np.asarray(sigmas, dtype=np.float64),
    )


def decode_skeletons(data: Any, node_names: Sequence[str] | None = None) -> list[Skeleton]:
    """Skeletons from parsed JSON: one graph, a list of graphs, or a SLEAP training config."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        # SLEAP training_config.json keeps the skeletons under data.labels.skeletons
        data = data["data"].get("labels", {}).get("skeletons", data)
    if isinstance(data, list):
        return [decode_skeleton_graph(d, node_names) for d in data]
    return [decode_skeleton_graph(data, node_names)]


class _GraphEncoder:
    """Write node and edge-type references the way jsonpickle would (inline first, py/id after)."""

    def __init__(self, node_index: dict[str, int] | None) -> None:
        self.node_index = node_index
        self.next_id = 1
        self.node_ids: dict[str, int] = {}
        self.type_ids: dict[int, int] = {}

    def node(self, name: str) -> Any:
        if self.node_index is not None:
            return self.node_index[name]
        if name in self.node_ids:
            return {"py/id": self.node_ids[name]}
        self.node_ids[name] = self.next_id
        self.next_id += 1
        return {"py/object": _NODE_CLASS, "py/state": {"py/tuple": [name, 1.0]}}

    def edge_type(self, value: int) -> Any:
        if value in self.type_ids:
            return {"py/id": self.type_ids[value]}
        self.type_ids[value] = self.next_id
        self.next_id += 1
        return {"py/reduce": [{"py/type": _EDGE_TYPE_CLASS}, {"py/tuple": [value]}]}


def encode_skeleton_graph(skeleton: Skeleton, node_index: dict[str, int] | None = None) -> dict[str, Any]:
    """The SLEAP node-link graph dict of ``skeleton``.

    With ``node_index`` (node name -> position in the file-wide node list) nodes are written as
    integers, as in ``.slp`` metadata; without it they are inline ``sleap.skeleton.Node`` objects,
    as in standalone template files. Symmetries are written in both directions, like SLEAP.
    """
    enc = _GraphEncoder(node_index)
    links: list[dict[str, Any]] = []
    # keys in sorted order, matching jsonpickle's output and therefore its py/id numbering
    for i, (src, dst) in enumerate(skeleton.edge_names):
        link: dict[str, Any] = {"edge_insert_idx": i, "key": 0}
        link["source"] = enc.node(src)
        link["target"] = enc.node(dst)
        link["type"] = enc.edge_type(EDGE)
        links.append(link)
    for a, b in skeleton.symmetry_names:
        for src, dst in ((a, b), (b, a)):
            link = {"key": 0}
            link["source"] = enc.node(src)
            link["target"] = enc.node(dst)
            link["type"] = enc.edge_type(SYMMETRY)
            links.append(link)
    graph_attrs: dict[str, Any] = {"name": skeleton.name, "num_edges_inserted": len(skeleton.edges)}
    if skeleton.node_sigmas is not None:
        graph_attrs["node_sigmas"] = [float(s) for s in np.asarray(skeleton.node_sigmas).ravel()]
    return {
        "directed": True,
        "graph": graph_attrs,
        "links": links,
        "multigraph": True,
        "nodes": [{"id": enc.node(n)} for n in skeleton.nodes],
    }


def load_skeletons_json(path: str | os.PathLike[str]) -> list[Skeleton]:
    """All skeletons in a SLEAP skeleton JSON file (a template, a list, or a training config)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, f"not valid JSON ({exc})") from exc
    try:
        skeletons = decode_skeletons(data)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise FileFormatError(path, f"not a SLEAP skeleton ({exc})") from exc
    if not skeletons:
        raise FileFormatError(path, "holds no skeleton")
    return skeletons


def load_skeleton_json(path: str | os.PathLike[str]) -> Skeleton:
    """Read a SLEAP skeleton template (jsonpickle/networkx JSON) into a :class:`Skeleton`.

    Raises
    ------
    MissingFileError
        If ``path`` does not exist.
    FileFormatError
        If the file is not JSON, not a skeleton, or holds several skeletons.
    """
    skeletons = load_skeletons_json(path)
    if len(skeletons) > 1:
        raise FileFormatError(path, f"holds {len(skeletons)} skeletons; use load_skeletons_json")
    return skeletons[0]


def save_skeleton_json(
    skeleton: Skeleton, path: str | os.PathLike[str], *, description: str | None = None
) -> None:
    """Write ``skeleton`` as a SLEAP skeleton template (readable by SLEAP and sleap-io); atomic."""
    doc = {
        "description": description,
        "nx_graph": encode_skeleton_graph(skeleton),
        "preview_image": None,
    }
    text = json.dumps(doc)
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
