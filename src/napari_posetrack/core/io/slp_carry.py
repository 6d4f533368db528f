"""The parts of a SLEAP file the pose store does not model, carried from load to save.

sleap-io 0.9.5 writes much more than poses: empty and negative frames, ROIs, segmentation masks,
bounding boxes, centroids, label images, an identity and a category catalog with per-detection
links, appearance embeddings, an event catalog and events, recording sessions (camera groups,
frame groups of instances seen by several cameras, triangulated 3D points) and virtual video
crops; newer writers may add more. :class:`Labels` holds poses only, so the reader keeps
everything else here and the writer puts it back:

* every top-level HDF5 member the pose tables do not cover is copied, raw (compression,
  chunking and attributes kept), into an in-memory HDF5 image (:attr:`SlpCarried.image`);
* empty ``/frames`` rows and ``/negative_frames`` markers become ``(video, frame)`` pairs;
* unknown attributes (on ``/``, on ``/metadata`` and on the tables we rewrite) and unknown keys
  of the ``/metadata`` JSON are kept as values.

The carried parts point into the pose tables: at instances (by row of ``/instances``), at labelled
frames (by row of ``/frames``), at tracks (by index) and at the skeleton's nodes (3D points, one
row per node). Saving renumbers all of these, and the user may have deleted instances, retracked
or edited the skeleton since loading, so :func:`write_carried` rewrites every such reference from
what the store holds now: a reference to an instance that is gone becomes "none" (-1), and a row
that only exists for that instance (an identity link, an embedding, a session member) is dropped;
a track that a carried part still names is written even if no instance uses it any more; 3D points
follow the nodes by name. Parts that refer to nothing in the pose tables are written back
byte for byte.

The record lives in ``labels.provenance`` under :data:`CARRY_KEY` (provenance travels with every
copy of a store, through napari layers and undo); it is immutable, so copies share it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

CARRY_KEY = "_sleap_carried"
"""``labels.provenance`` key of the :class:`SlpCarried` record (never written as provenance)."""

OWN_MEMBERS = frozenset(
    {
        "metadata",
        "videos_json",
        "tracks_json",
        "suggestions_json",
        "frames",
        "instances",
        "points",
        "pred_points",
        "provenance_json",
        "negative_frames",
        "posetrack_rejected",
        "posetrack_track_colors",
    }
)
"""Top-level members the SLEAP reader and writer handle themselves (plus ``video{N}`` groups)."""
REJECTED_MEMBER = "posetrack_rejected"
"""Our own member: the ``rejected`` code of each ``/instances`` row (uint8; written only when one is set)."""
TRACK_COLORS_MEMBER = "posetrack_track_colors"
"""Our own member: ``(n_tracks, 3)`` float32 RGB in 0..1 of the ``/tracks_json`` rows, NaN where the track
has no chosen colour (written only when one has)."""

KNOWN_METADATA_KEYS = frozenset(
    {"version", "skeletons", "nodes", "videos", "tracks", "suggestions", "negative_anchors", "provenance"}
)
"""Keys of the ``/metadata`` JSON the writer produces; others are carried."""

_OWN_ATTRS = {"metadata": {"format_id", "json"}}
"""Attributes the writer sets itself on its own members."""

OWNER_INSTANCE = 0
"""``owner_type`` code of an instance in sleap-io's identity/category links and embeddings."""
TRACK_KIND = 1
"""``subject_kind``/``target_kind`` code of a track in sleap-io's events."""

# (member, field) pairs holding an /instances row (-1 = none) and a track index (-1 = none).
# A field of a compound dataset is ``(member, field)``; a dataset in a group is ``(group, name)``.
_INSTANCE_REFS = (
    ("rois", "instance"),
    ("masks", "instance"),
    ("bboxes", "instance"),
    ("centroids", "instance"),
    ("label_image_objects", "instance"),
)
_TRACK_REFS = (
    ("rois", "track"),
    ("masks", "track"),
    ("bboxes", "track"),
    ("centroids", "track"),
    ("label_image_objects", "track"),
)
# groups whose rows belong to an owner: (group, owner_type, owner_id, datasets dropped with the row)
_OWNED_ROWS = (
    ("identity", "links", None, ()),
    ("categories", "links", None, ()),
    ("embeddings", "owner_type", "owner_id", ("vectors",)),
    ("embeddings", "category_owner_type", "category_owner_id", ("category_vectors",)),
)


