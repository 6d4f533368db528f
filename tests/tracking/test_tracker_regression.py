"""The tracker's output, pinned: every instance's track, rejection reason and tracking score,
configuration by configuration.

``data/tracker_expected.npz`` holds (track ids, rejection codes, and a SHA-256 digest and the sum of
the float32 tracking scores) what the tracker gave on three inputs: ``clip.predictions.slp`` of the
real fly clip (tracks removed, 2 animals), and two synthetic streams built here from integer hashing
and plain arithmetic (so they are the same bits on every platform and numpy version): five random
walkers that meet now and then, with missing nodes, dropped and spurious detections, and four
animals whose paths cross. Each configuration is one similarity x matching x stitching combination
or a variant of the defaults. A change of any track id, rejection or tracking score fails here.

History of the recorded file: first written from the frame-by-frame tracker (commit 52e8d14), which
the windowed online pass reproduced bit for bit (7e97bed, 97d4bdc); rewritten on purpose for issue
#12 (every instance on a track or rejected with a reason, implausible instances tracked on their
trusted nodes, hierarchical stitching by default). The batched and per-frame online passes are
compared with each other directly in ``test_batched_equivalence.py``, independently of this file.

When the output changes on purpose, regenerate the file with
``python tests/tracking/test_tracker_regression.py`` (about a minute: it runs every case below,
flow on the first 100 frames of the real clip included), check the new numbers with
``bench/tracker_switches.py``, and say in the commit why the output changed.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_posetrack.core.labels import PREDICTED, Labels, Skeleton, Video

EXPECTED = Path(__file__).parent / "data" / "tracker_expected.npz"
N_REAL_FLOW_FRAMES = 100  # flow candidates decode the video: the first frames are enough


def _uniform(shape: tuple[int, ...], stream: int) -> np.ndarray:
    """Numbers in ``[0, 1)`` from the splitmix64 hash of their index: platform-independent bits."""
    n = int(np.prod(shape))
    z = np.arange(n, dtype=np.uint64) + np.uint64(stream * 0x9E3779B97F4A7C15 % 2**64)
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(shape)


def _labels(
    points: np.ndarray, frames: np.ndarray, scores: np.ndarray, edges: list[tuple[int, int]]
) -> Labels:
    lab = Labels(Skeleton([f"n{i}" for i in range(points.shape[1])], edges), [Video("synthetic.mp4")])
    lab.add_instances(0, frames, points, kind=PREDICTED, score=scores)
    return lab


def walkers(n_frames: int = 600, n_animals: int = 5, n_nodes: int = 7) -> Labels:
    """Random walkers starting 60 px apart (they meet), 3% missing nodes, dropped and spurious detections."""
    start = np.array([[100.0, 100.0], [160.0, 100.0], [220.0, 100.0], [130.0, 160.0], [190.0, 160.0]])
    steps = (_uniform((n_frames, n_animals, 2), 1) - 0.5) * 6.0
    centres = start[:n_animals] + np.cumsum(steps, axis=0)
    body = (_uniform((1, n_nodes, 2), 2) - 0.5) * 24.0 + (_uniform((n_animals, n_nodes, 2), 3) - 0.5) * 4.0
    noise = (_uniform((n_frames, n_animals, n_nodes, 2), 4) - 0.5) * 1.5
    pts = centres[:, :, None, :] + body[None] + noise
    pts[_uniform((n_frames, n_animals, n_nodes), 5) < 0.03] = np.nan
    keep = _uniform((n_frames, n_animals), 6) >= 0.01  # a detection missed now and then
    frames = np.repeat(np.arange(n_frames), n_animals)[keep.ravel()]
    points = pts.reshape(-1, n_nodes, 2)[keep.ravel()]
    scores = 0.5 + 0.5 * _uniform((len(points),), 7)
    spurious = np.arange(0, n_frames, 37)  # a low-score detection far away every 37 frames
    far = np.full((len(spurious), n_nodes, 2), 900.0) + body[0]
    order = np.argsort(np.concatenate([frames, spurious]), kind="stable")
    return _labels(
        np.concatenate([points, far])[order],
        np.concatenate([frames, spurious])[order],
        np.concatenate([scores, np.full(len(spurious), 0.1)])[order],
        [(0, i) for i in range(1, n_nodes)],
    )


def crossings(n_frames: int = 200) -> Labels:
    """Four animals on straight paths: two cross at right angles and two meet head-on, at frame 100."""
    start = np.array([[0.0, 100.0], [200.0, -100.0], [0.0, 300.0], [300.0, 304.0]])
    velocity = np.array([[2.0, 0.0], [0.0, 2.0], [1.5, 0.0], [-1.5, 0.0]])
    along = np.array([8.0, 4.0, 0.0, -5.0, -10.0])  # head ... tail, along the heading
    side = np.array([0.0, 3.0, 0.0, -3.0, 0.0])
    heading = velocity / np.abs(velocity).sum(axis=1, keepdims=True)  # unit vectors of axis paths
    normal = heading[:, ::-1] * np.array([1.0, -1.0])
    body = along[None, :, None] * heading[:, None, :] + side[None, :, None] * normal[:, None, :]
    t = np.arange(n_frames, dtype=np.float64)[:, None, None, None]
    pts = start[None, :, None, :] + velocity[None, :, None, :] * t + body[None]
    pts = pts + (_uniform(pts.shape, 11) - 0.5) * 2.0
    pts[_uniform(pts.shape[:3], 12) < 0.02] = np.nan
    return _labels(
        pts.reshape(-1, 5, 2),
        np.repeat(np.arange(n_frames), 4),
        np.ones(n_frames * 4),
        [(1, 0), (1, 2), (2, 3), (2, 4)],
    )


def real_clip(flies: Path, n_frames: int | None = None) -> Labels:
    """``clip.predictions.slp`` with its tracks removed (optionally only the first frames)."""
    from napari_posetrack.core.io.slp import load_slp

    pred = load_slp(flies / "clip.predictions.slp")
    pred.remove_tracks()
    if n_frames is not None:
        pred = pred.subset(np.flatnonzero(pred.instances.frame < n_frames))
    return pred


GRID = [
    {"similarity": s, "matching": m, "stitch": st}
    for s, m, st in itertools.product(
        ("instance", "centroid", "iou", "oks"), ("greedy", "hungarian"), (False, True)
    )
]
VARIANTS = [
    {"stitch_min_length": 0, "stitch_motion_horizon": 3, "shape_outlier": 6.0},  # the defaults before #12
    {"motion_prior": False},
    {"motion_prior": False, "stitch": False},
    {"shape_weight": 1.0, "matching": "greedy"},
    {"min_points": 3, "window": 2},
    {"min_points": 3, "window": 2, "stitch": False},
]
# (input, max_tracks, configurations)
CASES: dict[str, tuple[int | None, list[dict[str, Any]]]] = {
    "walkers": (5, GRID + VARIANTS + [{"max_tracks": None, "stitch": False}]),
    "crossings": (4, GRID + VARIANTS[:3]),
    "clip": (2, GRID + VARIANTS),
}


def _key(case: str, cfg: dict[str, Any]) -> str:
    return case + "__" + "_".join(f"{k}-{v}" for k, v in cfg.items())


def _inputs(case: str, flies: Path) -> Labels:
    return {"walkers": walkers, "crossings": crossings}[case]() if case != "clip" else real_clip(flies)


def run_case(
    track_labels: Callable[..., Labels],
    config_cls: type,
    lab: Labels,
    max_tracks: int | None,
    cfg: dict,
    video=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Track ids, tracking scores and rejection codes of every instance of ``lab`` under one configuration."""
    out = track_labels(lab, config_cls(**{"max_tracks": max_tracks, **cfg}), video=video)
    t = out.instances
    return t.track.copy(), t.tracking_score.copy(), t.rejected.copy()


