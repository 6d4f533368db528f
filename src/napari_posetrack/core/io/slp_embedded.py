"""Frames embedded in SLEAP package files (``.pkg.slp``): reading and writing.

A package stores, per video ``i``, a group ``video{i}`` holding ``video`` (one encoded image per
row: PNG/JPEG bytes as int8, variable-length or zero-padded fixed-length rows),
``frame_numbers`` (the source-video frame index of each row) and ``source_video`` (the JSON of
the video the frames came from, in the ``json`` attribute). The ``video`` dataset's attributes
give ``format``, ``height``, ``width``, ``channels`` and, in newer files, ``channel_order``
(files older than format 1.4 without it hold OpenCV-encoded BGR colour images).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import h5py
import numpy as np

from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.labels import Video

DEFAULT_DATASET = "video0/video"
_ATTR_LIMIT = 60_000


def _attr_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_image(buf: np.ndarray, channel_order: str) -> np.ndarray:
    """Decode one encoded image to ``(H, W, C)`` uint8 with RGB channel order."""
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


def encode_png(frame: np.ndarray) -> np.ndarray:
    """PNG bytes (as an int8 vector, the layout SLEAP stores) of an RGB or grayscale uint8 frame."""
    import cv2

    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    elif frame.ndim == 3 and frame.shape[2] == 3:
        frame = frame[:, :, ::-1]  # cv2 writes BGR input as true colour, so RGB goes in reversed
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame, dtype=np.uint8))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.reshape(-1).view(np.int8)


class EmbeddedFrameReader:
    """Frames stored inside a ``.pkg.slp`` file, with the common ``VideoReader`` interface.

    Frame ``i`` is the frame with source index ``i`` (the index labels use). Only the frames
    listed in ``frame_numbers`` are stored; any other index within ``n_frames`` reads as a black
    frame so a whole-video view (napari slider) works; :meth:`has_frame` tells them apart.

    Parameters
    ----------
    video
        A :class:`Video` with ``backend == "embedded"`` (its ``path`` is the package file and
        ``backend_metadata["dataset"]`` names the dataset), or the package path.
    dataset
        The images dataset, e.g. ``"video0/video"`` (default: from ``video``, else ``video0/video``).
    rgb
        Return 3 channels even for grayscale content.
    """

    def __init__(
        self, video: Video | str | os.PathLike[str], dataset: str | None = None, *, rgb: bool = False
    ):
        if isinstance(video, Video):
            path = video.filename
            dataset = dataset or video.backend_metadata.get("dataset") or DEFAULT_DATASET
            fps = video.fps
            n_frames_hint = video.n_frames
        else:
            path = os.fspath(video)
            fps = None
            n_frames_hint = None
        dataset = dataset or DEFAULT_DATASET
        if dataset.endswith("/") or "/" not in dataset:
            dataset = dataset.rstrip("/") + "/video"
        self.path = str(path)
        self.dataset = dataset
        self.rgb = rgb
        self._lock = threading.Lock()
        if not os.path.exists(self.path):
            raise MissingFileError(self.path)
        try:
            self._file: h5py.File | None = h5py.File(self.path, "r")
        except OSError as exc:
            raise FileFormatError(self.path, f"cannot open as HDF5 ({exc})") from exc
        try:
            if dataset not in self._file:
                raise FileFormatError(self.path, f"no embedded frames dataset {dataset!r}")
            ds = self._file[dataset]
            group = ds.parent
            attrs = ds.attrs
            self.image_format = _attr_str(attrs.get("format", "png"))
            if self.image_format not in ("png", "jpg", "jpeg"):
                raise FileFormatError(
                    self.path, f"{dataset}: unsupported embedded image format {self.image_format!r}"
                )
            if "channel_order" in attrs:
                self.channel_order = _attr_str(attrs["channel_order"])
            else:
                fmt = self._file["metadata"].attrs.get("format_id", 1.0) if "metadata" in self._file else 1.0
                self.channel_order = "BGR" if float(fmt) < 1.4 else "RGB"
            numbers = group["frame_numbers"][()] if "frame_numbers" in group else np.arange(ds.shape[0])
            self.frame_numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
            if len(self.frame_numbers) != ds.shape[0]:
                raise FileFormatError(
                    self.path, f"{dataset}: {ds.shape[0]} images but {len(self.frame_numbers)} frame numbers"
                )
            self._row_of = {int(f): r for r, f in enumerate(self.frame_numbers)}
            self._ds = ds
            height = attrs.get("height")
            width = attrs.get("width")
            channels = attrs.get("channels")
            if height is None or width is None or channels is None:
                if len(self.frame_numbers) == 0:
                    raise FileFormatError(self.path, f"{dataset}: no images and no stored frame size")
                first = self._decode_row(0)
                height, width, channels = first.shape
            stored_frames = int(attrs.get("frames", 0) or 0)
            last = int(self.frame_numbers.max()) + 1 if len(self.frame_numbers) else 0
            self.n_frames = max(stored_frames, last, int(n_frames_hint or 0))
            self.grayscale = int(channels) == 1
            out_channels = 3 if (rgb and self.grayscale) else int(channels)
            self.shape: tuple[int, int, int] = (int(height), int(width), out_channels)
            stored_fps = attrs.get("fps")
            self.fps: float | None = float(stored_fps) if stored_fps is not None else fps
        except FileFormatError:
            self.close()
            raise
        except (KeyError, ValueError, OSError) as exc:
            self.close()
            raise FileFormatError(self.path, f"{dataset}: unreadable embedded frames ({exc})") from exc

    backend = "embedded"

    @property
    def metadata(self) -> dict[str, Any]:
        """What a napari layer wants to know about this video (same keys as ``core.video`` readers)."""
        from napari_posetrack.core.video.base import reader_metadata

        return reader_metadata(self)

    def to_dask(self) -> Any:
        """A lazy ``dask.array`` over all ``n_frames`` frames (1-frame chunks)."""
        from napari_posetrack.core.video import reader_to_dask

        return reader_to_dask(self)

    # reading -------------------------------------------------------------------
    def _decode_row(self, row: int) -> np.ndarray:
        if self._file is None:
            raise ValueError(f"{self.path}: reader is closed")
        with self._lock:
            buf = self._ds[row]
        try:
            return _decode_image(np.asarray(buf), self.channel_order)
        except ValueError as exc:
            raise FileFormatError(self.path, f"{self.dataset} row {row}: {exc}") from exc

    def has_frame(self, i: int) -> bool:
        """Whether source frame ``i`` is stored in the package."""
        return int(i) in self._row_of

    def __len__(self) -> int:
        return self.n_frames

    def frame(self, i: int) -> np.ndarray:
        """Source frame ``i`` as ``(H, W, C)`` uint8; black when the package does not hold it."""
        i = int(i)
        if i < 0:
            i += self.n_frames
        if not 0 <= i < self.n_frames:
            raise IndexError(f"{self.path}: frame {i} out of range (0..{self.n_frames - 1})")
        row = self._row_of.get(i)
        if row is None:
            return np.zeros(self.shape, dtype=np.uint8)
        img = self._decode_row(row)
        if self.rgb and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        return img

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` as ``(n, H, W, C)`` uint8."""
        idx = list(np.asarray(indices, dtype=np.int64).reshape(-1))
        out = np.empty((len(idx), *self.shape), dtype=np.uint8)
        for k, i in enumerate(idx):
            out[k] = self.frame(int(i))
        return out

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for ``range(start, stop, step)``."""
        stop = self.n_frames if stop is None else min(int(stop), self.n_frames)
        for i in range(int(start), stop, int(step)):
            yield i, self.frame(i)

    def raw(self, i: int) -> np.ndarray:
        """The stored encoded bytes (int8) of source frame ``i`` (for copying without re-encoding)."""
        row = self._row_of[int(i)]
        with self._lock:
            buf = np.asarray(self._ds[row]).reshape(-1)
        return buf

    def source_video_json(self) -> dict[str, Any] | None:
        """The JSON dict of the video the frames came from, if stored."""
        group = self._ds.parent
        if "source_video" not in group:
            return None
        src = group["source_video"]
        blob = src["json"][()] if "json" in src else src.attrs.get("json")
        return None if blob is None else json.loads(blob)

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def __enter__(self) -> EmbeddedFrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def write_embedded_video(
    f: h5py.File,
    group: str,
    frame_numbers: Sequence[int] | np.ndarray,
    images: Sequence[np.ndarray],
    *,
    height: int,
    width: int,
    channels: int,
    n_frames: int | None = None,
    fps: float | None = None,
    channel_order: str = "RGB",
    image_format: str = "png",
    source_video_json: dict[str, Any] | None = None,
) -> str:
    """Write encoded images as SLEAP embedded frames into ``f[group]``; returns the dataset name.

    ``images`` are encoded image byte vectors (int8/uint8), one per entry of ``frame_numbers``;
    they are stored as variable-length rows, which SLEAP and sleap-io both read.
    """
    if len(images) != len(frame_numbers):
        raise ValueError(f"{len(images)} images for {len(frame_numbers)} frame numbers")
    name = f"{group}/video"
    ds = f.create_dataset(name, shape=(len(images),), dtype=h5py.vlen_dtype(np.dtype("int8")))
    for row, buf in enumerate(images):
        ds[row] = np.asarray(buf).reshape(-1).view(np.int8)
    ds.attrs["format"] = image_format
    ds.attrs["channel_order"] = channel_order
    ds.attrs["frames"] = int(n_frames if n_frames is not None else (max(frame_numbers, default=-1) + 1))
    ds.attrs["height"] = int(height)
    ds.attrs["width"] = int(width)
    ds.attrs["channels"] = int(channels)
    if fps is not None:
        ds.attrs["fps"] = float(fps)
    f.create_dataset(f"{group}/frame_numbers", data=np.asarray(frame_numbers, dtype=np.int64))
    src = f.require_group(f"{group}/source_video")
    if source_video_json is not None:
        blob = json.dumps(source_video_json, separators=(",", ":"))
        if len(blob.encode()) <= _ATTR_LIMIT:
            src.attrs["json"] = blob
        else:  # HDF5 attributes hold at most 64 KiB; sleap-io reads a "json" dataset as well
            src.create_dataset("json", data=np.bytes_(blob))
    return name
