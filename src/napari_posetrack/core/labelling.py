"""Engine side of interactive labelling: where a new instance goes, and which frame comes next.

Pure numpy over :class:`~napari_posetrack.core.labels.Labels`; the labelling widget calls these.
"""

from __future__ import annotations

import warnings

import numpy as np

from napari_posetrack.core.labels import USER, Labels

DEFAULT_SPREAD = 20.0  # pixels between nodes of a template pose when nothing is labelled yet


def template_pose(labels: Labels, spread: float = DEFAULT_SPREAD) -> np.ndarray:
    """The skeleton's mean pose, centred on ``(0, 0)``: ``(n_nodes, 2)`` ``x, y`` offsets.

    The mean is taken over user instances after centring each on the centroid of its points. Nodes
    never labelled (or every node, in a new project) are laid out on a circle so each can be grabbed.
    """
    n = labels.n_nodes
    t = labels.instances
    user = t.kind == USER
    pose = np.full((n, 2), np.nan)
    if user.any():
        pts = t.points[user]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nodes never labelled: all-NaN means
            centre = np.nanmean(pts, axis=1, keepdims=True)
            pose = np.nanmean(pts - centre, axis=0)
    missing = np.isnan(pose).any(axis=-1)
    if missing.any():
        angle = 2 * np.pi * np.arange(n) / max(n, 1)
        radius = spread * max(1.0, n / (2 * np.pi))
        circle = np.column_stack([np.cos(angle), np.sin(angle)]) * radius
        pose[missing] = circle[missing]
    return pose - pose.mean(axis=0)


def nearest_labelled_frame(labels: Labels, video: int, frame: int) -> int | None:
    """The user-labelled frame of ``video`` closest to ``frame`` (not ``frame`` itself), or ``None``."""
    frames = labels.user_frames(video)
    frames = frames[frames != frame]
    if len(frames) == 0:
        return None
    return int(frames[np.argmin(np.abs(frames - frame))])


def new_instance_points(
    labels: Labels, video: int, frame: int, at_xy: tuple[float, float] | None, source: str = "mean"
) -> list[np.ndarray]:
    """Poses for new user instances on ``frame``: a list of ``(n_nodes, 2)`` arrays.

    ``source="mean"`` gives one instance, the mean pose centred at ``at_xy``. ``source="nearest"``
    copies every user instance of the nearest labelled frame (so a whole frame of animals is
    seeded at once); with ``at_xy`` and a single instance there, it is moved to ``at_xy``. Falls
    back to the mean pose when no other frame is labelled.
    """
    if source not in ("mean", "nearest"):
        raise ValueError(f"unknown new-instance source {source!r} (use 'mean' or 'nearest')")
    if source == "nearest":
        near = nearest_labelled_frame(labels, video, frame)
        if near is not None:
            t = labels.instances
            rows = labels.frame_rows(video, near)
            rows = rows[t.kind[rows] == USER]
            poses = [t.points[r].copy() for r in rows]
            if at_xy is not None and len(poses) == 1:
                poses[0] += np.asarray(at_xy, dtype=np.float64) - np.nanmean(poses[0], axis=0)
            return poses
    centre = np.asarray(at_xy if at_xy is not None else (0.0, 0.0), dtype=np.float64)
    return [template_pose(labels) + centre]


def _step(frames: np.ndarray, current: int, direction: int) -> int | None:
    frames = np.asarray(frames, dtype=np.int64)
    if direction > 0:
        later = frames[frames > current]
        return int(later.min()) if len(later) else None
    earlier = frames[frames < current]
    return int(earlier.max()) if len(earlier) else None


def next_labelled_frame(labels: Labels, video: int, current: int, direction: int = 1) -> int | None:
    """Next (``direction`` 1) or previous (-1) frame with a user instance, or ``None``."""
    return _step(labels.user_frames(video), current, direction)


def next_unlabelled_frame(labels: Labels, video: int, current: int, direction: int = 1) -> int | None:
    """Next or previous frame without any user instance, or ``None``."""
    n_frames = labels.videos[video].n_frames
    if not n_frames:
        return None
    taken = np.zeros(n_frames, dtype=bool)
    frames = labels.user_frames(video)
    taken[frames[(frames >= 0) & (frames < n_frames)]] = True
    free = np.flatnonzero(~taken)
    return _step(free, current, direction)


def next_suggested_frame(
    labels: Labels, video: int, current: int, direction: int = 1
) -> tuple[int, int] | None:
    """Next or previous suggested frame as ``(video, frame)``, moving on to other videos, or ``None``."""
    if not labels.suggestions:
        return None
    keys = np.array(sorted({(s.video, s.frame) for s in labels.suggestions}), dtype=np.int64)
    here = np.array([video, current])
    if direction > 0:
        after = (keys[:, 0] > here[0]) | ((keys[:, 0] == here[0]) & (keys[:, 1] > here[1]))
        hit = keys[after]
        return (int(hit[0, 0]), int(hit[0, 1])) if len(hit) else None
    before = (keys[:, 0] < here[0]) | ((keys[:, 0] == here[0]) & (keys[:, 1] < here[1]))
    hit = keys[before]
    return (int(hit[-1, 0]), int(hit[-1, 1])) if len(hit) else None


def accelerated_step(repeats: int) -> int:
    """Frames to move for the ``repeats``-th auto-repeat of a held step key: 1, then 2, 4, ... 64."""
    return int(min(64, 2 ** max(0, (repeats - 8) // 8)))


__all__ = [
    "accelerated_step",
    "nearest_labelled_frame",
    "new_instance_points",
    "next_labelled_frame",
    "next_suggested_frame",
    "next_unlabelled_frame",
    "template_pose",
]