def expected_outputs(
    track_labels: Callable[..., Labels], config_cls: type, flies: Path
) -> dict[str, np.ndarray]:
    """Every case's outputs as stored in :data:`EXPECTED` (used to write the file)."""
    arrays = {}
    for case, (max_tracks, configs) in CASES.items():
        lab = _inputs(case, flies)
        for cfg in configs:
            arrays.update(_stored(_key(case, cfg), *run_case(track_labels, config_cls, lab, max_tracks, cfg)))
    lab = real_clip(flies, N_REAL_FLOW_FRAMES)
    for similarity, stitch in itertools.product(("instance", "oks"), (False, True)):
        cfg = {"candidates": "flow", "similarity": similarity, "stitch": stitch}
        out = run_case(track_labels, config_cls, lab, 2, cfg, video=flies / "clip.mp4")
        arrays.update(_stored(_key("clip_flow", cfg), *out))
    return arrays


def _digest(score: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(score, dtype=np.float32).tobytes()).hexdigest()


def _stored(key: str, track: np.ndarray, score: np.ndarray, rejected: np.ndarray) -> dict[str, np.ndarray]:
    """What the file keeps of one configuration's output (scores as a digest: they do not compress)."""
    return {
        key + "__track": track.astype(np.int16),
        key + "__rejected": rejected.astype(np.int8),
        key + "__score_sha256": np.array(_digest(score)),
        key + "__score_sum": np.array(score.astype(np.float64).sum()),
    }


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(EXPECTED) as f:
        return dict(f)


