"""Pyramidal Lucas-Kanade optical flow: shift points from one frame to the next.

OpenCV is imported inside the functions so importing the tracking package stays light.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class FlowParams:
    """Parameters of ``cv2.calcOpticalFlowPyrLK``.

    ``window`` is the search window side in pixels, ``levels`` the pyramid depth (0 = single
    level), ``max_error`` drops points whose LK error is above it (``None`` keeps them).
    """

    window: int = 21
    levels: int = 3
    max_iterations: int = 30
    epsilon: float = 0.01
    max_error: float | None = None


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A ``(H, W)`` uint8 image from a ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` frame."""
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.shape[-1] == 1:
        return np.ascontiguousarray(frame[..., 0], dtype=np.uint8)
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def shift_points(
    prev_gray: np.ndarray, next_gray: np.ndarray, points: np.ndarray, params: FlowParams | None = None
) -> np.ndarray:
    """Move ``points`` (``(..., 2)`` ``x, y``, NaN = missing) from ``prev_gray`` to ``next_gray``.

    Points the flow loses (status 0, or error above ``params.max_error``) come back unchanged,
    so a failed flow falls back to the "simple" candidate.
    """
    import cv2

    params = params or FlowParams()
    flat = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ok = ~np.isnan(flat).any(axis=1)
    out = flat.copy()
    if not ok.any():
        return out.reshape(points.shape)
    src = flat[ok].astype(np.float32).reshape(-1, 1, 2)
    moved, status, err = cv2.calcOpticalFlowPyrLK(
        prev_gray,
        next_gray,
        src,
        None,
        winSize=(params.window, params.window),
        maxLevel=params.levels,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, params.max_iterations, params.epsilon),
    )
    good = status.reshape(-1).astype(bool)
    if params.max_error is not None:
        good &= err.reshape(-1) <= params.max_error
    shifted = np.where(good[:, None], moved.reshape(-1, 2).astype(np.float64), flat[ok])
    out[ok] = shifted
    return out.reshape(points.shape)


def gray_frames(reader, frames: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, gray image)`` for the sorted unique ``frames`` using the reader's sequential path."""
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) == 0:
        return
    wanted = set(frames.tolist())
    stop = min(int(frames.max()) + 1, len(reader))
    for idx, img in reader.iter_frames(int(frames.min()), stop):
        if idx in wanted:
            yield idx, to_gray(img)


def read_gray_frames(reader, frames: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, gray image)`` for the sorted unique ``frames``.

    Decodes forward (:func:`gray_frames`) when the frames are dense enough for that to beat seeking
    and the reader can, else reads ``reader.frame(i)`` one by one.
    """
    wanted = np.unique(np.asarray(frames, dtype=np.int64))
    if len(wanted) == 0:
        return
    span = int(wanted[-1] - wanted[0]) + 1
    if hasattr(reader, "iter_frames") and len(wanted) * 4 >= span:
        yield from gray_frames(reader, wanted)
        return
    for f in wanted.tolist():
        yield f, to_gray(np.asarray(reader.frame(int(f))))