def _frozen(a: Any, dtype: Any) -> np.ndarray:
    arr = np.array(a, dtype=dtype)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class SlpCarried:
    """What a SLEAP file held beyond the poses, with the keys to re-link it on save.

    Attributes
    ----------
    source
        The file it was read from (for messages).
    format_id
        The file's format; the writer writes at least this one so readers look for the parts.
    image
        An HDF5 file image holding the carried top-level members, or ``None``.
    members
        Their names.
    instance_ids
        For each ``/instances`` row of the file, the store's instance id (-1: not kept).
    frame_first
        For each ``/frames`` row of the file, its first ``/instances`` row.
    tracks
        The file's track names, by index.
    nodes
        The file's skeleton node names (3D points have one row per node, in this order).
    empty_frames, negative_frames
        ``(video, frame)`` pairs of labelled frames without instances, and of frames marked as
        holding no animal.
    attrs
        Unknown attributes by member (``"/"`` for the root), written back onto the same member.
    metadata_json
        Keys of the ``/metadata`` JSON the writer does not produce, with their values.
    """

    source: str
    format_id: float
    image: bytes | None = None
    members: tuple[str, ...] = ()
    instance_ids: np.ndarray = field(default_factory=lambda: _frozen([], np.int64))
    frame_first: np.ndarray = field(default_factory=lambda: _frozen([], np.int64))
    tracks: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    empty_frames: np.ndarray = field(default_factory=lambda: _frozen(np.zeros((0, 2)), np.int64))
    negative_frames: np.ndarray = field(default_factory=lambda: _frozen(np.zeros((0, 2)), np.int64))
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata_json: dict[str, Any] = field(default_factory=dict)

    # the record never changes, so copies of a store (deepcopy of provenance) share it
    def __copy__(self) -> SlpCarried:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SlpCarried:
        return self

    def __repr__(self) -> str:
        parts = list(self.members)
        if len(self.empty_frames):
            parts.append(f"{len(self.empty_frames)} empty frames")
        if len(self.negative_frames):
            parts.append(f"{len(self.negative_frames)} negative frames")
        return f"SlpCarried(from {self.source!r}: {', '.join(parts) or 'attributes'})"


# =========================================================================== reading