def _check(
    expected: dict[str, np.ndarray], key: str, track: np.ndarray, score: np.ndarray, rejected: np.ndarray
) -> None:
    want_track = expected[key + "__track"]
    assert track.shape == want_track.shape, key
    changed = np.flatnonzero(track != want_track)
    assert len(changed) == 0, f"{key}: {len(changed)} track ids changed, first rows {changed[:10].tolist()}"
    changed = np.flatnonzero(rejected != expected[key + "__rejected"])
    assert len(changed) == 0, f"{key}: {len(changed)} rejections changed, first rows {changed[:10].tolist()}"
    assert score.dtype == np.float32, key
    total, want_total = float(score.astype(np.float64).sum()), float(expected[key + "__score_sum"])
    assert _digest(score) == str(expected[key + "__score_sha256"]), (
        f"{key}: tracking scores changed (sum {total!r}, was {want_total!r})"
    )


def test_synthetic_streams_exercise_both_steady_stretches_and_events() -> None:
    # the pinned outputs only guard the windowed pass and the per-frame step if both are used
    from napari_posetrack.core.tracking import online
    from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels

    calls = {"window": 0, "accepted": 0, "step": 0}
    window, step = online.OnlinePass.window, online.OnlinePass.step

    def counting_window(self, k0, width):
        accepted, tried = window(self, k0, width)
        calls["window"] += 1
        calls["accepted"] += accepted
        return accepted, tried

    def counting_step(self, k, flow_shift=None):
        calls["step"] += 1
        step(self, k, flow_shift)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(online.OnlinePass, "window", counting_window)
        mp.setattr(online.OnlinePass, "step", counting_step)
        # (input, animals, per-frame steps at least: first frame, cut tracklets, missed detections)
        for lab, n, min_steps in ((walkers(), 5, 10), (crossings(), 4, 3)):
            calls.update(window=0, accepted=0, step=0)
            out = track_labels(lab, TrackerConfig(max_tracks=n))
            n_frames = len(np.unique(lab.instances.frame))
            assert calls["accepted"] + calls["step"] == n_frames
            assert calls["accepted"] > 0.5 * n_frames  # mostly steady
            assert calls["step"] >= min_steps
            assert len(np.unique(out.instances.track[out.instances.track >= 0])) == n


@pytest.mark.parametrize("case", ["walkers", "crossings"])
def test_synthetic_tracking_matches_the_stored_output(case: str, expected: dict[str, np.ndarray]) -> None:
    from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels

    max_tracks, configs = CASES[case]
    lab = _inputs(case, Path())
    for cfg in configs:
        _check(expected, _key(case, cfg), *run_case(track_labels, TrackerConfig, lab, max_tracks, cfg))


@pytest.mark.slow
def test_real_clip_tracking_matches_the_stored_output(flies: Path, expected: dict[str, np.ndarray]) -> None:
    from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels

    max_tracks, configs = CASES["clip"]
    lab = real_clip(flies)
    for cfg in configs:
        _check(expected, _key("clip", cfg), *run_case(track_labels, TrackerConfig, lab, max_tracks, cfg))
    lab = real_clip(flies, N_REAL_FLOW_FRAMES)
    for similarity, stitch in itertools.product(("instance", "oks"), (False, True)):
        cfg = {"candidates": "flow", "similarity": similarity, "stitch": stitch}
        out = run_case(track_labels, TrackerConfig, lab, 2, cfg, video=flies / "clip.mp4")
        _check(expected, _key("clip_flow", cfg), *out)


if __name__ == "__main__":
    import sys

    from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conftest import data_dir

    EXPECTED.parent.mkdir(exist_ok=True)
    np.savez_compressed(EXPECTED, **expected_outputs(track_labels, TrackerConfig, data_dir() / "sleap-flies"))
    print(f"wrote {EXPECTED}")
