"""The procedural sample clip: determinism, crossings, geometry, rendering and the written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_posetrack.core.labels import USER, assert_labels_equal
from napari_posetrack.core.sample import HEAD, THORAX, generate_sample, sample_skeleton, write_sample


def thorax_distances(coords: np.ndarray) -> np.ndarray:
    """``(T, n_pairs)`` distances between the thoraxes of every pair of animals."""
    th = coords[:, :, THORAX]
    i, j = np.triu_indices(th.shape[1], 1)
    return np.linalg.norm(th[:, i] - th[:, j], axis=-1)


def test_same_seed_same_clip_other_seed_other_clip() -> None:
    frames_a, labels_a = generate_sample(n_animals=2, n_frames=20, size=(96, 128), seed=5)
    frames_b, labels_b = generate_sample(n_animals=2, n_frames=20, size=(96, 128), seed=5)
    np.testing.assert_array_equal(frames_a, frames_b)
    assert_labels_equal(labels_a, labels_b)
    frames_c, labels_c = generate_sample(n_animals=2, n_frames=20, size=(96, 128), seed=6)
    assert not np.array_equal(frames_a, frames_c)
    assert not np.allclose(labels_a.instances.points, labels_c.instances.points)


def test_ground_truth_structure() -> None:
    frames, labels = generate_sample(n_animals=4, n_frames=30, size=(128, 160), seed=1)
    assert frames.shape == (30, 128, 160) and frames.dtype == np.uint8
    assert labels.skeleton == sample_skeleton() and labels.skeleton.roots() == [THORAX]
    assert len(labels.skeleton.symmetries) == 2
    assert [t.name for t in labels.tracks] == ["animal_0", "animal_1", "animal_2", "animal_3"]
    assert labels.n_instances == 30 * 4 and np.all(labels.instances.kind == USER)
    video = labels.videos[0]
    assert video.n_frames == 30 and video.shape == (128, 160, 1)
    coords, occupancy = labels.dense()
    assert occupancy.all() and np.isfinite(coords).all()


@pytest.mark.parametrize("size", [(256, 256), (96, 200), (300, 120)])
def test_poses_stay_inside_the_frame(size: tuple[int, int]) -> None:
    _, labels = generate_sample(n_animals=3, n_frames=200, size=size, crossing_rate=0.1, seed=2)
    coords, _ = labels.dense()
    h, w = size
    assert coords[..., 0].min() >= 0 and coords[..., 0].max() <= w - 1
    assert coords[..., 1].min() >= 0 and coords[..., 1].max() <= h - 1
    # and the animals actually walk around (not stuck against a wall)
    travel = np.linalg.norm(np.diff(coords[:, :, THORAX], axis=0), axis=-1).sum(axis=0)
    assert np.all(travel > 0.5 * min(h, w))


def test_animals_cross_when_steered() -> None:
    _, labels = generate_sample(n_animals=3, n_frames=200, crossing_rate=0.2, seed=0)
    coords, _ = labels.dense()
    dist = thorax_distances(coords)
    # bodies overlap (thoraxes closer than a body width) for at least two different pairs
    assert (dist.min(axis=0) < 4.0).sum() >= 2
    # a crossing, not a bounce: after the closest approach the pair separates again
    pair = int(np.argmin(dist.min(axis=0)))
    t = int(np.argmin(dist[:, pair]))
    assert dist[min(t + 15, len(dist) - 1), pair] > 8.0 or dist[max(t - 15, 0), pair] > 8.0


def test_brightness_peaks_at_the_head() -> None:
    frames, labels = generate_sample(n_animals=3, n_frames=60, crossing_rate=0.0, seed=4)
    coords, _ = labels.dense()
    background = np.median(frames)
    dist = thorax_distances(coords)
    i, j = np.triu_indices(3, 1)
    checked = 0
    for t in range(len(frames)):
        for k in range(3):
            near = ((i == k) | (j == k)) & (dist[t] < 45)
            if near.any():
                continue  # another animal is in the window
            head = np.rint(coords[t, k, HEAD]).astype(int)
            thorax = np.rint(coords[t, k, THORAX]).astype(int)
            assert frames[t, head[1], head[0]] > background + 120
            assert frames[t, thorax[1], thorax[0]] > background + 100
            y0, x0 = max(thorax[1] - 20, 0), max(thorax[0] - 20, 0)
            window = frames[t, y0 : thorax[1] + 21, x0 : thorax[0] + 21]
            peak = np.array(np.unravel_index(np.argmax(window), window.shape))[::-1] + [x0, y0]
            assert np.linalg.norm(peak - coords[t, k, HEAD]) < 3.5
            checked += 1
    assert checked > 60


def test_write_sample_files(tmp_path: Path) -> None:
    import av

    from napari_posetrack.core.io.skeleton_json import load_skeleton_json
    from napari_posetrack.core.io.slp import load_slp

    paths = write_sample(tmp_path / "sample", n_animals=2, n_frames=60, size=(128, 128), seed=3)
    assert set(paths) == {"video", "labels", "skeleton"} and all(Path(p).is_file() for p in paths.values())
    frames, expected = generate_sample(n_animals=2, n_frames=60, size=(128, 128), seed=3)
    with av.open(paths["video"]) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == 25.0
        decoded = []
        keyframes = []
        for i, frame in enumerate(container.decode(stream)):
            decoded.append(frame.to_ndarray(format="gray"))
            if frame.key_frame:
                keyframes.append(i)
    assert len(decoded) == 60
    assert keyframes == [0, 25, 50]
    error = np.abs(np.stack(decoded).astype(int) - frames.astype(int))
    assert error.mean() < 3.0  # near-lossless encoding of the rendered frames

    labels = load_slp(paths["labels"])
    assert Path(labels.videos[0].filename) == Path(paths["video"])
    assert_labels_equal(expected, labels)
    skeleton = load_skeleton_json(paths["skeleton"])
    assert skeleton.nodes == expected.skeleton.nodes
    assert sorted(skeleton.edges) == sorted(expected.skeleton.edges)
    assert {frozenset(s) for s in skeleton.symmetries} == {frozenset(s) for s in expected.skeleton.symmetries}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="too small"):
        generate_sample(size=(20, 20))
    with pytest.raises(ValueError, match="probability"):
        generate_sample(crossing_rate=2.0)
