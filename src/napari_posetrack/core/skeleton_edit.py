"""Editing a skeleton, and carrying the edit over to the poses that use it.

Every edit is a pure function ``Skeleton -> SkeletonEdit``: the new skeleton plus, for each of its
nodes, the index of the old node it comes from (``-1`` for a new node). :func:`apply_skeleton_edit`
then gives a copy of a :class:`~napari_posetrack.core.labels.Labels` whose instances follow the new
node list: renamed and reordered nodes keep their points, new nodes start missing (NaN), removed
nodes' points are dropped. Edges and symmetries are kept by node, so they survive renames.

The bundled skeleton templates (SLEAP skeleton JSON files in ``napari_posetrack/templates``) are
listed by :func:`list_templates` and read by :func:`load_template`.

Intermediate skeletons often have several roots (a node was just added and has no edge yet), so
edits do not warn about it; :func:`root_problem` describes the problem for the user to fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from napari_posetrack.core.labels import DEFAULT_OKS_SIGMA, Labels, Skeleton

__all__ = [
    "SkeletonEdit",
    "add_edge",
    "add_node",
    "add_symmetry",
    "apply_skeleton_edit",
    "list_templates",
    "load_template",
    "match_by_name",
    "move_node",
    "quiet_roots",
    "remove_edge",
    "remove_node",
    "remove_symmetry",
    "rename_node",
    "rename_skeleton",
    "root_problem",
    "template_description",
    "template_path",
    "with_skeleton",
]


@dataclass(frozen=True)
class SkeletonEdit:
    """A new skeleton and where its nodes come from.

    Attributes
    ----------
    old_nodes
        The node names of the skeleton that was edited.
    skeleton
        The edited skeleton.
    order
        ``order[j]`` is the index, in the old skeleton, of the node that new node ``j`` continues
        (``-1``: a new node with no points yet).
    description
        A short phrase for the undo history, e.g. ``"rename node 'head' to 'snout'"``.
    """

    skeleton: Skeleton
    order: tuple[int, ...]
    description: str = "edit skeleton"
    old_nodes: tuple[str, ...] = ()

    @property
    def removed(self) -> list[str]:
        """Names of the old nodes that the new skeleton drops (their points are lost)."""
        return [n for i, n in enumerate(self.old_nodes) if i not in self.order]


def _edit(old: Skeleton, new: Skeleton, order: Sequence[int], description: str) -> SkeletonEdit:
    return SkeletonEdit(new, tuple(int(o) for o in order), description, tuple(old.nodes))


@contextmanager
def quiet_roots() -> Iterator[None]:
    """Silence the "several roots" warning of ``Skeleton.validate`` (half-edited skeletons have them)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*root node", category=UserWarning)
        yield


def _build(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]],
    symmetries: Sequence[tuple[str, str]],
    name: str,
    sigmas: np.ndarray | None,
) -> Skeleton:
    with quiet_roots():
        return Skeleton(list(nodes), list(edges), list(symmetries), name=name, node_sigmas=sigmas)


def _check_name(skeleton: Skeleton, name: str, *, allow: str | None = None) -> str:
    name = str(name).strip()
    if not name:
        raise ValueError("a node needs a name")
    if name in skeleton.nodes and name != allow:
        raise ValueError(f"there is already a node called {name!r}")
    return name


def _node(skeleton: Skeleton, node: int | str) -> int:
    return skeleton.node_index(node) if isinstance(node, str) else int(node)


def rename_node(skeleton: Skeleton, node: int | str, new_name: str) -> SkeletonEdit:
    """Give a node a new name; its points, edges and symmetries stay."""
    i = _node(skeleton, node)
    old = skeleton.nodes[i]
    new = _check_name(skeleton, new_name, allow=old)
    nodes = list(skeleton.nodes)
    nodes[i] = new

    def rn(n: str) -> str:
        return new if n == old else n

    out = _build(
        nodes,
        [(rn(a), rn(b)) for a, b in skeleton.edge_names],
        [(rn(a), rn(b)) for a, b in skeleton.symmetry_names],
        skeleton.name,
        skeleton.node_sigmas,
    )
    return _edit(skeleton, out, tuple(range(skeleton.n_nodes)), f"rename node {old!r} to {new!r}")


def add_node(skeleton: Skeleton, name: str, parent: int | str | None = None) -> SkeletonEdit:
    """Append a node (missing in every existing instance), optionally with an edge from ``parent``."""
    name = _check_name(skeleton, name)
    edges = list(skeleton.edge_names)
    if parent is not None:
        edges.append((skeleton.nodes[_node(skeleton, parent)], name))
    sigmas = None
    if skeleton.node_sigmas is not None:
        sigmas = np.append(np.asarray(skeleton.node_sigmas, dtype=np.float64), DEFAULT_OKS_SIGMA)
    out = _build([*skeleton.nodes, name], edges, skeleton.symmetry_names, skeleton.name, sigmas)
    return _edit(skeleton, out, (*range(skeleton.n_nodes), -1), f"add node {name!r}")


