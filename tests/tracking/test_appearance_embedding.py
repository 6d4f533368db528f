"""The appearance embedding learnt from the tracker's own tracklets (issue #12 item 3).

Synthetic: :func:`~napari_posetrack.core.sample_encounters.generate_encounters` renders two animals
that meet again and again, with no detection while they touch, and leave in new directions:
motion cannot tell who is who after an encounter. With ``looks="pattern"`` both animals have the
same grey-level histogram (a dark band at the head end vs at the tail end): the learnt embedding
tells them apart by where the band sits on the body.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pytest

from napari_posetrack.core.evaluation import evaluate_tracking
from napari_posetrack.core.sample_encounters import ArrayFrames, generate_encounters
from napari_posetrack.core.tracking import embedding as emb
from napari_posetrack.core.tracking.tracker import TrackerConfig, track

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encounters():
    return generate_encounters(300, looks="pattern", seed=0)


def _chunked_truth(truth, length: int = 25) -> np.ndarray:
    """Tracklet ids: each animal's ground truth cut into pieces of ``length`` frames."""
    t = truth.instances
    return t.track * 1000 + t.frame // length


def test_learnt_embedding_separates_two_animals_with_alike_histograms(encounters) -> None:
    frames, truth, _ = encounters
    t = truth.instances
    unit = _chunked_truth(truth)
    train = t.frame < 200  # learn from the first 200 frames, judge on the last 100
    reader = ArrayFrames(frames)
    out = emb.tracklet_embeddings(
        np.where(train, unit, -1), t.frame, t.points, reader, radius=18.0, min_length=10, seed=0, steps=80
    )
    assert out.model.n_tracklets >= 10 and out.spread > 0.2
    held = np.flatnonzero(~train)
    e = emb.embed_patches(out.model, emb.crop_patches(reader, t.frame[held], t.points[held], 18.0))
    animal = t.track[held]
    cos = e @ e.T
    same = (animal[:, None] == animal[None, :]) & ~np.eye(len(held), dtype=bool)
    d_same, d_diff = float(np.median(1 - cos[same])), float(np.median(1 - cos[~same & ~np.eye(len(held), dtype=bool)]))
    print(f"held-out cosine distance: same animal {d_same:.3f}, different {d_diff:.3f}")
    assert d_diff > 0.3 and d_same < 0.25 * d_diff
    # each held-out instance is nearer its own animal's mean (from other held-out frames) than the other's
    mean = np.stack([e[animal == k].mean(axis=0) for k in (0, 1)])
    assert (np.argmax(e @ mean.T, axis=1) == animal).mean() > 0.95
    # the grey-level histograms of the two animals are alike (a large histogram weight still finds
    # the small difference on this clean clip: see bench/appearance_embedding.py)
    from napari_posetrack.core.tracking.stitching import appearance_histograms
    from napari_posetrack.core.tracking.similarity import centroids

    h = appearance_histograms(reader, t.frame[held], centroids(t.points[held]), 12.0)
    h0, h1 = h[animal == 0].mean(axis=0), h[animal == 1].mean(axis=0)
    assert 1.0 - np.sqrt(h0 * h1).sum() < 0.01


def test_training_is_deterministic_under_a_seed(encounters) -> None:
    frames, truth, _ = encounters
    t = truth.instances
    rows = np.flatnonzero(t.frame < 100)
    unit = _chunked_truth(truth)[rows]
    ids, label = np.unique(unit, return_inverse=True)
    patches = emb.crop_patches(ArrayFrames(frames), t.frame[rows], t.points[rows], 18.0)
    different = emb.known_different(unit, t.frame[rows], ids)
    assert different.any() and not different[np.eye(len(ids), dtype=bool)].any()

    def embed(seed: int) -> np.ndarray:
        model = emb.train_embedding(patches, label, different, steps=12, seed=seed)
        return emb.embed_patches(model, patches)

    a, b, c = embed(3), embed(3), embed(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)


def test_stitching_with_the_embedding_fixes_encounters_that_motion_gets_wrong(encounters) -> None:
    frames, truth, pred = encounters
    reader = ArrayFrames(frames)
    scores = {}
    for name, kw in (("motion", {}), ("embedding", {"embedding_weight": 5.0})):
        out = track(pred, TrackerConfig(max_tracks=2, **kw), video=reader).labels
        r = evaluate_tracking(truth, out, node="thorax", max_dist=20)
        scores[name] = r["id_switches"]
        assert (out.instances.track >= 0).all()
    print(scores)
    assert scores["motion"] >= 2  # the clip is built so
    assert scores["embedding"] == 0


def test_embedding_needs_the_video_and_says_so(encounters) -> None:
    from napari_posetrack.core.errors import MissingFileError

    _, _, pred = encounters  # its video "encounters.mp4" is not on disk
    with pytest.raises(MissingFileError, match="embedding_weight"):
        track(pred, TrackerConfig(max_tracks=2, embedding_weight=1.0))


def test_too_few_confident_tracklets_leaves_the_term_out_with_a_warning(encounters) -> None:
    frames, truth, _ = encounters
    one = truth.subset(np.flatnonzero(truth.instances.track == 0))  # one animal: no negatives
    one.remove_tracks()
    reader = ArrayFrames(frames)
    with pytest.warns(UserWarning, match="cannot learn an appearance embedding"):
        with_term = track(one, TrackerConfig(kind="user", embedding_weight=5.0), video=reader).labels
    plain = track(one, TrackerConfig(kind="user"), video=reader).labels
    np.testing.assert_array_equal(with_term.instances.track, plain.instances.track)
    # the learning step itself raises, naming the problem
    t = truth.instances
    with pytest.raises(emb.EmbeddingInputError, match="tracklet"):
        emb.tracklet_embeddings(np.where(t.track == 0, 0, -1), t.frame, t.points, reader, 18.0)


