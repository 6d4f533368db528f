"""A procedurally generated multi-animal clip with ground-truth poses and identities.

Small insect-like animals (7 nodes: head, thorax, abdomen tip, two antennae, two legs) walk with
smoothly varying speed and turning, bend their body as they turn, move their legs in a gait, turn
away from the walls and, at a controlled rate, steer toward each other and cross. They are
rendered as bright elongated blobs (bright head, darker abdomen, thin dim antennae and legs) on
a textured background with per-frame noise, as grayscale uint8 frames.

Coordinates follow the pixel-centre convention: pixel ``(row i, column j)`` is centred on
``x = j, y = i``. Every keypoint stays inside ``[0, W-1] x [0, H-1]``.

Use it to try the plugin without data (``write_sample`` gives a video and a ``.slp`` to open),
and in tests and benchmarks that need known identities through crossings.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from napari_posetrack.core.errors import atomic_write
from napari_posetrack.core.labels import Labels, Skeleton, Video

__all__ = ["generate_sample", "sample_skeleton", "write_sample"]

NODES = ["head", "thorax", "abdomen", "antennaL", "antennaR", "legL", "legR"]
EDGES = [
    ("thorax", "head"),
    ("thorax", "abdomen"),
    ("head", "antennaL"),
    ("head", "antennaR"),
    ("thorax", "legL"),
    ("thorax", "legR"),
]
SYMMETRIES = [("antennaL", "antennaR"), ("legL", "legR")]
HEAD, THORAX, ABDOMEN, ANT_L, ANT_R, LEG_L, LEG_R = range(7)

# body geometry in units of min(H, W) / 256 pixels
_HEAD_LEN, _ABDOMEN_LEN, _ANTENNA_LEN, _LEG_LEN = 8.0, 13.0, 7.0, 9.0
# rendered segments: (from node, to node, brightness at from, at to, half-width at from, at to)
_SEGMENTS = [
    (HEAD, THORAX, 250.0, 215.0, 2.6, 3.2),
    (THORAX, ABDOMEN, 215.0, 150.0, 3.4, 2.0),
    (HEAD, ANT_L, 140.0, 110.0, 0.7, 0.6),
    (HEAD, ANT_R, 140.0, 110.0, 0.7, 0.6),
    (THORAX, LEG_L, 150.0, 115.0, 0.9, 0.7),
    (THORAX, LEG_R, 150.0, 115.0, 0.9, 0.7),
]


def sample_skeleton() -> Skeleton:
    """The 7-node skeleton of the sample animals (rooted at the thorax, with two symmetry pairs)."""
    return Skeleton(list(NODES), list(EDGES), list(SYMMETRIES), name="sample-insect")


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _simulate(
    n_animals: int, n_frames: int, size: tuple[int, int], crossing_rate: float, rng: np.random.Generator
) -> np.ndarray:
    """Keypoints ``(n_frames, n_animals, 7, 2)`` of walking, turning, crossing animals."""
    height, width = size
    u = min(height, width) / 256.0
    reach = (_ABDOMEN_LEN + 1.0) * u  # farthest node from the thorax
    lo = np.array([reach + 1.0, reach + 1.0])
    hi = np.array([width - 2.0 - reach, height - 2.0 - reach])
    centre = (lo + hi) / 2

    pos = rng.uniform(lo, hi, size=(n_animals, 2))
    heading = rng.uniform(-np.pi, np.pi, n_animals)
    mean_speed = 1.4 * u
    speed = np.full(n_animals, mean_speed)
    turn = np.zeros(n_animals)
    phase = rng.uniform(0, 2 * np.pi, n_animals)
    partner = np.full(n_animals, -1)
    steer_left = np.zeros(n_animals, dtype=np.int64)
    margin = 0.12 * min(height, width)

    poses = np.empty((n_frames, n_animals, len(NODES), 2))
    for t in range(n_frames):
        # smooth random speed and turning (Ornstein-Uhlenbeck)
        speed += 0.1 * (mean_speed - speed) + 0.25 * u * rng.standard_normal(n_animals)
        speed = np.clip(speed, 0.3 * u, 3.0 * u)
        turn += -0.15 * turn + 0.03 * rng.standard_normal(n_animals)

        # now and then two free animals steer toward each other and cross
        free = np.flatnonzero(steer_left == 0)
        if len(free) >= 2 and rng.random() < crossing_rate:
            a, b = rng.choice(free, size=2, replace=False)
            partner[a], partner[b] = b, a
            steer_left[a] = steer_left[b] = int(60 / max(mean_speed / u, 0.5))
        steering = steer_left > 0
        if steering.any():
            s = np.flatnonzero(steering)
            to_partner = pos[partner[s]] - pos[s]
            dist = np.linalg.norm(to_partner, axis=1)
            want = np.arctan2(to_partner[:, 1], to_partner[:, 0])
            # steer until they meet; once close they keep their heading and walk through
            close = dist < 3.0 * u
            turn[s] = np.where(close, turn[s], 0.35 * _wrap(want - heading[s]))
            steer_left[s] = np.where(close, 0, steer_left[s] - 1)
            speed[s] = np.maximum(speed[s], mean_speed)

        # turn away from the walls, harder the closer they are
        to_wall = np.minimum(pos - lo, hi - pos).min(axis=1)
        near = to_wall < margin
        if near.any():
            to_centre = centre - pos[near]
            want = np.arctan2(to_centre[:, 1], to_centre[:, 0])
            strength = np.clip(1.0 - to_wall[near] / margin, 0.0, 1.0)
            turn[near] += 0.25 * strength * _wrap(want - heading[near])
        turn = np.clip(turn, -0.35, 0.35)

        heading = _wrap(heading + turn)
        pos = np.clip(pos + speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1), lo, hi)
        phase += 0.35 * speed / u

        poses[t] = _body(pos, heading, turn, phase, u, t)
    return poses


def _body(
    pos: np.ndarray, heading: np.ndarray, turn: np.ndarray, phase: np.ndarray, u: float, t: int
) -> np.ndarray:
    """Keypoints of every animal from its thorax position, heading, turning rate and gait phase."""

    def at(origin: np.ndarray, angle: np.ndarray, length: float) -> np.ndarray:
        return origin + length * u * np.stack([np.cos(angle), np.sin(angle)], axis=-1)

    bend = 1.5 * turn  # the body curves into the turn
    head_angle = heading + bend
    head = at(pos, head_angle, _HEAD_LEN)
    abdomen = at(pos, heading + np.pi - bend, _ABDOMEN_LEN)
    wiggle = 0.15 * np.sin(0.5 * t + phase)
    gait = 0.45 * np.sin(phase)
    out = np.stack(
        [
            head,
            pos,
            abdomen,
            at(head, head_angle - 0.6 + wiggle, _ANTENNA_LEN),
            at(head, head_angle + 0.6 - wiggle, _ANTENNA_LEN),
            at(pos, heading - np.pi / 2 + gait, _LEG_LEN),
            at(pos, heading + np.pi / 2 + gait, _LEG_LEN),
        ],
        axis=1,
    )
    return out


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth texture (bilinear upsampling of coarse noise) plus fine grain, float32 in ~[25, 85]."""
    height, width = size
    coarse = rng.uniform(0.0, 1.0, size=(height // 16 + 2, width // 16 + 2))
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    smooth = (
        coarse[np.ix_(y0, x0)] * (1 - fy) * (1 - fx)
        + coarse[np.ix_(y0 + 1, x0)] * fy * (1 - fx)
        + coarse[np.ix_(y0, x0 + 1)] * (1 - fy) * fx
        + coarse[np.ix_(y0 + 1, x0 + 1)] * fy * fx
    )
    grain = rng.normal(0.0, 4.0, size=(height, width))
    return (30.0 + 45.0 * smooth + grain).astype(np.float32)


def _render_animals(points: np.ndarray, origins: np.ndarray, crop: int, u: float) -> np.ndarray:
    """Intensities ``(n, crop, crop)`` of ``n`` animals (keypoints ``(n, 7, 2)``) on square crops
    whose top-left pixels are ``origins`` ``(n, 2)`` (x, y)."""
    grid = np.arange(crop, dtype=np.float32)
    seg = np.array([(a, b) for a, b, *_ in _SEGMENTS])
    local = (points - origins[:, None, :]).astype(np.float32)  # keypoints in crop coordinates
    a = local[:, seg[:, 0]][..., None, None]  # (n, n_seg, 2, 1, 1)
    d = local[:, seg[:, 1]][..., None, None] - a
    length2 = np.maximum((d**2).sum(axis=2), 1e-6)
    px = grid[None, None, None, :] - a[:, :, 0]
    py = grid[None, None, :, None] - a[:, :, 1]
    s = np.clip((px * d[:, :, 0] + py * d[:, :, 1]) / length2, 0.0, 1.0)
    dist2 = (px - s * d[:, :, 0]) ** 2 + (py - s * d[:, :, 1]) ** 2
    params = np.array([p[2:] for p in _SEGMENTS], dtype=np.float32)[None, :, :, None, None]
    bright = params[:, :, 0] + s * (params[:, :, 1] - params[:, :, 0])
    half_width = np.float32(u) * (params[:, :, 2] + s * (params[:, :, 3] - params[:, :, 2]))
    return (bright * np.exp(-dist2 / (2.0 * half_width**2))).max(axis=1)


def _render(poses: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    height, width = size
    n_frames, n_animals = poses.shape[:2]
    u = min(height, width) / 256.0
    background = _background(size, rng)
    half = int(np.ceil((_ABDOMEN_LEN + 5.0) * u))
    crop = 2 * half + 1
    origins = np.rint(poses[:, :, THORAX]).astype(np.int64) - half  # (T, n, 2) x, y
    frames = np.empty((n_frames, height, width), dtype=np.uint8)
    chunk = max(1, 4096 // max(n_animals, 1))
    for start in range(0, n_frames, chunk):
        stop = min(start + chunk, n_frames)
        sprites = _render_animals(
            poses[start:stop].reshape(-1, len(NODES), 2), origins[start:stop].reshape(-1, 2), crop, u
        ).reshape(stop - start, n_animals, crop, crop)
        for t in range(start, stop):
            # sensor noise, sd 3: a sum of two uniform bytes is near-Gaussian and far cheaper to draw
            pair = rng.integers(0, 256, size=(2, height, width), dtype=np.uint8)
            frame = background + np.float32(3.0 / 104.0) * (pair[0] + pair[1].astype(np.float32) - 255.0)
            for k in range(n_animals):
                x0, y0 = origins[t, k]
                # paste the part of the sprite that falls inside the frame
                fx0, fy0 = max(x0, 0), max(y0, 0)
                fx1, fy1 = min(x0 + crop, width), min(y0 + crop, height)
                region = frame[fy0:fy1, fx0:fx1]
                np.maximum(
                    region, sprites[t - start, k, fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0], out=region
                )
            np.clip(frame, 0, 255, out=frame)
            frames[t] = np.rint(frame)
    return frames


def generate_sample(
    n_animals: int = 3,
    n_frames: int = 200,
    size: tuple[int, int] = (256, 256),
    crossing_rate: float = 0.02,
    seed: int = 0,
    fps: float = 25.0,
) -> tuple[np.ndarray, Labels]:
    """Generate a clip of walking animals and its ground truth.

    Parameters
    ----------
    n_animals
        Number of animals (identities).
    n_frames
        Number of frames.
    size
        ``(height, width)`` in pixels.
    crossing_rate
        Probability per frame that two animals not already doing so start steering toward each
        other (they meet and walk through each other: identity swaps waiting to happen).
    seed
        Random seed; the same arguments always give the same clip.
    fps
        Frame rate recorded in the Video metadata.

    Returns
    -------
    frames
        ``(n_frames, height, width)`` uint8.
    labels
        One Video (``path="sample.mp4"``, not written here; see :func:`write_sample`), one track
        per animal (``animal_0``...), a user instance for every animal on every frame.
    """
    if n_animals < 1 or n_frames < 1:
        raise ValueError("n_animals and n_frames must be at least 1")
    if not 0.0 <= crossing_rate <= 1.0:
        raise ValueError(f"crossing_rate is a probability per frame, got {crossing_rate}")
    height, width = int(size[0]), int(size[1])
    if min(height, width) < 64:
        # animals scale with the frame; below this they are a few pixels long
        raise ValueError(f"frame size {size} is too small for the sample animals (need at least 64 x 64)")
    rng = np.random.default_rng(seed)
    poses = _simulate(n_animals, n_frames, (height, width), crossing_rate, rng)
    frames = _render(poses, (height, width), rng)

    labels = Labels(
        sample_skeleton(),
        [Video("sample.mp4", n_frames=n_frames, shape=(height, width, 1), fps=float(fps))],
        provenance={
            "generator": "napari_posetrack.core.sample",
            "seed": int(seed),
            "crossing_rate": crossing_rate,
        },
    )
    for k in range(n_animals):
        labels.add_track(f"animal_{k}")
    frame_idx = np.repeat(np.arange(n_frames), n_animals)
    track_idx = np.tile(np.arange(n_animals), n_frames)
    labels.add_instances(0, frame_idx, poses.reshape(-1, len(NODES), 2), track=track_idx)
    return frames, labels


def write_video(
    frames: np.ndarray, path: str | os.PathLike[str], fps: float = 25.0, keyframe_interval: int = 25
) -> None:
    """Encode grayscale frames ``(T, H, W)`` as H.264 (yuv420p, constant frame rate) with PyAV; atomic.

    Keyframes every ``keyframe_interval`` frames (no scene-cut keyframes), so random access needs
    at most that many decoded frames. ``H`` and ``W`` must be even (yuv420p).
    """
    import av

    _n, height, width = frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs an even frame size, got {width}x{height}")
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_write(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = keyframe_interval
        stream.codec_context.options = {
            "crf": "12",
            "preset": "veryfast",
            "x264-params": f"keyint={keyframe_interval}:min-keyint={keyframe_interval}:scenecut=0",
        }
        stream.codec_context.time_base = 1 / rate
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="gray").reformat(
                format="yuv420p"
            )
            frame.pts = i
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_sample(out_dir: str | os.PathLike[str], **kwargs: object) -> dict[str, str]:
    """Generate a sample (see :func:`generate_sample`, which takes ``kwargs``) and write it.

    Writes ``sample.mp4`` (H.264, keyframe every 25 frames), ``sample.slp`` (ground truth, the
    video referenced by its absolute path) and ``skeleton.json`` (SLEAP skeleton template).

    Returns
    -------
    dict
        ``{"video": ..., "labels": ..., "skeleton": ...}`` absolute paths.
    """
    from napari_posetrack.core.io.skeleton_json import save_skeleton_json
    from napari_posetrack.core.io.slp import save_slp

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    frames, labels = generate_sample(**kwargs)  # type: ignore[arg-type]
    video_path = out / "sample.mp4"
    write_video(frames, video_path, fps=labels.videos[0].fps or 25.0)
    labels.videos[0].path = str(video_path)
    labels_path = out / "sample.slp"
    save_slp(labels, labels_path)
    skeleton_path = out / "skeleton.json"
    save_skeleton_json(labels.skeleton, skeleton_path, description="napari-posetrack sample animal")
    return {"video": str(video_path), "labels": str(labels_path), "skeleton": str(skeleton_path)}