def remove_node(skeleton: Skeleton, node: int | str) -> SkeletonEdit:
    """Drop a node, its points in every instance, and the edges and symmetries that use it.

    When the removed node sat inside the tree, its children are attached to its parent so the
    skeleton stays in one piece.
    """
    i = _node(skeleton, node)
    gone = skeleton.nodes[i]
    parents = [p for p, c in skeleton.edge_names if c == gone]
    edges: list[tuple[str, str]] = []
    for p, c in skeleton.edge_names:
        if gone not in (p, c):
            edges.append((p, c))
        elif p == gone and len(parents) == 1 and (parents[0], c) not in edges:
            edges.append((parents[0], c))  # re-attach the orphan to its grandparent
    keep = [j for j in range(skeleton.n_nodes) if j != i]
    sigmas = None if skeleton.node_sigmas is None else np.asarray(skeleton.node_sigmas)[keep]
    out = _build(
        [skeleton.nodes[j] for j in keep],
        edges,
        [s for s in skeleton.symmetry_names if gone not in s],
        skeleton.name,
        sigmas,
    )
    return _edit(skeleton, out, tuple(keep), f"remove node {gone!r}")


def move_node(skeleton: Skeleton, node: int | str, new_index: int) -> SkeletonEdit:
    """Move a node to position ``new_index`` in the node list (the order of columns in files)."""
    i = _node(skeleton, node)
    order = [j for j in range(skeleton.n_nodes) if j != i]
    new_index = int(np.clip(new_index, 0, skeleton.n_nodes - 1))
    order.insert(new_index, i)
    sigmas = None if skeleton.node_sigmas is None else np.asarray(skeleton.node_sigmas)[order]
    out = _build(
        [skeleton.nodes[j] for j in order],
        skeleton.edge_names,
        skeleton.symmetry_names,
        skeleton.name,
        sigmas,
    )
    return _edit(skeleton, out, tuple(order), f"move node {skeleton.nodes[i]!r}")


def _same_nodes(
    skeleton: Skeleton, edges: Sequence[tuple[str, str]], symmetries: Sequence[tuple[str, str]]
) -> Skeleton:
    return _build(skeleton.nodes, edges, symmetries, skeleton.name, skeleton.node_sigmas)


def add_edge(skeleton: Skeleton, parent: int | str, child: int | str) -> SkeletonEdit:
    """Add the edge ``parent -> child``.

    Raises
    ------
    ValueError
        For an edge from a node to itself, an edge that exists already (either direction), or one
        that would close a loop (the child is already an ancestor of the parent).
    """
    p, c = skeleton.nodes[_node(skeleton, parent)], skeleton.nodes[_node(skeleton, child)]
    if p == c:
        raise ValueError(f"an edge needs two different nodes (got {p!r} twice)")
    if (p, c) in skeleton.edge_names:
        raise ValueError(f"the edge {p} -> {c} exists already")
    if (c, p) in skeleton.edge_names:
        raise ValueError(f"the edge {c} -> {p} exists already; remove it first to reverse it")
    if c in _ancestors(skeleton.edge_names, p):
        raise ValueError(f"the edge {p} -> {c} would make a loop ({c} is already above {p})")
    out = _same_nodes(skeleton, [*skeleton.edge_names, (p, c)], skeleton.symmetry_names)
    return _edit(skeleton, out, tuple(range(skeleton.n_nodes)), f"add edge {p} -> {c}")


def _ancestors(edges: Sequence[tuple[str, str]], node: str) -> set[str]:
    parents: dict[str, list[str]] = {}
    for p, c in edges:
        parents.setdefault(c, []).append(p)
    seen: set[str] = set()
    stack = [node]
    while stack:
        for p in parents.get(stack.pop(), []):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def remove_edge(skeleton: Skeleton, parent: int | str, child: int | str) -> SkeletonEdit:
    """Remove the edge ``parent -> child`` (points are untouched)."""
    pair = (skeleton.nodes[_node(skeleton, parent)], skeleton.nodes[_node(skeleton, child)])
    if pair not in skeleton.edge_names:
        raise ValueError(f"there is no edge {pair[0]} -> {pair[1]}")
    edges = [e for e in skeleton.edge_names if e != pair]
    out = _same_nodes(skeleton, edges, skeleton.symmetry_names)
    return _edit(skeleton, out, tuple(range(skeleton.n_nodes)), f"remove edge {pair[0]} -> {pair[1]}")


def add_symmetry(skeleton: Skeleton, a: int | str, b: int | str) -> SkeletonEdit:
    """Declare two nodes mirror images (left/right); a node belongs to at most one pair."""
    na, nb = skeleton.nodes[_node(skeleton, a)], skeleton.nodes[_node(skeleton, b)]
    if na == nb:
        raise ValueError(f"a symmetry needs two different nodes (got {na!r} twice)")
    for pair in skeleton.symmetry_names:
        for n in (na, nb):
            if n in pair:
                other = pair[1] if pair[0] == n else pair[0]
                raise ValueError(f"{n!r} is already symmetric with {other!r}")
    out = _same_nodes(skeleton, skeleton.edge_names, [*skeleton.symmetry_names, (na, nb)])
    return _edit(skeleton, out, tuple(range(skeleton.n_nodes)), f"add symmetry {na} <-> {nb}")


