"""The columnar pose store: Skeleton, Video, Track, Suggestion and Labels.

Instances are held as columns (one row per instance) rather than as Python objects,
so a file with a million predicted instances loads into a handful of numpy arrays.
Nothing here knows about file formats (see ``core.io``) or napari (see ``layers``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np

USER = 0
PREDICTED = 1
KIND_NAMES = {USER: "user", PREDICTED: "predicted"}
NO_TRACK = -1
NO_LINK = -1
NOT_REJECTED = 0
REJECT_SURPLUS, REJECT_DUPLICATE, REJECT_SHAPE, REJECT_EMPTY, REJECT_FEW_POINTS = 1, 2, 3, 4, 5
REJECTION_REASONS: dict[int, tuple[str, str]] = {
    REJECT_SURPLUS: ("surplus", "more instances on the frame than animals; the others fit the tracks better"),
    REJECT_DUPLICATE: ("duplicate", "more instances on the frame than animals; it overlaps one that is kept"),
    REJECT_SHAPE: ("shape", "implausible limb lengths (parts of several animals joined into one)"),
    REJECT_EMPTY: ("empty", "no visible points"),
    REJECT_FEW_POINTS: ("few points", "too few visible points to start a track"),
}
"""Codes of the ``rejected`` instance column -> (short name, explanation): why the tracker gave an
instance no track. 0 (:data:`NOT_REJECTED`): it did not reject it."""


def kind_code(kind: int | str) -> int:
    """Return the integer code of an instance kind given as ``"user"``/``"predicted"`` or a code."""
    if isinstance(kind, str):
        try:
            return {"user": USER, "predicted": PREDICTED}[kind]
        except KeyError as exc:
            raise ValueError(f"unknown instance kind {kind!r}; use 'user' or 'predicted'") from exc
    code = int(kind)
    if code not in KIND_NAMES:
        raise ValueError(f"unknown instance kind code {kind!r}")
    return code


# --------------------------------------------------------------------------- skeleton


@dataclass
class Skeleton:
    """Body-part graph: named nodes, directed edges (parent -> child) and symmetry pairs.

    Parameters
    ----------
    nodes
        Unique node names, in the order of the coordinate arrays.
    edges
        ``(parent, child)`` node index pairs.
    symmetries
        Unordered node index pairs that swap under a left/right flip.
    name
        Skeleton name as shown to users and stored in files.
    node_sigmas
        Per-node OKS falloff constants in the units of COCO (fraction of object scale);
        ``None`` means the default of :func:`napari_posetrack.core.labels.DEFAULT_OKS_SIGMA`.
    """

    nodes: list[str]
    edges: list[tuple[int, int]] = field(default_factory=list)
    symmetries: list[tuple[int, int]] = field(default_factory=list)
    name: str = "skeleton"
    node_sigmas: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.nodes = [str(n) for n in self.nodes]
        self.edges = [self._as_index_pair(e) for e in self.edges]
        self.symmetries = [self._as_index_pair(s) for s in self.symmetries]
        self.validate()

    def _as_index_pair(self, pair: Sequence[int | str]) -> tuple[int, int]:
        if len(pair) != 2:
            raise ValueError(f"skeleton {self.name!r}: an edge or symmetry needs two nodes, got {pair!r}")
        return (self._index_of(pair[0]), self._index_of(pair[1]))

    def _index_of(self, node: int | str) -> int:
        if isinstance(node, (int, np.integer)):
            if not 0 <= int(node) < len(self.nodes):
                raise ValueError(
                    f"skeleton {self.name!r}: node index {node} out of range for {len(self.nodes)} nodes"
                )
            return int(node)
        try:
            return self.nodes.index(str(node))
        except ValueError as exc:
            raise ValueError(f"skeleton {self.name!r}: no node named {node!r} (nodes: {self.nodes})") from exc

    def validate(self) -> None:
        """Raise ``ValueError`` for duplicate node names or self-loops; warn unless there is one root."""
        seen: set[str] = set()
        for n in self.nodes:
            if n in seen:
                raise ValueError(f"skeleton {self.name!r}: node name {n!r} is used twice")
            seen.add(n)
        for p, c in self.edges:
            if p == c:
                raise ValueError(f"skeleton {self.name!r}: edge from {self.nodes[p]!r} to itself")
        if self.edges and len(self.roots()) != 1:
            warnings.warn(
                f"skeleton {self.name!r} has {len(self.roots())} root nodes "
                f"({', '.join(self.nodes[r] for r in self.roots())}); SLEAP expects exactly one",
                UserWarning,
                stacklevel=3,
            )

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def node_index(self, name: str) -> int:
        """Index of the node called ``name``."""
        return self._index_of(name)

    def roots(self) -> list[int]:
        """Indices of nodes that no edge points to (nodes on no edge count as roots only when there are edges)."""
        children = {c for _, c in self.edges}
        return [i for i in range(len(self.nodes)) if i not in children]

    @property
    def edge_names(self) -> list[tuple[str, str]]:
        return [(self.nodes[p], self.nodes[c]) for p, c in self.edges]

    @property
    def symmetry_names(self) -> list[tuple[str, str]]:
        return [(self.nodes[a], self.nodes[b]) for a, b in self.symmetries]

    def edge_array(self) -> np.ndarray:
        """Edges as an ``(n_edges, 2)`` int array."""
        return np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)

    def flip_permutation(self) -> np.ndarray:
        """Node permutation that swaps every symmetry pair (identity elsewhere)."""
        perm = np.arange(len(self.nodes))
        for a, b in self.symmetries:
            perm[a], perm[b] = b, a
        return perm

    def same_nodes(self, other: Skeleton) -> bool:
        """True when both skeletons have the same set of node names (order may differ)."""
        return sorted(self.nodes) == sorted(other.nodes)

    def copy(self) -> Skeleton:
        return Skeleton(
            list(self.nodes),
            list(self.edges),
            list(self.symmetries),
            self.name,
            None if self.node_sigmas is None else np.array(self.node_sigmas, copy=True),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Skeleton):
            return NotImplemented
        sig_eq = (self.node_sigmas is None and other.node_sigmas is None) or (
            self.node_sigmas is not None
            and other.node_sigmas is not None
            and np.array_equal(self.node_sigmas, other.node_sigmas)
        )
        return (
            self.nodes == other.nodes
            and self.edges == other.edges
            and {frozenset(s) for s in self.symmetries} == {frozenset(s) for s in other.symmetries}
            and self.name == other.name
            and sig_eq
        )


DEFAULT_OKS_SIGMA = 0.05
"""Per-node OKS sigma used when a skeleton declares none (close to COCO's median body-part sigma)."""


# --------------------------------------------------------------------------- videos, tracks


@dataclass
class Video:
    """A video as referenced by a labels file; it may be missing on disk.

    Parameters
    ----------
    path
        A video file path, or a list of image file paths (an image-folder "video").
    n_frames, shape, fps
        Known metadata; ``shape`` is ``(height, width, channels)``.
    backend
        ``"pyav"`` for video files, ``"images"`` for image lists, ``"embedded"`` for frames
        stored inside a ``.pkg.slp`` file.
    backend_metadata
        Format-specific fields kept so a file can be written back unchanged.
    """

    path: str | list[str]
    n_frames: int | None = None
    shape: tuple[int, int, int] | None = None
    fps: float | None = None
    backend: str = "pyav"
    backend_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The path (first image for image lists)."""
        if isinstance(self.path, list):
            return self.path[0] if self.path else ""
        return self.path

    @property
    def name(self) -> str:
        """A short display name: the file name (folder name for image lists)."""
        if isinstance(self.path, list):
            return Path(self.filename).parent.name or "images"
        return _basename(self.path)

    @property
    def exists(self) -> bool:
        if isinstance(self.path, list):
            return bool(self.path) and all(os.path.exists(p) for p in self.path)
        return os.path.exists(self.path)

    def matches_path(self, other: Video | str) -> bool:
        """Whether two videos refer to the same file (compared by normalised absolute path)."""
        other_path = other.path if isinstance(other, Video) else other
        return _norm(self.path) == _norm(other_path)

    def copy(self) -> Video:
        path = list(self.path) if isinstance(self.path, list) else self.path
        return Video(path, self.n_frames, self.shape, self.fps, self.backend, dict(self.backend_metadata))


def _basename(path: str) -> str:
    """File name of a POSIX or Windows-style path."""
    return PureWindowsPath(path).name if "\\" in path else Path(path).name


def _norm(path: str | list[str]) -> Any:
    if isinstance(path, list):
        return tuple(os.path.normpath(os.path.abspath(p)) for p in path)
    return os.path.normpath(os.path.abspath(path.replace("\\", "/")))


@dataclass
class Track:
    """An identity. ``spawned_on`` is the frame the tracker created it (0 when unknown).

    ``color`` is an RGB triple in 0..1 the user chose for the track (``None``: the palette colour of
    its index).
    """

    name: str
    spawned_on: int = 0
    color: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.color is not None:
            rgb = tuple(float(c) for c in self.color)
            if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
                raise ValueError(f"track {self.name!r}: colour must be three numbers in 0..1, got {self.color!r}")
            self.color = rgb

    def copy(self) -> Track:
        return Track(self.name, self.spawned_on, self.color)


@dataclass(frozen=True)
class Suggestion:
    """A frame suggested for labelling; ``group`` is the suggestion round or method."""

    video: int
    frame: int
    group: int = 0


# --------------------------------------------------------------------------- instance columns

_SCALAR_COLUMNS: dict[str, tuple[np.dtype, Any]] = {
    "instance_id": (np.dtype(np.int64), NO_LINK),
    "video": (np.dtype(np.int32), 0),
    "frame": (np.dtype(np.int64), 0),
    "kind": (np.dtype(np.int8), USER),
    "track": (np.dtype(np.int32), NO_TRACK),
    "score": (np.dtype(np.float32), np.nan),
    "tracking_score": (np.dtype(np.float32), 0.0),
    "from_predicted": (np.dtype(np.int64), NO_LINK),
    "rejected": (np.dtype(np.int8), NOT_REJECTED),
}
_NODE_COLUMNS: dict[str, tuple[np.dtype, Any]] = {
    "visible": (np.dtype(bool), True),
    "complete": (np.dtype(bool), False),
    "point_scores": (np.dtype(np.float32), np.nan),
}
COLUMN_NAMES = tuple(_SCALAR_COLUMNS) + ("points",) + tuple(_NODE_COLUMNS)


class InstanceTable:
    """Growable columns of instances; row ``i`` of every column describes one instance.

    Columns (all numpy views of length ``len(table)``):

    ``instance_id`` (int64, unique and stable across edits), ``video`` (int32), ``frame`` (int64),
    ``kind`` (int8, ``USER``/``PREDICTED``), ``track`` (int32, ``-1`` = none), ``score`` (float32,
    instance score, NaN for user instances), ``tracking_score`` (float32), ``from_predicted``
    (int64, the ``instance_id`` of the prediction a user instance came from, ``-1`` = none),
    ``rejected`` (int8, why the tracker left the instance without a track: a key of
    :data:`REJECTION_REASONS`, 0 = not rejected),
    ``points`` ((n, n_nodes, 2) float64 ``x, y``; NaN = missing), ``visible`` ((n, n_nodes) bool),
    ``complete`` ((n, n_nodes) bool, SLEAP's "verified" flag), ``point_scores`` ((n, n_nodes) float32).

    Storage grows by doubling so appending one instance at a time is amortised O(1).
    """

    def __init__(self, n_nodes: int, capacity: int = 0) -> None:
        self.n_nodes = int(n_nodes)
        self._n = 0
        self._next_id = 0
        self._cols: dict[str, np.ndarray] = {}
        self._allocate(max(int(capacity), 1))

    # storage -------------------------------------------------------------
    def _allocate(self, capacity: int) -> None:
        # rows past self._n are never read before append() fills every column, so no fill is needed
        new: dict[str, np.ndarray] = {}
        for name, (dtype, _) in _SCALAR_COLUMNS.items():
            new[name] = np.empty(capacity, dtype=dtype)
        new["points"] = np.empty((capacity, self.n_nodes, 2), dtype=np.float64)
        for name, (dtype, _) in _NODE_COLUMNS.items():
            new[name] = np.empty((capacity, self.n_nodes), dtype=dtype)
        for name, arr in self._cols.items():
            new[name][: self._n] = arr[: self._n]
        self._cols = new

    @classmethod
    def from_columns(cls, n_nodes: int, **columns: np.ndarray) -> InstanceTable:
        """A table that adopts the given column arrays (no copy when dtypes already match).

        Every column of :data:`COLUMN_NAMES` is required except ``instance_id`` (default ``0..n-1``)
        and ``rejected`` (default none rejected).
        Readers of large files use this to avoid holding two copies of the data.
        """
        missing = set(COLUMN_NAMES) - set(columns) - {"instance_id", "rejected"}
        if missing:
            raise TypeError(f"missing instance columns: {sorted(missing)}")
        n = len(columns["frame"])
        if "instance_id" not in columns or columns["instance_id"] is None:
            columns["instance_id"] = np.arange(n, dtype=np.int64)
        if columns.get("rejected") is None:
            columns["rejected"] = np.zeros(n, dtype=np.int8)
        table = cls(n_nodes, capacity=0)
        cols: dict[str, np.ndarray] = {}
        for name, (dtype, _) in {**_SCALAR_COLUMNS, **_NODE_COLUMNS, "points": (np.dtype(np.float64), None)}.items():
            arr = np.ascontiguousarray(columns[name], dtype=dtype)
            expected = (n,) if name in _SCALAR_COLUMNS else (n, n_nodes, 2) if name == "points" else (n, n_nodes)
            if arr.shape != expected:
                raise ValueError(f"column {name!r} has shape {arr.shape}, expected {expected}")
            cols[name] = arr
        table._cols = cols
        table._n = n
        table._next_id = int(cols["instance_id"].max()) + 1 if n else 0
        return table

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        cap = len(self._cols["frame"])
        if need > cap:
            self._allocate(max(need, 2 * cap))

    def __len__(self) -> int:
        return self._n

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("_cols")
        if cols is not None and name in cols:
            return cols[name][: self.__dict__["_n"]]
        raise AttributeError(name)

    def column(self, name: str) -> np.ndarray:
        """The live view of column ``name`` (writes go into the table)."""
        return self._cols[name][: self._n]

    def columns(self) -> dict[str, np.ndarray]:
        return {name: self.column(name) for name in COLUMN_NAMES}

    @property
    def next_id(self) -> int:
        return self._next_id

    # edits ---------------------------------------------------------------
    def append(self, n: int, **values: Any) -> np.ndarray:
        """Append ``n`` rows; unspecified columns take their defaults. Returns the new row indices."""
        unknown = set(values) - set(COLUMN_NAMES)
        if unknown:
            raise TypeError(f"unknown instance columns: {sorted(unknown)}")
        n = int(n)
        self._reserve(n)
        start, stop = self._n, self._n + n
        ids = values.pop("instance_id", None)
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64).reshape(n)
        for name, arr in self._cols.items():
            if name == "instance_id":
                arr[start:stop] = ids
            elif name in values and values[name] is not None:
                val = np.asarray(values[name])
                if name == "points" and val.shape[-2:] != (self.n_nodes, 2):
                    raise ValueError(
                        f"points must have shape (n, {self.n_nodes}, 2), got {val.shape}"
                    )
                arr[start:stop] = val
            else:
                dtype, fill = _SCALAR_COLUMNS.get(name) or _NODE_COLUMNS.get(name) or (None, np.nan)
                arr[start:stop] = fill
        self._n = stop
        if n:
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        return np.arange(start, stop)

    def keep(self, mask: np.ndarray) -> None:
        """Keep only rows where ``mask`` is true (order preserved)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self._n,):
            raise ValueError(f"mask must have shape ({self._n},)")
        kept = int(mask.sum())
        for name, arr in self._cols.items():
            arr[:kept] = arr[: self._n][mask]
        self._n = kept

    def take(self, rows: np.ndarray) -> InstanceTable:
        """A new table holding copies of ``rows`` (ids kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = InstanceTable(self.n_nodes, capacity=len(rows))
        out.append(len(rows), **{name: self.column(name)[rows] for name in COLUMN_NAMES})
        out._next_id = max(out._next_id, self._next_id)
        return out

    def reorder_nodes(self, order: Sequence[int], n_nodes: int) -> InstanceTable:
        """A copy whose node axis is rearranged: new node ``j`` takes old node ``order[j]`` (-1 = empty)."""
        order = np.asarray(order, dtype=np.int64)
        out = InstanceTable(n_nodes, capacity=self._n)
        values: dict[str, np.ndarray] = {name: self.column(name) for name in _SCALAR_COLUMNS}
        present = order >= 0
        src = np.where(present, order, 0)
        for name, (dtype, fill) in {"points": (np.float64, np.nan), **_NODE_COLUMNS}.items():
            col = self.column(name)[:, src]
            col[:, ~present] = fill
            values[name] = col
        out.append(self._n, **values)
        out._next_id = self._next_id
        return out


# --------------------------------------------------------------------------- labels


class Labels:
    """Everything a project holds: videos, skeleton(s), tracks, suggestions and instances.

    Instances use ``skeletons[0]``; files whose instances use several skeletons with
    different nodes are rejected by the readers with a clear message.

    Parameters
    ----------
    skeleton
        The skeleton all instances use.
    videos, tracks, suggestions
        Initial lists.
    provenance
        Free-form metadata (source file, software versions, ...), kept across save/load.
    """

    def __init__(
        self,
        skeleton: Skeleton,
        videos: Iterable[Video] = (),
        tracks: Iterable[Track] = (),
        suggestions: Iterable[Suggestion] = (),
        provenance: dict[str, Any] | None = None,
        instances: InstanceTable | None = None,
        skeletons: Iterable[Skeleton] = (),
    ) -> None:
        extra = [s for s in skeletons if s is not skeleton]
        self.skeletons: list[Skeleton] = [skeleton, *extra]
        self.videos: list[Video] = list(videos)
        self.tracks: list[Track] = list(tracks)
        self.suggestions: list[Suggestion] = list(suggestions)
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.instances = instances if instances is not None else InstanceTable(skeleton.n_nodes)
        if self.instances.n_nodes != skeleton.n_nodes:
            raise ValueError(
                f"instances have {self.instances.n_nodes} nodes but skeleton {skeleton.name!r} has {skeleton.n_nodes}"
            )
        self._sorted: np.ndarray | None = None

    # basic properties ------------------------------------------------------
    @property
    def skeleton(self) -> Skeleton:
        return self.skeletons[0]

    @property
    def n_instances(self) -> int:
        return len(self.instances)

    @property
    def n_nodes(self) -> int:
        return self.skeleton.n_nodes

    def __len__(self) -> int:
        return len(self.labeled_frames())

    def __repr__(self) -> str:
        n_user = int((self.instances.kind == USER).sum())
        return (
            f"Labels({len(self.videos)} videos, {len(self)} frames, {n_user} user / "
            f"{self.n_instances - n_user} predicted instances, {len(self.tracks)} tracks, "
            f"skeleton {self.skeleton.name!r} with {self.n_nodes} nodes)"
        )

    def _changed(self) -> None:
        self._sorted = None

    # queries ---------------------------------------------------------------
    def _order(self) -> np.ndarray:
        if self._sorted is None or len(self._sorted) != self.n_instances:
            t = self.instances
            self._sorted = np.lexsort((t.frame, t.video))
        return self._sorted

    def rows(
        self,
        video: int | None = None,
        frame: int | None = None,
        track: int | None = None,
        kind: int | str | None = None,
    ) -> np.ndarray:
        """Row indices of instances matching every given filter, ordered by row.

        ``video``/``frame`` lookups use a sorted index (O(log n)); ``track``/``kind`` filter the result.
        """
        t = self.instances
        if video is not None and frame is not None:
            order = self._order()
            key_v = t.video[order]
            key_f = t.frame[order]
            lo_v = np.searchsorted(key_v, video, "left")
            hi_v = np.searchsorted(key_v, video, "right")
            lo = lo_v + np.searchsorted(key_f[lo_v:hi_v], frame, "left")
            hi = lo_v + np.searchsorted(key_f[lo_v:hi_v], frame, "right")
            rows = np.sort(order[lo:hi])
        else:
            mask = np.ones(len(t), dtype=bool)
            if video is not None:
                mask &= t.video == video
            if frame is not None:
                mask &= t.frame == frame
            rows = np.flatnonzero(mask)
        if track is not None:
            rows = rows[t.track[rows] == track]
        if kind is not None:
            rows = rows[t.kind[rows] == kind_code(kind)]
        return rows

    def row_of_id(self, instance_id: int | np.ndarray) -> np.ndarray:
        """Row indices of the given instance ids (``-1`` where an id is not present)."""
        ids = self.instances.instance_id
        query = np.atleast_1d(np.asarray(instance_id, dtype=np.int64))
        if len(ids) == 0:
            return np.full(len(query), -1, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        pos = np.clip(np.searchsorted(ids[order], query), 0, len(ids) - 1)
        hit = ids[order][pos] == query
        return np.where(hit, order[pos], -1).astype(np.int64)

    def shadowed_predictions(self) -> np.ndarray:
        """Boolean mask of predicted rows replaced by a user instance on the same frame.

        A prediction is shadowed when a user instance links to it through ``from_predicted``.
        Shadowed predictions stay in the store (files keep them) but views and training skip them.
        """
        t = self.instances
        links = t.from_predicted[(t.kind == USER) & (t.from_predicted != NO_LINK)]
        return (t.kind == PREDICTED) & np.isin(t.instance_id, links)

    def frame_rows(self, video: int, frame: int, include_shadowed: bool = False) -> np.ndarray:
        """Rows shown on a frame: user instances plus predictions not shadowed by a user instance."""
        rows = self.rows(video=video, frame=frame)
        if include_shadowed or len(rows) == 0:
            return rows
        return rows[~self.shadowed_predictions()[rows]]

    def labeled_frames(self, video: int | None = None, kind: int | str | None = None) -> np.ndarray:
        """Unique ``(video, frame)`` pairs that hold instances, as an ``(n, 2)`` int64 array, sorted."""
        t = self.instances
        mask = np.ones(len(t), dtype=bool)
        if video is not None:
            mask &= t.video == video
        if kind is not None:
            mask &= t.kind == kind_code(kind)
        pairs = np.stack([t.video[mask].astype(np.int64), t.frame[mask]], axis=1)
        if len(pairs) == 0:
            return pairs.reshape(0, 2)
        return np.unique(pairs, axis=0)

    def user_frames(self, video: int | None = None) -> np.ndarray:
        """``(video, frame)`` pairs with at least one user instance."""
        return self.labeled_frames(video=video, kind=USER)

    # edits -----------------------------------------------------------------
    def add_instances(
        self,
        video: int | np.ndarray,
        frame: int | np.ndarray,
        points: np.ndarray,
        *,
        kind: int | str = USER,
        visible: np.ndarray | None = None,
        track: int | np.ndarray = NO_TRACK,
        score: float | np.ndarray = np.nan,
        point_scores: np.ndarray | None = None,
        tracking_score: float | np.ndarray = 0.0,
        from_predicted: int | np.ndarray = NO_LINK,
        complete: np.ndarray | None = None,
    ) -> np.ndarray:
        """Add instances; ``points`` is ``(n_nodes, 2)`` for one or ``(n, n_nodes, 2)`` for many.

        Missing nodes are NaN. ``visible`` defaults to "not NaN". Returns the new instance ids.
        """
        points = np.asarray(points, dtype=np.float64)
        if points.ndim == 2:
            points = points[None]
        if points.ndim != 3 or points.shape[1:] != (self.n_nodes, 2):
            raise ValueError(
                f"points must have shape (n, {self.n_nodes}, 2) for skeleton {self.skeleton.name!r}, got {points.shape}"
            )
        n = len(points)
        vid = np.broadcast_to(np.asarray(video, dtype=np.int64), (n,))
        if n and (vid.min() < 0 or vid.max() >= len(self.videos)):
            raise IndexError(f"video index out of range (labels hold {len(self.videos)} videos)")
        trk = np.broadcast_to(np.asarray(track, dtype=np.int64), (n,))
        if n and trk.max() >= len(self.tracks):
            raise IndexError(f"track index out of range (labels hold {len(self.tracks)} tracks)")
        if visible is None:
            visible = ~np.isnan(points).any(axis=-1)
        rows = self.instances.append(
            n,
            video=vid,
            frame=np.broadcast_to(np.asarray(frame, dtype=np.int64), (n,)),
            kind=np.full(n, kind_code(kind), dtype=np.int8),
            track=trk,
            score=np.broadcast_to(np.asarray(score, dtype=np.float32), (n,)),
            tracking_score=np.broadcast_to(np.asarray(tracking_score, dtype=np.float32), (n,)),
            from_predicted=np.broadcast_to(np.asarray(from_predicted, dtype=np.int64), (n,)),
            points=points,
            visible=np.broadcast_to(np.asarray(visible, dtype=bool), (n, self.n_nodes)),
            complete=None if complete is None else np.broadcast_to(np.asarray(complete, dtype=bool), (n, self.n_nodes)),
            point_scores=None
            if point_scores is None
            else np.broadcast_to(np.asarray(point_scores, dtype=np.float32), (n, self.n_nodes)),
        )
        self._changed()
        return self.instances.instance_id[rows].copy()

    def insert_rows(self, **columns: np.ndarray) -> np.ndarray:
        """Append whole rows given column by column, ``instance_id`` included (undo restores
        deleted instances this way, under their old ids). Returns the new row indices."""
        n = len(columns["instance_id"])
        rows = self.instances.append(n, **columns)
        self._changed()
        return rows

    def update(self, rows: int | np.ndarray, **values: Any) -> None:
        """Set columns of existing rows, e.g. ``update(r, points=p, visible=v)`` or ``update(r, track=1)``."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        for name, val in values.items():
            if name == "instance_id" or name not in COLUMN_NAMES:
                raise KeyError(f"cannot set column {name!r}")
            if name == "kind":
                val = kind_code(val) if np.ndim(val) == 0 else np.asarray([kind_code(v) for v in val])
            if name == "track" and np.max(np.atleast_1d(val), initial=-1) >= len(self.tracks):
                raise IndexError(f"track index out of range (labels hold {len(self.tracks)} tracks)")
            self.instances.column(name)[rows] = val
        if "track" in values and "rejected" not in values:
            # an instance someone puts on a track is no longer one the tracker rejected
            tracked = rows[self.instances.track[rows] >= 0]
            self.instances.rejected[tracked] = NOT_REJECTED
        if {"video", "frame"} & set(values):
            self._changed()

    def delete(self, rows: np.ndarray | int) -> None:
        """Delete instances by row index. Links from user instances to deleted predictions are cleared."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:
            return
        t = self.instances
        mask = np.ones(len(t), dtype=bool)
        mask[rows] = False
        gone_ids = t.instance_id[~mask]
        linked = np.isin(t.from_predicted, gone_ids)
        t.from_predicted[linked] = NO_LINK
        t.keep(mask)
        self._changed()

    def delete_predictions(
        self,
        video: int | None = None,
        frames: tuple[int, int] | None = None,
        below_score: float | None = None,
    ) -> int:
        """Bulk-delete predicted instances (optionally in a video, a frame range [start, stop), below a score).

        Returns how many were removed.
        """
        rows = self.prediction_rows(video, frames, below_score)
        self.delete(rows)
        return len(rows)

    def prediction_rows(
        self,
        video: int | None = None,
        frames: tuple[int, int] | None = None,
        below_score: float | None = None,
    ) -> np.ndarray:
        """Rows of predicted instances, optionally in a video, a frame range [start, stop), below a score."""
        t = self.instances
        mask = t.kind == PREDICTED
        if video is not None:
            mask &= t.video == video
        if frames is not None:
            mask &= (t.frame >= frames[0]) & (t.frame < frames[1])
        if below_score is not None:
            mask &= t.score < below_score
        return np.flatnonzero(mask)

    def promote_prediction(self, row: int) -> int:
        """Copy a predicted instance into a new user instance linked to it; returns the new instance id."""
        t = self.instances
        if t.kind[row] != PREDICTED:
            raise ValueError("only predicted instances can be turned into user instances")
        new_id = self.add_instances(
            int(t.video[row]),
            int(t.frame[row]),
            t.points[row].copy(),
            kind=USER,
            visible=t.visible[row].copy(),
            track=int(t.track[row]),
            from_predicted=int(t.instance_id[row]),
        )
        return int(new_id[0])

    def add_video(self, video: Video) -> int:
        self.videos.append(video)
        return len(self.videos) - 1

    def add_track(
        self, name: str | None = None, spawned_on: int = 0, color: tuple[float, float, float] | None = None
    ) -> int:
        self.tracks.append(Track(name if name is not None else f"track_{len(self.tracks)}", spawned_on, color))
        return len(self.tracks) - 1

    def remove_tracks(self) -> None:
        """Drop all identities (instances keep their poses)."""
        self.tracks.clear()
        self.instances.track[:] = NO_TRACK

    # moved projects -----------------------------------------------------------
    def missing_videos(self) -> list[int]:
        """Indices of videos whose file is not on disk (embedded videos never are missing)."""
        return [i for i, v in enumerate(self.videos) if v.backend != "embedded" and not v.exists]

    def replace_video(self, video: int | str | Video, new_path: str | list[str]) -> None:
        """Point a video (by index, old path or object) at a new location, keeping its instances."""
        idx = self._video_index(video)
        self.videos[idx].path = new_path if isinstance(new_path, list) else str(new_path)

    def _video_index(self, video: int | str | Video) -> int:
        if isinstance(video, (int, np.integer)):
            return int(video)
        for i, v in enumerate(self.videos):
            if (isinstance(video, Video) and v is video) or v.matches_path(video):
                return i
        raise KeyError(f"no video {video!r} in these labels")

    # whole-store operations ------------------------------------------------------
    def swap_contents(self, other: Labels) -> None:
        """Exchange everything this store holds with ``other`` (both objects keep their identity).

        Whole-store edits (apply a processed copy, undo it) use this so every holder of the object
        sees the new contents.
        """
        mine = vars(self).copy()
        vars(self).clear()
        vars(self).update(vars(other))
        vars(other).clear()
        vars(other).update(mine)

    def copy(self) -> Labels:
        out = Labels(
            self.skeleton.copy(),
            [v.copy() for v in self.videos],
            [t.copy() for t in self.tracks],
            list(self.suggestions),
            dict(self.provenance),
            self.instances.take(np.arange(self.n_instances)),
            [s.copy() for s in self.skeletons[1:]],
        )
        return out

    def subset(self, rows: np.ndarray) -> Labels:
        """A copy holding only the given instance rows (videos, tracks, skeletons kept)."""
        out = self.copy()
        mask = np.zeros(self.n_instances, dtype=bool)
        mask[np.asarray(rows, dtype=np.int64)] = True
        out.instances.keep(mask)
        return out

    def merge(self, other: Labels) -> dict[str, Any]:
        """Merge ``other`` into this store in place.

        Skeletons must have the same node names (their order may differ); videos are matched by path,
        tracks by name. A user instance from ``other`` on a frame replaces a prediction of ours that sits
        within 1 px mean distance; everything else is appended. Returns a summary dict.
        """
        if not self.skeleton.same_nodes(other.skeleton):
            raise ValueError(
                f"cannot merge: skeleton nodes differ ({self.skeleton.nodes} vs {other.skeleton.nodes})"
            )
        order = [other.skeleton.node_index(n) for n in self.skeleton.nodes]
        incoming = other.instances.reorder_nodes(order, self.n_nodes)
        video_map = np.empty(len(other.videos), dtype=np.int64)
        for j, v in enumerate(other.videos):
            match = next((i for i, mine in enumerate(self.videos) if mine.matches_path(v)), None)
            video_map[j] = match if match is not None else self.add_video(v.copy())
        track_map = np.full(len(other.tracks) + 1, NO_TRACK, dtype=np.int64)
        names = [t.name for t in self.tracks]
        for j, tr in enumerate(other.tracks):
            track_map[j] = names.index(tr.name) if tr.name in names else self.add_track(tr.name, tr.spawned_on, tr.color)
        # ids of incoming instances are renumbered so they cannot collide with ours
        offset = self.instances.next_id - (incoming.instance_id.min() if len(incoming) else 0)
        new_ids = incoming.instance_id + offset
        links = np.where(incoming.from_predicted >= 0, incoming.from_predicted + offset, NO_LINK)
        replaced = self._predictions_replaced_by(incoming, video_map)
        self.delete(replaced)
        self.instances.append(
            len(incoming),
            instance_id=new_ids,
            video=video_map[incoming.video],
            frame=incoming.frame,
            kind=incoming.kind,
            track=track_map[incoming.track],  # NO_TRACK (-1) indexes the trailing -1
            score=incoming.score,
            tracking_score=incoming.tracking_score,
            from_predicted=links,
            rejected=incoming.rejected,
            points=incoming.points,
            visible=incoming.visible,
            complete=incoming.complete,
            point_scores=incoming.point_scores,
        )
        existing = set(self.suggestions)
        for s in other.suggestions:
            sug = Suggestion(int(video_map[s.video]), s.frame, s.group)
            if sug not in existing:
                self.suggestions.append(sug)
                existing.add(sug)
        self._changed()
        return {"added": len(incoming), "replaced_predictions": len(replaced), "videos": len(self.videos)}

    def _predictions_replaced_by(self, incoming: InstanceTable, video_map: np.ndarray) -> np.ndarray:
        user = np.flatnonzero(incoming.kind == USER)
        replaced: list[int] = []
        for r in user:
            mine = self.rows(video=int(video_map[incoming.video[r]]), frame=int(incoming.frame[r]), kind=PREDICTED)
            if len(mine) == 0:
                continue
            d = np.nanmean(np.linalg.norm(self.instances.points[mine] - incoming.points[r], axis=-1), axis=1)
            best = int(np.nanargmin(d)) if np.isfinite(d).any() else -1
            if best >= 0 and d[best] <= 1.0:
                replaced.append(int(mine[best]))
        return np.asarray(sorted(set(replaced)), dtype=np.int64)

    def dense(
        self, video: int = 0, kind: int | str | None = None, n_frames: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """A dense ``(frames, tracks, nodes, 2)`` array of coordinates (NaN where absent) and occupancy.

        Only tracked instances appear. When a track has several instances on one frame, the one with
        the highest score (user instances first) wins. Returns ``(coords, occupancy)``.
        """
        t = self.instances
        mask = (t.video == video) & (t.track >= 0) & ~self.shadowed_predictions()
        if kind is not None:
            mask &= t.kind == kind_code(kind)
        rows = np.flatnonzero(mask)
        if n_frames is None:
            n_frames = self.videos[video].n_frames if video < len(self.videos) else None
            if n_frames is None:
                n_frames = int(t.frame[rows].max()) + 1 if len(rows) else 0
        coords = np.full((n_frames, len(self.tracks), self.n_nodes, 2), np.nan)
        occupancy = np.zeros((n_frames, len(self.tracks)), dtype=bool)
        if len(rows) == 0:
            return coords, occupancy
        # later writes win: order rows so the preferred instance comes last
        priority = np.where(t.kind[rows] == USER, np.inf, np.nan_to_num(t.score[rows], nan=-np.inf))
        rows = rows[np.argsort(priority, kind="stable")]
        rows = rows[t.frame[rows] < n_frames]
        pts = t.points[rows].copy()
        pts[~t.visible[rows]] = np.nan
        coords[t.frame[rows], t.track[rows]] = pts
        occupancy[t.frame[rows], t.track[rows]] = True
        return coords, occupancy


def assert_labels_equal(a: Labels, b: Labels, *, check_ids: bool = False, atol: float = 0.0) -> None:
    """Raise ``AssertionError`` describing the first difference between two stores (order-insensitive).

    Instances are compared after sorting by (video, frame, kind, track, first coordinates).
    Coordinates must be equal to within ``atol`` (exactly, by default); scores to within 1e-6.
    """
    if a.skeleton.nodes != b.skeleton.nodes:
        raise AssertionError(f"skeleton nodes differ: {a.skeleton.nodes} vs {b.skeleton.nodes}")
    if sorted(a.skeleton.edges) != sorted(b.skeleton.edges):
        raise AssertionError(f"skeleton edges differ: {a.skeleton.edges} vs {b.skeleton.edges}")
    if len(a.videos) != len(b.videos):
        raise AssertionError(f"video counts differ: {len(a.videos)} vs {len(b.videos)}")
    if [t.name for t in a.tracks] != [t.name for t in b.tracks]:
        raise AssertionError(f"tracks differ: {[t.name for t in a.tracks]} vs {[t.name for t in b.tracks]}")
    if a.n_instances != b.n_instances:
        raise AssertionError(f"instance counts differ: {a.n_instances} vs {b.n_instances}")

    def order(lab: Labels) -> np.ndarray:
        t = lab.instances
        first = np.nan_to_num(t.points[:, :, 0], nan=-1e9)
        keys = [first[:, j] for j in reversed(range(lab.n_nodes))] + [t.track, t.kind, t.frame, t.video]
        return np.lexsort(keys)

    oa, ob = order(a), order(b)
    ta, tb = a.instances, b.instances
    for name in ("video", "frame", "kind", "track", "rejected"):
        if not np.array_equal(ta.column(name)[oa], tb.column(name)[ob]):
            raise AssertionError(f"column {name!r} differs")
    if not np.allclose(ta.points[oa], tb.points[ob], rtol=0.0, atol=atol, equal_nan=True):
        diff = np.nanmax(np.abs(ta.points[oa] - tb.points[ob]))
        raise AssertionError(f"points differ (max abs difference {diff})")
    if not np.array_equal(ta.visible[oa], tb.visible[ob]):
        raise AssertionError("visibility differs")
    if not np.array_equal(ta.complete[oa], tb.complete[ob]):
        raise AssertionError("complete (verified) flags differ")
    for name in ("score", "tracking_score", "point_scores"):
        if not np.allclose(ta.column(name)[oa], tb.column(name)[ob], atol=1e-6, equal_nan=True):
            raise AssertionError(f"column {name!r} differs")
    if check_ids and not np.array_equal(ta.instance_id[oa], tb.instance_id[ob]):
        raise AssertionError("instance ids differ")
    if check_ids and not np.array_equal(ta.from_predicted[oa], tb.from_predicted[ob]):
        raise AssertionError("from_predicted links differ")
