"""Two rendered animals of distinct appearance that keep meeting and leaving in new directions.

A test and benchmark clip for appearance terms in tracking: motion alone cannot tell who is who
after each encounter. Episode after episode, both animals walk (at ``speed`` px/frame) to a common
meeting point, linger there for ``dwell`` frames while turning toward a random new direction,
then walk off in that direction (independent of where they came from) for ``depart`` frames.
While their thoraxes are closer than ``hide_distance`` the detector reports **nothing** (a gap in
the predictions), so every encounter ends two tracklets and starts two new ones whose motion says
little about which is which.

Animals are 3-node (head, thorax, abdomen) ellipses on a smooth textured background with per-frame
noise, as grayscale uint8 frames. Their looks (``looks``):

* ``"texture"`` (default): animal 0 uniform grey 200, animal 1 striped across its body
  (140 / 255 in 3 px bands, about the same mean brightness);
* ``"brightness"``: animal 0 uniform 220, animal 1 uniform 140;
* ``"pattern"``: both uniform 200 with one dark (90) band a third of the body long, animal 0's
  at the head end, animal 1's at the tail end: the same grey-level histogram, told apart only by
  where the band sits on the body;
* ``"same"``: both uniform 200 (appearance cannot help; a control).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from napari_posetrack.core.labels import PREDICTED, Labels, Skeleton, Video

__all__ = ["ArrayFrames", "LOOKS", "generate_encounters"]

NODES = ["head", "thorax", "abdomen"]
EDGES = [("thorax", "head"), ("thorax", "abdomen")]
LOOKS = ("texture", "brightness", "pattern", "same")
_HEAD, _ABDOMEN = 8.0, 11.0  # node distances from the thorax (px)
_SEMI = (13.0, 5.0)  # body ellipse semi-axes (px), centred between head and abdomen


class ArrayFrames:
    """A minimal in-memory video reader over ``(T, H, W)`` uint8 frames (``frame``, ``iter_frames``,
    ``len``: what the tracker reads)."""

    def __init__(self, frames: np.ndarray, path: str = "frames") -> None:
        self.frames_array = np.asarray(frames)
        self.path = path

    def __len__(self) -> int:
        return len(self.frames_array)

    def frame(self, index: int) -> np.ndarray:
        return self.frames_array[int(index)]

    def iter_frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop, step):
            yield i, self.frames_array[i]

    def close(self) -> None:
        pass


def _trajectories(
    n_frames: int, size: int, speed: float, dwell: int, depart: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Thorax positions ``(T, 2, 2)`` and headings ``(T, 2)`` (radians) of the two animals."""
    lo, hi = 0.3 * size, 0.7 * size
    pos = rng.uniform(lo, hi, (2, 2))
    heading = rng.uniform(-np.pi, np.pi, 2)
    out_pos = np.zeros((n_frames, 2, 2))
    out_head = np.zeros((n_frames, 2))
    t = 0
    while t < n_frames:
        meet = rng.uniform(lo, hi, 2)
        offset = rng.normal(0.0, 2.0, (2, 2))
        target = meet + offset
        # approach: walk straight to the meeting point
        while t < n_frames and (np.linalg.norm(target - pos, axis=1) > speed).any():
            d = target - pos
            n = np.linalg.norm(d, axis=1)
            moving = n > speed
            step = np.where(moving[:, None], d / np.maximum(n, 1e-9)[:, None] * speed, d)
            heading = np.where(moving, np.arctan2(d[:, 1], d[:, 0]), heading)
            pos = pos + step
            out_pos[t], out_head[t] = pos, heading
            t += 1
        # linger, turning toward a random new direction
        leave = rng.uniform(-np.pi, np.pi, 2)
        turn = (leave - heading + np.pi) % (2 * np.pi) - np.pi
        start = heading.copy()
        for k in range(dwell):
            if t >= n_frames:
                break
            heading = start + turn * (k + 1) / dwell
            out_pos[t], out_head[t] = pos + rng.normal(0.0, 0.3, (2, 2)), heading
            t += 1
        # walk off
        for _ in range(depart):
            if t >= n_frames:
                break
            pos = pos + speed * np.stack([np.cos(heading), np.sin(heading)], axis=1)
            pos = np.clip(pos, 0.12 * size, 0.88 * size)
            out_pos[t], out_head[t] = pos, heading
            t += 1
    return out_pos, out_head


