"""SLEAP analysis HDF5 export/import and a tidy (long) CSV export, for analysis outside the GUI.

The analysis HDF5 file holds one video's poses as dense arrays, in SLEAP's "matlab" axis order
(the order SLEAP and sleap-io write by default):

==================  =====================================  =========
dataset             shape                                  dtype
==================  =====================================  =========
``tracks``          ``(n_tracks, 2, n_nodes, n_frames)``   float64, NaN = missing
``track_occupancy`` ``(n_frames, n_tracks)``               uint8
``point_scores``    ``(n_tracks, n_nodes, n_frames)``      float64, NaN for user points
``instance_scores`` ``(n_tracks, n_frames)``               float64, NaN for user instances
``tracking_scores`` ``(n_tracks, n_frames)``               float64
``node_names``, ``track_names``, ``edge_names``            byte strings
``edge_inds``       ``(n_edges, 2)``                       int64
``video_path``, ``labels_path``, ``provenance`` (JSON)     strings; ``video_ind`` int
==================  =====================================  =========

Every array dataset carries a ``dims`` attribute (JSON list of axis names) and the file carries
``format="analysis"`` and ``preset="matlab"``, as sleap-io writes, so either reader loads it.

Which instance fills slot ``(frame, track)``:

- tracked labels: the instance of that track, a user instance winning over predictions (then the
  highest score); predictions replaced by a user instance (``from_predicted``) are skipped. Tracks
  with no instance in the exported video are left out (as SLEAP does);
- untracked instances: like SLEAP, each instance of a frame takes the next free pseudo-track slot
  (user instances first, then predictions by decreasing score), so slot identity is arbitrary
  across frames. When the labels have no tracks the slots are named ``track_0``... as in SLEAP;
  untracked instances beside real tracks get extra slots ``untracked_0``... instead of being
  dropped. The file attribute ``posetrack_untracked_slots`` lists these pseudo-track slots so
  :func:`load_analysis_h5` restores them as untracked instances.

Frames run from 0 to the end of the video (its ``n_frames`` when known, else the last labelled
frame). ``frame_times`` (``(n_frames,)`` float64) holds each frame's presentation time in seconds
from the first frame, read from the video's own timestamps (exact for variable frame rates), or
``frame / fps`` when the file is absent; ``fps`` (attribute) the nominal rate; both NaN when unknown. On loading, an instance whose instance score and point scores are all NaN is a user
instance (that is how user instances are written); everything else is a prediction.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_posetrack.core.errors import FileFormatError, MissingFileError, atomic_write
from napari_posetrack.core.io.slp_carry import CARRY_KEY
from napari_posetrack.core.labels import KIND_NAMES, NO_TRACK, PREDICTED, USER, Labels, Skeleton, Video

__all__ = ["analysis_slots", "frame_times", "load_analysis_h5", "save_analysis_h5", "save_tidy_csv"]

# stored axis order of the "matlab" preset, as positions of canonical (frame, track, node, xy)
_MATLAB_DIMS = {
    "tracks": ["track", "xy", "node", "frame"],
    "track_occupancy": ["frame", "track"],
    "point_scores": ["track", "node", "frame"],
    "instance_scores": ["track", "frame"],
    "tracking_scores": ["track", "frame"],
}
_CANONICAL = {
    "tracks": ["frame", "track", "node", "xy"],
    "track_occupancy": ["frame", "track"],
    "point_scores": ["frame", "track", "node"],
    "instance_scores": ["frame", "track"],
    "tracking_scores": ["frame", "track"],
}


def _priority(labels: Labels, rows: np.ndarray) -> np.ndarray:
    """Higher wins: user instances first, then predictions by score (NaN scores last)."""
    t = labels.instances
    return np.where(
        t.kind[rows] == USER, np.inf, np.nan_to_num(t.score[rows].astype(np.float64), nan=-np.inf)
    )


def _rank_in_frame(frames: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """0-based rank of each row among the rows of its frame, best priority first."""
    order = np.lexsort((-priority, frames))
    sorted_frames = frames[order]
    first = np.searchsorted(sorted_frames, sorted_frames, side="left")
    rank = np.empty(len(frames), dtype=np.int64)
    rank[order] = np.arange(len(frames)) - first
    return rank


def analysis_slots(labels: Labels, video: int = 0) -> tuple[np.ndarray, list[str], list[int]]:
    """Which instance row fills each ``(frame, slot)`` of one video's dense export.

    Returns
    -------
    slot_rows
        ``(n_frames, n_slots)`` int64 instance row indices, ``-1`` where the slot is empty.
    slot_names
        Track name of each slot (pseudo-track names for untracked slots).
    untracked_slots
        Indices of slots that are pseudo-tracks holding untracked instances.
    """
    if not 0 <= video < len(labels.videos):
        raise IndexError(f"video index {video} out of range (labels hold {len(labels.videos)} videos)")
    t = labels.instances
    rows = np.flatnonzero((t.video == video) & ~labels.shadowed_predictions())
    known = labels.videos[video].n_frames or 0
    n_frames = max(int(known), int(t.frame[rows].max()) + 1 if len(rows) else 0)
    frames = t.frame[rows]
    tracks = t.track[rows].astype(np.int64)
    prio = _priority(labels, rows)

    n_tracks = len(labels.tracks)
    untracked = tracks < 0
    slot = tracks.copy()
    n_pseudo = 0
    if untracked.any():
        rank = _rank_in_frame(frames[untracked], prio[untracked])
        slot[untracked] = n_tracks + rank
        n_pseudo = int(rank.max()) + 1
    prefix = "track" if n_tracks == 0 else "untracked"
    names = [tr.name for tr in labels.tracks] + [f"{prefix}_{k}" for k in range(n_pseudo)]

    slot_rows = np.full((n_frames, n_tracks + n_pseudo), -1, dtype=np.int64)
    # later writes win: the preferred instance of a (frame, slot) is written last
    order = np.argsort(prio, kind="stable")
    slot_rows[frames[order], slot[order]] = rows[order]

    keep = (slot_rows >= 0).any(axis=0)
    kept = np.flatnonzero(keep)
    untracked_slots = [int(np.searchsorted(kept, k)) for k in range(n_tracks, n_tracks + n_pseudo) if keep[k]]
    return slot_rows[:, keep], [names[k] for k in kept], untracked_slots


def _gather(labels: Labels, slot_rows: np.ndarray) -> dict[str, np.ndarray]:
    """Dense canonical-order arrays (frame, slot, ...) for the given slot table."""
    t = labels.instances
    filled = slot_rows >= 0
    safe = np.where(filled, slot_rows, 0)
    n_frames, n_slots = slot_rows.shape
    n_nodes = labels.n_nodes
    coords = np.full((n_frames, n_slots, n_nodes, 2), np.nan)
    point_scores = np.full((n_frames, n_slots, n_nodes), np.nan)
    instance_scores = np.full((n_frames, n_slots), np.nan)
    tracking_scores = np.full((n_frames, n_slots), np.nan)
    kinds = np.full((n_frames, n_slots), -1, dtype=np.int8)
    if filled.any():
        r = safe[filled]
        pts = t.points[r].copy()
        pts[~t.visible[r]] = np.nan
        coords[filled] = pts
        point_scores[filled] = t.point_scores[r]
        instance_scores[filled] = t.score[r]
        tracking_scores[filled] = t.tracking_score[r]
        kinds[filled] = t.kind[r]
        # user instances carry no scores (SLEAP writes NaN for them)
        user = np.zeros_like(filled)
        user[filled] = t.kind[r] == USER
        point_scores[user] = np.nan
        instance_scores[user] = np.nan
    return {
        "tracks": coords,
        "track_occupancy": filled.astype(np.uint8),
        "point_scores": point_scores,
        "instance_scores": instance_scores,
        "tracking_scores": tracking_scores,
        "kind": kinds,
    }


def _transpose_axes(src: list[str], dst: list[str]) -> list[int]:
    return [src.index(d) for d in dst]


def frame_times(labels: Labels, video: int, n_frames: int) -> tuple[np.ndarray, float]:
    """``(seconds of frames 0 .. n_frames - 1, nominal fps)`` of a video; NaN where unknown.

    The video's own timestamps when its file opens (variable frame rates stay exact); else
    ``frame / fps`` from the stored rate. Frames past the end of the file count on at the nominal rate.
    """
    v = labels.videos[video]
    fps = float(v.fps) if v.fps else float("nan")
    times = np.full(n_frames, np.nan)
    stamps = None
    if v.backend != "embedded" and v.exists:
        from napari_posetrack.core.video import open_video

        try:
            with open_video(v) as reader:
                stamps = reader.timestamps
                fps = float(reader.fps) if reader.fps else fps
        except (OSError, ValueError):  # an unreadable video still exports its poses, without times
            stamps = None
    if stamps is not None and len(stamps):
        n = min(len(stamps), n_frames)
        times[:n] = stamps[:n]
        if n < n_frames and np.isfinite(fps):
            times[n:] = stamps[n - 1] + np.arange(1, n_frames - n + 1) / fps
    elif np.isfinite(fps):
        times[:] = np.arange(n_frames) / fps
    return times, fps


def save_analysis_h5(
    labels: Labels, path: str | os.PathLike[str], video: int = 0, *, labels_path: str | None = None
) -> None:
    """Write one video's poses as a SLEAP analysis HDF5 file (see the module docstring).

    Parameters
    ----------
    labels
        The labels to export.
    path
        Output ``.h5`` file (written atomically).
    video
        Index of the video to export.
    labels_path
        Stored in ``labels_path`` (the labels file the export came from); defaults to the
        ``source`` in the labels' provenance.
    """
    slot_rows, slot_names, untracked_slots = analysis_slots(labels, video)
    arrays = _gather(labels, slot_rows)
    skeleton = labels.skeleton
    edge_inds = skeleton.edge_array()
    src = labels_path if labels_path is not None else str(labels.provenance.get("source", ""))
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        for name, dims in _MATLAB_DIMS.items():
            data = np.transpose(arrays[name], _transpose_axes(_CANONICAL[name], dims))
            ds = f.create_dataset(name, data=data, compression="gzip", compression_opts=4)
            ds.attrs["dims"] = json.dumps(dims)
        f.create_dataset("track_names", data=np.array([n.encode("utf-8") for n in slot_names], dtype="S"))
        f.create_dataset("node_names", data=np.array([n.encode("utf-8") for n in skeleton.nodes], dtype="S"))
        f.create_dataset(
            "edge_names",
            data=np.array(
                [(a.encode("utf-8"), b.encode("utf-8")) for a, b in skeleton.edge_names], dtype="S"
            ).reshape(-1, 2),
        )
        f.create_dataset("edge_inds", data=edge_inds)
        f.create_dataset("labels_path", data=src)
        f.create_dataset("video_path", data=labels.videos[video].filename)
        f.create_dataset("video_ind", data=int(video))
        times, fps = frame_times(labels, video, len(slot_rows))
        f.create_dataset("frame_times", data=times)
        f.attrs["fps"] = fps
        # the SLEAP parts carried for .slp saves are no provenance (and are not JSON)
        provenance = {k: v for k, v in labels.provenance.items() if k != CARRY_KEY}
        f.create_dataset("provenance", data=json.dumps(provenance, default=str))
        f.attrs["format"] = "analysis"
        f.attrs["preset"] = "matlab"
        f.attrs["skeleton_name"] = skeleton.name
        f.attrs["skeleton_symmetries"] = json.dumps([list(p) for p in skeleton.symmetry_names])
        f.attrs["posetrack_untracked_slots"] = json.dumps(untracked_slots)


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_canonical(f: h5py.File, name: str, stored_tracks_dims: list[str], path: Path) -> np.ndarray:
    ds = f[name]
    if "dims" in ds.attrs:
        dims = json.loads(_decode(ds.attrs["dims"]))
    else:
        # legacy files: the other arrays follow the axis order of ``tracks`` minus xy/node
        wanted = set(_CANONICAL[name])
        dims = [d for d in stored_tracks_dims if d in wanted]
        if name == "track_occupancy":
            dims = ["frame", "track"]  # SLEAP always stored occupancy frame-first in matlab order
    if sorted(dims) != sorted(_CANONICAL[name]) or len(dims) != ds.ndim:
        raise FileFormatError(
            path, f"dataset '{name}' has axes {dims} and shape {ds.shape}, expected {_CANONICAL[name]}"
        )
    return np.transpose(ds[()], _transpose_axes(dims, _CANONICAL[name]))


def load_analysis_h5(path: str | os.PathLike[str]) -> Labels:
    """Load a SLEAP analysis HDF5 file (written by SLEAP, sleap-io or :func:`save_analysis_h5`).

    Raises
    ------
    MissingFileError
        ``path`` does not exist.
    FileFormatError
        Not HDF5, or a required dataset is missing or has inconsistent shape.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "analysis HDF5 file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(path, f"not an HDF5 file ({exc})") from exc
    with f:
        missing = [k for k in ("tracks", "node_names") if k not in f]
        if missing:
            raise FileFormatError(path, f"not a SLEAP analysis file: datasets {missing} are missing")
        if "dims" in f["tracks"].attrs:
            tracks_dims = json.loads(_decode(f["tracks"].attrs["dims"]))
        elif f.attrs.get("transpose", True):
            tracks_dims = list(_MATLAB_DIMS["tracks"])
        else:
            tracks_dims = ["frame", "node", "xy", "track"]
        coords = _read_canonical(f, "tracks", tracks_dims, path)
        n_frames, n_tracks, n_nodes, n_xy = coords.shape
        node_names = [_decode(n) for n in f["node_names"][()]]
        if n_xy != 2 or n_nodes != len(node_names):
            raise FileFormatError(
                path, f"'tracks' has shape {f['tracks'].shape} but the file names {len(node_names)} nodes"
            )

        def optional(name: str, fill: float) -> np.ndarray:
            if name not in f:
                shape = {"point_scores": (n_frames, n_tracks, n_nodes)}.get(name, (n_frames, n_tracks))
                return np.full(shape, fill)
            arr = _read_canonical(f, name, tracks_dims, path)
            expected = (n_frames, n_tracks, n_nodes) if name == "point_scores" else (n_frames, n_tracks)
            if arr.shape != expected:
                raise FileFormatError(path, f"dataset '{name}' has shape {arr.shape}, expected {expected}")
            return arr

        occupancy = optional("track_occupancy", 0).astype(bool)
        point_scores = optional("point_scores", np.nan)
        instance_scores = optional("instance_scores", np.nan)
        tracking_scores = optional("tracking_scores", np.nan)
        track_names = [_decode(n) for n in f["track_names"][()]] if "track_names" in f else []
        if len(track_names) != n_tracks:
            track_names = track_names[:n_tracks] + [f"track_{k}" for k in range(len(track_names), n_tracks)]
        edge_names = (
            [(_decode(a), _decode(b)) for a, b in f["edge_names"][()].reshape(-1, 2)]
            if "edge_names" in f
            else []
        )
        video_path = _decode(f["video_path"][()]) if "video_path" in f else ""
        provenance_raw = _decode(f["provenance"][()]) if "provenance" in f else "{}"
        skeleton_name = _decode(f.attrs.get("skeleton_name", "")) or "skeleton"
        symmetries = json.loads(_decode(f.attrs.get("skeleton_symmetries", "[]")))
        untracked_slots = set(json.loads(_decode(f.attrs.get("posetrack_untracked_slots", "[]"))))

    try:
        provenance = json.loads(provenance_raw) if provenance_raw else {}
    except json.JSONDecodeError:
        provenance = {"provenance": provenance_raw}
    if not isinstance(provenance, dict):
        provenance = {"provenance": provenance}
    try:
        skeleton = Skeleton(node_names, edge_names, [tuple(s) for s in symmetries], name=skeleton_name)
    except ValueError as exc:
        raise FileFormatError(path, f"invalid skeleton ({exc})") from exc

    real_slots = [k for k in range(n_tracks) if k not in untracked_slots]
    track_of_slot = np.full(n_tracks, NO_TRACK, dtype=np.int64)
    track_of_slot[real_slots] = np.arange(len(real_slots))
    labels = Labels(skeleton, [Video(video_path)])
    for k in real_slots:
        labels.add_track(track_names[k])

    present = occupancy | np.isfinite(coords).any(axis=(-1, -2))
    fr, sl = np.nonzero(present)
    if len(fr):
        pscores = point_scores[fr, sl]
        iscores = instance_scores[fr, sl]
        is_user = np.isnan(iscores) & np.isnan(pscores).all(axis=-1)
        tscores = np.nan_to_num(tracking_scores[fr, sl], nan=0.0)
        for kind, sel in ((USER, is_user), (PREDICTED, ~is_user)):
            if not sel.any():
                continue
            labels.add_instances(
                0,
                fr[sel],
                coords[fr[sel], sl[sel]],
                kind=kind,
                track=track_of_slot[sl[sel]],
                score=iscores[sel],
                point_scores=pscores[sel] if kind == PREDICTED else None,
                tracking_score=tscores[sel],
            )
    labels.provenance.update(provenance)
    labels.provenance["source"] = str(path)
    return labels