def remove_symmetry(skeleton: Skeleton, a: int | str, b: int | str) -> SkeletonEdit:
    """Remove the symmetry pair of ``a`` and ``b`` (in either order)."""
    key = {skeleton.nodes[_node(skeleton, a)], skeleton.nodes[_node(skeleton, b)]}
    kept = [s for s in skeleton.symmetry_names if set(s) != key]
    if len(kept) == len(skeleton.symmetries):
        raise ValueError(f"there is no symmetry between {' and '.join(sorted(key))}")
    out = _same_nodes(skeleton, skeleton.edge_names, kept)
    return _edit(
        skeleton, out, tuple(range(skeleton.n_nodes)), f"remove symmetry {' <-> '.join(sorted(key))}"
    )


def rename_skeleton(skeleton: Skeleton, name: str) -> SkeletonEdit:
    """Change the skeleton's own name (shown in SLEAP and stored in files)."""
    name = str(name).strip()
    if not name:
        raise ValueError("a skeleton needs a name")
    out = _build(skeleton.nodes, skeleton.edge_names, skeleton.symmetry_names, name, skeleton.node_sigmas)
    return _edit(skeleton, out, tuple(range(skeleton.n_nodes)), f"rename skeleton to {name!r}")


def match_by_name(old: Skeleton, new: Skeleton) -> SkeletonEdit:
    """Replace a skeleton by another one (a template, a loaded file), matching nodes by name.

    Nodes whose name exists in ``old`` keep their points; the others start missing; ``old`` nodes
    absent from ``new`` are dropped.
    """
    order = tuple(old.nodes.index(n) if n in old.nodes else -1 for n in new.nodes)
    return _edit(old, new.copy(), order, f"use skeleton {new.name!r}")


def root_problem(skeleton: Skeleton) -> str | None:
    """A sentence describing why the skeleton does not have exactly one root, or ``None`` if it does.

    The root is the node no edge points to (SLEAP and the top-down anchor default expect one).
    """
    if skeleton.n_nodes == 0:
        return "The skeleton has no nodes yet: add one."
    if skeleton.n_nodes == 1:
        return None
    if not skeleton.edges:
        return "No edges yet: connect the nodes (parent -> child) so exactly one node has no parent."
    roots = [skeleton.nodes[r] for r in skeleton.roots()]
    if not roots:
        return "Every node has a parent (the edges make a loop): exactly one node must have no parent."
    if len(roots) > 1:
        return (
            f"{len(roots)} nodes have no parent ({', '.join(roots)}): add edges so that exactly one "
            "node (the root) has no parent."
        )
    return None


def apply_skeleton_edit(labels: Labels, edit: SkeletonEdit) -> Labels:
    """A copy of ``labels`` using ``edit.skeleton``, its instances rearranged to the new node list.

    Every point of a kept node is carried over exactly (with its visibility, verified flag and
    score); new nodes are missing; removed nodes' points are gone. ``labels`` is not changed.
    """
    if len(edit.order) != edit.skeleton.n_nodes:
        raise ValueError(
            f"the edit maps {len(edit.order)} nodes but its skeleton has {edit.skeleton.n_nodes}"
        )
    bad = [o for o in edit.order if o >= labels.n_nodes or o < -1]
    if bad:
        raise ValueError(
            f"the edit refers to node {bad[0]} but the labels' skeleton has {labels.n_nodes} nodes"
        )
    with quiet_roots():  # copying re-validates the skeletons
        out = labels.copy()
        instances = out.instances.reorder_nodes(list(edit.order), edit.skeleton.n_nodes)
        return Labels(
            edit.skeleton.copy(),
            out.videos,
            out.tracks,
            out.suggestions,
            out.provenance,
            instances,
            out.skeletons[1:],
        )


def with_skeleton(labels: Labels, skeleton: Skeleton) -> Labels:
    """A copy of ``labels`` using ``skeleton``, nodes matched by name (see :func:`match_by_name`)."""
    return apply_skeleton_edit(labels, match_by_name(labels.skeleton, skeleton))


# --------------------------------------------------------------------------- templates


def _template_dir() -> Path:
    return Path(str(resources.files("napari_posetrack") / "templates"))


def list_templates() -> list[str]:
    """Names of the bundled skeleton templates (file names without ``.json``), sorted."""
    return sorted(p.stem for p in _template_dir().glob("*.json"))


def template_path(name: str) -> Path:
    """The JSON file of the bundled template ``name``."""
    path = _template_dir() / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no skeleton template {name!r}; the templates are: {', '.join(list_templates())}")
    return path


def load_template(name: str) -> Skeleton:
    """The bundled skeleton template ``name`` (see :func:`list_templates`)."""
    from napari_posetrack.core.io.skeleton_json import load_skeleton_json

    return load_skeleton_json(template_path(name))


def template_description(name: str) -> str:
    """The one-line description stored in the bundled template ``name`` (empty when it has none)."""
    import json

    with open(template_path(name), encoding="utf-8") as fh:
        doc = json.load(fh)
    return str(doc.get("description") or "") if isinstance(doc, dict) else ""
