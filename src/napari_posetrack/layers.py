"""Pure conversions between :class:`~napari_posetrack.core.labels.Labels` and napari layer data.

Nothing here imports napari or Qt: every function takes and returns numpy arrays, dicts and
``(data, kwargs, layer_type)`` tuples, so the conversions are tested without a viewer.

Layer schema (one set of layers per video of a labels file)
-----------------------------------------------------------
``video: <name>`` (Image)
    Lazy dask array of the frames, ``contrast_limits=(0, 255)``; absent when the file is missing.
``poses: <name>`` (Points)
    ``data`` is ``(N, 3)`` ``[frame, y, x]``, one row per *present* keypoint (missing keypoints are
    absent rows, napari cannot hold NaN). Features: ``instance`` (instance id), ``track`` (track
    name or ``""``), ``node`` (node name), ``score`` (point score, NaN for user points), ``kind``
    (``"user"``/``"predicted"``), ``visible`` (False for occluded points, drawn hollow), ``rejected``
    (why the tracker left the instance without a track, a name of
    :data:`~napari_posetrack.core.labels.REJECTION_REASONS`, or ``""``; drawn dimmed with a red border).
    ``metadata["posetrack"]`` holds what the rows cannot (skeleton, videos, tracks, per-instance
    columns, instances without shown points) so :func:`layers_to_labels` rebuilds the store exactly.
    A viewer of a long video may hold only a window of its frames (``labels_to_points(window=...)``):
    the metadata then keeps the other frames' instances, and the round trip stays exact.
``skeleton: <name>`` (Vectors)
    One vector per skeleton edge per instance, ``[[t, y0, x0], [0, dy, dx]]``, coloured like the instance.
``tracks: <name>`` (Tracks)
    One track per identity through the centroid of each instance's points (or an anchor node).

Several videos give several sets of layers; :func:`points_layers_to_labels` joins the Points
layers of one labels file back into one store.

Editing rules used when rebuilding (see :func:`layers_to_labels`): the frame column of ``data``
is the source of truth for time; rows of one ``instance`` on several frames, or several rows of
one instance for the same node, are split into new instances (no point is ever dropped); an
instance whose points were all deleted is removed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_posetrack.core.labels import (
    KIND_NAMES,
    NO_LINK,
    NO_TRACK,
    NOT_REJECTED,
    PREDICTED,
    REJECTION_REASONS,
    USER,
    InstanceTable,
    Labels,
    Skeleton,
    Suggestion,
    Track,
    Video,
)

METADATA_KEY = "posetrack"
"""Key of the round-trip information in a layer's ``metadata``."""

POINT_FEATURES = ("instance", "track", "node", "score", "kind", "visible", "rejected")
# napari's axis labels of every layer of a video: the time slider reads "frame", not napari's "-3"
AXIS_LABELS = ("frame", "y", "x")
USER_SYMBOL = "disc"
PREDICTED_SYMBOL = "diamond"
DEFAULT_TAIL_LENGTH = 15
LayerDataTuple = tuple[Any, dict[str, Any], str]

# A 20-colour categorical palette (RGB in 0..1): tracks and nodes cycle through it.
PALETTE = np.array(
    [
        [0.12, 0.47, 0.71],
        [1.00, 0.50, 0.05],
        [0.17, 0.63, 0.17],
        [0.84, 0.15, 0.16],
        [0.58, 0.40, 0.74],
        [0.55, 0.34, 0.29],
        [0.89, 0.47, 0.76],
        [0.74, 0.74, 0.13],
        [0.09, 0.75, 0.81],
        [0.68, 0.78, 0.91],
        [1.00, 0.73, 0.47],
        [0.60, 0.87, 0.54],
        [1.00, 0.60, 0.59],
        [0.77, 0.69, 0.84],
        [0.77, 0.61, 0.58],
        [0.97, 0.71, 0.82],
        [0.86, 0.86, 0.55],
        [0.62, 0.85, 0.90],
        [0.35, 0.35, 0.95],
        [0.95, 0.95, 0.35],
    ]
)
UNTRACKED_RGB = np.array([0.75, 0.75, 0.75])
KIND_RGB = {USER: np.array([0.95, 0.95, 0.95]), PREDICTED: np.array([1.0, 0.84, 0.0])}
# instances the tracker rejected: faint face and skeleton, red border
REJECTED_ALPHA = 0.3
REJECTED_BORDER = np.array([0.9, 0.1, 0.1, 1.0])
# name of each rejection code as shown in the ``rejected`` feature ("" = not rejected)
_REJECTED_NAMES = {NOT_REJECTED: "", **{code: name for code, (name, _) in REJECTION_REASONS.items()}}


# --------------------------------------------------------------------------- plain-data helpers


def skeleton_to_dict(skeleton: Skeleton) -> dict[str, Any]:
    """A skeleton as plain lists (what layer metadata stores)."""
    return {
        "name": skeleton.name,
        "nodes": list(skeleton.nodes),
        "edges": [list(e) for e in skeleton.edges],
        "symmetries": [list(s) for s in skeleton.symmetries],
        "node_sigmas": None if skeleton.node_sigmas is None else np.asarray(skeleton.node_sigmas).tolist(),
    }


def skeleton_from_dict(d: Mapping[str, Any]) -> Skeleton:
    """Inverse of :func:`skeleton_to_dict`."""
    sig = d.get("node_sigmas")
    return Skeleton(
        list(d["nodes"]),
        [tuple(e) for e in d.get("edges", [])],
        [tuple(s) for s in d.get("symmetries", [])],
        d.get("name", "skeleton"),
        None if sig is None else np.asarray(sig, dtype=np.float64),
    )


def video_to_dict(video: Video) -> dict[str, Any]:
    """A video reference as plain data."""
    return {
        "path": list(video.path) if isinstance(video.path, list) else video.path,
        "n_frames": video.n_frames,
        "shape": None if video.shape is None else list(video.shape),
        "fps": video.fps,
        "backend": video.backend,
        "backend_metadata": copy.deepcopy(video.backend_metadata),
    }


def video_from_dict(d: Mapping[str, Any]) -> Video:
    """Inverse of :func:`video_to_dict`."""
    shape = d.get("shape")
    path = d["path"]
    return Video(
        list(path) if isinstance(path, (list, tuple)) else path,
        d.get("n_frames"),
        None if shape is None else tuple(int(s) for s in shape),
        d.get("fps"),
        d.get("backend", "pyav"),
        copy.deepcopy(dict(d.get("backend_metadata", {}))),
    )


