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
from pathlib import Path, PurePosixPath, PureWindowsPath

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


# --------------------------------------------------------------------------- replacing moved videos
# SLEAP's "Replace Videos": the user points one missing video at its new file; the change of folder
# this shows (old prefix -> new prefix) is tried on every other missing video, and kept where the
# file it gives exists.


def _parts(path: str) -> tuple[tuple[str, ...], bool]:
    """Components of a POSIX or Windows-style path, and whether it is Windows-style."""
    windows = "\\" in path or bool(PureWindowsPath(path).drive)
    return (PureWindowsPath(path).parts if windows else PurePosixPath(path).parts), windows


def prefix_change(old_path: str, new_path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """The folder change that turns ``old_path`` into ``new_path``: ``(old prefix, new prefix)``.

    The two paths share their trailing components (at least the file name); what comes before is
    the prefix. ``None`` when the file names differ (a renamed file says nothing about the others).

    Examples
    --------
    >>> prefix_change("/lab/2023/mouse1/a.mp4", "/data/2023/mouse1/a.mp4")
    ('/lab', '/data')
    """
    old_parts, old_windows = _parts(old_path)
    new_parts, _ = _parts(os.fspath(new_path))
    if not old_parts or not new_parts or old_parts[-1] != new_parts[-1]:
        return None
    shared = 0
    while (
        shared < min(len(old_parts), len(new_parts))
        and old_parts[-1 - shared] == new_parts[-1 - shared]
    ):
        shared += 1
    old_prefix = old_parts[: len(old_parts) - shared]
    new_prefix = new_parts[: len(new_parts) - shared]
    join_old = PureWindowsPath if old_windows else PurePosixPath
    old_str = str(join_old(*old_prefix)) if old_prefix else ""
    new_str = str(Path(*new_prefix)) if new_prefix else ""
    return old_str, new_str


def apply_prefix_change(old_path: str, change: tuple[str, str]) -> Path | None:
    """``old_path`` with the old prefix of ``change`` replaced by its new prefix (``None``: not under it)."""
    old_prefix, new_prefix = change
    parts, _ = _parts(old_path)
    prefix_parts, _ = _parts(old_prefix) if old_prefix else ((), False)
    if tuple(parts[: len(prefix_parts)]) != tuple(prefix_parts) or len(parts) <= len(prefix_parts):
        return None
    if not prefix_parts and (parts[0] in ("/", "\\") or PureWindowsPath(parts[0]).drive):
        return None  # an empty old prefix only says where relative paths went
    rest = parts[len(prefix_parts):]
    return Path(new_prefix, *rest) if new_prefix else Path(*rest)


def find_in_folder(old_path: str, folder: str | os.PathLike[str], *, max_files: int = 200_000) -> Path | None:
    """Look for a moved video in ``folder`` and below it.

    Tried in order: the stored path's trailing folders under ``folder`` (longest first, so
    ``old/2023/a.mp4`` finds ``folder/2023/a.mp4`` before another ``a.mp4``), then the file name
    anywhere below ``folder`` (the shallowest match; at most ``max_files`` entries are looked at).

    Raises
    ------
    MissingFileError
        ``folder`` is not a folder.
    """
    from napari_posetrack.core.errors import MissingFileError

    root = Path(os.fspath(folder))
    if not root.is_dir():
        raise MissingFileError(root, "not a folder to search for videos")
    parts, _ = _parts(old_path)
    parts = tuple(p for p in parts if p not in ("/", "\\") and not PureWindowsPath(p).drive)
    for start in range(len(parts)):
        cand = root.joinpath(*parts[start:])
        if cand.is_file():
            return cand
    name = parts[-1] if parts else ""
    if not name:
        return None
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if name in filenames:
            return Path(dirpath) / name
        seen += len(filenames) + len(dirnames)
        if seen > max_files:
            break
    return None


def propagate_replacement(
    old_path: str, new_path: str | os.PathLike[str], others: Sequence[str]
) -> dict[str, str]:
    """New paths of ``others`` that moved the way ``old_path`` moved to ``new_path``.

    Only paths under the same old prefix whose new file exists are returned (old -> new).
    """
    change = prefix_change(old_path, new_path)
    found: dict[str, str] = {}
    if change is None:
        return found
    for other in others:
        if other == old_path:
            continue
        cand = apply_prefix_change(other, change)
        if cand is not None and cand.is_file():
            found[other] = str(cand)
    return found


def replace_videos(labels: Labels, replacements: dict[str, str], *, probe: bool = True) -> list[int]:
    """Point each video whose stored path is a key of ``replacements`` at the new file; in place.

    Parameters
    ----------
    labels
        Labels whose videos change.
    replacements
        Old stored path -> new path; every new path must be an existing file.
    probe
        Fill unknown ``n_frames``/``shape``/``fps`` from the new files.

    Returns
    -------
    list of int
        Indices of the videos changed.

    Raises
    ------
    MissingFileError
        A new path is not a file (nothing is changed then).
    """
    from napari_posetrack.core.errors import MissingFileError

    for new in replacements.values():
        if not os.path.isfile(new):
            raise MissingFileError(new, "the replacement video is not a file")
    changed: list[int] = []
    for i, video in enumerate(labels.videos):
        if isinstance(video.path, list) or video.path not in replacements:
            continue
        labels.replace_video(i, replacements[video.path])
        if probe and video.backend == "pyav" and (video.n_frames is None or video.shape is None):
            _fill_metadata(video)
        changed.append(i)
    return changed


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
