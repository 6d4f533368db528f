"""Tracker on synthetic trajectories and the generated sample clips (crossing animals)."""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pytest

from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.evaluation import evaluate_tracking
from napari_posetrack.core.labels import PREDICTED, REJECT_SURPLUS, Labels, Skeleton, Video
from napari_posetrack.core.tracking.matching import greedy_match, hungarian_match, runner_up_ratio
from napari_posetrack.core.tracking.similarity import get_similarity
from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels


def _walkers(n_frames: int = 60, extra: bool = False) -> Labels:
    """Three animals walking in parallel lines 80 px apart, as untracked predictions (ground truth in ``track``)."""
    lab = Labels(Skeleton(["head", "thorax", "tail"], [(1, 0), (1, 2)]), [Video("x.mp4", n_frames=n_frames)])
    for k in range(3):
        lab.add_track(f"animal_{k}")
    body = np.array([[8.0, 0.0], [0.0, 0.0], [-8.0, 0.0]])
    rng = np.random.default_rng(0)
    for f in range(n_frames):
        for k in range(3):
            pos = [20.0 + 3 * f, 50.0 + 80 * k]
            lab.add_instances(
                0, f, body + pos + rng.normal(0, 0.5, (3, 2)), kind=PREDICTED, track=k, score=0.9
            )
        if extra and f % 7 == 0:  # a low-score spurious detection in the middle of nowhere
            lab.add_instances(0, f, body + [400.0, 400.0], kind=PREDICTED, score=0.1)
    return lab


def _untracked(lab: Labels) -> Labels:
    out = lab.copy()
    out.remove_tracks()
    return out


def test_similarities_are_one_for_identical_poses_and_lower_when_apart() -> None:
    a = np.array([[[0.0, 0.0], [10.0, 0.0]], [[100.0, 0.0], [110.0, 0.0]]])
    for name in ("instance", "centroid", "iou", "oks"):
        sim = get_similarity(name)(a, a, 10.0)
        assert sim.shape == (2, 2)
        assert np.allclose(np.diag(sim), 1.0), name
        assert sim[0, 1] < 0.5 and sim[1, 0] < 0.5, name


def test_matchers_respect_the_similarity_floor() -> None:
    sim = np.array([[0.9, 0.8], [0.85, 0.01]])
    r, c = hungarian_match(sim, 0.0)
    assert sorted(zip(r.tolist(), c.tolist())) == [(0, 1), (1, 0)]  # total 1.65 beats 0.91
    r, c = greedy_match(sim, 0.0)
    assert sorted(zip(r.tolist(), c.tolist())) == [(0, 0), (1, 1)]  # takes 0.9 first
    r, c = greedy_match(sim, 0.05)
    assert list(zip(r.tolist(), c.tolist())) == [(0, 0)]  # 0.01 is below the floor: not forced
    ratio = runner_up_ratio(sim, np.array([0]), np.array([0]))
    assert ratio[0] == pytest.approx(0.85 / 0.9)  # best competitor: candidate 1 for detection 0


def test_invalid_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match="similarity"):
        TrackerConfig(similarity="cosine")
    with pytest.raises(ConfigError, match="window"):
        TrackerConfig(window=0)
    with pytest.raises(ConfigError, match="unknown tracker options"):
        TrackerConfig.from_dict({"max_track": 2})


@pytest.mark.parametrize("similarity", ["instance", "centroid", "iou", "oks"])
@pytest.mark.parametrize("matching", ["greedy", "hungarian"])
@pytest.mark.parametrize("stitch", [False, True])
def test_every_configuration_tracks_parallel_walkers_without_switches(similarity, matching, stitch) -> None:
    gt = _walkers()
    out = track_labels(
        _untracked(gt), TrackerConfig(similarity=similarity, matching=matching, stitch=stitch, max_tracks=3)
    )
    r = evaluate_tracking(gt, out, node="thorax", max_dist=20)
    assert r["id_switches"] == 0 and r["idf1"] == pytest.approx(1.0)
    assert len(out.tracks) == 3 and out.provenance["tracker"]["similarity"] == similarity


