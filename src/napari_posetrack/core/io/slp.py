"""SLEAP labels files (``.slp``, ``.pkg.slp``): HDF5 tables <-> the columnar :class:`Labels`.

Layout (the one SLEAP and sleap-io read and write):

* ``/metadata`` attributes ``format_id`` (float) and ``json`` (skeletons as jsonpickle graphs
  whose nodes index the file-wide ``nodes`` list, and provenance); newer files also keep
  provenance in a ``/provenance_json`` dataset.
* ``/videos_json``, ``/tracks_json`` (``[spawned_on, name]``), ``/suggestions_json``: one JSON
  document per row.
* ``/frames`` (frame_id, video, frame_idx, instance_id_start, instance_id_end),
  ``/instances`` (instance_id, instance_type, frame_id, skeleton, track, from_predicted, score,
  point_id_start, point_id_end[, tracking_score from format 1.2]), ``/points`` (x, y, visible,
  complete) for user instances and ``/pred_points`` (the same plus score) for predictions.
* ``/video{i}/...``: frames embedded in packages (see :mod:`.slp_embedded`).

Files older than format 1.1 put pixel (0, 0)'s top-left corner at the origin; their
coordinates are shifted by -0.5 px to the pixel-centre convention used everywhere else.

The tables are read and written as whole arrays (points in bounded chunks) and mapped to
the instance columns with numpy indexing, so a million predicted instances take seconds.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_posetrack.core.errors import FileFormatError, MissingFileError, PoseTrackError, atomic_write
from napari_posetrack.core.io.skeleton_json import decode_skeleton_graph, encode_skeleton_graph
from napari_posetrack.core.io.slp_carry import (
    CARRY_KEY,
    REJECTED_MEMBER,
    TRACK_COLORS_MEMBER,
    SlpCarried,
    WrittenTables,
    read_carried,
    track_names_to_write,
    video_crops,
    write_carried,
)
from napari_posetrack.core.io.slp_embedded import encode_png, write_embedded_array, write_embedded_video
from napari_posetrack.core.io.video_paths import resolve_video_paths
from napari_posetrack.core.labels import (
    NO_LINK,
    NO_TRACK,
    PREDICTED,
    USER,
    InstanceTable,
    Labels,
    Skeleton,
    Suggestion,
    Track,
    Video,
)
from napari_posetrack.core.video.embedded import RAW_FORMAT, EmbeddedFrameReader

FORMAT_ID = 1.4
"""Format we write: the classic tables plus ``tracking_score``; embedded images carry ``channel_order``."""
NEWEST_READABLE_FORMAT = 3.0
"""Format ids from here on change the tables (sleap-io's columnar layout); we refuse them."""
NEWEST_KNOWN_FORMAT = 2.8
"""The newest format we have checked (sleap-io 0.9.5 writes it); later 2.x formats only add parts,
which are carried through a save unchanged."""
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ATTR_LIMIT = 60_000  # HDF5 attributes hold at most 64 KiB
_CHUNK_POINTS = 1 << 21  # points per read/write block: bounds the temporary structured arrays

INSTANCE_DTYPE = np.dtype(
    [
        ("instance_id", "<i8"),
        ("instance_type", "u1"),
        ("frame_id", "<u8"),
        ("skeleton", "<u4"),
        ("track", "<i4"),
        ("from_predicted", "<i8"),
        ("score", "<f4"),
        ("point_id_start", "<u8"),
        ("point_id_end", "<u8"),
        ("tracking_score", "<f4"),
    ]
)
FRAME_DTYPE = np.dtype(
    [
        ("frame_id", "<u8"),
        ("video", "<u4"),
        ("frame_idx", "<u8"),
        ("instance_id_start", "<u8"),
        ("instance_id_end", "<u8"),
    ]
)
POINT_DTYPE = np.dtype([("x", "<f8"), ("y", "<f8"), ("visible", "?"), ("complete", "?")])
PRED_POINT_DTYPE = np.dtype(
    [("x", "<f8"), ("y", "<f8"), ("visible", "?"), ("complete", "?"), ("score", "<f8")]
)

_VIDEO_JSON_EXTRA = "_video_json"
"""backend_metadata key holding top-level ``videos_json`` keys other than ``backend``."""
_SOURCE_VIDEO = "source_video"
"""backend_metadata key holding the source-video JSON of embedded frames."""


# =========================================================================== reading


def load_slp(path: str | os.PathLike[str], *, search_paths: Sequence[str | os.PathLike[str]] = ()) -> Labels:
    """Read a SLEAP labels file (``.slp`` or ``.pkg.slp``) into :class:`Labels`.

    Videos whose stored path is missing are looked for next to the labels file and in
    ``search_paths`` (see :func:`~napari_posetrack.core.io.video_paths.resolve_video_paths`);
    those still missing are kept (``labels.missing_videos()``) and reported in a ``UserWarning``.

    Raises
    ------
    MissingFileError
        If ``path`` does not exist.
    FileFormatError
        If the file is not HDF5, is truncated or corrupt, is not a SLEAP file, uses a format we
        cannot read, or its instances use skeletons with different nodes.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(path)
    if os.path.isdir(path):
        raise FileFormatError(path, "is a folder, not a SLEAP labels file")
    with open(path, "rb") as fh:
        head = fh.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:
        raise FileFormatError(path, "not an HDF5 file (SLEAP .slp files are HDF5)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(path, f"truncated or corrupt HDF5 file ({exc})") from exc
    try:
        with f:
            labels = _read_labels(f, path)
    except PoseTrackError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, OSError, RuntimeError) as exc:
        raise FileFormatError(
            path, f"truncated or corrupt SLEAP labels file ({type(exc).__name__}: {exc})"
        ) from exc
    resolve_video_paths(labels, path, search_paths)
    return labels


def _json_rows(f: h5py.File, name: str) -> list[Any]:
    """Parse a dataset of one JSON document per row (missing or empty -> [])."""
    if name not in f:
        return []
    ds = f[name]
    if ds.shape == () or ds.size == 0:
        return []
    return [json.loads(row.decode() if isinstance(row, bytes) else str(row)) for row in ds[()]]


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tobytes().decode()
    return str(value)


def _read_labels(f: h5py.File, path: str) -> Labels:
    if "metadata" not in f:
        raise FileFormatError(path, "no /metadata group: not a SLEAP labels file")
    md_attrs = f["metadata"].attrs
    format_id = float(md_attrs.get("format_id", 1.0))
    if format_id >= NEWEST_READABLE_FORMAT:
        raise FileFormatError(
            path,
            f"SLEAP format {format_id:g} is not supported: the highest supported format is "
            f"{NEWEST_KNOWN_FORMAT:g} (later 2.x files are read too); format 3 stores the tables in a new "
            "layout. Save the file from SLEAP or sleap-io in format 2 (sleap-io 0.9.5 writes 2.8)",
        )
    if "json" not in md_attrs:
        raise FileFormatError(path, "/metadata has no 'json' attribute (skeletons are missing)")
    try:
        metadata = json.loads(_attr_text(md_attrs["json"]))
    except json.JSONDecodeError as exc:
        raise FileFormatError(path, f"/metadata json is not valid JSON ({exc})") from exc
    node_names = [n["name"] if isinstance(n, dict) else str(n) for n in metadata.get("nodes", [])]
    try:
        skeletons = [decode_skeleton_graph(s, node_names) for s in metadata.get("skeletons", [])]
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise FileFormatError(path, f"skeleton metadata is malformed ({exc})") from exc
    if not skeletons:
        raise FileFormatError(path, "holds no skeleton")

    if "provenance_json" in f:
        raw = f["provenance_json"][()]
        provenance = json.loads(_attr_text(raw.item() if isinstance(raw, np.ndarray) else raw))
    else:
        provenance = metadata.get("provenance", {}) or {}
    if not isinstance(provenance, dict):
        provenance = {"provenance": provenance}

    tracks = [_track_from_json(t) for t in _json_rows(f, "tracks_json")]
    if TRACK_COLORS_MEMBER in f and f[TRACK_COLORS_MEMBER].shape == (len(tracks), 3):
        colors = np.asarray(f[TRACK_COLORS_MEMBER][()], dtype=np.float64)
        for tr, rgb in zip(tracks, colors):
            if np.isfinite(rgb).all() and ((rgb >= 0) & (rgb <= 1)).all():
                tr.color = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
    videos, video_ids = _read_videos(f, path)
    suggestions = _read_suggestions(f)
    if any(not 0 <= sg.video < len(videos) for sg in suggestions):
        raise FileFormatError(path, f"/suggestions_json refers to a video beyond the {len(videos)} listed")

    for name in ("frames", "instances"):
        if name not in f:
            raise FileFormatError(path, f"no /{name} table")
    frames = f["frames"][()]
    instances = f["instances"][()]
    table, skeleton_order, file_rows, frame_video = _read_instances(
        f, path, frames, instances, skeletons, video_ids, len(tracks), format_id
    )
    ordered = [skeletons[i] for i in skeleton_order]
    try:
        carried = read_carried(
            f,
            path,
            format_id=format_id,
            frames=frames,
            frame_video=frame_video,
            file_rows=file_rows,
            n_instances=len(instances),
            tracks=[t.name for t in tracks],
            nodes=list(ordered[0].nodes),
            video_ids=video_ids,
            metadata=metadata,
        )
    except (OSError, KeyError, ValueError) as exc:
        raise FileFormatError(path, f"truncated or corrupt SLEAP labels file: {exc}") from exc
    if carried is not None:
        provenance[CARRY_KEY] = carried
        for v, rect in video_crops(carried).items():
            warnings.warn(
                f"{path}: video {v} is shown cropped to x {rect[0]}..{rect[2]}, y {rect[1]}..{rect[3]} in "
                "sleap-io; napari-posetrack shows the whole frame (the crop is kept in the file)",
                UserWarning,
                stacklevel=3,
            )
    return Labels(ordered[0], videos, tracks, suggestions, provenance, table, ordered[1:])


def _track_from_json(row: Any) -> Track:
    if isinstance(row, list) and len(row) >= 2:
        return Track(str(row[1]), int(row[0] or 0))
    if isinstance(row, dict):
        return Track(str(row.get("name", "")), int(row.get("spawned_on", 0) or 0))
    return Track(str(row))


def _read_suggestions(f: h5py.File) -> list[Suggestion]:
    out = []
    for row in _json_rows(f, "suggestions_json"):
        group = row.get("group", 0)
        try:
            group = int(group)
        except (TypeError, ValueError):
            group = 0
        # suggestions index the video list directly (unlike /frames, see _read_videos)
        out.append(Suggestion(int(row["video"]), int(row["frame_idx"]), group))
    return out


def _read_videos(f: h5py.File, path: str) -> tuple[list[Video], dict[int, int]]:
    """Videos and the map from the ids used in ``/frames`` to list positions.

    Old SLEAP packages number embedded videos by their ``video{N}`` group rather than by list
    position; sleap-io tells the two apart the same way (ids equal to positions win).
    """
    videos = [_video_from_json(vj, path, f) for vj in _json_rows(f, "videos_json")]
    ids = {i: i for i in range(len(videos))}
    used = set(np.unique(f["frames"]["video"]).tolist()) if "frames" in f and f["frames"].size else set()
    if used == set(ids):
        return videos, ids
    ids = {}
    for i, v in enumerate(videos):
        group = str(v.backend_metadata.get("dataset", "")).split("/")[0]
        if v.backend == "embedded" and group.startswith("video") and group[5:].isdigit():
            ids[int(group[5:])] = i
        else:
            ids[i] = i
    return videos, ids


def _video_from_json(vj: dict[str, Any], labels_path: str, f: h5py.File) -> Video:
    backend = dict(vj.get("backend", {}) or {})
    meta: dict[str, Any] = dict(backend)
    extra = {k: v for k, v in vj.items() if k != "backend"}
    if extra:
        meta[_VIDEO_JSON_EXTRA] = extra
    filename = backend.get("filename", vj.get("filename", ""))
    shape = backend.get("shape")
    n_frames = int(shape[0]) if shape and shape[0] is not None else None
    hwc = tuple(int(s) for s in shape[1:4]) if shape and len(shape) == 4 and None not in shape[1:4] else None
    fps = backend.get("fps")
    fps = float(fps) if fps is not None else None
    dataset = str(backend.get("dataset", "") or "")
    if dataset in f and isinstance(f[dataset], h5py.Group) and "video" in f[dataset]:
        dataset = meta["dataset"] = f"{dataset.rstrip('/')}/video"  # old files name the group only
    if filename == "." and dataset not in f and isinstance(vj.get("source_video"), dict):
        # an embedded reference whose frames were not kept: fall back to the source video
        return _video_from_json(vj["source_video"], labels_path, f)
    if filename == "." or (dataset.endswith("/video") and dataset in f and _same_file(filename, labels_path)):
        video = Video(os.path.abspath(labels_path), n_frames, hwc, fps, "embedded", meta)
        _fill_embedded(video, f, dataset)
        return video
    if backend.get("filenames"):
        paths = [str(p) for p in backend["filenames"]]
        return Video(paths, n_frames if n_frames is not None else len(paths), hwc, fps, "images", meta)
    return Video(str(filename), n_frames, hwc, fps, "pyav", meta)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(a) and os.path.samefile(a, b)
    except OSError:
        return False


def _fill_embedded(video: Video, f: h5py.File, dataset: str) -> None:
    """Take frame size, count and source video of embedded frames from the package itself."""
    if dataset not in f:
        return
    ds = f[dataset]
    attrs = ds.attrs
    if video.shape is None and all(k in attrs for k in ("height", "width", "channels")):
        video.shape = (int(attrs["height"]), int(attrs["width"]), int(attrs["channels"]))
    group = ds.parent
    numbers = group["frame_numbers"][()] if "frame_numbers" in group else np.arange(ds.shape[0])
    last = int(np.max(numbers)) + 1 if np.size(numbers) else 0
    video.n_frames = max(int(attrs.get("frames", 0) or 0), last, video.n_frames or 0)
    if video.fps is None and "fps" in attrs:
        video.fps = float(attrs["fps"])
    if "source_video" in group:
        src = group["source_video"]
        blob = src["json"][()] if "json" in src else src.attrs.get("json")
        if blob is not None:
            video.backend_metadata[_SOURCE_VIDEO] = json.loads(_attr_text(blob))


def _ranges_to_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate ``range(starts[k], starts[k] + lengths[k])`` for all k, without a Python loop."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def _read_instances(
    f: h5py.File,
    path: str,
    frames: np.ndarray,
    inst: np.ndarray,
    skeletons: list[Skeleton],
    video_ids: dict[int, int],
    n_tracks: int,
    format_id: float,
) -> tuple[InstanceTable, list[int], np.ndarray, np.ndarray]:
    """Build the instance columns from the frames/instances/points tables.

    Returns ``(table, skeleton order, file rows, frame videos)``: ``file rows[k]`` is the
    ``/instances`` row of the store's instance ``k``, ``frame videos[j]`` the video index of
    ``/frames`` row ``j``.
    """
    n_inst = len(inst)
    starts = frames["instance_id_start"].astype(np.int64)
    ends = frames["instance_id_end"].astype(np.int64)
    lengths = ends - starts
    if len(frames) and (lengths.min() < 0 or starts.min() < 0 or ends.max() > n_inst):
        raise FileFormatError(path, f"/frames points outside the {n_inst} rows of /instances")
    # file row of each of our rows, in labelled-frame order (instances no frame owns are dropped, like SLEAP)
    contiguous = len(frames) == 0 or (
        starts[0] == 0 and np.array_equal(starts[1:], ends[:-1]) and ends[-1] == n_inst
    )
    pos = np.arange(n_inst, dtype=np.int64) if contiguous else _ranges_to_positions(starts, lengths)
    n = len(pos)
    frame_of = np.repeat(np.arange(len(frames)), lengths)
    rows = inst if contiguous else inst[pos]

    file_vid = frames["video"].astype(np.int64)
    lut = np.full(max([*video_ids, int(file_vid.max(initial=0))]) + 1, -1, dtype=np.int64)
    for file_id, index in video_ids.items():
        lut[file_id] = index
    frame_video = lut[file_vid]
    if (frame_video < 0).any():
        bad = int(file_vid[frame_video < 0][0])
        raise FileFormatError(
            path, f"/frames refers to video {bad} but /videos_json lists {len(video_ids)} videos"
        )

    kinds = rows["instance_type"].astype(np.int8)
    if n and not np.isin(kinds, (USER, PREDICTED)).all():
        raise FileFormatError(
            path, f"/instances has unknown instance_type {sorted(set(kinds.tolist()) - {0, 1})}"
        )
    skel_ids = rows["skeleton"].astype(np.int64)
    used = np.unique(skel_ids).tolist()
    if used and max(used) >= len(skeletons):
        raise FileFormatError(
            path, f"/instances refers to skeleton {max(used)} but the file has {len(skeletons)}"
        )
    primary = int(used[0]) if used else 0
    for s in used:
        if not skeletons[s].same_nodes(skeletons[primary]):
            raise FileFormatError(
                path,
                f"instances use skeletons with different nodes ({skeletons[primary].name!r}: "
                f"{skeletons[primary].nodes} and {skeletons[s].name!r}: {skeletons[s].nodes}); "
                "napari-posetrack holds one skeleton per project: split the file in SLEAP first",
            )
    skeleton_order = [primary] + [i for i in range(len(skeletons)) if i != primary]
    main = skeletons[primary]
    n_nodes = main.n_nodes

    tracks = rows["track"].astype(np.int32)
    if n and (tracks.max() >= n_tracks or tracks.min() < NO_TRACK):
        raise FileFormatError(
            path, f"/instances refers to track {int(tracks.max())} but the file has {n_tracks}"
        )
    score = rows["score"].astype(np.float32)
    score[kinds == USER] = np.nan
    tracking = rows["tracking_score"].astype(np.float32) if "tracking_score" in rows.dtype.names else None
    # the tracker's rejection reasons, one per /instances row; another writer that changed the rows
    # cannot have kept them aligned, so a table of another length is ignored
    rejected = None
    if REJECTED_MEMBER in f and f[REJECTED_MEMBER].shape == (n_inst,):
        rejected = f[REJECTED_MEMBER][()].astype(np.int8)[pos]

    # from_predicted holds the file's instance_id of the source prediction
    file_ids = rows["instance_id"].astype(np.int64)
    links = rows["from_predicted"].astype(np.int64)
    from_pred = np.full(n, NO_LINK, dtype=np.int64)
    has_link = links >= 0
    if has_link.any():
        order = np.argsort(file_ids, kind="stable")
        at_link = np.clip(np.searchsorted(file_ids[order], links[has_link]), 0, n - 1)
        hit = file_ids[order][at_link] == links[has_link]
        from_pred[np.flatnonzero(has_link)[hit]] = order[at_link][hit]

    table = InstanceTable(n_nodes, capacity=n)
    table.append(
        n,
        instance_id=np.arange(n, dtype=np.int64),
        video=frame_video[frame_of] if n else np.zeros(0, np.int32),
        frame=frames["frame_idx"].astype(np.int64)[frame_of],
        kind=kinds,
        track=tracks,
        score=score,
        tracking_score=tracking,
        from_predicted=from_pred,
        rejected=rejected,
    )
    shift = -0.5 if format_id < 1.1 else 0.0
    for kind, name in ((USER, "points"), (PREDICTED, "pred_points")):
        for s in used:
            ours = np.flatnonzero((kinds == kind) & (skel_ids == s))
            if len(ours) == 0:
                continue
            if name not in f:
                raise FileFormatError(path, f"no /{name} table")
            perm = np.asarray([skeletons[s].node_index(nm) for nm in main.nodes], dtype=np.int64)
            _read_points(
                f[name], path, rows, ours, perm, skeletons[s].n_nodes, table, shift, kind == PREDICTED
            )
    return table, skeleton_order, pos, frame_video


def _read_points(
    ds: h5py.Dataset,
    path: str,
    rows: np.ndarray,
    ours: np.ndarray,
    perm: np.ndarray,
    file_nodes: int,
    table: InstanceTable,
    shift: float,
    predicted: bool,
) -> None:
    """Fill points/visible/complete(/point_scores) of table rows ``ours`` from a points table."""
    p0 = rows["point_id_start"][ours].astype(np.int64)
    p1 = rows["point_id_end"][ours].astype(np.int64)
    if not np.all(p1 - p0 == file_nodes):
        bad = int(np.flatnonzero(p1 - p0 != file_nodes)[0])
        raise FileFormatError(
            path, f"an instance has {int(p1[bad] - p0[bad])} points but its skeleton has {file_nodes} nodes"
        )
    if len(p0) and (p0.min() < 0 or p1.max() > ds.shape[0]):
        raise FileFormatError(
            path, f"/{ds.name.lstrip('/')} has {ds.shape[0]} rows; instances point beyond it"
        )
    sequential = len(p0) > 0 and np.array_equal(p0, p0[0] + file_nodes * np.arange(len(p0)))
    whole = None if sequential else ds[()]
    per_chunk = max(1, _CHUNK_POINTS // max(file_nodes, 1))
    identity = np.array_equal(perm, np.arange(file_nodes))
    pts_col, vis_col, comp_col = table.column("points"), table.column("visible"), table.column("complete")
    score_col = table.column("point_scores")
    for a in range(0, len(ours), per_chunk):
        b = min(a + per_chunk, len(ours))
        if sequential:
            block = ds[int(p0[a]) : int(p0[a]) + (b - a) * file_nodes]
        else:
            idx = p0[a:b, None] + np.arange(file_nodes)
            block = whole[idx.reshape(-1)]
        block = block.reshape(b - a, file_nodes)
        if not identity:
            block = block[:, perm]
        dest = ours[a:b]
        # contiguous rows take slice assignment (no scatter); x and y go straight into the column
        target: slice | np.ndarray = (
            slice(int(dest[0]), int(dest[-1]) + 1) if dest[-1] - dest[0] == b - a - 1 else dest
        )
        if isinstance(target, slice):
            pts_col[target, :, 0] = block["x"]
            pts_col[target, :, 1] = block["y"]
            if shift:
                pts_col[target] += shift
        else:
            xy = np.stack([block["x"], block["y"]], axis=-1)
            pts_col[target] = xy + shift if shift else xy
        vis_col[target], comp_col[target] = block["visible"], block["complete"]
        if predicted:
            score_col[target] = block["score"]


# =========================================================================== writing


def save_slp(
    labels: Labels,
    path: str | os.PathLike[str],
    *,
    embed: bool | str | Iterable[tuple[int, int]] = False,
) -> None:
    """Write ``labels`` as a SLEAP labels file that SLEAP and sleap-io open; atomic.

    Parameters
    ----------
    labels
        The labels to write. They are not modified.
    path
        Output ``.slp`` (``.pkg.slp`` by convention when frames are embedded).
    embed
        Frames to store inside the file as PNG: ``False`` (none beyond frames that are already
        embedded, which are always carried over), ``"user"`` (frames with user instances),
        ``True`` or ``"all"`` (every labelled frame), ``"user+suggestions"``, or an iterable of
        ``(video_index, frame)`` pairs.

    Raises
    ------
    MissingFileError
        If frames must be embedded from a video that is not on disk.
    ValueError
        If provenance holds values JSON cannot store, or ``embed`` is not understood.
    """
    path = os.fspath(path)
    to_embed = _frames_to_embed(labels, embed)
    carried = labels.provenance.get(CARRY_KEY)
    if not isinstance(carried, SlpCarried):
        carried = None
    metadata_json, provenance_json = _metadata_json(labels, carried)
    track_names = track_names_to_write(carried, [t.name for t in labels.tracks])
    spawned = [int(t.spawned_on) for t in labels.tracks] + [0] * (len(track_names) - len(labels.tracks))
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        embedded_groups = _write_embedded(f, labels, to_embed)
        videos_json = [
            _dumps(_json_safe(_video_to_json(v, embedded_groups.get(i)), f"videos[{i}]"))
            for i, v in enumerate(labels.videos)
        ]
        _string_rows(f, "videos_json", videos_json)
        _string_rows(f, "tracks_json", [_dumps([s, str(name)]) for s, name in zip(spawned, track_names)])
        if any(t.color is not None for t in labels.tracks):
            colors = np.full((len(track_names), 3), np.nan, dtype=np.float32)
            for i, t in enumerate(labels.tracks):
                if t.color is not None:
                    colors[i] = t.color
            f.create_dataset(TRACK_COLORS_MEMBER, data=colors)
        _string_rows(
            f,
            "suggestions_json",
            [
                _dumps(
                    {
                        "video": str(int(s.video)),
                        "frame_idx": int(s.frame),
                        "group": _json_safe(s.group, "group"),
                    }
                )
                for s in labels.suggestions
            ],
        )
        empty = carried.empty_frames if carried is not None else np.zeros((0, 2), np.int64)
        negative = carried.negative_frames if carried is not None else np.zeros((0, 2), np.int64)
        written = _write_tables(f, labels, np.concatenate([empty, negative]))
        _write_negative_frames(f, written, negative)
        f.create_dataset("provenance_json", data=np.bytes_(provenance_json))
        grp = f.require_group("metadata")
        grp.attrs["format_id"] = max(FORMAT_ID, carried.format_id) if carried is not None else FORMAT_ID
        grp.attrs["json"] = np.bytes_(metadata_json)
        if carried is not None:
            write_carried(
                f, carried, written, labels.instances.instance_id, track_names, list(labels.skeleton.nodes)
            )


def _write_negative_frames(f: h5py.File, written: WrittenTables, negative: np.ndarray) -> None:
    """``/negative_frames``: (video, frame) of written frames marked as holding no animal."""
    if len(negative) == 0:
        return
    keys = {(int(v), int(fr)) for v, fr in zip(written.frame_video.tolist(), written.frame_idx.tolist())}
    marks = [p for p in negative.tolist() if tuple(p) in keys]
    if not marks:
        return
    data = np.empty(len(marks), dtype=[("video_id", "<u4"), ("frame_idx", "<u8")])
    data["video_id"] = [m[0] for m in marks]
    data["frame_idx"] = [m[1] for m in marks]
    f.create_dataset("negative_frames", data=data)


def _dumps(obj: Any) -> str:
    """Compact JSON, as SLEAP writes its per-row documents."""
    return json.dumps(obj, separators=(",", ":"))


def _string_rows(f: h5py.File, name: str, rows: list[str]) -> None:
    f.create_dataset(name, data=np.asarray(rows, dtype=object), dtype=h5py.string_dtype(), maxshape=(None,))


def _json_safe(value: Any, where: str) -> Any:
    """Provenance values as JSON types; numpy scalars/arrays and paths are converted, others refused."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, dict):
        return {str(k): _json_safe(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"cannot save {where}: a {type(value).__name__} is not JSON-serialisable")


def _metadata_json(labels: Labels, carried: SlpCarried | None = None) -> tuple[str, str]:
    node_names: list[str] = []
    for sk in labels.skeletons:
        node_names.extend(n for n in sk.nodes if n not in node_names)
    node_index = {n: i for i, n in enumerate(node_names)}
    provenance = _json_safe({k: v for k, v in labels.provenance.items() if k != CARRY_KEY}, "provenance")
    provenance_json = json.dumps(provenance)
    md = {
        "version": "2.0.0",
        "skeletons": [encode_skeleton_graph(sk, node_index) for sk in labels.skeletons],
        "nodes": [{"name": n, "weight": 1.0} for n in node_names],
        "videos": [],
        "tracks": [],
        "suggestions": [],
        "negative_anchors": {},
        "provenance": provenance,
    }
    if carried is not None:
        md.update(carried.metadata_json)  # keys of the source file we do not produce, as they were
    text = json.dumps(md)
    if len(text.encode()) > _ATTR_LIMIT:
        md["provenance"] = {}  # it stays complete in /provenance_json
        text = json.dumps(md)
    return text, provenance_json


def _video_to_json(video: Video, embedded_dataset: str | None) -> dict[str, Any]:
    meta = dict(video.backend_metadata)
    extra = dict(meta.pop(_VIDEO_JSON_EXTRA, {}) or {})
    meta.pop(_SOURCE_VIDEO, None)  # embedded frames keep it in /video{i}/source_video
    backend = meta
    shape = None
    if video.shape is not None and video.n_frames is not None:
        shape = [int(video.n_frames), *[int(s) for s in video.shape]]
    if embedded_dataset is not None:
        backend = {
            "type": "HDF5Video",
            "filename": ".",
            "dataset": embedded_dataset,
            "input_format": "channels_last",
            "convert_range": False,
            "has_embedded_images": True,
        }
        extra.pop(_SOURCE_VIDEO, None)  # the package keeps it in /video{i}/source_video
    elif video.backend == "images":
        paths = list(video.path) if isinstance(video.path, list) else [video.path]
        backend.setdefault("type", "ImageVideo")
        backend["filename"] = paths[0] if paths else ""
        backend["filenames"] = paths
    elif video.backend == "embedded":
        raise ValueError("embedded videos must be written with their frames")
    else:
        if not meta:
            backend = {"type": "MediaVideo", "bgr": True, "dataset": "", "input_format": ""}
        backend["filename"] = str(video.path)
    if shape is not None:
        backend["shape"] = shape
        backend.setdefault("grayscale", shape[-1] == 1)
    if video.fps is not None:
        backend["fps"] = float(video.fps)
    if "filename" in extra:  # sleap-io repeats the path at the top level: keep it current
        extra["filename"] = backend.get("filename", extra["filename"])
    return {"backend": backend, **extra}


# --------------------------------------------------------------------------- tables


def _write_order(labels: Labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows in write order (grouped by frame, frames in first-appearance order) and the frame table keys.

    Returns ``(rows, frame_of_row, frame_first_row)``: ``frame_of_row[k]`` is the frame id of
    ``rows[k]``, ``frame_first_row[j]`` a table row of frame ``j``.
    """
    t = labels.instances
    n = len(t)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = t.video.astype(np.int64) * (int(t.frame.max()) + 1) + t.frame
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    by_first = np.argsort(first, kind="stable")
    rank[by_first] = np.arange(len(first))
    row_rank = rank[inverse.reshape(-1)]
    rows = np.argsort(row_rank, kind="stable")
    return rows, row_rank[rows], first[by_first]


def _write_tables(f: h5py.File, labels: Labels, empty_frames: np.ndarray) -> WrittenTables:
    """Write /frames, /instances, /points and /pred_points; ``empty_frames`` are ``(video, frame)``
    pairs written as frames without instances where no instance sits. Returns where rows went."""
    t = labels.instances
    n = len(t)
    n_nodes = labels.n_nodes
    rows, frame_of_row, frame_rows = _write_order(labels)
    n_frames = len(frame_rows)
    counts = np.bincount(frame_of_row, minlength=n_frames) if n else np.zeros(0, np.int64)
    frame_end = np.cumsum(counts)
    keys = np.stack([t.video[frame_rows].astype(np.int64), t.frame[frame_rows]], axis=1)
    if len(empty_frames):
        # frames kept without instances (negative frames, frames of other annotations) go last
        empty = np.unique(empty_frames, axis=0)
        empty = empty[(empty[:, 0] >= 0) & (empty[:, 0] < len(labels.videos))]
        taken = {(int(v), int(fr)) for v, fr in keys.tolist()}
        empty = np.asarray([p for p in empty.tolist() if tuple(p) not in taken], dtype=np.int64).reshape(
            -1, 2
        )
        keys = np.concatenate([keys, empty])
        counts = np.concatenate([counts, np.zeros(len(empty), np.int64)])
        frame_end = np.concatenate([frame_end, np.full(len(empty), n, np.int64)])
    frames = np.empty(len(keys), dtype=FRAME_DTYPE)
    frames["frame_id"] = np.arange(len(keys))
    frames["video"] = keys[:, 0]
    frames["frame_idx"] = keys[:, 1]
    frames["instance_id_start"] = frame_end - counts
    frames["instance_id_end"] = frame_end

    kinds = t.kind[rows]
    is_user = kinds == USER
    position = np.empty(n, dtype=np.int64)  # our row -> written instance position
    position[rows] = np.arange(n)
    links = t.from_predicted[rows]
    linked_rows = (
        labels.row_of_id(links[links != NO_LINK]) if (links != NO_LINK).any() else np.zeros(0, np.int64)
    )
    written_links = np.full(n, NO_LINK, dtype=np.int64)
    written_links[links != NO_LINK] = np.where(
        linked_rows >= 0, position[np.maximum(linked_rows, 0)], NO_LINK
    )
    slot = np.where(is_user, np.cumsum(is_user) - 1, np.cumsum(~is_user) - 1).astype(np.int64)

    instances = np.empty(n, dtype=INSTANCE_DTYPE)
    instances["instance_id"] = np.arange(n)
    instances["instance_type"] = kinds
    instances["frame_id"] = frame_of_row
    instances["skeleton"] = 0
    instances["track"] = t.track[rows]
    instances["from_predicted"] = written_links
    instances["score"] = np.where(is_user, np.float32(0.0), t.score[rows])
    instances["point_id_start"] = slot * n_nodes
    instances["point_id_end"] = (slot + 1) * n_nodes
    instances["tracking_score"] = t.tracking_score[rows]
    f.create_dataset("frames", data=frames)
    f.create_dataset("instances", data=instances)
    if t.rejected[rows].any():
        f.create_dataset(REJECTED_MEMBER, data=t.rejected[rows].astype(np.uint8))
    _write_points(f, "points", POINT_DTYPE, t, rows[is_user], n_nodes, predicted=False)
    _write_points(f, "pred_points", PRED_POINT_DTYPE, t, rows[~is_user], n_nodes, predicted=True)
    return WrittenTables(
        instance_row=position,
        frame_video=keys[:, 0],
        frame_idx=keys[:, 1],
        frame_first=frames["instance_id_start"].astype(np.int64),
    )


def _write_points(
    f: h5py.File,
    name: str,
    dtype: np.dtype,
    t: InstanceTable,
    rows: np.ndarray,
    n_nodes: int,
    predicted: bool,
) -> None:
    ds = f.create_dataset(name, shape=(len(rows) * n_nodes,), dtype=dtype, maxshape=(None,))
    per_chunk = max(1, _CHUNK_POINTS // max(n_nodes, 1))
    for a in range(0, len(rows), per_chunk):
        b = min(a + per_chunk, len(rows))
        r = rows[a:b]
        if r[-1] - r[0] == b - a - 1 and np.all(np.diff(r) == 1):
            r = slice(int(r[0]), int(r[-1]) + 1)  # in-order rows: views instead of gathered copies
        block = np.empty((b - a) * n_nodes, dtype=dtype)
        pts = t.points[r]
        block["x"] = pts[:, :, 0].reshape(-1)
        block["y"] = pts[:, :, 1].reshape(-1)
        block["visible"] = t.visible[r].reshape(-1)
        block["complete"] = t.complete[r].reshape(-1)
        if predicted:
            block["score"] = t.point_scores[r].reshape(-1)
        ds[a * n_nodes : b * n_nodes] = block


# --------------------------------------------------------------------------- embedding


def _frames_to_embed(
    labels: Labels, embed: bool | str | Iterable[tuple[int, int]] | None
) -> dict[int, np.ndarray]:
    """Frame indices to embed per video index."""
    if embed is None or embed is False:
        pairs = np.zeros((0, 2), dtype=np.int64)
    elif embed is True or embed == "all":
        pairs = labels.labeled_frames()
    elif embed == "user":
        pairs = labels.user_frames()
    elif embed == "user+suggestions":
        sugg = np.asarray([(s.video, s.frame) for s in labels.suggestions], dtype=np.int64).reshape(-1, 2)
        pairs = np.concatenate([labels.user_frames(), sugg])
    elif isinstance(embed, str):
        raise ValueError(
            "embed must be False, True, 'all', 'user', 'user+suggestions' or (video, frame) pairs; "
            f"got {embed!r}"
        )
    else:
        pairs = np.asarray(list(embed), dtype=np.int64).reshape(-1, 2)
    out: dict[int, np.ndarray] = {}
    for v in np.unique(pairs[:, 0]).tolist():
        if not 0 <= v < len(labels.videos):
            raise ValueError(f"cannot embed frames of video {v}: labels hold {len(labels.videos)} videos")
        out[int(v)] = np.unique(pairs[pairs[:, 0] == v, 1])
    return out


def _write_embedded(f: h5py.File, labels: Labels, to_embed: dict[int, np.ndarray]) -> dict[int, str]:
    """Write embedded frames; returns video index -> images dataset name.

    Videos already embedded are always carried over (their stored bytes are copied, not
    re-encoded), together with any requested frames they hold.
    """
    written: dict[int, str] = {}
    for i, video in enumerate(labels.videos):
        group = f"video{i}"
        if video.backend == "embedded":
            with EmbeddedFrameReader(video) as reader:
                numbers = reader.frame_numbers
                h, w, c = reader.shape
                source = video.backend_metadata.get(_SOURCE_VIDEO) or reader.source_video_json()
                if reader.image_format == RAW_FORMAT:
                    # pixels were stored: write them back as pixels (channels last)
                    pixels = (
                        np.stack([reader.frame(k) for k in numbers.tolist()])
                        if len(numbers)
                        else (np.zeros((0, h, w, c), np.uint8))
                    )
                    written[i] = write_embedded_array(
                        f,
                        group,
                        numbers,
                        pixels,
                        n_frames=reader.n_frames,
                        fps=reader.fps,
                        source_video_json=source,
                    )
                    continue
                images = [reader.raw(k) for k in numbers.tolist()]
                written[i] = write_embedded_video(
                    f,
                    group,
                    numbers,
                    images,
                    height=h,
                    width=w,
                    channels=c,
                    n_frames=reader.n_frames,
                    fps=reader.fps,
                    channel_order=reader.channel_order,
                    image_format=reader.image_format,
                    source_video_json=source,
                )
            continue
        frames = to_embed.get(i)
        if frames is None or len(frames) == 0:
            continue
        from napari_posetrack.core.video import open_video

        if not video.exists:
            raise MissingFileError(video.filename, "cannot embed frames: the video is not on disk")
        with open_video(video) as reader:
            if frames.max() >= reader.n_frames:
                raise ValueError(
                    f"{video.filename}: cannot embed frame {int(frames.max())} of {reader.n_frames}"
                )
            images = [encode_png(reader.frame(int(k))) for k in frames.tolist()]
            h, w, c = reader.shape
            n_total, fps = reader.n_frames, reader.fps
        written[i] = write_embedded_video(
            f,
            group,
            frames,
            images,
            height=h,
            width=w,
            channels=c,
            n_frames=n_total,
            fps=fps,
            channel_order="RGB",
            source_video_json=_video_to_json(video, None),
        )
    return written
