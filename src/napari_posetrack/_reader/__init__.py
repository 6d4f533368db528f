"""npe2 readers: a path in, napari layer data tuples out.

Each ``get_*_reader`` decides from the extension and a cheap look at the file (first bytes, HDF5
keys) whether the file is ours, returns ``None`` otherwise and never raises. The returned reader
function does the real work: errors there (corrupt file, wrong header) propagate so napari shows
them, and because every layer is built before any is returned, nothing half-loaded is added.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LayerDataTuple = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerDataTuple]]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
LABELS_SUFFIXES = (".slp", ".csv", ".h5", ".hdf5", ".yaml", ".yml")
_SNIFF_BYTES = 65536


def _single_path(path: Any) -> str | None:
    """The one path napari passed (a list of one is unwrapped); ``None`` for several or none."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, os.PathLike)):
        return None
    return os.fspath(path)


def _head_text(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read(_SNIFF_BYTES).decode("utf-8", errors="replace")


def _is_labels_file(path: str) -> bool:
    """Cheap check that ``path`` is a labels file we read; never raises."""
    from napari_posetrack.core.io import sniff_csv, sniff_h5

    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if not p.is_file():
            return False
        if suffix == ".slp":
            return True  # any .slp is ours; a corrupt one fails in the reader with a message
        if suffix == ".csv":
            return sniff_csv(p) == "dlc"
        if suffix in (".h5", ".hdf5"):
            return sniff_h5(p) is not None
        if suffix in (".yaml", ".yml"):
            # a DeepLabCut project config lists body parts and sits beside labeled-data/
            return "bodyparts" in _head_text(path) and (p.parent / "labeled-data").is_dir()
    except Exception:  # noqa: BLE001 - a reader lookup must never raise
        return False
    return False


def _is_skeleton_file(path: str) -> bool:
    try:
        p = Path(path)
        if p.suffix.lower() != ".json" or not p.is_file():
            return False
        head = _head_text(path)
        return '"nodes"' in head and ('"links"' in head or "py/object" in head)
    except Exception:  # noqa: BLE001 - a reader lookup must never raise
        return False


def get_labels_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Reader for SLEAP ``.slp``, SLEAP analysis ``.h5``, DeepLabCut ``CollectedData*`` and ``config.yaml``."""
    p = _single_path(path)
    if p is None or Path(p).suffix.lower() not in LABELS_SUFFIXES or not _is_labels_file(p):
        return None
    return read_labels


def get_video_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Reader for video files (mp4, avi, mov, mkv) as a lazy ``video: <name>`` Image layer."""
    p = _single_path(path)
    if p is None or Path(p).suffix.lower() not in VIDEO_SUFFIXES:
        return None
    try:
        if not os.path.isfile(p):
            return None
    except Exception:  # noqa: BLE001
        return None
    return read_video


def get_skeleton_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Reader for SLEAP skeleton ``.json`` templates: an empty ``poses:`` layer ready for labelling."""
    p = _single_path(path)
    if p is None or not _is_skeleton_file(p):
        return None
    return read_skeleton


def get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """Any of the readers above, or ``None`` when the file is not ours."""
    for getter in (get_labels_reader, get_video_reader, get_skeleton_reader):
        reader = getter(path)
        if reader is not None:
            return reader
    return None


def _notify_warning(message: str) -> None:
    """Show a warning in napari (a console warning when napari is not running)."""
    try:
        from napari.utils.notifications import show_warning
    except ImportError:  # pragma: no cover - readers only run inside napari
        warnings.warn(message, UserWarning, stacklevel=3)
        return
    show_warning(message)


def read_labels(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """Layers of a labels file: per video the video (when found), tracks, skeleton and poses."""
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.layers import METADATA_KEY, empty_points_for_skeleton, labels_to_layers

    p = _single_path(path)
    labels = load_labels(p)
    if not labels.videos:  # a file with a skeleton and nothing else: ready for labelling
        return [empty_points_for_skeleton(labels.skeleton)]
    layers, problems = labels_to_layers(labels)
    for _, kwargs, kind in layers:
        if kind == "points":  # lets the labelling project adopt these layers and save back to the file
            kwargs["metadata"][METADATA_KEY]["source"] = os.path.abspath(p)
    for message in problems:
        _notify_warning(f"{p}: {message}; showing the poses without it")
    if any(isinstance(labels.videos[i].path, str) for i in labels.missing_videos()):
        _ask_for_missing_videos()
    return layers


def _ask_for_missing_videos() -> None:
    """Once napari has added the layers, show the "Videos not found" dialog (see ``offer_after_file_open``)."""
    try:
        import weakref

        import napari
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QApplication
    except ImportError:  # pragma: no cover - readers only run inside napari
        return
    viewer = napari.current_viewer()
    if viewer is None or QApplication.instance() is None:
        return
    ref = weakref.ref(viewer)

    def ask() -> None:
        from napari_posetrack._widgets._missing_videos import offer_after_file_open

        offer_after_file_open(ref)

    QTimer.singleShot(0, ask)


def read_video(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """A video file as a lazy Image layer (frames decode on demand, frame-exact)."""
    from napari_posetrack.core.video import open_video
    from napari_posetrack.layers import AXIS_LABELS, METADATA_KEY

    p = _single_path(path)
    reader = open_video(p)
    meta = reader.metadata
    data = reader.to_dask()
    metadata = {"fps": meta["fps"], "path": meta["path"], METADATA_KEY: {"video": meta}}
    if reader.timestamps is not None:
        metadata["timestamps"] = reader.timestamps
    kwargs = {
        "name": f"video: {Path(p).name}",
        "contrast_limits": (0, 255),
        "rgb": data.ndim == 4 and data.shape[-1] == 3,
        "axis_labels": AXIS_LABELS,
        "metadata": metadata,
    }
    return [(data, kwargs, "image")]


def read_skeleton(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """One empty ``poses: <skeleton>`` Points layer per skeleton in the file, carrying it in metadata."""
    from napari_posetrack.core.io.skeleton_json import load_skeletons_json
    from napari_posetrack.layers import empty_points_for_skeleton

    p = _single_path(path)
    layers = [empty_points_for_skeleton(sk) for sk in load_skeletons_json(p)]
    return layers