def test_max_tracks_is_respected_and_extra_detections_are_rejected() -> None:
    gt = _walkers(extra=True)
    for stitch in (False, True):
        out = track_labels(_untracked(gt), TrackerConfig(max_tracks=3, stitch=stitch))
        t = out.instances
        assert len(out.tracks) == 3
        assert set(np.unique(t.track[t.score < 0.5])) == {-1}
        assert set(np.unique(t.rejected[t.score < 0.5])) == {REJECT_SURPLUS}  # kept, flagged with a reason
        assert (t.rejected[t.score > 0.5] == 0).all() and (t.track[t.score > 0.5] >= 0).all()
        assert out.n_instances == gt.n_instances  # nothing is deleted
        tracked = t.track >= 0
        keys = t.frame[tracked] * 10 + t.track[tracked]
        assert len(np.unique(keys)) == len(keys)  # distinct tracks on every frame


def test_input_labels_are_not_modified_and_user_tracks_are_kept() -> None:
    gt = _walkers(n_frames=10)
    lab = _untracked(gt)
    keeper = lab.add_track("user_track")
    lab.add_instances(0, 0, np.zeros((3, 2)), track=keeper)  # a user instance, not re-tracked
    before = lab.instances.track.copy()
    out = track_labels(lab, TrackerConfig(max_tracks=3))
    assert np.array_equal(lab.instances.track, before)
    names = [tr.name for tr in out.tracks]
    assert names == ["track_0", "track_1", "track_2", "user_track"]
    user_row = np.flatnonzero(out.instances.kind == 0)[0]
    assert out.tracks[out.instances.track[user_row]].name == "user_track"


def test_progress_reports_every_frame() -> None:
    seen = []
    track_labels(
        _untracked(_walkers(n_frames=300)),
        TrackerConfig(max_tracks=3),
        progress=lambda d, n: seen.append((d, n)),
    )
    assert seen[-1] == (300, 300)


def _noisy_sample(n_frames: int, seed: int) -> tuple[np.ndarray, Labels, Labels]:
    from napari_posetrack.core.sample import generate_sample

    frames, gt = generate_sample(n_animals=4, n_frames=n_frames, crossing_rate=0.05, seed=seed)
    pred = _untracked(gt)
    pred.instances.kind[:] = PREDICTED
    pred.instances.score[:] = 1.0
    pred.instances.points[:] += np.random.default_rng(seed).normal(0, 1.5, pred.instances.points.shape)
    return frames, gt, pred


@pytest.mark.slow
def test_stitching_is_not_worse_than_frame_to_frame_on_crossing_animals() -> None:
    rows = []
    for seed in (1, 2):
        _, gt, pred = _noisy_sample(300, seed)
        for similarity in ("instance", "centroid", "iou"):
            res = {}
            for stitch in (False, True):
                out = track_labels(pred, TrackerConfig(max_tracks=4, similarity=similarity, stitch=stitch))
                assert len(out.tracks) <= 4
                res[stitch] = evaluate_tracking(gt, out, node="thorax", max_dist=20)
                rows.append(
                    (seed, similarity, stitch, res[stitch]["switches_per_1000_frames"], res[stitch]["idf1"])
                )
            assert res[True]["id_switches"] <= res[False]["id_switches"], (seed, similarity)
    for row in rows:
        seed, similarity, stitch, per_1000, idf1 = row
        print(
            f"seed {seed} {similarity:<8} stitch={stitch!s:<5} switches/1000 frames {per_1000:.1f} IDF1 {idf1:.3f}"
        )


@pytest.mark.slow
def test_flow_candidates_follow_the_video(tmp_path) -> None:
    from napari_posetrack.core.sample import write_video

    frames, gt, pred = _noisy_sample(120, 3)
    path = tmp_path / "sample.mp4"
    write_video(frames, path)
    for stitch, appearance in ((False, 0.0), (True, 0.0), (True, 0.3)):
        cfg = TrackerConfig(max_tracks=4, candidates="flow", stitch=stitch, appearance_weight=appearance)
        out = track_labels(pred, cfg, video=path)
        r = evaluate_tracking(gt, out, node="thorax", max_dist=20)
        print(
            f"flow stitch={stitch} appearance={appearance}: {r['id_switches']} switches, IDF1 {r['idf1']:.3f}"
        )
        assert len(out.tracks) == 4 and r["idf1"] > 0.9


