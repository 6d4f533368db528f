"""Frames embedded in SLEAP package files (``.pkg.slp``), read as a video.

A package stores, per video ``i``, a group ``video{i}`` holding ``video`` (one encoded image per
row: PNG/JPEG bytes as int8, variable-length or zero-padded fixed-length rows; or the pixels
themselves, a ``(frames, height, width[, channels])`` array without a ``format`` attribute, which
sleap-io reads as raw ``"hdf5"`` frames, ``(frames, channels, width, height)`` when the video's
``input_format`` is ``channels_first``),
``frame_numbers`` (the source-video frame index of each row) and ``source_video`` (the JSON of
the video the frames came from, in the ``json`` attribute). The ``video`` dataset's attributes
give ``format``, ``height``, ``width``, ``channels`` and, in newer files, ``channel_order``
(files older than format 1.4 without it hold OpenCV-encoded BGR colour images). Writing
packages stays with the labels format, in ``core.io.slp_embedded``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from typing import Any

import h5py
import numpy as np

from ..errors import FileFormatError, MissingFileError
from ..labels import Video
from .base import VideoReader

DEFAULT_DATASET = "video0/video"
RAW_FORMAT = "hdf5"
"""``image_format`` of frames stored as pixel arrays (sleap-io's name for them)."""


def _attr_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_image(buf: np.ndarray, channel_order: str) -> np.ndarray:
    """Decode one encoded image (PNG/JPEG bytes) to ``(H, W, C)`` uint8 with RGB channel order."""
    import cv2

    img = cv2.imdecode(np.ascontiguousarray(buf).view(np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("image bytes could not be decoded")
    if img.dtype != np.uint8:
        img = (img // 257).astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    # OpenCV decodes to BGR; the bytes hold RGB when the writer said so
    if img.shape[2] == 3 and channel_order.upper() == "RGB":
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img)


class EmbeddedFrameReader(VideoReader):
    """Frames stored inside a ``.pkg.slp`` file, with the common ``VideoReader`` interface
    (frame cache, ``frames``, ``iter_frames``, ``to_dask``, ``metadata``).

    Frame ``i`` is the frame with source index ``i`` (the index labels use). Only the frames
    listed in ``frame_numbers`` are stored; any other index within ``n_frames`` reads as a black
    frame so a whole-video view (napari slider) works; :meth:`has_frame` tells them apart.
    Content is grayscale when the package stores one channel.

    Parameters
    ----------
    video
        A :class:`Video` with ``backend == "embedded"`` (its ``path`` is the package file and
        ``backend_metadata["dataset"]`` names the dataset), or the package path.
    dataset
        The images dataset, e.g. ``"video0/video"`` (default: from ``video``, else ``video0/video``).
    rgb
        Return 3 channels even for grayscale content.
    cache_size
        Decoded frames kept in the LRU cache.
    """

    backend = "embedded"

    def __init__(
        self,
        video: Video | str | os.PathLike[str],
        dataset: str | None = None,
        *,
        rgb: bool = False,
        cache_size: int = 16,
    ) -> None:
        super().__init__(cache_size)
        if isinstance(video, Video):
            path = video.filename
            dataset = dataset or video.backend_metadata.get("dataset") or DEFAULT_DATASET
            fps = video.fps
            n_frames_hint = video.n_frames
            channels_first = video.backend_metadata.get("input_format") == "channels_first"
        else:
            path = os.fspath(video)
            fps = None
            n_frames_hint = None
            channels_first = False
        dataset = dataset or DEFAULT_DATASET
        if dataset.endswith("/") or "/" not in dataset:
            dataset = dataset.rstrip("/") + "/video"
        self.path = str(path)
        self.dataset = dataset
        self.rgb = bool(rgb)
        self._lock = threading.Lock()
        self._file: h5py.File | None = None
        if not os.path.exists(self.path):
            raise MissingFileError(self.path)
        self._open()
        try:
            attrs = self._ds.attrs
            # rows of pixels (rank 3 or 4, fixed-size numbers) need no format; encoded rows default to PNG
            is_array = self._ds.ndim in (3, 4) and self._ds.dtype.kind in "uifb"
            self.image_format = _attr_str(attrs.get("format", RAW_FORMAT if is_array else "png")).lower()
            self.channels_first = channels_first
            if self.image_format == RAW_FORMAT:
                if not is_array:
                    raise FileFormatError(
                        self.path,
                        f"{dataset}: raw frames need a (frames, height, width[, channels]) array of numbers, "
                        f"found shape {self._ds.shape} of {self._ds.dtype}",
                    )
                if self._ds.dtype not in (np.uint8, np.uint16, np.bool_):
                    raise FileFormatError(
                        self.path,
                        f"{dataset}: raw frames of {self._ds.dtype} are not supported (uint8 or uint16)",
                    )
            elif self.image_format not in ("png", "jpg", "jpeg"):
                raise FileFormatError(
                    self.path, f"{dataset}: unsupported embedded image format {self.image_format!r}"
                )
            if "channel_order" in attrs:
                self.channel_order = _attr_str(attrs["channel_order"])
            else:
                f = self._file
                fmt = f["metadata"].attrs.get("format_id", 1.0) if f is not None and "metadata" in f else 1.0
                self.channel_order = "BGR" if float(fmt) < 1.4 else "RGB"
            group = self._ds.parent
            numbers = group["frame_numbers"][()] if "frame_numbers" in group else np.arange(self._ds.shape[0])
            self.frame_numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
            if len(self.frame_numbers) != self._ds.shape[0]:
                raise FileFormatError(
                    self.path,
                    f"{dataset}: {self._ds.shape[0]} images but {len(self.frame_numbers)} frame numbers",
                )
            self._row_of = {int(f): r for r, f in enumerate(self.frame_numbers)}
            height, width, channels = attrs.get("height"), attrs.get("width"), attrs.get("channels")
            if self.image_format == RAW_FORMAT and (height is None or width is None or channels is None):
                height, width, channels = self._raw_to_frame(
                    np.zeros(self._ds.shape[1:], self._ds.dtype)
                ).shape
            if height is None or width is None or channels is None:
                if len(self.frame_numbers) == 0:
                    raise FileFormatError(self.path, f"{dataset}: no images and no stored frame size")
                height, width, channels = self._decode_row(0).shape
            stored_frames = int(attrs.get("frames", 0) or 0)
            last = int(self.frame_numbers.max()) + 1 if len(self.frame_numbers) else 0
            self.n_frames = max(stored_frames, last, int(n_frames_hint or 0))
            self._height, self._width = int(height), int(width)
            self.grayscale = int(channels) == 1
            stored_fps = attrs.get("fps")
            self.fps = float(stored_fps) if stored_fps is not None else fps
        except FileFormatError:
            self.close()
            raise
        except (KeyError, ValueError, OSError) as exc:
            self.close()
            raise FileFormatError(self.path, f"{dataset}: unreadable embedded frames ({exc})") from exc

    def _open(self) -> None:
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise FileFormatError(self.path, f"cannot open as HDF5 ({exc})") from exc
        if self.dataset not in self._file:
            self.close()
            raise FileFormatError(self.path, f"no embedded frames dataset {self.dataset!r}")
        self._ds = self._file[self.dataset]

    # ----------------------------------------------------------------- state
    def __getstate__(self) -> dict[str, Any]:
        # HDF5 handles and the lock stay behind; a reader sent to a dask worker reopens the file.
        state = super().__getstate__()
        for key in ("_lock", "_file", "_ds"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._lock = threading.Lock()
        self._file = None
        self._open()

    # ----------------------------------------------------------------- reading
    def _raw_to_frame(self, pixels: np.ndarray) -> np.ndarray:
        """One stored pixel array as ``(H, W, C)`` uint8, channels as stored (sleap-io's reading)."""
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        elif self.channels_first:
            pixels = np.transpose(pixels, (2, 1, 0))  # stored (C, W, H)
        if pixels.dtype == np.uint16:
            pixels = (pixels // 257).astype(np.uint8)
        elif pixels.dtype == np.bool_:
            pixels = pixels.astype(np.uint8) * 255
        return np.ascontiguousarray(pixels[:, :, :3], dtype=np.uint8)

    def _decode_row(self, row: int) -> np.ndarray:
        with self._lock:
            if self._file is None:
                self._open()  # closed readers reopen, as the other backends do
            buf = self._ds[row]
        if self.image_format == RAW_FORMAT:
            return self._raw_to_frame(np.asarray(buf))
        try:
            return decode_image(np.asarray(buf), self.channel_order)
        except ValueError as exc:
            raise FileFormatError(self.path, f"{self.dataset} row {row}: {exc}") from exc

    def _read_rgb(self, index: int) -> np.ndarray:
        row = self._row_of.get(index)
        if row is None:
            return np.zeros((self._height, self._width, 1 if self.grayscale else 3), dtype=np.uint8)
        return self._decode_row(row)

    def has_frame(self, i: int) -> bool:
        """Whether source frame ``i`` is stored in the package."""
        return int(i) in self._row_of

    def raw(self, i: int) -> np.ndarray:
        """The stored encoded bytes (int8) of source frame ``i`` (for copying without re-encoding).

        Raw pixel frames (``image_format == "hdf5"``) have no bytes to copy: use :meth:`frame`.
        """
        if self.image_format == RAW_FORMAT:
            raise ValueError(f"{self.path}: {self.dataset} stores pixels, not encoded images")
        row = self._row_of[int(i)]
        with self._lock:
            if self._file is None:
                self._open()
            return np.asarray(self._ds[row]).reshape(-1)

    def source_video_json(self) -> dict[str, Any] | None:
        """The JSON dict of the video the frames came from, if stored."""
        with self._lock:
            if self._file is None:
                self._open()
            group = self._ds.parent
            if "source_video" not in group:
                return None
            src = group["source_video"]
            blob = src["json"][()] if "json" in src else src.attrs.get("json")
        return None if blob is None else json.loads(blob)

    def close(self) -> None:
        """Close the package file and clear the cache (a later read reopens it)."""
        file, self._file = getattr(self, "_file", None), None
        if file is not None:
            file.close()
        if hasattr(self, "_cache"):
            super().close()

    def __del__(self) -> None:
        # h5py handles left open keep the file locked on Windows; closing twice is harmless.
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn down h5py
            self.close()
