"""Find videos of a moved project: stored paths that no longer exist are looked up by file name.

Labels files store video paths as they were on the machine that wrote them (often relative
to another working directory, sometimes Windows-style). :func:`resolve_video_paths` tries,
in order: the stored path, the stored path relative to the labels file's folder, the file
name next to the labels file, then the file name in each folder the user names. Videos it
cannot find stay in the labels (marked missing by ``Labels.missing_videos()``) and a
``UserWarning`` says how to point them at the right file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath

from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.core.labels import Labels, Video


def _file_name(path: str) -> str:
    """File name of a POSIX or Windows-style path."""
    return PureWindowsPath(path).name if "\\" in path else Path(path).name


def _relative_parts(path: str) -> Path | None:
    """The stored path as a relative POSIX path (None for absolute paths)."""
    posix = path.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(path).drive:
        return None
    return Path(posix)


def _candidates(path: str, folders: Sequence[Path]) -> list[Path]:
    """Places a stored video path may now be, most specific first."""
    out = [Path(path.replace("\\", "/")) if "\\" in path and not PureWindowsPath(path).drive else Path(path)]
    rel = _relative_parts(path)
    name = _file_name(path)
    for folder in folders:
        if rel is not None:
            out.append(folder / rel)
        if name:
            out.append(folder / name)
    return out


def _find_file(path: str, folders: Sequence[Path]) -> str | None:
    for cand in _candidates(path, folders):
        if cand.is_file():
            return str(cand)
    return None


def _find_image_list(paths: list[str], folders: Sequence[Path]) -> list[str] | None:
    """Resolve an image-folder video: every image must be found in the same place."""
    if not paths:
        return None
    first = _find_file(paths[0], folders)
    if first is None:
        return None
    found_dir = Path(first).parent
    moved = [str(found_dir / _file_name(p)) for p in paths]
    if all(os.path.isfile(p) for p in moved):
        return moved
    resolved = [_find_file(p, folders) for p in paths]
    return None if any(r is None for r in resolved) else [str(r) for r in resolved]


def _fill_metadata(video: Video) -> None:
    """Fill unknown ``n_frames``/``shape``/``fps`` from the video file's header, if the reader exists.

    Only called when the labels file stored none of them; a failing probe leaves them unknown
    rather than failing the load.
    """
    try:
        from napari_posetrack.core.video import probe_video
    except ImportError:
        return
    try:
        probed = probe_video(video.path)
    except (
        PoseTrackError,
        OSError,
        ValueError,
        RuntimeError,
    ):  # a broken video must not stop the labels loading
        return
    if video.n_frames is None:
        video.n_frames = probed.n_frames
    if video.shape is None:
        video.shape = probed.shape
    if video.fps is None:
        video.fps = probed.fps


def resolve_video_paths(
    labels: Labels,
    labels_path: str | os.PathLike[str] | None,
    search_paths: Sequence[str | os.PathLike[str]] = (),
    *,
    probe: bool = True,
    warn: bool = True,
) -> list[str]:
    """Point videos whose stored path is missing at the same file found elsewhere; in place.

    Parameters
    ----------
    labels
        Labels whose ``videos`` are updated.
    labels_path
        The labels file the videos came from; its folder is searched first.
    search_paths
        More folders to look in (for the file name, and for the stored relative path).
    probe
        Fill ``n_frames``/``shape``/``fps`` from found video files when the labels stored none.
    warn
        Emit a ``UserWarning`` listing videos that are still missing.

    Returns
    -------
    list of str
        Stored paths of videos still missing (embedded videos never are).
    """
    folders: list[Path] = []
    if labels_path is not None:
        folders.append(Path(os.fspath(labels_path)).resolve().parent)
    folders.extend(Path(os.fspath(p)) for p in search_paths)
    missing: list[str] = []
    for video in labels.videos:
        if video.backend == "embedded":
            continue
        if isinstance(video.path, list):
            found_list = video.path if video.exists else _find_image_list(video.path, folders)
            if found_list is None:
                missing.append(video.filename)
            else:
                video.path = found_list
            continue
        found = video.path if os.path.isfile(video.path) else _find_file(video.path, folders)
        if found is None:
            missing.append(video.path)
            continue
        video.path = found
        if probe and video.backend == "pyav" and (video.n_frames is None or video.shape is None):
            _fill_metadata(video)
    if missing and warn:
        where = "next to the labels file" + (
            " and in " + ", ".join(map(str, search_paths)) if search_paths else ""
        )
        listed = "\n  ".join(missing)
        warnings.warn(
            f"{len(missing)} video(s) referenced by {labels_path} were not found "
            f"(looked {where}):\n  {listed}\n"
            "The labels are loaded; point each video at its file with "
            "labels.replace_video(old_path, new_path), or pass search_paths=[folder] when loading.",
            UserWarning,
            stacklevel=2,
        )
    return missing
