"""Every instance on a track or rejected with a reason (issue #12 item 1), the summary, the rejected
flag in .slp files, video selection and bad input (item 6)."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest

from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.labels import (
    PREDICTED,
    REJECT_DUPLICATE,
    REJECT_EMPTY,
    REJECT_FEW_POINTS,
    REJECT_SHAPE,
    REJECT_SURPLUS,
    REJECTION_REASONS,
    Labels,
    Skeleton,
    Video,
    assert_labels_equal,
)
from napari_posetrack.core.tracking.completion import complete_identities
from napari_posetrack.core.tracking.shape import distrusted_nodes, limb_z, node_doubt
from napari_posetrack.core.tracking.stitching import TrackletSummary, junction_margins, link_costs
from napari_posetrack.core.tracking.tracker import TrackerConfig, TrackingInputError, track, track_labels

BODY = np.array([[8.0, 0.0], [0.0, 0.0], [-8.0, 0.0]])  # head, thorax, tail along +x


def _lanes(n_frames: int = 80, n_animals: int = 3, video: int = 0, lab: Labels | None = None) -> Labels:
    """Animals walking along parallel lanes 80 px apart, as untracked predictions."""
    if lab is None:
        lab = Labels(Skeleton(["head", "thorax", "tail"], [(1, 0), (1, 2)]), [Video("a.mp4")])
    rng = np.random.default_rng(video)
    f = np.repeat(np.arange(n_frames), n_animals)
    k = np.tile(np.arange(n_animals), n_frames)
    centre = np.stack([20.0 + 3.0 * f, 50.0 + 80.0 * k], axis=1)
    pts = centre[:, None, :] + BODY + rng.normal(0, 0.5, (len(f), 3, 2))
    lab.add_instances(video, f, pts, kind=PREDICTED, score=0.9)
    return lab


def _lane_of(lab: Labels) -> np.ndarray:
    """The true lane of each instance (its thorax y)."""
    y = np.nan_to_num(lab.instances.points[:, 1, 1], nan=-1e4)
    return np.round((y - 50.0) / 80.0).astype(int)


def _one_track_per_lane(out: Labels, rows: np.ndarray) -> bool:
    t = out.instances
    lanes = _lane_of(out)[rows]
    return all(len(np.unique(t.track[rows][lanes == k])) == 1 for k in np.unique(lanes))


def _assert_invariants(out: Labels, n: int) -> None:
    """Frames with at most n instances: all on distinct tracks. Busier frames: n kept, the rest rejected."""
    t = out.instances
    assert ((t.track >= 0) != (t.rejected > 0)).all()  # on a track, or rejected with a reason
    keys = t.frame[t.track >= 0] * 1000 + t.track[t.track >= 0]
    assert len(np.unique(keys)) == len(keys)  # no two instances share a track on a frame
    per_frame = np.bincount(t.frame)
    tracked = np.bincount(t.frame[t.track >= 0], minlength=len(per_frame))
    assert np.array_equal(tracked, np.minimum(per_frame, n))


def test_every_instance_gets_a_track_when_there_are_no_more_than_the_animals() -> None:
    lab = _lanes()
    t = lab.instances
    rng = np.random.default_rng(3)
    # missed detections, a merged instance (head of lane 0, rest of lane 1) and an instance whose
    # nodes are all invisible, on frames that still hold at most 3 instances
    lab.delete(np.flatnonzero((rng.random(len(t)) < 0.15) & (t.frame > 2)))
    t = lab.instances
    merged = np.flatnonzero((t.frame == 40) & (_lane_of(lab) == 1))[0]
    t.points[merged, 0] = t.points[merged, 1] + [0.0, -80.0]
    lonely = np.flatnonzero(t.frame == 50)[0]
    t.visible[lonely] = False
    for stitch in (True, False):
        out = track_labels(lab, TrackerConfig(max_tracks=3, stitch=stitch))
        _assert_invariants(out, 3)
        assert (out.instances.rejected == 0).all()
        visible = np.flatnonzero(out.instances.visible.any(axis=1))
        assert _one_track_per_lane(out, visible)  # and each lane on one track, the merged one included


def test_busy_frames_keep_the_most_consistent_and_reject_the_rest_with_a_reason() -> None:
    lab = _lanes()
    t = lab.instances
    dup_src = np.flatnonzero((t.frame == 30) & (_lane_of(lab) == 2))[0]
    lab.add_instances(0, 30, t.points[dup_src] + 2.0, kind=PREDICTED, score=0.5)  # the same animal twice
    lab.add_instances(0, 31, BODY + [500.0, 600.0], kind=PREDICTED, score=0.2)  # off every animal
    far = BODY + [200.0, 700.0]
    far[0] += [0.0, 120.0]  # and its limbs are implausible too
    lab.add_instances(0, 32, far, kind=PREDICTED, score=0.9)
    lab.add_instances(0, 33, np.full((3, 2), np.nan), kind=PREDICTED, score=0.9)  # no visible point
    result = track(lab, TrackerConfig(max_tracks=3))
    out = result.labels
    _assert_invariants(out, 3)
    t = out.instances
    reason = {int(f): int(t.rejected[(t.frame == f) & (t.rejected > 0)][0]) for f in (30, 31, 32, 33)}
    assert reason == {30: REJECT_DUPLICATE, 31: REJECT_SURPLUS, 32: REJECT_SHAPE, 33: REJECT_EMPTY}
    assert (t.rejected > 0).sum() == 4
    assert _one_track_per_lane(out, np.flatnonzero(t.track >= 0))
    s = result.summary
    assert s.rejected == {REJECT_SURPLUS: 1, REJECT_DUPLICATE: 1, REJECT_SHAPE: 1, REJECT_EMPTY: 1}
    assert s.n_instances == out.n_instances and s.n_assigned + s.n_rejected == s.n_instances


def test_without_a_limit_or_stitching_leftovers_are_rejected_with_their_reason() -> None:
    lab = _lanes(20)
    one_node = np.full((3, 2), np.nan)
    one_node[2] = [400.0, 400.0]  # one visible node, far from the animals: too few to start a track
    lab.add_instances(0, 0, one_node, kind=PREDICTED)
    lab.add_instances(0, 7, np.full((3, 2), np.nan), kind=PREDICTED)
    out = track_labels(lab, TrackerConfig(max_tracks=None, stitch=False, min_points=2))
    t = out.instances
    assert t.rejected[-2] == REJECT_FEW_POINTS and t.track[-2] == -1
    assert t.rejected[-1] == REJECT_EMPTY and len(out.tracks) == 3
    assert ((t.track >= 0) != (t.rejected > 0)).all()


def test_a_run_of_single_instance_frames_follows_the_identity_it_continues() -> None:
    # identity 0 walks right along y=0, identity 1 along y=100; frames 10-19 hold one unplaced
    # instance near identity 1's path, frames 20-29 one near identity 0's
    frames = np.concatenate([np.repeat(np.arange(10), 2), np.arange(10, 30), np.repeat(np.arange(30, 40), 2)])
    x = 5.0 * frames
    y = np.concatenate(
        [np.tile([0.0, 100.0], 10), np.full(10, 100.0), np.zeros(10), np.tile([0.0, 100.0], 10)]
    )
    points = np.stack([x, y], axis=1)[:, None, :] + np.array([[4.0, 0.0], [-4.0, 0.0]])
    identity = np.concatenate([np.tile([0, 1], 10), np.full(20, -1), np.tile([0, 1], 10)])
    done = complete_identities(
        identity,
        frames,
        points,
        n_identities=2,
        position_sigma=5.0,
        step_sigma=5.0,
        max_gap=100,
        outlier=np.zeros(len(frames), bool),
        scores=np.ones(len(frames)),
    )
    assert done.identity[20:30].tolist() == [1] * 10 and done.identity[30:40].tolist() == [0] * 10
    assert done.filled.sum() == 20 and not done.forced.any()  # two free identities on each of those frames
    assert (done.fit[20:40] > 0.5).all() and (done.reason == 0).all()
    assert len(done.choices) == 20 and min(c.margin for c in done.choices) > 1.0


def test_implausible_instances_distrust_parts_away_from_the_root() -> None:
    # thorax (root) -> head, thorax -> abdomen -> tip
    edges = np.array([[1, 0], [1, 2], [2, 3]])
    doubt = node_doubt(edges, 4)
    assert np.argsort(doubt).tolist() == [1, 0, 2, 3]  # root first, deeper and later nodes last
    rng = np.random.default_rng(0)
    lengths = np.abs(rng.normal([10.0, 20.0, 8.0], 0.5, (200, 3)))
    lengths[0] = [60.0, 20.0, 8.0]  # head far off
    lengths[1] = [10.0, 90.0, 90.0]  # abdomen far off: on two implausible limbs
    lengths[2] = [10.0, 20.0, 50.0]  # tip far off
    z = limb_z(lengths)
    drop = distrusted_nodes(z[:3], edges, 4.0, np.broadcast_to(doubt, (3, 4)))
    assert drop.tolist() == [
        [True, False, False, False],
        [False, False, True, False],
        [False, False, False, True],
    ]
    # two nodes, one limb: the child goes, the root stays
    assert distrusted_nodes(
        np.array([[9.0]]), np.array([[1, 0]]), 4.0, node_doubt(np.array([[1, 0]]), 2)[None]
    ).tolist() == [[True, False]]


def test_junction_margins_price_the_swap_of_two_identities() -> None:
    # two identities each cut once at frame 10 -> 12; swapping their continuations is far dearer
    start = np.array([0, 12, 0, 12])
    end = np.array([10, 20, 10, 20])
    pos = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 100.0], [0.0, 100.0]])
    s = TrackletSummary(
        start=start,
        end=end,
        count=end - start + 1,
        start_pos=pos,
        end_pos=pos,
        start_pose=pos[:, None, :],
        end_pose=pos[:, None, :],
        start_vel=np.zeros((4, 2)),
        end_vel=np.zeros((4, 2)),
        shape=np.zeros((4, 0)),
        shape_sigma=np.ones(0),
        step_sigma=2.0,
    )
    joins = junction_margins(s, np.array([0, 0, 1, 1]), position_sigma=5.0, max_gap=50, motion_horizon=3)
    assert len(joins) == 1  # one swap, seen from both joins
    kw = {"position_sigma": 5.0, "motion_horizon": 3, "shape_weight": 0.0}
    c = lambda a, b: float(link_costs(s, np.array([a]), b, **kw)[0])
    assert joins[0].margin == pytest.approx(c(0, 3) + c(2, 1) - c(0, 1) - c(2, 3))
    assert joins[0].margin > 100 and (joins[0].end, joins[0].start) == (10, 12)


def test_summary_says_what_was_done(tmp_path) -> None:
    lab = _lanes()
    # lanes 0 and 1 unseen for 10 frames: their tracklets end, and the stitcher could swap them
    t = lab.instances
    lab.delete(np.flatnonzero((t.frame >= 40) & (t.frame < 50) & (_lane_of(lab) < 2)))
    lab.add_instances(0, 31, BODY + [500.0, 600.0], kind=PREDICTED, score=0.2)
    result = track(lab, TrackerConfig(max_tracks=3))
    s = result.summary
    assert s.videos == ["a.mp4"] and s.tracks == ["track_0", "track_1", "track_2"]
    assert (s.n_instances, s.n_assigned, s.rejected) == (
        lab.n_instances,
        lab.n_instances - 1,
        {REJECT_SURPLUS: 1},
    )
    assert (s.n_tracklets, s.n_stitched) == (6, 5)  # the stray instance is a tracklet of its own
    assert len(s.uncertain) == 1 and s.uncertain[0].margin > 10  # swapping lanes 0 and 1: far dearer
    assert s.uncertain[0].frame == 50 and "across frames 39-50" in s.uncertain[0].what
    text = str(s)
    assert "into 3 tracks" in text and f"on a track: {lab.n_instances - 1}; rejected: 1" in text
    assert REJECTION_REASONS[REJECT_SURPLUS][1] in text and "tracklets" in text
    assert "least certain decisions" in text and "a.mp4 frame" in text
    assert json.loads(json.dumps(s.to_dict()))["rejected"] == {"surplus": 1}


NO_VIDEO_FILES = pytest.mark.filterwarnings("ignore:.*were not found:UserWarning")  # a.mp4 is not on disk


@NO_VIDEO_FILES
def test_rejected_flags_round_trip_through_slp_and_sleap_io_still_reads_the_file(tmp_path) -> None:
    from napari_posetrack.core.io.slp import load_slp, save_slp

    lab = _lanes(20)
    lab.add_instances(0, 5, BODY + [500.0, 600.0], kind=PREDICTED, score=0.2)
    lab.add_instances(0, 6, np.full((3, 2), np.nan), kind=PREDICTED, score=0.2)
    out = track_labels(lab, TrackerConfig(max_tracks=3))
    assert sorted(out.instances.rejected[out.instances.rejected > 0].tolist()) == [
        REJECT_SURPLUS,
        REJECT_EMPTY,
    ]
    path = tmp_path / "tracked.slp"
    save_slp(out, path)
    assert_labels_equal(load_slp(path), out)  # rejected codes included
    # a carried part (a member we do not model) beside ours: the next save writes each once
    with h5py.File(path, "a") as f:
        f.create_dataset("someone_elses", data=np.arange(3))
    save_slp(load_slp(path), tmp_path / "again.slp")
    assert_labels_equal(load_slp(tmp_path / "again.slp"), out)
    # untouched stores write no table at all; another writer's table of another length is ignored
    save_slp(lab, tmp_path / "plain.slp")
    with h5py.File(tmp_path / "plain.slp", "r") as f:
        assert "posetrack_rejected" not in f
    with h5py.File(path, "a") as f:
        del f["posetrack_rejected"]
        f.create_dataset("posetrack_rejected", data=np.ones(3, np.uint8))
    assert (load_slp(path).instances.rejected == 0).all()
    sio = pytest.importorskip("sleap_io")
    sl = sio.load_slp(str(tmp_path / "again.slp"))
    assert len(sl.tracks) == 3 and sum(len(lf.instances) for lf in sl.labeled_frames) == out.n_instances


def _two_videos() -> Labels:
    lab = _lanes(30, video=0)
    lab.add_video(Video("b.mp4"))
    _lanes(30, video=1, lab=lab)
    return lab


def test_only_the_chosen_videos_are_tracked() -> None:
    lab = _two_videos()
    first = track_labels(lab, TrackerConfig(max_tracks=3))
    assert (first.instances.track >= 0).all()
    marked = first.copy()
    marked.instances.track[marked.instances.video == 0] = 0  # all on track_0: must survive
    for choice in (["b.mp4"], [1], "b.mp4", ["1"]):
        result = track(marked, TrackerConfig(max_tracks=3), videos=choice)
        out, t = result.labels, result.labels.instances
        assert result.summary.videos == ["b.mp4"]
        assert [tr.name for tr in out.tracks] == ["track_0", "track_1", "track_2"]  # old track_0 = new one
        assert (t.track[t.video == 0] == 0).all()
        assert _one_track_per_lane(out, np.flatnonzero(t.video == 1))
    with pytest.raises(TrackingInputError, match=r"no video named 'c.mp4'.*0: a.mp4, 1: b.mp4"):
        track(lab, TrackerConfig(max_tracks=3), videos=["c.mp4"])
    with pytest.raises(TrackingInputError, match="no video 5"):
        track(lab, TrackerConfig(max_tracks=3), videos=[5])


def test_bad_input_is_refused_with_a_message_and_nothing_changes(tmp_path) -> None:
    lab = _lanes(10)
    before = lab.instances.track.copy()
    with pytest.raises(ConfigError, match="max_tracks .*at least 1"):
        TrackerConfig(max_tracks=0)
    user = lab.copy()
    user.add_instances(
        0, 4, np.stack([BODY + [0.0, 300.0 + 80.0 * k] for k in range(4)])
    )  # 4 labelled animals
    with pytest.raises(
        TrackingInputError, match="max tracks is 3, but frame 4 of a.mp4 has 4 labelled animals"
    ):
        track(user, TrackerConfig(max_tracks=3))
    only_user = Labels(lab.skeleton, [Video("a.mp4")])
    only_user.add_instances(0, 0, BODY)
    with pytest.raises(TrackingInputError, match="no predicted instances to track in a.mp4; .* kind 'user'"):
        track(only_user, TrackerConfig(max_tracks=1))
    assert np.array_equal(lab.instances.track, before)


@NO_VIDEO_FILES
def test_track_command_picks_videos_prints_the_summary_and_refuses_bad_input(tmp_path, capsys) -> None:
    from napari_posetrack.core import cli
    from napari_posetrack.core.io import load_labels, save_labels

    src = tmp_path / "in.slp"
    save_labels(_two_videos(), src)
    out = tmp_path / "out.slp"
    assert cli.main(["track", str(src), "-o", str(out), "--max-tracks", "3", "--video", "b.mp4"]) == 0
    printed = capsys.readouterr().out
    assert "tracked 90 predicted instances in 1 video (b.mp4) into 3 tracks" in printed
    assert "on a track: 90; rejected: 0" in printed and "3 tracklets" in printed
    t = load_labels(out).instances
    assert (t.track[t.video == 1] >= 0).all() and (t.track[t.video == 0] == -1).all()

    for bad, message in (
        (["--max-tracks", "0"], "max_tracks (the number of animals) must be at least 1"),
        (["--max-tracks", "3", "--video", "nope.mp4"], "no video named 'nope.mp4'"),
        (["--max-tracks", "3", "--kind", "user"], "no user instances to track in a.mp4, b.mp4"),
    ):
        target = tmp_path / "never.slp"
        code = cli.main(["track", str(src), "-o", str(target), *bad])
        err = capsys.readouterr().err
        assert code == 1 and message in err and not target.exists(), (bad, err)


def test_track_parser_defaults_are_the_tracker_defaults() -> None:
    from napari_posetrack.core.tracking.cli import add_track_parser, tracker_config_from_args

    parser = argparse.ArgumentParser()
    add_track_parser(parser.add_subparsers())
    args = parser.parse_args(["track", "in.slp", "-o", "out.slp"])
    assert tracker_config_from_args(args) == TrackerConfig()
    assert args.videos is None and args.video_file is None


def test_putting_a_rejected_instance_on_a_track_clears_its_reason() -> None:
    lab = _lanes(10)
    lab.add_instances(0, 5, BODY + [500.0, 600.0], kind=PREDICTED, score=0.2)
    out = track_labels(lab, TrackerConfig(max_tracks=3))
    row = int(np.flatnonzero(out.instances.rejected)[0])
    out.update(row, score=0.3)  # other edits keep it
    assert out.instances.rejected[row] == REJECT_SURPLUS
    out.update(row, track=-1)  # still without a track: still rejected
    assert out.instances.rejected[row] == REJECT_SURPLUS
    out.update(row, track=1)
    assert out.instances.rejected[row] == 0 and out.instances.track[row] == 1


def test_predict_and_track_checks_max_tracks_before_predicting(small_sample, single_instance_run, tmp_path):
    """`posetrack predict --track` refuses a too-small max tracks before inference, not after it."""
    from napari_posetrack.core.inference.api import predict_to_file
    from napari_posetrack.core.inference.pipelines import InferenceOptions
    from napari_posetrack.core.tracking.tracker import TrackerConfig, TrackingInputError

    with pytest.raises(TrackingInputError, match="max tracks is 1, but frame .* has 2 labelled animals"):
        predict_to_file(small_sample["labels"], [single_instance_run], tmp_path / "out.slp",
                        options=InferenceOptions(device="cpu"), tracker=TrackerConfig(max_tracks=1))
    assert list(tmp_path.iterdir()) == []  # no output and no prediction journal: inference never started
