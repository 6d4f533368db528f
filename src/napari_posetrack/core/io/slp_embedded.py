"""Frames embedded in SLEAP package files (``.pkg.slp``): writing them.

A package stores, per video ``i``, a group ``video{i}`` holding ``video`` (one encoded image per
row: PNG/JPEG bytes as int8), ``frame_numbers`` (the source-video frame index of each row) and
``source_video`` (the JSON of the video the frames came from). Reading them is a video reader,
:class:`napari_posetrack.core.video.embedded.EmbeddedFrameReader` (importable from here too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from napari_posetrack.core.video.embedded import DEFAULT_DATASET, EmbeddedFrameReader

__all__ = [
    "DEFAULT_DATASET",
    "EmbeddedFrameReader",
    "encode_png",
    "write_embedded_array",
    "write_embedded_video",
]

_ATTR_LIMIT = 60_000


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
    _write_frame_numbers_and_source(f, group, frame_numbers, source_video_json)
    return name


def write_embedded_array(
    f: h5py.File,
    group: str,
    frame_numbers: Sequence[int] | np.ndarray,
    frames: np.ndarray,
    *,
    n_frames: int | None = None,
    fps: float | None = None,
    source_video_json: dict[str, Any] | None = None,
) -> str:
    """Write frames as a raw ``(N, H, W, C)`` uint8 array into ``f[group]``; returns the dataset name.

    This is how packages that stored pixels rather than encoded images are written back: no
    ``format`` attribute, so SLEAP and sleap-io read the rows as pixels (channels last). One chunk
    per frame, gzip-compressed, so a reader decompresses only the frames it shows.
    """
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or len(frames) != len(frame_numbers):
        raise ValueError(f"expected ({len(frame_numbers)}, H, W, C) frames, got shape {frames.shape}")
    name = f"{group}/video"
    chunks = (1, *frames.shape[1:]) if len(frames) else None
    ds = f.create_dataset(name, data=frames, chunks=chunks, compression="gzip" if chunks else None)
    _, h, w, c = frames.shape
    ds.attrs["frames"] = int(n_frames if n_frames is not None else (max(frame_numbers, default=-1) + 1))
    ds.attrs["height"], ds.attrs["width"], ds.attrs["channels"] = int(h), int(w), int(c)
    if fps is not None:
        ds.attrs["fps"] = float(fps)
    _write_frame_numbers_and_source(f, group, frame_numbers, source_video_json)
    return name


def _write_frame_numbers_and_source(
    f: h5py.File,
    group: str,
    frame_numbers: Sequence[int] | np.ndarray,
    source_video_json: dict[str, Any] | None,
) -> None:
    f.create_dataset(f"{group}/frame_numbers", data=np.asarray(frame_numbers, dtype=np.int64))
    src = f.require_group(f"{group}/source_video")
    if source_video_json is not None:
        blob = json.dumps(source_video_json, separators=(",", ":"))
        if len(blob.encode()) <= _ATTR_LIMIT:
            src.attrs["json"] = blob
        else:  # HDF5 attributes hold at most 64 KiB; sleap-io reads a "json" dataset as well
            src.create_dataset("json", data=np.bytes_(blob))
