"""Poses of one video as DeepLabCut's machine-label (analysis) file ``<video>DLC_<scorer>.h5``.

DeepLabCut's ``analyze_videos`` writes a pandas table with one row per frame of the video (index
``0 .. n_frames - 1``) and column levels ``scorer``, ``bodyparts``, ``coords`` (``x``, ``y``,
``likelihood``) for single-animal projects, ``scorer``, ``individuals``, ``bodyparts``, ``coords``
for multi-animal ones, under HDF5 key ``df_with_missing``; a ``.csv`` holds the same table.
DeepLabCut (``create_labeled_video``, ``filterpredictions``), ``movement``
(``load_poses.from_dlc_file``) and :func:`~napari_posetrack.core.io.dlc.load_dlc` read it.

Which instance fills a (frame, individual) is what the SLEAP analysis export picks
(:func:`~napari_posetrack.core.io.analysis_h5.analysis_slots`): individuals are the tracks, or
``track_0``... slots for untracked instances. A missing point is NaN in ``x``, ``y`` and
``likelihood``; a user-labelled point has likelihood 1.0 (it is certain), a predicted one its score.
The file is single-animal when one slot holds everything and the labels have no tracks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from napari_posetrack.core.errors import FileFormatError, atomic_write
from napari_posetrack.core.labels import USER, Labels

H5_KEY = "df_with_missing"

__all__ = ["dlc_predictions_frame", "save_dlc_predictions"]


def dlc_predictions_frame(labels: Labels, video: int = 0, scorer: str = "posetrack") -> object:
    """The machine-label table of one video as a pandas DataFrame (see the module docstring).

    Raises
    ------
    IndexError
        ``video`` is not a video of ``labels``.
    """
    import pandas as pd

    from napari_posetrack.core.io.analysis_h5 import _gather, analysis_slots

    slot_rows, slot_names, _ = analysis_slots(labels, video)
    arrays = _gather(labels, slot_rows)
    coords = arrays["tracks"]  # (frames, slots, nodes, 2)
    scores = arrays["point_scores"].copy()  # (frames, slots, nodes)
    present = ~np.isnan(coords).any(axis=-1)
    user = (arrays["kind"] == USER)[:, :, None] & present
    scores[user] = 1.0
    scores[~present] = np.nan
    n_frames, n_slots, n_nodes = scores.shape
    block = np.concatenate([coords, scores[..., None]], axis=-1)  # (frames, slots, nodes, 3)
    values = block.reshape(n_frames, n_slots * n_nodes * 3)
    nodes = labels.skeleton.nodes
    multi = bool(labels.tracks) or n_slots > 1
    if multi:
        tuples = [(scorer, s, n, c) for s in slot_names for n in nodes for c in ("x", "y", "likelihood")]
        names = ["scorer", "individuals", "bodyparts", "coords"]
    else:
        tuples = [(scorer, n, c) for n in nodes for c in ("x", "y", "likelihood")]
        names = ["scorer", "bodyparts", "coords"]
        if n_slots == 0:  # nothing on this video: every frame is missing
            values = np.full((n_frames, n_nodes * 3), np.nan)
    columns = pd.MultiIndex.from_tuples(tuples, names=names)
    return pd.DataFrame(values, index=pd.RangeIndex(n_frames), columns=columns)


def save_dlc_predictions(
    labels: Labels, path: str | os.PathLike[str], video: int = 0, *, scorer: str = "posetrack"
) -> None:
    """Write one video's poses as a DeepLabCut machine-label file (``.h5``, or ``.csv``), atomically.

    Parameters
    ----------
    labels
        The labels (predictions and/or user instances: select first, e.g. with
        :func:`napari_posetrack.core.tools.export.select_for_export`).
    path
        Output file; DeepLabCut names them ``<video stem>DLC_<scorer>.h5``.
    video
        Index of the video.
    scorer
        The scorer (DeepLabCut writes its network name here).

    Raises
    ------
    FileFormatError
        The video has no instance to write (the file is named).
    """
    path = Path(path)
    df = dlc_predictions_frame(labels, video, scorer)
    if not np.isfinite(df.to_numpy()).any():
        raise FileFormatError(path, f"video {labels.videos[video].name!r} has no poses to write")
    with atomic_write(path) as tmp:
        if path.suffix.lower() == ".csv":
            df.to_csv(tmp)
        else:
            df.to_hdf(tmp, key=H5_KEY, mode="w", format="table")
