"""Which frames to predict on: all, a range, every n-th, labelled, suggested, or a list."""

from __future__ import annotations

import re

import numpy as np

from napari_posetrack.core.labels import USER, Labels


def parse_frame_spec(spec: str | None, n_frames: int) -> np.ndarray:
    """Frame indices from a user string.

    Accepted: ``None``/``"all"``; ``"100-200"`` (inclusive, like SLEAP's dialog); ``"::5"`` or
    ``"0:1000:10"`` (Python slice, stop exclusive); ``"1,5,9"``; and combinations separated by commas.
    Raises ``ValueError`` naming the bad part.
    """
    if spec is None or spec.strip().lower() in ("", "all"):
        return np.arange(n_frames)
    out: list[np.ndarray] = []
    for part in spec.split(","):
        part = part.strip()
        if re.fullmatch(r"\d+", part):
            out.append(np.array([int(part)]))
        elif m := re.fullmatch(r"(\d+)-(\d+)", part):
            out.append(np.arange(int(m[1]), int(m[2]) + 1))
        elif m := re.fullmatch(r"(\d*):(\d*)(?::(\d+))?", part):
            start = int(m[1]) if m[1] else 0
            stop = int(m[2]) if m[2] else n_frames
            step = int(m[3]) if m[3] else 1
            if step <= 0:
                raise ValueError(f"frame selection {part!r}: the step must be positive")
            out.append(np.arange(start, stop, step))
        else:
            raise ValueError(f"cannot read frame selection {part!r}; use e.g. 'all', '100-200', '::10' or '3,7,9'")
    frames = np.unique(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)
    bad = frames[(frames < 0) | (frames >= n_frames)]
    if len(bad):
        raise ValueError(f"frame {int(bad[0])} is outside the video (0 to {n_frames - 1})")
    return frames.astype(np.int64)


def select_frames(labels: Labels, video: int, target: str, n_frames: int) -> np.ndarray:
    """Frames of ``video`` for a named target: ``"all"``, ``"labelled"`` (user-labelled frames),
    ``"unlabelled"``, ``"suggested"``, or any :func:`parse_frame_spec` string."""
    target_l = target.strip().lower()
    if target_l in ("labelled", "labeled", "user"):
        return labels.labeled_frames(video=video, kind=USER)[:, 1]
    if target_l in ("unlabelled", "unlabeled"):
        return np.setdiff1d(np.arange(n_frames), labels.labeled_frames(video=video, kind=USER)[:, 1])
    if target_l in ("suggested", "suggestions"):
        return np.unique(np.array([s.frame for s in labels.suggestions if s.video == video], dtype=np.int64))
    return parse_frame_spec(target, n_frames)