def read_carried(
    f: h5py.File,
    path: str,
    *,
    format_id: float,
    frames: np.ndarray,
    frame_video: np.ndarray,
    file_rows: np.ndarray,
    n_instances: int,
    tracks: list[str],
    nodes: list[str],
    video_ids: dict[int, int],
    metadata: dict[str, Any],
) -> SlpCarried | None:
    """Collect what the pose reader leaves behind in ``f``; ``None`` when there is nothing.

    Parameters
    ----------
    frames, frame_video
        The ``/frames`` table and each row's video index in the store.
    file_rows
        ``file_rows[k]`` is the ``/instances`` row of the store's instance ``k`` (its id).
    n_instances
        Rows of ``/instances``.
    tracks, nodes
        The file's track names and its skeleton's node names.
    video_ids
        ``/frames`` video id -> video index (ids of old packages are not positions).
    metadata
        The parsed ``/metadata`` JSON.
    """
    members = tuple(
        name
        for name in f
        if name not in OWN_MEMBERS
        and not (name.startswith("video") and name[5:].isdigit())
        # sleap-io writes an empty session list into every file: nothing to carry
        and not (name == "sessions_json" and isinstance(f[name], h5py.Dataset) and f[name].size == 0)
    )
    lengths = frames["instance_id_end"].astype(np.int64) - frames["instance_id_start"].astype(np.int64)
    empty = np.stack([frame_video, frames["frame_idx"].astype(np.int64)], axis=1)[lengths == 0]
    negative = np.zeros((0, 2), np.int64)
    if "negative_frames" in f and f["negative_frames"].size:
        marks = f["negative_frames"][()]
        vids = np.asarray([video_ids.get(int(v), -1) for v in marks["video_id"]], dtype=np.int64)
        negative = np.stack([vids, marks["frame_idx"].astype(np.int64)], axis=1)[vids >= 0]
    attrs: dict[str, dict[str, Any]] = {}
    if len(f.attrs):
        attrs["/"] = dict(f.attrs)
    for name in OWN_MEMBERS & set(f):
        extra = {k: v for k, v in f[name].attrs.items() if k not in _OWN_ATTRS.get(name, ())}
        if extra:
            attrs[name] = extra
    md_extra = {k: v for k, v in metadata.items() if k not in KNOWN_METADATA_KEYS}
    if metadata.get("negative_anchors"):
        md_extra["negative_anchors"] = metadata["negative_anchors"]
    if not (members or len(empty) or len(negative) or attrs or md_extra):
        return None

    image = None
    if members:
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as mem:
            for name in members:
                try:
                    f.copy(f[name], mem, name=name)
                except (OSError, KeyError, ValueError) as exc:
                    raise ValueError(f"/{name} cannot be read ({exc})") from exc
        image = buffer.getvalue()
    instance_ids = np.full(n_instances, -1, dtype=np.int64)
    instance_ids[file_rows] = np.arange(len(file_rows))
    return SlpCarried(
        source=path,
        format_id=float(format_id),
        image=image,
        members=members,
        instance_ids=_frozen(instance_ids, np.int64),
        frame_first=_frozen(frames["instance_id_start"], np.int64),
        tracks=tuple(tracks),
        nodes=tuple(nodes),
        empty_frames=_frozen(np.unique(empty, axis=0) if len(empty) else empty, np.int64),
        negative_frames=_frozen(np.unique(negative, axis=0) if len(negative) else negative, np.int64),
        attrs=attrs,
        metadata_json=md_extra,
    )


def video_crops(carried: SlpCarried | None) -> dict[int, list[int]]:
    """Video index -> ``[x1, y1, x2, y2]`` of videos sleap-io shows as a cropped view."""
    if carried is None or carried.image is None or "video_crops" not in carried.members:
        return {}
    with h5py.File(io.BytesIO(carried.image), "r") as mem:
        raw = mem["video_crops"][()]
    text = raw.decode() if isinstance(raw, bytes) else str(raw.item() if isinstance(raw, np.ndarray) else raw)
    try:
        entries = json.loads(text)
        return {int(e["video"]): [int(c) for c in e["crop"]] for e in entries}
    except (ValueError, KeyError, TypeError):
        return {}


# =========================================================================== writing


@dataclass
class WrittenTables:
    """Where the pose writer put things, for re-linking carried parts.

    ``instance_row[k]`` is the written ``/instances`` row of the store's row ``k``;
    ``frame_video``/``frame_idx``/``frame_first`` describe the written ``/frames`` rows.
    """

    instance_row: np.ndarray
    frame_video: np.ndarray
    frame_idx: np.ndarray
    frame_first: np.ndarray


def track_names_to_write(carried: SlpCarried | None, names: list[str]) -> list[str]:
    """Tracks of the store, then tracks the carried parts name that the store no longer has."""
    if carried is None or carried.image is None:
        return list(names)
    used = _tracks_used(carried)
    out = list(names)
    for i in sorted(used):
        if 0 <= i < len(carried.tracks) and carried.tracks[i] not in out:
            out.append(carried.tracks[i])
    return out


def _tracks_used(carried: SlpCarried) -> set[int]:
    used: set[int] = set()
    if carried.image is None:
        return used
    with h5py.File(io.BytesIO(carried.image), "r") as mem:
        for member, name in _TRACK_REFS:
            values = _read_ref(mem, member, name)
            if values is not None:
                used.update(int(v) for v in np.unique(values) if v >= 0)
        if "events" in mem:
            ev = mem["events"]
            for kind, idx in (("subject_kind", "subject_idx"), ("target_kind", "target_idx")):
                if kind in ev and idx in ev:
                    k, i = ev[kind][()], ev[idx][()]
                    used.update(int(v) for v in i[(k == TRACK_KIND) & (i >= 0)])
    return used