def save_tidy_csv(labels: Labels, path: str | os.PathLike[str], video: int | None = None) -> None:
    """Write poses as a tidy CSV: one row per frame, track and node.

    Columns: ``video`` (the video's file name, or its full path when two videos share a name),
    ``frame``, ``time`` (seconds from the video's first frame, from its own timestamps; empty when
    unknown), ``track`` (track name; pseudo-track names for untracked instances, as in the
    analysis HDF5 export), ``node``, ``x``, ``y`` (empty when the node is missing), ``score``
    (point score, empty for user instances), ``instance_score``, ``kind`` (``user`` /
    ``predicted``). Only occupied (frame, track) slots are written; the instance chosen for each
    slot is the one :func:`save_analysis_h5` writes.

    Parameters
    ----------
    video
        Index of the video to export; ``None`` exports every video.
    """
    import pandas as pd

    names = [v.name for v in labels.videos]
    if len(set(names)) != len(names):
        names = [v.filename for v in labels.videos]
    videos = range(len(labels.videos)) if video is None else [video]
    nodes = np.asarray(labels.skeleton.nodes, dtype=object)
    frames_out = []
    for v in videos:
        slot_rows, slot_names, _ = analysis_slots(labels, v)
        arrays = _gather(labels, slot_rows)
        fr, sl = np.nonzero(arrays["track_occupancy"])
        n = len(fr) * labels.n_nodes
        if n == 0:
            continue
        times, _ = frame_times(labels, v, len(slot_rows))
        node_idx = np.tile(np.arange(labels.n_nodes), len(fr))
        fr_rep = np.repeat(fr, labels.n_nodes)
        sl_rep = np.repeat(sl, labels.n_nodes)
        kind_names = np.array([KIND_NAMES[USER], KIND_NAMES[PREDICTED]], dtype=object)
        frames_out.append(
            pd.DataFrame(
                {
                    "video": np.full(n, names[v], dtype=object),
                    "frame": fr_rep,
                    "time": times[fr_rep],
                    "track": np.asarray(slot_names, dtype=object)[sl_rep],
                    "node": nodes[node_idx],
                    "x": arrays["tracks"][fr_rep, sl_rep, node_idx, 0],
                    "y": arrays["tracks"][fr_rep, sl_rep, node_idx, 1],
                    "score": arrays["point_scores"][fr_rep, sl_rep, node_idx],
                    "instance_score": arrays["instance_scores"][fr_rep, sl_rep],
                    "kind": kind_names[arrays["kind"][fr_rep, sl_rep]],
                }
            )
        )
    columns = ["video", "frame", "time", "track", "node", "x", "y", "score", "instance_score", "kind"]
    table = pd.concat(frames_out, ignore_index=True) if frames_out else pd.DataFrame(columns=columns)
    with atomic_write(path) as tmp:
        # repr-exact floats: the CSV holds the same coordinates as the labels
        table.to_csv(tmp, index=False, float_format=None, na_rep="")