def _render(
    thorax: np.ndarray, heading: np.ndarray, size: int, looks: str, rng: np.random.Generator
) -> np.ndarray:
    """Frames ``(T, size, size)`` uint8 of the two animals (see module docs)."""
    n_frames = len(thorax)
    coarse = rng.uniform(0.0, 1.0, (size // 16 + 2, size // 16 + 2))
    ys = np.linspace(0, coarse.shape[0] - 1.001, size)
    y0 = ys.astype(int)
    fy = (ys - y0)[:, None]
    fx = (ys - y0)[None, :]
    smooth = (
        coarse[np.ix_(y0, y0)] * (1 - fy) * (1 - fx)
        + coarse[np.ix_(y0 + 1, y0)] * fy * (1 - fx)
        + coarse[np.ix_(y0, y0 + 1)] * (1 - fy) * fx
        + coarse[np.ix_(y0 + 1, y0 + 1)] * fy * fx
    )
    background = (40.0 + 40.0 * smooth).astype(np.float32)
    half = int(np.ceil(_SEMI[0])) + 2
    grid = np.arange(-half, half + 1, dtype=np.float32)
    frames = np.empty((n_frames, size, size), dtype=np.uint8)
    for t in range(n_frames):
        img = background + rng.normal(0.0, 4.0, (size, size)).astype(np.float32)
        for k in (0, 1):
            axis = np.array([np.cos(heading[t, k]), np.sin(heading[t, k])])
            centre = thorax[t, k] + axis * (_HEAD - _ABDOMEN) / 2.0
            cx, cy = int(round(centre[0])), int(round(centre[1]))
            px = (cx + grid)[None, :] - centre[0]
            py = (cy + grid)[:, None] - centre[1]
            along = px * axis[0] + py * axis[1]
            across = -px * axis[1] + py * axis[0]
            r2 = (along / _SEMI[0]) ** 2 + (across / _SEMI[1]) ** 2
            inside = r2 <= 1.0
            if looks == "texture" and k == 1:
                body = np.where(np.floor((along + 20.0) / 3.0) % 2 == 0, 140.0, 255.0)
            elif looks == "pattern":
                # along > 0 is the head end; the band covers a third of the body length
                band = along > _SEMI[0] / 3.0 if k == 0 else along < -_SEMI[0] / 3.0
                body = np.where(band, 90.0, 200.0)
            elif looks == "brightness":
                body = np.full_like(along, 220.0 if k == 0 else 140.0)
            else:
                body = np.full_like(along, 200.0)
            body = body * (1.0 - 0.25 * r2)  # a little shading toward the edge
            ys_, xs_ = cy + grid.astype(int), cx + grid.astype(int)
            ok_y, ok_x = (ys_ >= 0) & (ys_ < size), (xs_ >= 0) & (xs_ < size)
            region = img[np.ix_(ys_[ok_y], xs_[ok_x])]
            patch = np.where(inside, body, 0.0)[np.ix_(ok_y, ok_x)]
            img[np.ix_(ys_[ok_y], xs_[ok_x])] = np.where(patch > 0, patch, region)
        frames[t] = np.clip(np.rint(img), 0, 255)
    return frames


def generate_encounters(
    n_frames: int = 300,
    size: int = 192,
    looks: str = "texture",
    seed: int = 0,
    *,
    speed: float = 2.0,
    dwell: int = 8,
    depart: int = 30,
    hide_distance: float = 20.0,
    noise: float = 1.0,
) -> tuple[np.ndarray, Labels, Labels]:
    """Generate a clip of two animals meeting again and again (see module docs).

    Parameters
    ----------
    n_frames, size
        Clip length and square frame side (px).
    looks
        ``"texture"``, ``"brightness"``, ``"pattern"`` or ``"same"`` (see module docs).
    seed
        Same arguments, same clip.
    speed, dwell, depart
        Walking speed (px/frame), frames lingering at each meeting point, frames walking off.
    hide_distance
        No detection of either animal on frames where their thoraxes are closer than this (px).
    noise
        Standard deviation (px) of the Gaussian noise on predicted keypoints.

    Returns
    -------
    frames
        ``(n_frames, size, size)`` uint8 (wrap in :class:`ArrayFrames` to give it to the tracker).
    truth
        User instances of both animals on every frame, tracks ``animal_0``, ``animal_1``.
    predictions
        Predicted instances (score 1, no track) with keypoint noise, none on hidden frames.
    """
    if looks not in LOOKS:
        raise ValueError(f"looks must be one of {', '.join(LOOKS)}, got {looks!r}")
    rng = np.random.default_rng(seed)
    thorax, heading = _trajectories(n_frames, size, speed, dwell, depart, rng)
    axis = np.stack([np.cos(heading), np.sin(heading)], axis=-1)  # (T, 2, 2)
    poses = np.stack([thorax + _HEAD * axis, thorax, thorax - _ABDOMEN * axis], axis=2)  # (T, 2, 3, 2)
    frames = _render(thorax, heading, size, looks, rng)

    skeleton = Skeleton(list(NODES), list(EDGES), [], name="encounter-animal")
    video = Video("encounters.mp4", n_frames=n_frames, shape=(size, size, 1), fps=25.0)
    truth = Labels(skeleton, [video], provenance={"generator": "napari_posetrack.core.sample_encounters"})
    for k in (0, 1):
        truth.add_track(f"animal_{k}")
    f_idx = np.repeat(np.arange(n_frames), 2)
    truth.add_instances(0, f_idx, poses.reshape(-1, 3, 2), track=np.tile([0, 1], n_frames))

    shown = np.linalg.norm(thorax[:, 0] - thorax[:, 1], axis=1) >= hide_distance
    keep = np.repeat(shown, 2)
    noisy = poses.reshape(-1, 3, 2) + rng.normal(0.0, noise, (2 * n_frames, 3, 2))
    predictions = Labels(skeleton.copy() if hasattr(skeleton, "copy") else skeleton, [video.copy()])
    predictions.add_instances(0, f_idx[keep], noisy[keep])
    predictions.instances.kind[:] = PREDICTED
    predictions.instances.score[:] = 1.0
    return frames, truth, predictions