def write_carried(
    f: h5py.File,
    carried: SlpCarried,
    written: WrittenTables,
    store_ids: np.ndarray,
    track_names: list[str],
    nodes: list[str],
) -> None:
    """Write the carried members into ``f`` with every reference re-linked (see the module docstring).

    Parameters
    ----------
    written
        Where the pose tables went.
    store_ids
        The store's instance ids by row.
    track_names
        The track names written to ``/tracks_json``, by index.
    nodes
        The skeleton's node names now.
    """
    for member, values in carried.attrs.items():
        target = f if member == "/" else f.get(member)
        if target is not None:
            for key, value in values.items():
                target.attrs[key] = value
    if carried.image is None:
        return
    # file /instances row -> written row (-1 where the instance is gone)
    ids = carried.instance_ids
    new_row = np.full(len(ids), -1, dtype=np.int64)
    if len(store_ids):
        order = np.argsort(store_ids, kind="stable")
        pos = np.clip(np.searchsorted(store_ids[order], ids), 0, len(store_ids) - 1)
        hit = (ids >= 0) & (store_ids[order][pos] == ids)
        new_row[hit] = written.instance_row[order[pos[hit]]]
    track_map = np.asarray(
        [track_names.index(name) if name in track_names else -1 for name in carried.tracks], dtype=np.int64
    )
    with h5py.File(io.BytesIO(carried.image), "r") as mem:
        for name in carried.members:
            if name in f:  # never overwrite what the writer produced
                continue
            mem.copy(mem[name], f, name=name)
    for member, name in _INSTANCE_REFS:
        _map_ref(f, member, name, new_row)
    for member, name in _TRACK_REFS:
        _map_ref(f, member, name, track_map)
    _map_event_tracks(f, track_map)
    for group, type_name, id_name, parallel in _OWNED_ROWS:
        _map_owned_rows(f, group, type_name, id_name, parallel, new_row)
    _map_sessions(f, carried, written, new_row, nodes)


# --------------------------------------------------------------------------- helpers


