"""Export a labels store in the formats analysis tools and other pose packages read.

One entry point, :func:`export_labels`, for the formats the Tools widget offers (see
:data:`EXPORT_FORMATS`): SLEAP ``.slp`` (every instance, or the predictions only), SLEAP analysis
HDF5 (one file per video, as SLEAP writes them), a tidy CSV (one row per point), DeepLabCut
labels tables (``.csv`` or ``.h5``) and DeepLabCut machine-label files (one per video). Every
file is written atomically by the format's saver.

What is exported is chosen with an :class:`ExportSelection` (videos, frame range, user labels
and/or predictions, tracked instances only, body parts), applied by :func:`select_for_export`
before writing. A frame range keeps frame numbers: the dense formats (analysis HDF5, DeepLabCut
machine labels) still run from frame 0 with the frames outside the range missing, so time in
seconds (the tidy CSV's ``time``, the analysis file's ``frame_times`` and ``fps``) stays right.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.labels import PREDICTED, USER, Labels, Skeleton

SOURCES = ("both", "user", "predicted")


@dataclass(frozen=True)
class ExportFormat:
    """One choice of export: its key, what users read, and the file extension it writes."""

    key: str
    title: str
    suffix: str
    help: str


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.key: f
    for f in (
        ExportFormat(
            "slp", "SLEAP labels (.slp), all instances", ".slp", "Every instance, user and predicted."
        ),
        ExportFormat(
            "slp_predicted",
            "SLEAP labels (.slp), predictions only",
            ".slp",
            "Only predicted instances (e.g. to proofread in SLEAP without your training labels).",
        ),
        ExportFormat(
            "analysis",
            "SLEAP analysis HDF5 (.h5), one file per video",
            ".h5",
            "Arrays of shape (tracks, 2, nodes, frames) per video, as SLEAP's 'Export Analysis HDF5'.",
        ),
        ExportFormat(
            "tidy",
            "Tidy CSV (.csv), one row per point",
            ".csv",
            "Columns video, frame, track, node, x, y, score, ... for pandas, R or a spreadsheet.",
        ),
        ExportFormat(
            "dlc_csv",
            "DeepLabCut labels table (.csv)",
            ".csv",
            "User-labelled frames as a DeepLabCut CollectedData table (predictions are not written).",
        ),
        ExportFormat(
            "dlc_h5",
            "DeepLabCut labels table (.h5)",
            ".h5",
            "User-labelled frames as a DeepLabCut CollectedData table in HDF5 (pandas).",
        ),
        ExportFormat(
            "dlc_predictions",
            "DeepLabCut predictions (.h5), one file per video",
            ".h5",
            "Poses per frame as DeepLabCut's <video>DLC_<scorer>.h5 (x, y, likelihood), for DeepLabCut "
            "or movement.",
        ),
    )
}


@dataclass(frozen=True)
class ExportSelection:
    """What an export holds.

    Parameters
    ----------
    videos
        Video indices or names (file name, folder name for image lists, or full path); ``None``: all.
    frames
        ``(first, last)`` frame numbers, both included; ``None``: every frame.
    source
        ``"both"`` (user labels and predictions), ``"user"`` or ``"predicted"``.
    tracked_only
        Only instances on a track.
    nodes
        Body part names to keep, in the order given; ``None``: all.
    """

    videos: Sequence[int | str] | None = None
    frames: tuple[int, int] | None = None
    source: str = "both"
    tracked_only: bool = False
    nodes: Sequence[str] | None = None


def parse_frame_range(text: str) -> tuple[int, int]:
    """``"100-200"`` -> ``(100, 200)`` (both included); ``"150"`` -> ``(150, 150)``.

    Raises
    ------
    ValueError
        Not one or two non-negative integers, or the first after the last.
    """
    parts = text.strip().split("-")
    try:
        if len(parts) == 1:
            first = last = int(parts[0])
        elif len(parts) == 2:
            first, last = int(parts[0]), int(parts[1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"frame range {text!r} is not FIRST-LAST (e.g. 100-200) or one frame number") from None
    if first < 0 or last < first:
        raise ValueError(f"frame range {text!r}: frames count from 0 and the first must not be after the last")
    return first, last


def _video_indices(labels: Labels, chosen: Sequence[int | str]) -> list[int]:
    out: list[int] = []
    for item in chosen:
        if isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.isdigit()):
            index = int(item)
            if not 0 <= index < len(labels.videos):
                raise ValueError(f"video index {index} out of range: the labels hold {len(labels.videos)} videos")
        else:
            hits = [
                i
                for i, v in enumerate(labels.videos)
                if item in (v.name, Path(v.filename).name, v.filename) or v.matches_path(str(item))
            ]
            if not hits:
                names = ", ".join(v.name for v in labels.videos)
                raise ValueError(f"no video named {item!r}; the labels hold: {names}")
            index = hits[0]
        if index not in out:
            out.append(index)
    return out


def select_for_export(labels: Labels, selection: ExportSelection) -> Labels:
    """A copy of ``labels`` holding only what ``selection`` asks for (``labels`` is not changed).

    Unselected videos are dropped (the rest keep their order of ``selection.videos``), tracks and
    suggestions of the kept videos stay, the skeleton is cut to the chosen nodes (edges and
    symmetries between kept nodes stay). With ``source="user"`` a prediction that a user label
    replaced is gone with the other predictions; with ``"predicted"`` such predictions are kept.

    Raises
    ------
    ValueError
        An unknown video, node or source, or a bad frame range (the message names it).
    """
    if selection.source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {selection.source!r}")
    t = labels.instances
    keep = np.ones(labels.n_instances, dtype=bool)
    if selection.source == "user":
        keep &= t.kind == USER
    elif selection.source == "predicted":
        keep &= t.kind == PREDICTED
    if selection.tracked_only:
        keep &= t.track >= 0
    if selection.frames is not None:
        first, last = (int(f) for f in selection.frames)
        if first < 0 or last < first:
            raise ValueError(f"frame range {first}-{last}: frames count from 0 and the first must not be after the last")
        keep &= (t.frame >= first) & (t.frame <= last)
    chosen = (
        list(range(len(labels.videos))) if selection.videos is None else _video_indices(labels, selection.videos)
    )
    video_map = np.full(len(labels.videos), -1, dtype=np.int64)
    video_map[chosen] = np.arange(len(chosen))
    keep &= video_map[t.video] >= 0
    out = labels.subset(np.flatnonzero(keep))
    out.instances.video[:] = video_map[out.instances.video]
    out.videos = [out.videos[i] for i in chosen]
    out.suggestions = [
        type(s)(int(video_map[s.video]), s.frame, s.group) for s in out.suggestions if video_map[s.video] >= 0
    ]
    if selection.nodes is not None:
        out = _keep_nodes(out, list(selection.nodes))
    out._changed()
    return out


def _keep_nodes(labels: Labels, nodes: list[str]) -> Labels:
    skeleton = labels.skeleton
    unknown = [n for n in nodes if n not in skeleton.nodes]
    if unknown or not nodes:
        raise ValueError(f"unknown node(s) {unknown or nodes}; the skeleton has {skeleton.nodes}")
    order = [skeleton.node_index(n) for n in nodes]
    kept = set(nodes)
    edges = [(a, b) for a, b in skeleton.edge_names if a in kept and b in kept]
    symmetries = [(a, b) for a, b in skeleton.symmetry_names if a in kept and b in kept]
    import warnings

    with warnings.catch_warnings():  # cutting nodes may leave several roots: fine for an export
        warnings.simplefilter("ignore", UserWarning)
        new_skeleton = Skeleton(nodes, edges, symmetries=symmetries, name=skeleton.name)
    instances = labels.instances.reorder_nodes(order, len(nodes))
    return Labels(
        new_skeleton, labels.videos, labels.tracks, labels.suggestions, labels.provenance, instances=instances
    )


def predicted_only(labels: Labels) -> Labels:
    """A copy of ``labels`` holding only its predicted instances (videos, tracks, skeleton kept)."""
    return labels.subset(np.flatnonzero(labels.instances.kind == PREDICTED))


def _safe_stem(name: str) -> str:
    """A video name made safe for a file name (letters, digits, ``-``, ``_``, ``.``)."""
    stem = Path(name).stem or "video"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)


def analysis_paths(labels: Labels, path: str | os.PathLike[str]) -> list[Path]:
    """Where :func:`export_labels` writes one analysis HDF5 file per video.

    With one video the file is ``path`` itself; with several, ``<stem>.<video index>_<video
    name>.h5`` beside it, so files of videos with the same name cannot overwrite each other.
    """
    p = Path(path)
    if len(labels.videos) <= 1:
        return [p]
    return [
        p.with_name(f"{p.stem}.{i:03d}_{_safe_stem(video.name)}{p.suffix or '.h5'}")
        for i, video in enumerate(labels.videos)
    ]


def export_labels(
    labels: Labels,
    path: str | os.PathLike[str],
    fmt: str,
    selection: ExportSelection | None = None,
    **kw: Any,
) -> list[Path]:
    """Write ``labels`` to ``path`` in the export format ``fmt`` (a key of :data:`EXPORT_FORMATS`).

    Parameters
    ----------
    labels
        The labels to export; not modified.
    path
        Output file. For ``analysis`` with several videos it names the group of files (see
        :func:`analysis_paths`).
    fmt
        ``slp``, ``slp_predicted``, ``analysis``, ``tidy``, ``dlc_csv``, ``dlc_h5`` or
        ``dlc_predictions`` (one file per video, named like the analysis files).
    selection
        What to write (videos, frames, source, tracked only, nodes); ``None``: everything.
    **kw
        Passed to the format's saver (``scorer=`` for DeepLabCut, ``embed=`` for SLEAP, ...).

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    FileFormatError
        Unknown format, or nothing of the requested kind to export (the file is named).
    ValueError
        A selection naming an unknown video or node, or a bad frame range.
    """
    out = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise FileFormatError(out, f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if selection is not None:
        labels = select_for_export(labels, selection)
        if labels.n_instances == 0:
            raise FileFormatError(out, "the selection holds no instance to export")
    if fmt == "slp":
        from napari_posetrack.core.io.slp import save_slp

        save_slp(labels, out, **kw)
        return [out]
    if fmt == "slp_predicted":
        from napari_posetrack.core.io.slp import save_slp

        subset = predicted_only(labels)
        if subset.n_instances == 0:
            raise FileFormatError(out, "these labels have no predicted instances to export")
        save_slp(subset, out, **kw)
        return [out]
    if fmt == "analysis":
        from napari_posetrack.core.io.analysis_h5 import save_analysis_h5

        if not labels.videos:
            raise FileFormatError(out, "these labels have no video to export")
        paths = analysis_paths(labels, out)
        for index, video_path in enumerate(paths):
            save_analysis_h5(labels, video_path, video=index, **kw)
        return paths
    if fmt == "dlc_predictions":
        from napari_posetrack.core.io.dlc_predictions import save_dlc_predictions

        if not labels.videos:
            raise FileFormatError(out, "these labels have no video to export")
        paths = analysis_paths(labels, out)
        for index, video_path in enumerate(paths):
            save_dlc_predictions(labels, video_path, video=index, **kw)
        return paths
    if fmt == "tidy":
        from napari_posetrack.core.io.analysis_h5 import save_tidy_csv

        save_tidy_csv(labels, out, **kw)
        return [out]
    from napari_posetrack.core.io.dlc import save_dlc

    if not (labels.instances.kind != PREDICTED).any():
        raise FileFormatError(out, "DeepLabCut tables hold user labels and these labels have none")
    save_dlc(labels, out, **kw)
    return [out]
