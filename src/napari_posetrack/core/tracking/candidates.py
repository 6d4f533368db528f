"""Where each live track (or tracklet) is expected on the current frame: the candidates.

``simple`` candidates are each unit's last observed pose; ``flow`` candidates are that pose
carried frame to frame by Lucas-Kanade optical flow. With the motion prior, a constant-velocity
shift of the unit's centroid is added (for ``simple``; flow already follows the motion).
A unit stays a candidate while fewer than ``window`` frames have elapsed since it was last seen.
"""

from __future__ import annotations

import numpy as np

from .similarity import centroids

CANDIDATES = ("simple", "flow")


class UnitState:
    """Growable per-unit arrays (a unit is a track, or a tracklet when stitching).

    ``points`` holds the last observed pose (nodes missing in that observation keep their older
    position), ``frame`` the frame it was seen on, ``velocity`` a smoothed centroid velocity in
    pixels per frame, ``shifted`` the flow-carried pose, ``active`` the ids still in the window.
    """

    def __init__(self, n_nodes: int, capacity: int = 64, track_flow: bool = True) -> None:
        self.track_flow = track_flow  # keep ``shifted`` up to date (flow candidates only)
        self.n = 0
        self.points = np.full((capacity, n_nodes, 2), np.nan)
        self.shifted = np.full((capacity, n_nodes, 2), np.nan)
        self.frame = np.zeros(capacity, dtype=np.int64)
        self.velocity = np.zeros((capacity, 2))
        self.centroid = np.full((capacity, 2), np.nan)
        self.active = np.zeros(0, dtype=np.int64)

    def _grow(self, need: int) -> None:
        cap = len(self.frame)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        for name in ("points", "shifted", "frame", "velocity", "centroid"):
            old = getattr(self, name)
            fill = np.nan if old.dtype.kind == "f" and name != "velocity" else 0
            arr = np.full((new, *old.shape[1:]), fill, dtype=old.dtype)
            arr[: self.n] = old[: self.n]
            setattr(self, name, arr)

    def spawn(self, poses: np.ndarray, frame: int) -> np.ndarray:
        """Create one unit per pose seen on ``frame``; returns their ids (they become active)."""
        m = len(poses)
        if m == 0:
            return np.zeros(0, dtype=np.int64)
        self._grow(self.n + m)
        ids = np.arange(self.n, self.n + m)
        self.points[ids] = poses
        self.shifted[ids] = poses
        self.frame[ids] = frame
        self.velocity[ids] = 0.0
        self.centroid[ids] = centroids(poses)
        self.n += m
        self.active = np.concatenate([self.active, ids])
        return ids

    def observe(self, ids: np.ndarray, poses: np.ndarray, frame: int, smoothing: float = 0.5) -> None:
        """Record that units ``ids`` were seen at ``poses`` on ``frame`` (updates velocity)."""
        if len(ids) == 0:
            return
        dt = np.maximum(frame - self.frame[ids], 1)[:, None]
        old = self.points[ids]
        merged = np.where(np.isnan(poses), old, poses)
        new_c = centroids(merged)
        step = (new_c - self.centroid[ids]) / dt
        step[np.isnan(step)] = 0.0
        self.velocity[ids] = smoothing * self.velocity[ids] + (1 - smoothing) * step
        self.centroid[ids] = new_c
        self.points[ids] = merged
        if self.track_flow:
            self.shifted[ids] = merged
        self.frame[ids] = frame

    def close(self, ids: np.ndarray) -> None:
        """Remove units from the candidates (a tracklet ended)."""
        if len(ids):
            self.active = self.active[~np.isin(self.active, ids)]

    def expire(self, frame: int, window: int) -> None:
        """Drop units last seen more than ``window`` frames before ``frame``."""
        if len(self.active):
            self.active = self.active[frame - self.frame[self.active] <= window]

    def candidates(self, frame: int, method: str, motion: bool) -> tuple[np.ndarray, np.ndarray]:
        """Active unit ids and their expected poses ``(C, K, 2)`` on ``frame``."""
        ids = self.active
        if method == "flow":
            return ids, self.shifted[ids]
        poses = self.points[ids]
        if motion and len(ids):
            dt = (frame - self.frame[ids]).astype(np.float64)
            poses = poses + (self.velocity[ids] * dt[:, None])[:, None, :]
        return ids, poses