def _lookup(mapping: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``mapping[values]`` with -1 for negative or out-of-range values."""
    values = np.asarray(values, dtype=np.int64)
    ok = (values >= 0) & (values < len(mapping))
    out = np.full(values.shape, -1, dtype=np.int64)
    out[ok] = mapping[values[ok]]
    return out


def _read_ref(f: h5py.File | h5py.Group, member: str, name: str) -> np.ndarray | None:
    if member not in f:
        return None
    obj = f[member]
    if isinstance(obj, h5py.Group):
        return obj[name][()] if name in obj else None
    if obj.dtype.names and name in obj.dtype.names:
        return obj[name] if obj.size else np.zeros(0, np.int64)
    return None


def _map_ref(f: h5py.File, member: str, name: str, mapping: np.ndarray) -> None:
    """Replace the indices in ``member``'s ``name`` column by ``mapping`` of them (in place)."""
    values = _read_ref(f, member, name)
    if values is None or len(values) == 0:
        return
    new = _lookup(mapping, values).astype(values.dtype)
    if np.array_equal(new, values):
        return
    obj = f[member]
    if isinstance(obj, h5py.Group):
        obj[name][...] = new
    else:
        table = obj[()]
        table[name] = new
        obj[...] = table


def _map_event_tracks(f: h5py.File, track_map: np.ndarray) -> None:
    if "events" not in f:
        return
    ev = f["events"]
    for kind_name, idx_name in (("subject_kind", "subject_idx"), ("target_kind", "target_idx")):
        if kind_name not in ev or idx_name not in ev:
            continue
        kind, idx = ev[kind_name][()], ev[idx_name][()]
        is_track = kind == TRACK_KIND
        if is_track.any():
            new = idx.copy()
            new[is_track] = _lookup(track_map, idx[is_track])
            ev[idx_name][...] = new


def _replace(group: h5py.Group, name: str, data: np.ndarray) -> None:
    """Rewrite dataset ``name`` with ``data`` (another length), keeping dtype, layout and attributes."""
    old = group[name]
    if old.shape == data.shape:
        old[...] = data
        return
    attrs = dict(old.attrs)
    kw: dict[str, Any] = {"dtype": old.dtype}
    if old.chunks is not None:
        kw.update(
            chunks=old.chunks,
            maxshape=old.maxshape,
            compression=old.compression,
            compression_opts=old.compression_opts,
        )
    del group[name]
    new = group.create_dataset(name, data=data, **kw)
    for key, value in attrs.items():
        new.attrs[key] = value


def _map_owned_rows(
    f: h5py.File,
    group: str,
    type_name: str,
    id_name: str | None,
    parallel: tuple[str, ...],
    new_row: np.ndarray,
) -> None:
    """Re-link rows owned by instances; drop those whose instance is gone (other owners are kept)."""
    if group not in f or type_name not in f[group]:
        return
    grp = f[group]
    if id_name is None:  # one compound table with owner_type/owner_id fields
        table = grp[type_name][()]
        if table.size == 0:
            return
        owner_type, owner_id = table["owner_type"], table["owner_id"]
    else:
        if id_name not in grp:
            return
        owner_type, owner_id = grp[type_name][()], grp[id_name][()]
    is_inst = owner_type == OWNER_INSTANCE
    new_id = owner_id.astype(np.int64).copy()
    new_id[is_inst] = _lookup(new_row, owner_id[is_inst])
    keep = ~is_inst | (new_id >= 0)
    if keep.all() and np.array_equal(new_id, owner_id):
        return
    if id_name is None:
        table["owner_id"] = new_id
        _replace(grp, type_name, table[keep])
        return
    _replace(grp, type_name, owner_type[keep])
    _replace(grp, id_name, new_id[keep].astype(owner_id.dtype))
    for name in parallel:
        if name in grp:
            _replace(grp, name, grp[name][()][keep])


def _node_permutation(old: tuple[str, ...], new: list[str]) -> np.ndarray | None:
    """Old node row of each new node (-1: a node the file did not have); ``None`` when unchanged."""
    if list(old) == list(new) or not old:
        return None
    return np.asarray([old.index(n) if n in old else -1 for n in new], dtype=np.int64)


def _permute_block(block: np.ndarray, perm: np.ndarray | None, n_old: int) -> np.ndarray:
    """3D points of one instance group in the new node order (NaN rows for new nodes)."""
    if perm is None or len(block) != n_old:
        return block  # a block that does not match the skeleton is left as it was
    out = np.full((len(perm), block.shape[1]), np.nan, dtype=block.dtype)
    out[perm >= 0] = block[perm[perm >= 0]]
    return out


def _map_sessions(
    f: h5py.File, carried: SlpCarried, written: WrittenTables, new_row: np.ndarray, nodes: list[str]
) -> None:
    """Re-link recording sessions: members to (written frame, instance in frame); 3D points by node."""
    # the written instance row -> its written frame row and its position in that frame
    n_written = len(written.instance_row)
    frame_of_row = np.full(n_written, -1, dtype=np.int64)
    ends = (
        np.append(written.frame_first[1:], n_written) if len(written.frame_first) else np.zeros(0, np.int64)
    )
    for j, (a, b) in enumerate(zip(written.frame_first.tolist(), ends.tolist())):
        frame_of_row[a:b] = j
    perm = _node_permutation(carried.nodes, nodes)
    n_old = len(carried.nodes)

    def relink(lf: int, inst: int) -> tuple[int, int] | None:
        if not 0 <= lf < len(carried.frame_first):
            return None
        row = _lookup(new_row, np.asarray([carried.frame_first[lf] + inst]))[0]
        if row < 0 or frame_of_row[row] < 0:
            return None
        j = int(frame_of_row[row])
        return j, int(row - written.frame_first[j])

    if "session_data" in f and "instance_group_members" in f["session_data"]:
        _map_session_tables(f["session_data"], relink, perm, n_old)
    if "sessions_json" in f and f["sessions_json"].size:
        rows = [r.decode() if isinstance(r, bytes) else str(r) for r in f["sessions_json"][()]]
        new_rows = [
            json.dumps(_map_session_json(json.loads(r), relink, perm, n_old), separators=(",", ":"))
            for r in rows
        ]
        if new_rows != rows:
            f["sessions_json"][...] = np.asarray([r.encode() for r in new_rows], dtype=object)


def _map_session_tables(grp: h5py.Group, relink: Any, perm: np.ndarray | None, n_old: int) -> None:
    members = grp["instance_group_members"][()]
    groups = grp["instance_groups"][()] if "instance_groups" in grp else None
    kept: list[Any] = []
    starts: list[int] = []
    ends: list[int] = []
    spans = (
        [(int(g["member_start"]), int(g["member_end"])) for g in groups]
        if groups is not None
        else [(0, len(members))]
    )
    for a, b in spans:
        starts.append(len(kept))
        for m in members[a:b]:
            where = relink(int(m["lf"]), int(m["inst"]))
            if where is not None:
                row = m.copy()
                row["lf"], row["inst"] = where
                kept.append(row)
        ends.append(len(kept))
    new_members = np.asarray(kept, dtype=members.dtype) if kept else np.zeros(0, members.dtype)
    if not np.array_equal(new_members, members):
        _replace(grp, "instance_group_members", new_members)
    if groups is None:
        return
    groups = groups.copy()
    groups["member_start"], groups["member_end"] = starts, ends
    if perm is not None:
        # rebuild the 3D point tables block by block in the new node order
        blocks: dict[int, list[np.ndarray]] = {0: [], 1: []}
        counts = {0: 0, 1: 0}
        sources = {
            0: grp["points_3d"][()] if "points_3d" in grp else None,
            1: grp["pred_points_3d"][()] if "pred_points_3d" in grp else None,
        }
        for g in groups:
            a, b, kind = int(g["pts3d_start"]), int(g["pts3d_end"]), int(g["pts3d_predicted"])
            src = sources.get(kind)
            if a < 0 or src is None:
                continue
            block = _permute_block(src[a:b], perm, n_old)
            g["pts3d_start"], g["pts3d_end"] = counts[kind], counts[kind] + len(block)
            counts[kind] += len(block)
            blocks[kind].append(block)
        for kind, name in ((0, "points_3d"), (1, "pred_points_3d")):
            if sources[kind] is not None:
                width = sources[kind].shape[1]
                data = np.concatenate(blocks[kind]) if blocks[kind] else np.zeros((0, width))
                _replace(grp, name, data.astype(sources[kind].dtype))
    _replace(grp, "instance_groups", groups)


def _map_session_json(
    session: dict[str, Any], relink: Any, perm: np.ndarray | None, n_old: int
) -> dict[str, Any]:
    """Sessions written before SLEAP format 2.8 keep their frame groups inline in the JSON."""
    for fg in session.get("frame_group_dicts", []) or []:
        for ig in fg.get("instance_groups", []) or []:
            links = ig.get("camcorder_to_lf_and_inst_idx_map", {}) or {}
            new_links = {}
            for cam, pair in links.items():
                where = relink(int(pair[0]), int(pair[1]))
                if where is not None:
                    new_links[cam] = list(where)
            ig["camcorder_to_lf_and_inst_idx_map"] = new_links
            if perm is not None:
                for key in ("points", "instance_3d_point_scores"):
                    if isinstance(ig.get(key), list) and len(ig[key]) == n_old:
                        old = ig[key]
                        gap = (
                            [float("nan")] * len(old[0]) if old and isinstance(old[0], list) else float("nan")
                        )
                        ig[key] = [old[k] if k >= 0 else gap for k in perm.tolist()]
    return session
