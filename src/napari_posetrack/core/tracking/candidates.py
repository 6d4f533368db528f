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

# Velocity smoothing of :meth:`UnitState.observe`. :func:`observe_sequence` reproduces its
# recursion bit for bit with one cumulative sum, which needs the weights to be exactly 1/2.
SMOOTHING = 0.5


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

    def observe(self, ids: np.ndarray, poses: np.ndarray, frame: int, smoothing: float = SMOOTHING) -> None:
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


# Bounds inside which halving and power-of-two scaling of the velocity recursion are exact:
# far from the subnormal range (2**-1022) and, after scaling by up to 2**_MAX_SCALED_FRAMES,
# from overflow.
_EXACT_LOW, _EXACT_HIGH = 2.0**-900, 2.0**600
_MAX_SCALED_FRAMES = 400


def _exactly_scalable(x: np.ndarray) -> bool:
    a = np.abs(x)
    return bool(np.all((a == 0.0) | ((a >= _EXACT_LOW) & (a <= _EXACT_HIGH))))


def observe_sequence(
    points: np.ndarray,
    centroid: np.ndarray,
    velocity: np.ndarray,
    frame: np.ndarray,
    poses: np.ndarray,
    frames: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unit states :meth:`UnitState.observe` leaves after each of ``W`` frames, all at once.

    Units start from ``points`` ``(C, K, 2)``, ``centroid`` and ``velocity`` ``(C, 2)`` last seen
    on ``frame`` ``(C,)``; on each of ``frames`` ``(W,)`` every unit is observed at ``poses``
    ``(W, C, K, 2)``. Returns ``points`` ``(W + 1, C, K, 2)``, ``centroid`` and ``velocity``
    ``(W + 1, C, 2)``, index 0 being the start, with the same bits as ``W`` calls of ``observe``.
    """
    n_w = len(frames)
    merged = np.concatenate([points[None], poses])
    missing = np.isnan(poses)
    if missing.any():
        # a node missing in an observation keeps its last seen position: carry the index of the last
        # observation that had it forward in time (a pure selection, so no rounding can differ)
        source = np.where(missing, 0, np.arange(1, n_w + 1)[:, None, None, None])
        np.maximum.accumulate(source, axis=0, out=source)
        merged[1:] = np.take_along_axis(merged, source, axis=0)
    cent = np.concatenate([centroid[None], centroids(merged[1:])])
    dt = np.empty((n_w, len(frame)), dtype=np.int64)
    dt[0] = frames[0] - frame
    dt[1:] = np.diff(frames)[:, None]
    step = (cent[1:] - cent[:-1]) / np.maximum(dt, 1)[..., None]
    step[np.isnan(step)] = 0.0
    vel = None
    if n_w <= _MAX_SCALED_FRAMES and _exactly_scalable(velocity) and _exactly_scalable(step):
        # v_j = v_{j-1}/2 + s_j/2 is, scaled by 2**j, the running sum u_j = u_{j-1} + 2**(j-1) s_j:
        # each term is an exact power-of-two multiple of observe's, so one cumsum rounds as observe does
        scaled = np.concatenate([velocity[None], step * np.ldexp(1.0, np.arange(n_w))[:, None, None]])
        vel = np.cumsum(scaled, axis=0) * np.ldexp(1.0, -np.arange(n_w + 1))[:, None, None]
        if not _exactly_scalable(vel):
            vel = None
    if vel is None:
        vel = np.empty((n_w + 1, *velocity.shape))
        vel[0] = velocity
        for j in range(n_w):  # tiny or huge velocities: the plain recursion, one frame at a time
            vel[j + 1] = SMOOTHING * vel[j] + (1 - SMOOTHING) * step[j]
    return merged, cent, vel