def _store_metadata(labels: Labels, video: int | None) -> dict[str, Any]:
    """The store-level part of a Points layer's round-trip metadata."""
    return {
        "skeleton": skeleton_to_dict(labels.skeleton),
        "skeletons": [skeleton_to_dict(s) for s in labels.skeletons[1:]],
        "videos": [video_to_dict(v) for v in labels.videos],
        "video_index": video,
        "tracks": [
            {"name": t.name, "spawned_on": t.spawned_on, "color": None if t.color is None else list(t.color)}
            for t in labels.tracks
        ],
        "suggestions": [[s.video, s.frame, s.group] for s in labels.suggestions],
        "provenance": copy.deepcopy(labels.provenance),
        "next_instance_id": int(labels.instances.next_id),
    }


def _present(points: np.ndarray) -> np.ndarray:
    """Whether each ``(..., 2)`` point has both coordinates.

    The same as ``~np.isnan(points).any(axis=-1)``, many times faster (numpy reduces a last axis of
    length two slowly).
    """
    return ~(np.isnan(points[..., 0]) | np.isnan(points[..., 1]))


# --------------------------------------------------------------------------- Labels -> Points


def labels_to_points(
    labels: Labels,
    video: int = 0,
    frames: np.ndarray | None = None,
    *,
    window: tuple[int, int] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """The Points layer data of one video: ``(data, features, metadata)``.

    Rows are ordered by instance row then node. Predictions shadowed by a user instance and
    instances without any present point are not shown; they are kept verbatim in the metadata.

    Parameters
    ----------
    labels
        The store.
    video
        Index of the video whose instances become points.
    frames
        Only these frames (a partial redraw after an edit); the metadata then describes only them.
    window
        ``(start, stop)``: only the points of frames ``start <= frame < stop`` become rows. The
        metadata still describes every instance of the video (those outside the window are kept
        in it like hidden ones), so :func:`layers_to_labels` rebuilds the whole video from a layer
        that holds one window of a long video.

    Returns
    -------
    data
        ``(N, 3)`` float64 ``[frame, y, x]``.
    features
        Dict of the columns in :data:`POINT_FEATURES`, each of length ``N``.
    metadata
        ``{"posetrack": {...}}``: everything :func:`layers_to_labels` needs besides the rows.
    """
    t = labels.instances
    n_nodes = labels.n_nodes
    rows = labels.rows(video=video)
    if frames is not None:
        rows = rows[np.isin(t.frame[rows], np.asarray(frames, dtype=np.int64))]
    pts = t.points[rows]
    present = _present(pts)
    shown = present.any(axis=1) & ~labels.shadowed_predictions()[rows]
    if window is not None:
        shown &= (t.frame[rows] >= window[0]) & (t.frame[rows] < window[1])
    show_rows = rows[shown]
    mask = present[shown]
    inst_idx, node_idx = np.nonzero(mask)
    src = show_rows[inst_idx]
    xy = t.points[src, node_idx]
    data = np.column_stack([t.frame[src].astype(np.float64), xy[:, 1], xy[:, 0]]).reshape(-1, 3)

    track_names = np.array([tr.name for tr in labels.tracks] + [""], dtype=object)
    node_names = np.array(labels.skeleton.nodes, dtype=object)
    kind_names = np.array([KIND_NAMES[USER], KIND_NAMES[PREDICTED]], dtype=object)
    reject_lut = np.array([_REJECTED_NAMES.get(c, str(c)) for c in range(128)], dtype=object)
    features = {
        "instance": t.instance_id[src].astype(np.int64),
        "track": track_names[t.track[src]],  # NO_TRACK (-1) picks the trailing ""
        "node": node_names[node_idx],
        "score": t.point_scores[src, node_idx].astype(np.float64),
        "kind": kind_names[t.kind[src]],
        "visible": t.visible[src, node_idx].astype(bool),
        "rejected": reject_lut[np.clip(t.rejected[src], 0, 127)],
    }

    hidden = ~shown
    table = {
        "instance_id": t.instance_id[rows].copy(),
        "frame": t.frame[rows].copy(),
        "kind": t.kind[rows].copy(),
        "track": t.track[rows].copy(),
        "score": t.score[rows].copy(),
        "tracking_score": t.tracking_score[rows].copy(),
        "from_predicted": t.from_predicted[rows].copy(),
        "rejected": t.rejected[rows].copy(),
        "visible": t.visible[rows].copy(),
        "complete": t.complete[rows].copy(),
        "point_scores": t.point_scores[rows].copy(),
        "shown": shown.copy(),
        "present": present.copy(),
        # only hidden instances need their coordinates kept: shown ones live in the layer data
        "hidden_points": t.points[rows[hidden]].copy().reshape(-1, n_nodes, 2),
    }
    meta = _store_metadata(labels, video)
    meta["instances"] = table
    return data, features, {METADATA_KEY: meta}


def points_per_frame(labels: Labels, video: int = 0, n_frames: int = 0) -> np.ndarray:
    """How many rows :func:`labels_to_points` gives each frame of ``video``: ``(max(n_frames, last + 1),)``.

    Counts present points of shown instances (shadowed predictions are not drawn).
    """
    t = labels.instances
    rows = labels.rows(video=video)
    n_present = _present(t.points[rows]).sum(axis=1)
    n_present[labels.shadowed_predictions()[rows]] = 0
    frames = t.frame[rows].astype(np.int64)
    return np.bincount(frames, weights=n_present, minlength=n_frames).astype(np.int64)


def frame_window(counts: np.ndarray, frame: int, budget: int) -> tuple[int, int]:
    """The widest window ``(start, stop)`` around ``frame`` whose frames hold at most ``budget`` points.

    The window grows by one frame on each side at a time (frames past either end of ``counts``
    are not counted: the other side keeps growing), so ``frame`` sits in its middle unless it is
    near an end of the video. It always holds ``frame``, even when that frame alone is over budget.

    Parameters
    ----------
    counts
        Points per frame (:func:`points_per_frame`); the video has ``len(counts)`` frames.
    frame
        The frame shown; one past the end counts as the last frame (the window then ends there).
    budget
        Most points the window may hold.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = max(len(counts), int(frame) + 1)
    frame = max(int(frame), 0)
    cum = np.zeros(n + 1, dtype=np.int64)
    cum[1 : len(counts) + 1] = np.cumsum(counts)
    cum[len(counts) + 1 :] = cum[len(counts)]
    half = np.arange(n)  # half-widths: every window that could be needed
    start = np.maximum(frame - half, 0)
    stop = np.minimum(frame + half + 1, n)
    total = cum[stop] - cum[start]  # grows with the half-width
    best = max(int(np.searchsorted(total, budget, side="right")) - 1, 0)
    return int(start[best]), int(stop[best])


def labels_to_tracks(
    labels: Labels, video: int = 0, anchor: str | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The Tracks layer of one video straight from the store: what :func:`track_paths` gives for
    the whole video's Points layer (``track_paths(*labels_to_points(labels, video))``), bit for bit,
    without making a row per point first (one pass over the instances, whatever the layer holds).
    """
    t = labels.instances
    names = [tr.name for tr in labels.tracks]
    rows = labels.rows(video=video)
    # identities are named: two tracks with one name are one identity (the first index, as on the layer)
    first = {name: k for k, name in reversed(list(enumerate(names)))}
    canonical = np.array([first[name] if name else NO_TRACK for name in names] + [NO_TRACK], dtype=np.int64)
    pts = t.points[rows]
    present = _present(pts)
    counts = present.sum(axis=1)
    track = canonical[t.track[rows]]  # NO_TRACK (-1) picks the trailing entry
    keep = (counts > 0) & ~labels.shadowed_predictions()[rows] & (track >= 0)
    if not keep.any():
        return np.zeros((0, 4)), {"track": np.zeros(0, dtype=object)}
    rows, pts, present, counts, track = rows[keep], pts[keep], present[keep], counts[keep], track[keep]
    # the sums track_paths makes over the layer's rows (instance by instance, node by node): same floats
    flat = np.flatnonzero(present)
    inst_idx = flat // labels.n_nodes
    xy = np.take(pts.reshape(-1, 2), flat, axis=0)
    centroid = np.stack(
        [np.bincount(inst_idx, xy[:, k], minlength=len(rows)) / counts for k in (1, 0)], axis=1
    )  # [y, x]
    nodes = list(labels.skeleton.nodes)
    if anchor is not None and anchor in nodes:
        k = nodes.index(anchor)
        at = present[:, k]
        centroid[at] = pts[at, k, ::-1]
    frame = t.frame[rows].astype(np.int64)
    is_user = t.kind[rows] == USER
    # one row per (track, frame): the preferred instance first (user, most points, lowest id)
    order = np.lexsort((t.instance_id[rows], -counts, ~is_user, frame, track))
    track_o, frame_o = track[order], frame[order]
    firsts = np.ones(len(order), dtype=bool)
    firsts[1:] = (track_o[1:] != track_o[:-1]) | (frame_o[1:] != frame_o[:-1])
    sel = order[firsts]
    out = np.column_stack([track[sel], frame[sel], centroid[sel]]).astype(np.float64)
    return out, {"track": np.asarray(names, dtype=object)[track[sel]]}


def unmatched_rows(
    old_data: np.ndarray,
    old_features: Mapping[str, Any],
    new_data: np.ndarray,
    new_features: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of two sets of Points rows have no identical row in the other set.

    Rows are compared on their position and every feature of :data:`POINT_FEATURES` (bit for bit;
    a NaN score equals a NaN score). Redrawing a few frames then removes only the old rows that
    changed and adds only the new ones, instead of every row of those frames.

    Returns
    -------
    old_unmatched, new_unmatched
        Boolean masks over the old and the new rows.
    """

    def records(data: np.ndarray, features: Mapping[str, Any], names: dict[str, list[str]]) -> np.ndarray:
        data = np.asarray(data, dtype=np.float64).reshape(-1, 3)
        columns = [data[:, 0], data[:, 1], data[:, 2]]
        for name in POINT_FEATURES:
            values = np.asarray(features[name]) if name in features else np.zeros(len(data))
            if values.dtype == object:
                values = category_codes(values, names.setdefault(name, []))
            columns.append(values.astype(np.float64))
        table = np.ascontiguousarray(np.column_stack(columns)) if len(data) else np.zeros((0, len(columns)))
        return table.view(np.dtype((np.void, table.dtype.itemsize * table.shape[1]))).reshape(-1)

    names: dict[str, list[str]] = {}
    old = records(old_data, old_features, names)
    new = records(new_data, new_features, names)
    return ~np.isin(old, new), ~np.isin(new, old)


def category_codes(values: Any, names: list[str]) -> np.ndarray:
    """Index in ``names`` of each value of a text feature column; ``-1`` for ``""``, None or NaN.

    Values not in ``names`` are appended to it (sorted), so their codes follow the known ones.
    When a name occurs twice in ``names`` its first index is used. Factorising first keeps this
    fast for millions of rows with few distinct values.
    """
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=object).reshape(-1), use_na_sentinel=True)
    texts = ["" if u is None else str(u) for u in uniques]
    new = sorted({t for t in texts if t} - set(names))
    names.extend(new)
    first = {name: k for k, name in reversed(list(enumerate(names)))}
    mapping = np.array([first[t] if t else -1 for t in texts] + [-1], dtype=np.int64)
    return mapping[codes]  # code -1 (missing) picks the trailing -1


def _kind_codes(features: Mapping[str, Any]) -> np.ndarray:
    """``USER``/``PREDICTED`` per row; other kind names get codes >= 2 (missing ones count as user)."""
    codes = category_codes(features["kind"], [KIND_NAMES[USER], KIND_NAMES[PREDICTED]])
    return np.where(codes < 0, USER, codes)


def _track_names(metadata: Mapping[str, Any]) -> list[str]:
    return [t["name"] for t in metadata.get(METADATA_KEY, {}).get("tracks", [])]


def track_colors(tracks: Sequence[Mapping[str, Any] | Track]) -> np.ndarray:
    """``(n_tracks, 3)`` RGB of each track: its chosen ``color``, else the palette colour of its index."""
    out = PALETTE[np.arange(len(tracks)) % len(PALETTE)].copy()
    for i, tr in enumerate(tracks):
        color = tr.get("color") if isinstance(tr, Mapping) else tr.color
        if color is not None:
            out[i] = np.asarray(color, dtype=np.float64)[:3]
    return out.reshape(-1, 3)


def track_colour_positions(track_ids: np.ndarray, n_tracks: int) -> np.ndarray:
    """Where each track id sits on the Tracks layer's colour scale (:func:`track_colour_stops`)."""
    return (np.asarray(track_ids, dtype=np.float64) + 0.5) / max(int(n_tracks), 1)


def track_colour_stops(tracks: Sequence[Mapping[str, Any] | Track]) -> tuple[np.ndarray, np.ndarray]:
    """``(colors (K, 4), controls (K + 1,))`` of a stepwise colormap giving track ``k`` its colour.

    A value from :func:`track_colour_positions` falls in the middle of its track's step, so the
    Tracks layer draws each path in the colour its points have (chosen or from the palette).
    """
    rgb = track_colors(tracks) if len(tracks) else PALETTE[:1].astype(np.float64)
    colors = np.column_stack([rgb, np.ones(len(rgb))])
    return colors, np.linspace(0.0, 1.0, len(rgb) + 1)


def _track_rgb(track: np.ndarray, metadata: Mapping[str, Any]) -> np.ndarray:
    """RGB of each track code (``>= 0``; codes past the metadata's tracks cycle through the palette)."""
    known = track_colors(metadata.get(METADATA_KEY, {}).get("tracks", []))
    track = np.maximum(np.asarray(track, dtype=np.int64), 0)
    rgb = PALETTE[track % len(PALETTE)]
    inside = track < len(known)
    rgb[inside] = known[track[inside]]
    return rgb


def _rejected_mask(features: Mapping[str, Any], n: int) -> np.ndarray:
    """Rows of instances the tracker rejected (a non-empty ``rejected`` feature)."""
    if "rejected" not in features or len(features["rejected"]) != n:
        return np.zeros(n, dtype=bool)
    return category_codes(features["rejected"], []) >= 0


def points_style(features: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Per-point colours and symbols for a Points layer.

    Colour by track when any point is tracked, else by node; occluded points (``visible`` False)
    are hollow (transparent face, coloured border); user points are discs, predicted diamonds.
    """
    meta = metadata.get(METADATA_KEY, {})
    n = len(features.get("node", []))
    if n == 0:
        # napari rejects empty colour arrays: give the colours new points start with
        return {"face_color": np.append(PALETTE[0], 1.0), "border_color": "black", "symbol": USER_SYMBOL}
    track = category_codes(features["track"], _track_names(metadata))
    if (track >= 0).any():
        rgb = np.where(track[:, None] >= 0, _track_rgb(track, metadata), UNTRACKED_RGB)
    else:
        node = category_codes(features["node"], list(meta.get("skeleton", {}).get("nodes", [])))
        rgb = PALETTE[np.maximum(node, 0) % len(PALETTE)]
    visible = np.asarray(features["visible"]).astype(bool)
    colour = np.column_stack([rgb, np.ones(n)])
    face = colour.copy()
    face[~visible, 3] = 0.0  # hollow: only the border shows
    border = np.where(visible[:, None], np.array([0.0, 0.0, 0.0, 1.0]), colour)
    rejected = _rejected_mask(features, n)
    face[rejected & visible, 3] = REJECTED_ALPHA
    border[rejected] = REJECTED_BORDER
    symbol = np.where(_kind_codes(features) == PREDICTED, PREDICTED_SYMBOL, USER_SYMBOL)
    return {"face_color": face, "border_color": border, "symbol": symbol}


def instance_rgb(features: Mapping[str, Any], metadata: Mapping[str, Any]) -> np.ndarray:
    """One RGB colour per point, the colour of its instance: its track's, else one per kind."""
    track = category_codes(features["track"], _track_names(metadata))
    predicted = _kind_codes(features) == PREDICTED
    by_kind = np.where(predicted[:, None], KIND_RGB[PREDICTED], KIND_RGB[USER])
    return np.where(track[:, None] >= 0, _track_rgb(track, metadata), by_kind).reshape(-1, 3)


def _instance_groups(data: np.ndarray, features: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by ``(instance, frame)``: returns ``(group index per row, first row of each group)``."""
    frame = np.rint(np.asarray(data)[:, 0]).astype(np.int64)
    inst = np.asarray(features["instance"], dtype=np.float64)
    inst = np.where(np.isfinite(inst), inst, -1).astype(np.int64)
    return _group_rows(inst, frame)


def _group_rows(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group rows by equal key tuples: ``(group per row, first row of each group)``; groups sorted by key."""
    n = len(keys[0])
    order = np.lexsort(keys[::-1])  # stable: the first row of a group is its lowest row
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    for k in keys:
        ks = k[order]
        starts[1:] |= ks[1:] != ks[:-1]
    group = np.empty(n, dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    return group, order[starts]


def skeleton_vectors(
    data: np.ndarray, features: Mapping[str, Any], metadata: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Skeleton edges of the live Points data as napari Vectors: ``(vectors (M, 2, 3), colours (M, 4))``.

    One vector per edge whose two end points are present on the same instance and frame.
    """
    meta = metadata.get(METADATA_KEY, {})
    data = np.asarray(data, dtype=np.float64).reshape(-1, 3)
    sk = meta.get("skeleton")
    if sk is None or len(data) == 0 or not sk.get("edges"):
        return np.zeros((0, 2, 3)), np.zeros((0, 4))
    nodes = list(sk["nodes"])
    n_nodes = len(nodes)
    node = category_codes(features["node"], list(nodes))
    group, first = _instance_groups(data, features)
    ok = (node >= 0) & (node < n_nodes)
    # row index of each (group, node); a duplicated node keeps its last row (edges are only a view)
    slot = np.full((len(first), n_nodes), -1, dtype=np.int64)
    slot[group[ok], node[ok]] = np.flatnonzero(ok)
    edges = np.asarray(sk["edges"], dtype=np.int64).reshape(-1, 2)
    a = slot[:, edges[:, 0]].reshape(-1)
    b = slot[:, edges[:, 1]].reshape(-1)
    keep = (a >= 0) & (b >= 0)
    a, b = a[keep], b[keep]
    vectors = np.empty((len(a), 2, 3))
    vectors[:, 0] = data[a]
    vectors[:, 1, 0] = 0.0
    vectors[:, 1, 1:] = data[b, 1:] - data[a, 1:]
    rgb = instance_rgb(features, metadata)[a]
    alpha = np.where(_rejected_mask(features, len(data))[a], REJECTED_ALPHA, 1.0)
    return vectors, np.column_stack([rgb, alpha])


def track_paths(
    data: np.ndarray, features: Mapping[str, Any], metadata: Mapping[str, Any], anchor: str | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """napari Tracks data ``(K, 4)`` ``[track_id, t, y, x]`` and properties, one track per identity.

    Each instance contributes its centroid (mean of its present points), or its ``anchor`` node when
    given and present. When one identity has several instances on a frame, user instances win, then
    the one with the most points.
    """
    data = np.asarray(data, dtype=np.float64).reshape(-1, 3)
    if len(data) == 0 or "track" not in features:
        return np.zeros((0, 4)), {"track": np.zeros(0, dtype=object)}
    names = _track_names(metadata)
    track = category_codes(features["track"], names)
    tracked = track >= 0
    if not tracked.any():
        return np.zeros((0, 4)), {"track": np.zeros(0, dtype=object)}
    data, track = data[tracked], track[tracked]
    feats = {k: np.asarray(v)[tracked] for k, v in features.items()}
    group, first = _instance_groups(data, feats)
    n_groups = len(first)
    counts = np.bincount(group, minlength=n_groups).astype(np.float64)
    centroid = np.stack([np.bincount(group, data[:, k], minlength=n_groups) / counts for k in (1, 2)], axis=1)
    if anchor is not None:
        at_anchor = np.flatnonzero(category_codes(feats["node"], [anchor]) == 0)
        centroid[group[at_anchor]] = data[at_anchor, 1:]
    tid = track[first]
    frame = np.rint(data[first, 0]).astype(np.int64)
    is_user = _kind_codes(feats)[first] == USER
    # one row per (track, frame): sort so the preferred instance comes first, then keep firsts
    order = np.lexsort((-counts, ~is_user, frame, tid))
    pair = np.stack([tid[order], frame[order]], axis=1)
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = np.any(pair[1:] != pair[:-1], axis=1)
    sel = order[keep]
    out = np.column_stack([tid[sel], frame[sel], centroid[sel]]).astype(np.float64)
    return out, {"track": np.asarray(names, dtype=object)[tid[sel]]}


# --------------------------------------------------------------------------- whole layers


def _display_kwargs(scale: Sequence[float] | None, translate: Sequence[float] | None) -> dict[str, Any]:
    kw: dict[str, Any] = {"axis_labels": AXIS_LABELS}
    if scale is not None:
        kw["scale"] = tuple(scale)
    if translate is not None:
        kw["translate"] = tuple(translate)
    return kw


def points_layer(
    data: np.ndarray,
    features: dict[str, np.ndarray],
    metadata: dict[str, Any],
    name: str,
    *,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    point_size: float = 6.0,
) -> LayerDataTuple:
    """A ``(data, kwargs, "points")`` tuple with the schema's styling."""
    kwargs = {
        "name": name,
        "features": features,
        "metadata": metadata,
        "ndim": 3,
        "size": point_size,
        "border_width": 0.15,
        **points_style(features, metadata),
        **_display_kwargs(scale, translate),
    }
    return (data, kwargs, "points")


def vectors_layer(
    data: np.ndarray,
    features: Mapping[str, Any],
    metadata: Mapping[str, Any],
    name: str,
    *,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
) -> LayerDataTuple:
    """The ``skeleton: <name>`` Vectors tuple drawn from the live Points data."""
    vectors, colours = skeleton_vectors(data, features, metadata)
    kwargs = {
        "name": name,
        "edge_color": colours if len(colours) else "white",
        "edge_width": 1.5,
        "vector_style": "line",
        "ndim": 3,
        **_display_kwargs(scale, translate),
    }
    return (vectors, kwargs, "vectors")


def tracks_layer(
    data: np.ndarray,
    features: Mapping[str, Any],
    metadata: Mapping[str, Any],
    name: str,
    *,
    anchor: str | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
) -> LayerDataTuple | None:
    """The ``tracks: <name>`` Tracks tuple, or ``None`` when nothing is tracked."""
    return _tracks_tuple(*track_paths(data, features, metadata, anchor), name, scale=scale, translate=translate)


def _tracks_tuple(
    tracks: np.ndarray,
    props: dict[str, np.ndarray],
    name: str,
    *,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
) -> LayerDataTuple | None:
    """The Tracks tuple of ``(tracks, props)`` from :func:`track_paths` or :func:`labels_to_tracks`."""
    if len(tracks) == 0:
        return None
    kwargs = {
        "name": name,
        "features": props,
        "tail_length": DEFAULT_TAIL_LENGTH,
        "tail_width": 2,
        **_display_kwargs(scale, translate),
    }
    return (tracks, kwargs, "tracks")


def video_layer(video: Video, *, frames: Any = None, name: str | None = None) -> LayerDataTuple:
    """The ``video: <name>`` Image tuple: ``frames`` if given, else a lazy dask array of the file."""
    timestamps = None
    if frames is None:
        from napari_posetrack.core.video import open_video

        reader = open_video(video)  # the dask array keeps the reader open
        frames = reader.to_dask()
        timestamps = reader.timestamps
    rgb = frames.ndim == 4 and frames.shape[-1] == 3
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    metadata = {"fps": video.fps, "path": video.path, METADATA_KEY: {"video": video_to_dict(video)}}
    if timestamps is not None:
        metadata["timestamps"] = timestamps
    kwargs = {
        "name": name or f"video: {video.name}",
        "contrast_limits": (0, 255),
        "rgb": rgb,
        "axis_labels": AXIS_LABELS,
        "metadata": metadata,
    }
    return (frames, kwargs, "image")


def frame_time(frame: int, timestamps: Sequence[float] | np.ndarray | None, fps: float | None) -> float | None:
    """Seconds from the first frame to ``frame``: its timestamp, else ``frame / fps``, else ``None``."""
    if timestamps is not None and 0 <= frame < len(timestamps):
        return float(timestamps[frame])
    if fps:
        return frame / float(fps)
    return None


def frame_status(frame: int, n_frames: int | None, seconds: float | None) -> str:
    """The status-bar text of a frame: ``"frame 12/300 · 0.480 s"`` (parts that are unknown left out)."""
    text = f"frame {frame}" if not n_frames else f"frame {frame}/{n_frames}"
    return text if seconds is None else f"{text} · {seconds:.3f} s"


def blank_video_layer(n_frames: int, height: int, width: int, name: str) -> LayerDataTuple:
    """A black Image ``(n_frames, height, width)`` standing in for a video that is not on disk.

    It holds no memory (one zero broadcast to the shape). It gives napari's time slider the video's
    length when no other layer spans the whole video (a Points layer holding one window of it).
    """
    shape = (max(int(n_frames), 1), max(int(height), 1), max(int(width), 1))
    frames = np.broadcast_to(np.zeros((), dtype=np.uint8), shape)
    return (frames, {"name": name, "contrast_limits": (0, 255), "rgb": False, "axis_labels": AXIS_LABELS}, "image")


def labels_to_layers(
    labels: Labels,
    *,
    videos: Sequence[int] | None = None,
    load_video: bool = True,
    frames: Mapping[int, Any] | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    anchor: str | None = None,
    window: tuple[int, int] | None = None,
    tracks: bool = True,
) -> tuple[list[LayerDataTuple], list[str]]:
    """All layers of a labels file: per video an Image (if found), Tracks, Vectors and Points.

    Parameters
    ----------
    labels
        The store.
    videos
        Indices of the videos to show (all by default; with no video at all, nothing).
    load_video
        Add the Image layer of each video found on disk (or given in ``frames``).
    frames
        Frame arrays to show instead of reading the video files, by video index.
    scale, translate
        Display transform shared by all layers (derived layers copy the video layer's).
    anchor
        Node followed by the Tracks layer (the instance centroid by default).
    window
        ``(start, stop)``: the Points and Vectors layers hold only frames ``start <= frame < stop``
        (see :func:`labels_to_points`); the Tracks layer always follows the whole video.
    tracks
        Include the Tracks layers (a viewer that wants its first frame fast may add them later).

    Returns
    -------
    layers, problems
        The layer tuples, and one message (naming the path) per video not shown: not on disk,
        or not readable.
    """
    from napari_posetrack.core.errors import PoseTrackError

    out: list[LayerDataTuple] = []
    problems: list[str] = []
    frames = frames or {}
    indices = range(len(labels.videos)) if videos is None else videos
    for vi in indices:
        video = labels.videos[vi]
        data, features, metadata = labels_to_points(labels, vi, window=window)
        tag = video.name or f"video {vi}"
        if load_video:
            if vi in frames:
                out.append(video_layer(video, frames=frames[vi], name=f"video: {tag}"))
            elif video.backend == "embedded" or video.exists:
                try:
                    out.append(video_layer(video, name=f"video: {tag}"))
                except PoseTrackError as err:  # a broken video must not hide its poses
                    problems.append(f"cannot show video {video.filename}: {err}")
            else:
                problems.append(f"video not found: {video.filename}")
        if tracks:
            track_layer = _tracks_tuple(
                *labels_to_tracks(labels, vi, anchor), f"tracks: {tag}", scale=scale, translate=translate
            )
            if track_layer is not None:
                out.append(track_layer)
        if labels.skeleton.edges:
            out.append(
                vectors_layer(data, features, metadata, f"skeleton: {tag}", scale=scale, translate=translate)
            )
        out.append(points_layer(data, features, metadata, f"poses: {tag}", scale=scale, translate=translate))
    if scale is not None or translate is not None:
        for layer in out:
            if layer[2] == "image":
                layer[1].update(_display_kwargs(scale, translate))
    return out, problems


def empty_points_for_skeleton(skeleton: Skeleton, name: str | None = None) -> LayerDataTuple:
    """An empty ``poses:`` Points layer carrying ``skeleton`` in its metadata, ready for labelling."""
    labels = Labels(skeleton)
    data, features, metadata = labels_to_points(labels, 0)
    metadata[METADATA_KEY]["video_index"] = None
    return points_layer(data, features, metadata, name or f"poses: {skeleton.name}")


# --------------------------------------------------------------------------- Points -> Labels


def _track_index_lookup(tracks: list[Track]) -> dict[str, int]:
    return {name: i for i, name in reversed(list(enumerate(t.name for t in tracks)))}


def layers_to_labels(
    data: np.ndarray,
    features: Mapping[str, Any],
    metadata: Mapping[str, Any],
    *,
    video: Video | None = None,
) -> Labels:
    """Rebuild the store from a Points layer's ``data``, ``features`` and ``metadata``.

    The inverse of :func:`labels_to_points`: ``layers_to_labels(*labels_to_points(lab, v))`` holds
    exactly the instances of video ``v`` of ``lab`` (ids, kinds, tracks, scores, visibility,
    hidden and point-less instances), with all of ``lab``'s videos, tracks and skeletons.

    Edits made in napari are applied: moved points move, deleted points become missing, an
    instance with every point deleted disappears, points added with a new ``instance`` value (or
    none) make new instances, a changed ``track`` name reassigns the identity (unknown names add
    tracks). The frame of a row is taken from ``data`` (not from the metadata). When an instance
    id appears on several frames, or twice for one node, the extra rows form new instances.

    Parameters
    ----------
    data
        ``(N, 3)`` ``[frame, y, x]``.
    features
        Mapping (dict or DataFrame) with at least ``node``; the other :data:`POINT_FEATURES`
        default to a new user instance per frame, untracked, visible.
    metadata
        The layer metadata; without ``metadata["posetrack"]`` the skeleton is made of the node names.
    video
        The video for the instances when the metadata names none (a layer made from a skeleton).

    Raises
    ------
    ValueError
        A row names a node the skeleton does not have, or a kind other than user/predicted.
    """
    data = np.asarray(data, dtype=np.float64).reshape(-1, 3)
    n = len(data)
    meta = metadata.get(METADATA_KEY) if metadata is not None else None

    def feature(name: str, default: Any) -> np.ndarray:
        if features is not None and name in features and len(features[name]) == n:
            return np.asarray(features[name])
        return np.full(n, default)

    if meta is None:
        if n and "node" not in (features or {}):
            raise ValueError(
                "the Points layer has no 'node' feature and no posetrack metadata: cannot tell body parts"
            )
        found: list[str] = []
        category_codes(feature("node", ""), found)
        meta = {"skeleton": {"nodes": found, "edges": []}}
    skeleton = skeleton_from_dict(meta["skeleton"])
    extra_skeletons = [skeleton_from_dict(s) for s in meta.get("skeletons", [])]
    videos = [video_from_dict(v) for v in meta.get("videos", [])]
    tracks = [
        Track(str(t["name"]), int(t.get("spawned_on", 0)), None if t.get("color") is None else tuple(t["color"]))
        for t in meta.get("tracks", [])
    ]
    vi = meta.get("video_index")
    if vi is None or vi >= len(videos):
        videos.append(video if video is not None else Video(""))
        vi = len(videos) - 1
    n_nodes = skeleton.n_nodes

    # per-row columns -----------------------------------------------------------
    node_names = list(skeleton.nodes)
    node = category_codes(feature("node", ""), node_names)
    if (node < 0).any() or len(node_names) > n_nodes:
        unknown = node_names[n_nodes:] + ([""] if (node < 0).any() else [])
        raise ValueError(
            f"points name nodes {unknown} that skeleton {skeleton.name!r} does not have ({skeleton.nodes})"
        )
    frame = np.rint(data[:, 0]).astype(np.int64)
    inst_f = feature("instance", -1).astype(np.float64)
    inst = np.where(np.isfinite(inst_f), inst_f, -1).astype(np.int64)
    kind_names = [KIND_NAMES[USER], KIND_NAMES[PREDICTED]]
    kind = category_codes(feature("kind", KIND_NAMES[USER]), kind_names)
    if len(kind_names) > 2:
        raise ValueError(f"points have kinds {kind_names[2:]}; use 'user' or 'predicted'")
    kind = np.where(kind == PREDICTED, PREDICTED, USER).astype(np.int8)
    track_names = [t.name for t in tracks]
    n_known_tracks = len(track_names)
    track_code = category_codes(feature("track", ""), track_names)
    visible = feature("visible", True).astype(bool)
    score = feature("score", np.nan).astype(np.float64)

    # rank of a row among rows of the same (instance, frame, node): rank > 0 starts a new instance
    same_point, _ = _group_rows(inst, frame, node)
    rank = _rank_within(same_point)
    group, g_row = _group_rows(inst, frame, rank)  # g_row: the first row of each group (its attributes)
    n_groups = len(g_row)
    g_inst, g_frame, g_rank = inst[g_row], frame[g_row], rank[g_row]

    # the metadata table (instances of this video as they were when the layer was made) ---
    table = dict(meta.get("instances") or {})
    t_ids = np.asarray(table.get("instance_id", np.zeros(0)), dtype=np.int64)
    n_table = len(t_ids)
    t_frame = np.asarray(table.get("frame", np.zeros(0)), dtype=np.int64)
    g_tpos = _positions(t_ids, g_inst)

    # one group per known id keeps the id: rank 0 at the original frame first, else the earliest
    at_home = (g_tpos >= 0) & (g_rank == 0) & (g_frame == _take(t_frame, g_tpos, -1))
    pref = np.lexsort((g_frame, g_rank, ~at_home, g_inst))
    owner = np.zeros(n_groups, dtype=bool)
    first_of_id = np.ones(n_groups, dtype=bool)
    first_of_id[1:] = g_inst[pref][1:] != g_inst[pref][:-1]
    owner[pref[first_of_id]] = True
    owner &= g_inst >= 0
    used_max = max(int(t_ids.max()) if n_table else -1, int(inst.max()) if n else -1)
    next_id = max(int(meta.get("next_instance_id", 0)), used_max + 1)
    g_id = g_inst.copy()
    fresh = np.flatnonzero(~owner)
    fresh = fresh[np.argsort(g_row[fresh], kind="stable")]
    g_id[fresh] = np.arange(next_id, next_id + len(fresh))
    g_tpos = np.where(owner, g_tpos, -1)

    # tracks: keep the original index when the name is unchanged (names may repeat), else by name
    for name in track_names[n_known_tracks:]:
        tracks.append(Track(name))
    g_code = track_code[g_row]
    t_track = np.asarray(table.get("track", np.zeros(0)), dtype=np.int64)
    orig_track = _take(t_track, g_tpos, NO_TRACK)
    canonical = np.array([track_names.index(name) for name in track_names] + [NO_TRACK], dtype=np.int64)
    same = (orig_track >= 0) & (canonical[orig_track] == g_code)
    g_track = np.where(same, orig_track, g_code)

    # per-node arrays of the groups --------------------------------------------------
    points = np.full((n_groups, n_nodes, 2), np.nan)
    points[group, node, 0] = data[:, 2]
    points[group, node, 1] = data[:, 1]
    g_visible = np.zeros((n_groups, n_nodes), dtype=bool)
    g_visible[group, node] = visible
    g_pscore = np.full((n_groups, n_nodes), np.nan, dtype=np.float32)
    g_pscore[group, node] = score
    g_complete = np.zeros((n_groups, n_nodes), dtype=bool)
    g_score = np.full(n_groups, np.nan, dtype=np.float32)
    g_tscore = np.zeros(n_groups, dtype=np.float32)
    g_link = np.full(n_groups, NO_LINK, dtype=np.int64)
    g_rejected = np.zeros(n_groups, dtype=np.int8)
    # the tracker's rejection codes (metadata written before the column existed has none)
    t_rejected = np.asarray(table.get("rejected", np.zeros(n_table)), dtype=np.int8).reshape(-1)
    known = np.flatnonzero(g_tpos >= 0)
    if len(known):
        tp = g_tpos[known]
        present = _present(points[known])
        # a node missing now keeps the flags it had if it was missing before (deleted points lose them)
        t_vis = np.asarray(table["visible"], dtype=bool)[tp]
        t_ps = np.asarray(table["point_scores"], dtype=np.float32)[tp]
        t_comp = np.asarray(table["complete"], dtype=bool)[tp]
        restore = ~present & ~np.asarray(table["present"], dtype=bool)[tp]
        g_visible[known] = np.where(restore, t_vis, g_visible[known])
        g_pscore[known] = np.where(restore, t_ps, g_pscore[known])
        g_complete[known] = np.where(present | restore, t_comp, False)
        g_score[known] = np.asarray(table["score"], dtype=np.float32)[tp]
        g_tscore[known] = np.asarray(table["tracking_score"], dtype=np.float32)[tp]
        g_link[known] = np.asarray(table["from_predicted"], dtype=np.int64)[tp]
        # an instance put on a track in napari is no longer one the tracker rejected
        g_rejected[known] = np.where(g_track[known] >= 0, NOT_REJECTED, t_rejected[tp])

    # hidden instances of the table come back verbatim --------------------------------
    shown_t = np.asarray(table.get("shown", np.zeros(0)), dtype=bool)
    hidden_pos = np.flatnonzero(~shown_t)

    # row order: table order (owned groups and hidden instances), then new groups
    sort_pos = np.where(g_tpos >= 0, g_tpos, n_table + np.argsort(np.argsort(g_row, kind="stable")))
    cols = {
        "instance_id": np.concatenate([g_id, t_ids[hidden_pos]]),
        "video": np.full(n_groups + len(hidden_pos), vi, dtype=np.int32),
        "frame": np.concatenate([g_frame, t_frame[hidden_pos]]),
        "kind": np.concatenate([kind[g_row], np.asarray(table.get("kind", []), np.int8)[hidden_pos]]),
        "track": np.concatenate([g_track, t_track[hidden_pos]]),
        "score": np.concatenate([g_score, np.asarray(table.get("score", []), np.float32)[hidden_pos]]),
        "tracking_score": np.concatenate(
            [g_tscore, np.asarray(table.get("tracking_score", []), np.float32)[hidden_pos]]
        ),
        "from_predicted": np.concatenate(
            [g_link, np.asarray(table.get("from_predicted", []), np.int64)[hidden_pos]]
        ),
        "rejected": np.concatenate([g_rejected, t_rejected[hidden_pos]]),
        "points": np.concatenate(
            [
                points,
                np.asarray(table.get("hidden_points", np.zeros((0, n_nodes, 2)))).reshape(-1, n_nodes, 2),
            ]
        ),
        "visible": np.concatenate([g_visible, _node_col(table, "visible", hidden_pos, n_nodes, bool)]),
        "complete": np.concatenate([g_complete, _node_col(table, "complete", hidden_pos, n_nodes, bool)]),
        "point_scores": np.concatenate(
            [g_pscore, _node_col(table, "point_scores", hidden_pos, n_nodes, np.float32)]
        ),
    }
    # links stay valid: a linked prediction is shadowed, hence hidden, hence restored verbatim
    row_order = np.argsort(np.concatenate([sort_pos, hidden_pos]), kind="stable")
    instances = InstanceTable(n_nodes, capacity=len(row_order))
    instances.append(len(row_order), **{k: v[row_order] for k, v in cols.items()})
    suggestions = [Suggestion(int(v), int(f), int(g)) for v, f, g in meta.get("suggestions", [])]
    return Labels(
        skeleton,
        videos,
        tracks,
        suggestions,
        copy.deepcopy(meta.get("provenance", {})),
        instances,
        extra_skeletons,
    )


def _rank_within(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for the rows of each group, in row order."""
    n = len(group)
    order = np.argsort(group, kind="stable")
    starts = np.ones(n, dtype=bool)
    starts[1:] = group[order][1:] != group[order][:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first
    return rank


def _positions(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position of each ``query`` id in ``ids`` (unique), ``-1`` where absent."""
    if len(ids) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.clip(np.searchsorted(ids[order], query), 0, len(ids) - 1)
    return np.where(ids[order][pos] == query, order[pos], -1).astype(np.int64)


def _take(column: np.ndarray, pos: np.ndarray, fill: Any) -> np.ndarray:
    """``column[pos]`` with ``fill`` where ``pos`` is -1 (also when the column is empty)."""
    out = np.full(len(pos), fill, dtype=column.dtype)
    ok = pos >= 0
    out[ok] = column[pos[ok]]
    return out


def _node_col(table: Mapping[str, Any], name: str, pos: np.ndarray, n_nodes: int, dtype: Any) -> np.ndarray:
    col = table.get(name)
    if col is None:
        return np.zeros((0, n_nodes), dtype=dtype)
    return np.asarray(col, dtype=dtype).reshape(-1, n_nodes)[pos]


def points_layers_to_labels(
    layers: Sequence[tuple[np.ndarray, Mapping[str, Any], Mapping[str, Any]]], *, video: Video | None = None
) -> Labels:
    """Join several Points layers (e.g. one per video of a labels file) into one store.

    Each item is ``(data, features, metadata)``. Videos are matched by path and tracks by name;
    ids of instances made in napari are renumbered if two layers picked the same new id.
    ``video`` is the video of layers whose metadata names none (see :func:`layers_to_labels`).

    Raises
    ------
    ValueError
        No layers, or layers whose skeletons have different nodes.
    """
    if not layers:
        raise ValueError("no Points layers to convert")
    parts = [layers_to_labels(d, f, m, video=video) for d, f, m in layers]
    out = parts[0]
    for part in parts[1:]:
        if part.skeleton.nodes != out.skeleton.nodes:
            raise ValueError(
                f"cannot join layers with different skeletons ({out.skeleton.nodes} vs {part.skeleton.nodes})"
            )
        _append_store(out, part)
    return out


def _append_store(out: Labels, part: Labels) -> None:
    """Append ``part``'s instances to ``out`` (videos by path, tracks by position-then-name)."""
    vmap = np.empty(len(part.videos), dtype=np.int64)
    for j, v in enumerate(part.videos):
        if j < len(out.videos) and out.videos[j].matches_path(v):
            vmap[j] = j
        else:
            hit = next((i for i, mine in enumerate(out.videos) if mine.matches_path(v)), None)
            vmap[j] = hit if hit is not None else out.add_video(v.copy())
    tmap = np.empty(len(part.tracks) + 1, dtype=np.int64)
    tmap[-1] = NO_TRACK
    for j, tr in enumerate(part.tracks):
        if j < len(out.tracks) and out.tracks[j].name == tr.name:
            tmap[j] = j
        else:
            hit = _track_index_lookup(out.tracks).get(tr.name)
            tmap[j] = hit if hit is not None else out.add_track(tr.name, tr.spawned_on, tr.color)
    t = part.instances
    ids = t.instance_id.copy()
    clash = np.isin(ids, out.instances.instance_id)
    if clash.any():
        start = max(out.instances.next_id, int(ids.max()) + 1)
        ids[clash] = np.arange(start, start + int(clash.sum()))
    out.instances.append(
        len(t),
        instance_id=ids,
        video=vmap[t.video],
        frame=t.frame,
        kind=t.kind,
        track=tmap[t.track],
        score=t.score,
        tracking_score=t.tracking_score,
        from_predicted=t.from_predicted,
        rejected=t.rejected,
        points=t.points,
        visible=t.visible,
        complete=t.complete,
        point_scores=t.point_scores,
    )
    have = set(out.suggestions)
    for s in part.suggestions:
        sug = Suggestion(int(vmap[s.video]), s.frame, s.group)
        if sug not in have:
            out.suggestions.append(sug)
            have.add(sug)
