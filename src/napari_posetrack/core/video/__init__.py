"""Frame-exact video readers: video files (PyAV), image folders/lists, lazy dask arrays.

Every reader returns frames as ``(H, W, C)`` uint8 arrays, ``C == 1`` for grayscale content
(unless ``rgb=True``) and ``C == 3`` otherwise. Frame ``i`` is the ``i``-th frame in
presentation order, exactly the frame a plain sequential decode of the file yields at that
position.

Backends: ``PyAVReader`` (``pyav.py``: video files, frame-exact random access from a packet
index), ``ImageSequenceReader`` (``images.py``: image folders and lists) and
``EmbeddedFrameReader`` (``embedded.py``: frames stored in ``.pkg.slp`` files). All share the
``VideoReader`` interface (``base.py``): ``frame``, ``frames``, ``iter_frames``, an LRU cache
of recent frames, ``to_dask``, ``metadata`` and per-frame ``timestamps`` in seconds.

``check_video`` (``check.py``) decodes a whole file once and reports damaged frames, keyframes
that cannot stand alone and timestamp irregularities; ``cached_check`` returns the last result
without decoding (for marking damaged frames on napari's time slider). What readers and checks
learn about a file is kept in the video cache (``cache.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import FileFormatError
from ..labels import Video
from .base import TRANSCODE_HINT, VideoReader, reader_to_dask
from .check import VideoCheck, VideoCheckCancelled, cached_check, check_video
from .embedded import EmbeddedFrameReader
from .images import IMAGE_EXTENSIONS, ImageSequenceReader, list_images, natural_sort_key
from .pyav import PyAVReader
from .timing import FrameTiming, frame_timing

__all__ = [
    "IMAGE_EXTENSIONS",
    "TRANSCODE_HINT",
    "EmbeddedFrameReader",
    "FrameTiming",
    "ImageSequenceReader",
    "PyAVReader",
    "VideoCheck",
    "VideoCheckCancelled",
    "VideoReader",
    "cached_check",
    "check_video",
    "frame_timing",
    "list_images",
    "natural_sort_key",
    "open_video",
    "probe_video",
    "reader_to_dask",
    "video_dask_array",
]


def _as_video(video: Video | str | os.PathLike[str] | Sequence[str]) -> Video:
    if isinstance(video, Video):
        return video
    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        if os.path.isdir(path):
            return Video(path, backend="images")
        if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
            return Video([path], backend="images")
        if path.lower().endswith(".pkg.slp"):
            return Video(path, backend="embedded")
        return Video(path, backend="pyav")
    return Video([os.fspath(p) for p in video], backend="images")


def open_video(
    video: Video | str | os.PathLike[str] | Sequence[str], *, rgb: bool = False, cache_size: int = 16
) -> VideoReader:
    """Open a reader for a video file, an image folder / image list, or embedded frames.

    Dispatches on ``Video.backend`` (``"pyav"``, ``"images"``, ``"embedded"``); a plain path is
    a video file unless it is a folder or an image file.

    Raises
    ------
    MissingFileError
        The file (or an image) is not on disk.
    FileFormatError
        The file is not a readable video.
    """
    video = _as_video(video)
    if video.backend == "embedded":
        return EmbeddedFrameReader(video, rgb=rgb, cache_size=cache_size)
    if video.backend == "images":
        return ImageSequenceReader(video.path, rgb=rgb, cache_size=cache_size, fps=video.fps)
    if video.backend == "pyav":
        if isinstance(video.path, list):
            raise FileFormatError(video.filename, "a list of paths needs the 'images' backend")
        return PyAVReader(video.path, rgb=rgb, cache_size=cache_size)
    raise FileFormatError(video.filename, f"unknown video backend {video.backend!r}")


def probe_video(video: Video | str | os.PathLike[str] | Sequence[str]) -> Video:
    """A ``Video`` with ``n_frames``, ``shape``, ``fps`` and ``backend`` filled in.

    Reads packet headers and a few keyframes (for the grayscale check), never the whole video.
    """
    source = _as_video(video)
    with open_video(source) as reader:
        probed = source.copy()
        probed.n_frames, probed.shape, probed.fps = reader.n_frames, tuple(reader.shape), reader.fps
        probed.backend = source.backend
        return probed


def video_dask_array(
    video: Video | str | os.PathLike[str] | Sequence[str] | VideoReader, *, rgb: bool = False
) -> Any:
    """A lazy dask array of a video: ``(T, H, W)`` (grayscale) or ``(T, H, W, 3)``, 1-frame chunks.

    Building it reads only the packet index; frames decode when a slice is computed. For the
    layer metadata (path, fps), open the reader and use ``reader.to_dask()`` with
    ``reader.metadata``.
    """
    reader = video if hasattr(video, "frame") and hasattr(video, "n_frames") else open_video(video, rgb=rgb)
    return reader_to_dask(reader)
