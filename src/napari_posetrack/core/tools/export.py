"""Export a labels store in the formats analysis tools and other pose packages read.

One entry point, :func:`export_labels`, for the formats the Tools widget offers (see
:data:`EXPORT_FORMATS`): SLEAP ``.slp`` (every instance, or the predictions only), SLEAP analysis
HDF5 (one file per video, as SLEAP writes them), a tidy CSV (one row per point) and DeepLabCut
tables (``.csv`` or ``.h5``). Every file is written atomically by the format's saver.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.labels import PREDICTED, Labels


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
    )
}


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


def export_labels(labels: Labels, path: str | os.PathLike[str], fmt: str, **kw: Any) -> list[Path]:
    """Write ``labels`` to ``path`` in the export format ``fmt`` (a key of :data:`EXPORT_FORMATS`).

    Parameters
    ----------
    labels
        The labels to export; not modified.
    path
        Output file. For ``analysis`` with several videos it names the group of files (see
        :func:`analysis_paths`).
    fmt
        ``slp``, ``slp_predicted``, ``analysis``, ``tidy``, ``dlc_csv`` or ``dlc_h5``.
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
    """
    out = Path(path)
    if fmt not in EXPORT_FORMATS:
        raise FileFormatError(out, f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
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
    if fmt == "tidy":
        from napari_posetrack.core.io.analysis_h5 import save_tidy_csv

        save_tidy_csv(labels, out, **kw)
        return [out]
    from napari_posetrack.core.io.dlc import save_dlc

    if not (labels.instances.kind != PREDICTED).any():
        raise FileFormatError(out, "DeepLabCut tables hold user labels and these labels have none")
    save_dlc(labels, out, **kw)
    return [out]