def test_appearance_histograms_describe_the_patch_around_each_animal() -> None:
    from napari_posetrack.core.tracking.stitching import appearance_histograms

    class Frames:  # the one VideoReader method appearance_histograms uses
        def frame(self, i: int) -> np.ndarray:
            img = np.zeros((100, 100, 1), dtype=np.uint8)
            img[:, 50:] = 255
            return img

    hist = appearance_histograms(
        Frames(), np.array([0, 0]), np.array([[20.0, 50.0], [80.0, 50.0]]), radius=5, bins=4
    )
    assert hist[0].tolist() == [1.0, 0.0, 0.0, 0.0]  # all dark
    assert hist[1].tolist() == [0.0, 0.0, 0.0, 1.0]  # all bright


def test_track_command_writes_a_tracked_file(tmp_path) -> None:
    from napari_posetrack.core.io import load_labels, save_labels
    from napari_posetrack.core.tracking.cli import add_track_parser

    src = tmp_path / "in.slp"
    save_labels(_untracked(_walkers(n_frames=20)), src)
    parser = argparse.ArgumentParser()
    add_track_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["track", str(src), "-o", str(tmp_path / "out.slp"), "--max-tracks", "3", "--no-stitch"]
    )
    assert args.func(args) == 0
    out = load_labels(tmp_path / "out.slp")
    assert len(out.tracks) == 3 and (out.instances.track >= 0).all()


def test_flow_with_a_video_shorter_than_the_labels_names_the_file(tmp_path) -> None:
    from napari_posetrack.core.errors import FileFormatError
    from napari_posetrack.core.sample import write_video

    path = tmp_path / "short.mp4"
    write_video(np.zeros((5, 64, 64), dtype=np.uint8), path)
    lab = _untracked(_walkers(n_frames=8))
    with pytest.raises(FileFormatError, match="short.mp4"):
        track_labels(lab, TrackerConfig(candidates="flow", max_tracks=3), video=path)


def _chain_cost(s, chain, reward, **kw) -> float:
    from napari_posetrack.core.tracking.stitching import link_costs

    chain = sorted(chain, key=lambda i: s.start[i])
    total = -reward * float(s.count[chain].sum())
    for a, b in itertools.pairwise(chain):
        if s.end[a] >= s.start[b]:
            return np.inf
        total += float(link_costs(s, np.array([a]), b, **kw)[0])
    return total


def test_min_cost_flow_stitching_finds_the_global_optimum() -> None:
    import itertools

    from napari_posetrack.core.tracking.stitching import TrackletSummary, stitch_tracklets

    rng = np.random.default_rng(7)
    kw = {"position_sigma": 5.0, "motion_horizon": 3, "shape_weight": 0.0, "appearance_weight": 0.0}
    for _ in range(20):
        m = 6
        start = rng.integers(0, 40, m)
        length = rng.integers(1, 15, m)
        pos = rng.uniform(0, 100, (m, 2))
        s = TrackletSummary(
            start=start,
            end=start + length - 1,
            count=length,
            start_pos=pos,
            end_pos=pos + rng.normal(0, 5, (m, 2)),
            start_pose=pos[:, None, :],
            end_pose=(pos + rng.normal(0, 5, (m, 2)))[:, None, :],
            start_vel=np.zeros((m, 2)),
            end_vel=np.zeros((m, 2)),
            shape=np.zeros((m, 0)),
            shape_sigma=np.ones(0),
            step_sigma=2.0,
        )
        s.end_pos = s.end_pose[:, 0]
        reward = 1.0
        ident = stitch_tracklets(s, 2, reward=reward, **kw)
        got = sum(_chain_cost(s, np.flatnonzero(ident == k), reward, **kw) for k in range(2))
        best = min(
            sum(_chain_cost(s, np.flatnonzero(np.array(labels) == k), reward, **kw) for k in range(2))
            for labels in itertools.product((-1, 0, 1), repeat=m)
        )
        assert got == pytest.approx(best, abs=1e-6)
        # two tracklets overlapping in time never share an identity
        for a, b in itertools.combinations(range(m), 2):
            if ident[a] >= 0 and ident[a] == ident[b]:
                assert s.end[a] < s.start[b] or s.end[b] < s.start[a]