def test_embedding_is_off_by_default_and_set_from_the_command_line() -> None:
    from napari_posetrack.core.tracking.cli import add_tracker_options, tracker_config_from_args

    assert TrackerConfig().embedding_weight == 0.0
    p = argparse.ArgumentParser()
    add_tracker_options(p)
    cfg = tracker_config_from_args(p.parse_args(["--embedding-weight", "5", "--embedding-seed", "2"]))
    assert (cfg.embedding_weight, cfg.embedding_seed, cfg.appearance_weight) == (5.0, 2, 0.0)
    from napari_posetrack.core.errors import ConfigError

    with pytest.raises(ConfigError, match="embedding_weight"):
        TrackerConfig(embedding_weight=-1.0)


def test_body_axes_point_to_the_first_node() -> None:
    pts = np.array(
        [
            [[10.0, 0.0], [0.0, 0.0], [-10.0, 0.0]],  # head to the right
            [[0.0, -5.0], [0.0, 5.0], [np.nan, np.nan]],  # head up
            [[np.nan, np.nan], [3.0, 3.0], [np.nan, np.nan]],  # one node: no rotation
        ]
    )
    np.testing.assert_allclose(emb.body_axes(pts), [[1.0, 0.0], [0.0, -1.0], [0.0, -1.0]], atol=1e-12)


@pytest.mark.slow
def test_embedding_learnt_on_the_fly_clip_separates_the_flies_on_frames_it_did_not_see(flies, monkeypatch) -> None:
    from napari_posetrack.core.io.slp import load_slp
    from napari_posetrack.core.video import open_video

    gt = load_slp(flies / "clip.2node.slp")
    pred = load_slp(flies / "clip.predictions.slp")
    pred.remove_tracks()
    learnt = {}
    real = emb.tracklet_embeddings

    def keep(unit, frames, points, reader, radius, **kw):
        learnt["radius"] = radius
        rows, _ = emb._sample_rows(unit, frames, kw.get("samples", 64))
        learnt["seen"] = np.unique(frames[rows])
        learnt["out"] = out = real(unit, frames, points, reader, radius, **kw)
        return out

    monkeypatch.setattr(emb, "tracklet_embeddings", keep)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough confident tracklets: no fallback
        out = track(pred, TrackerConfig(max_tracks=2, embedding_weight=5.0), video=flies / "clip.mp4").labels
    r = evaluate_tracking(gt, out, node="thorax", max_dist=50)
    model = learnt["out"].model
    print(f"\nembedding: {model.n_tracklets} tracklets, {model.seconds:.1f} s; {r['id_switches']} switches, IDF1 {r['idf1']:.4f}")
    assert r["id_switches"] <= 8 and r["idf1"] >= 0.91  # no worse than motion alone (test_tracking_real)

    # ground-truth instances on every 4th frame the embedding never saw
    g = gt.instances
    unseen = np.setdiff1d(np.arange(0, 1500, 4), learnt["seen"])
    rows = np.flatnonzero(np.isin(g.frame, unseen))
    with open_video(flies / "clip.mp4") as reader:
        e = emb.embed_patches(model, emb.crop_patches(reader, g.frame[rows], g.points[rows], learnt["radius"]))
    animal = g.track[rows]
    early = g.frame[rows] < 750  # animal means from the first half, judged on the second
    mean = np.stack([e[early & (animal == k)].mean(axis=0) for k in (0, 1)])
    accuracy = float((np.argmax(e[~early] @ mean.T, axis=1) == animal[~early]).mean())
    d_same = 1 - (e[~early] * mean[animal[~early]]).sum(axis=1)
    d_other = 1 - (e[~early] * mean[1 - animal[~early]]).sum(axis=1)
    print(f"unseen frames: nearest-animal accuracy {accuracy:.3f}, median distance own {np.median(d_same):.3f}, other {np.median(d_other):.3f}")
    assert accuracy > 0.9
    assert np.median(d_same) < 0.5 * np.median(d_other)


def test_cropping_a_long_video_holds_only_a_batch_of_frames_of_sample_grids() -> None:
    """Sample coordinates are made per batch of frames, not for every instance of the video at once
    (at 64 samples per tracklet, thousands of tracklets meant gigabytes)."""
    import tracemalloc

    from napari_posetrack.core.tracking.embedding import crop_patches

    class Frames:
        def frame(self, i: int) -> np.ndarray:
            return np.full((32, 32), i % 256, dtype=np.uint8)

    rng = np.random.default_rng(0)
    n = 20_000
    frames = np.repeat(np.arange(2_000), 10)
    points = rng.uniform(4, 28, (n, 2, 2))
    tracemalloc.start()
    try:
        patches = crop_patches(Frames(), frames, points, 3.0, size=8, chunk=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert patches.shape == (n, 8, 8)
    assert (patches[frames == 7] == 7).all()
    # all instances' grids at once: 2 x 20,000 x 16 x 16 float64 = 82 MB; one batch: about a tenth
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB"
