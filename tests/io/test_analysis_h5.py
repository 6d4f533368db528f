"""SLEAP analysis HDF5 and tidy CSV exports, checked against sleap-io's export of the real fly clip."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.io.analysis_h5 import (
    analysis_slots,
    load_analysis_h5,
    save_analysis_h5,
    save_tidy_csv,
)
from napari_posetrack.core.labels import (
    NO_TRACK,
    PREDICTED,
    USER,
    Labels,
    Skeleton,
    Video,
    assert_labels_equal,
)


def labels_from_sleap_io(sio_labels) -> Labels:
    """Labels built from sleap-io objects (used while/if our own .slp reader is unavailable)."""
    sk = sio_labels.skeletons[0]
    skeleton = Skeleton(
        [n.name for n in sk.nodes],
        [(e.source.name, e.destination.name) for e in sk.edges],
        name=sk.name or "skeleton",
    )
    videos = [Video(v.filename, n_frames=len(v)) for v in sio_labels.videos]
    labels = Labels(skeleton, videos)
    for tr in sio_labels.tracks:
        labels.add_track(tr.name)
    track_index = {id(tr): k for k, tr in enumerate(sio_labels.tracks)}
    for lf in sio_labels.labeled_frames:
        v = sio_labels.videos.index(lf.video)
        for inst in lf.instances:
            track = track_index[id(inst.track)] if inst.track is not None else NO_TRACK
            predicted = type(inst).__name__ == "PredictedInstance"
            labels.add_instances(
                v,
                lf.frame_idx,
                inst.numpy(),
                kind=PREDICTED if predicted else USER,
                track=track,
                score=inst.score if predicted else np.nan,
                point_scores=inst.points["score"] if predicted else None,
            )
    return labels


def load_clip(path: Path) -> Labels:
    try:
        from napari_posetrack.core.io.slp import load_slp
    except ImportError:
        sio = pytest.importorskip("sleap_io")
        return labels_from_sleap_io(sio.load_slp(str(path)))
    return load_slp(path)


@pytest.fixture(scope="module")
def clip(flies: Path) -> Labels:
    return load_clip(flies / "clip.slp")


@pytest.mark.slow
def test_matches_sleap_io_export_of_clip(flies: Path, clip: Labels, tmp_path: Path) -> None:
    sio = pytest.importorskip("sleap_io")
    theirs = tmp_path / "theirs.h5"
    sio.save_analysis_h5(sio.load_slp(str(flies / "clip.slp")), str(theirs))
    ours = tmp_path / "ours.h5"
    save_analysis_h5(clip, ours)
    with h5py.File(theirs, "r") as a, h5py.File(ours, "r") as b:
        assert set(a.keys()) | {"frame_times"} == set(b.keys())  # ours adds each frame's time in seconds
        for name in ("tracks", "track_occupancy", "point_scores", "instance_scores", "tracking_scores"):
            assert a[name].shape == b[name].shape, name
            assert a[name].dtype == b[name].dtype, name
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
            assert a[name].attrs.get("dims") == b[name].attrs.get("dims"), name
        for name in ("node_names", "track_names"):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
        # the edge order is the .slp reader's choice; the set of edges must agree
        for name in ("edge_inds", "edge_names"):
            assert a[name].shape == b[name].shape and a[name].dtype.kind == b[name].dtype.kind, name
            assert sorted(map(tuple, a[name][()].tolist())) == sorted(map(tuple, b[name][()].tolist())), name
        assert a["tracks"].shape == (2, 2, 13, 1500)
        assert Path(b["video_path"][()].decode()).name == "clip.mp4"
        assert int(b["video_ind"][()]) == 0
        assert b.attrs["format"] == a.attrs["format"] and b.attrs["preset"] == a.attrs["preset"]
    # and sleap-io reads our file back to the same poses
    back = sio.load_analysis_h5(str(ours))
    assert len(back.labeled_frames) == 1500 and [t.name for t in back.tracks] == ["female", "male"]


def test_clip_round_trip_and_dense(clip: Labels, tmp_path: Path) -> None:
    out = tmp_path / "clip.analysis.h5"
    save_analysis_h5(clip, out)
    again = load_analysis_h5(out)
    assert np.all(again.instances.kind == USER)  # NaN scores mark user instances
    assert [t.name for t in again.tracks] == ["female", "male"]
    # the file has no visibility flags: a NaN point reads back as missing (not visible)
    expected = clip.copy()
    expected.instances.visible[np.isnan(expected.instances.points).any(axis=-1)] = False
    assert_labels_equal(expected, again)
    coords, occupancy = clip.dense()
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(np.transpose(f["tracks"][()], (3, 0, 2, 1)), coords)
        np.testing.assert_array_equal(f["track_occupancy"][()].astype(bool), occupancy)


def small_labels() -> Labels:
    skeleton = Skeleton(["head", "tail"], [("head", "tail")], name="worm")
    labels = Labels(skeleton, [Video("/videos/a.mp4", n_frames=6), Video("/videos/b.mp4", n_frames=3)])
    labels.add_track("ann")
    labels.add_track("bob")
    labels.add_instances(0, [0, 1, 2], np.arange(12, dtype=float).reshape(3, 2, 2), track=0)
    pred = labels.add_instances(
        0,
        [1, 4],
        np.array([[[5.0, 5.0], [np.nan, np.nan]], [[7.0, 8.0], [9.0, 9.5]]]),
        kind="predicted",
        track=1,
        score=[0.5, 0.75],
        point_scores=[[0.4, 0.0], [0.6, 0.7]],
        tracking_score=0.25,
    )
    # a user correction of the frame-1 prediction of bob shadows it
    labels.add_instances(0, 1, np.array([[5.5, 5.0], [6.0, 6.0]]), track=1, from_predicted=int(pred[0]))
    # a weaker duplicate prediction of ann on frame 2 loses to the user instance
    labels.add_instances(0, 2, np.zeros((2, 2)), kind="predicted", track=0, score=0.99)
    labels.add_instances(1, 0, np.ones((2, 2)), track=0)
    return labels


def test_slots_prefer_user_and_skip_shadowed() -> None:
    labels = small_labels()
    slot_rows, names, untracked = analysis_slots(labels, 0)
    assert slot_rows.shape == (6, 2) and names == ["ann", "bob"] and untracked == []
    t = labels.instances
    assert t.kind[slot_rows[2, 0]] == USER  # user beats the 0.99 prediction
    assert t.kind[slot_rows[1, 1]] == USER  # the correction replaces its prediction
    assert t.kind[slot_rows[4, 1]] == PREDICTED
    assert np.all(slot_rows[[3, 5]] == -1)


def test_small_round_trip_keeps_scores_and_kinds(tmp_path: Path) -> None:
    labels = small_labels()
    out = tmp_path / "a.h5"
    save_analysis_h5(labels, out, video=0)
    again = load_analysis_h5(out)
    assert again.videos[0].path == "/videos/a.mp4"
    assert again.skeleton.edge_names == [("head", "tail")] and again.skeleton.name == "worm"
    kinds = sorted(zip(again.instances.frame, again.instances.kind))
    assert kinds == [(0, USER), (1, USER), (1, USER), (2, USER), (4, PREDICTED)]
    r = again.rows(frame=4)[0]
    assert again.instances.score[r] == np.float32(0.75)
    np.testing.assert_allclose(again.instances.point_scores[r], [0.6, 0.7])
    assert again.instances.tracking_score[r] == np.float32(0.25)
    with h5py.File(out, "r") as f:
        assert f["tracks"].shape == (2, 2, 2, 6)
        assert f["track_occupancy"].dtype == np.uint8
        assert json.loads(f["tracks"].attrs["dims"]) == ["track", "xy", "node", "frame"]
        assert np.isnan(f["instance_scores"][0]).all()  # ann: user instances only


def test_untracked_instances_use_pseudo_tracks(tmp_path: Path) -> None:
    labels = Labels(Skeleton(["a", "b"]), [Video("v.mp4", n_frames=3)])
    labels.add_instances(0, [0, 0, 0, 2], np.arange(16, dtype=float).reshape(4, 2, 2))
    _slot_rows, names, untracked = analysis_slots(labels, 0)
    assert names == ["track_0", "track_1", "track_2"] and untracked == [0, 1, 2]
    out = tmp_path / "u.h5"
    save_analysis_h5(labels, out)
    again = load_analysis_h5(out)
    assert again.tracks == [] and np.all(again.instances.track == NO_TRACK)
    assert_labels_equal(labels, again)
    # beside real tracks, untracked instances get extra slots instead of being dropped
    labels.add_track("t")
    labels.update(0, track=0)
    _, names, untracked = analysis_slots(labels, 0)
    assert names == ["t", "untracked_0", "untracked_1"] and untracked == [1, 2]
    save_analysis_h5(labels, out)
    assert_labels_equal(labels, load_analysis_h5(out))


def test_tidy_csv(tmp_path: Path) -> None:
    import pandas as pd

    labels = small_labels()
    out = tmp_path / "poses.csv"
    save_tidy_csv(labels, out)
    df = pd.read_csv(out, keep_default_na=True)
    assert list(df.columns) == [
        "video",
        "frame",
        "time",
        "track",
        "node",
        "x",
        "y",
        "score",
        "instance_score",
        "kind",
    ]
    # video a: ann on 0,1,2 and bob on 1,4; video b: ann on 0; two nodes each
    assert len(df) == (5 + 1) * 2
    assert not df.duplicated(["video", "frame", "track", "node"]).any()
    row = df[(df.video == "a.mp4") & (df.frame == 4) & (df.node == "tail")].iloc[0]
    assert (row.x, row.y, row.kind, row.track) == (9.0, 9.5, "predicted", "bob")
    assert row.score == pytest.approx(0.7) and row.instance_score == pytest.approx(0.75)
    user = df[(df.video == "a.mp4") & (df.frame == 1) & (df.track == "bob")]
    assert list(user.kind) == ["user", "user"] and user.score.isna().all()
    only_b = tmp_path / "b.csv"
    save_tidy_csv(labels, only_b, video=1)
    assert set(pd.read_csv(only_b).video) == {"b.mp4"}


def test_tidy_csv_matches_dense_on_clip(clip: Labels, tmp_path: Path) -> None:
    import pandas as pd

    sub = clip.subset(np.flatnonzero(clip.instances.frame < 50))
    sub.videos[0].n_frames = 50
    out = tmp_path / "clip.csv"
    save_tidy_csv(sub, out)
    df = pd.read_csv(out)
    coords, occupancy = sub.dense()
    assert len(df) == occupancy.sum() * sub.n_nodes
    track = df.track.map({t.name: k for k, t in enumerate(sub.tracks)}).to_numpy()
    node = df.node.map({n: k for k, n in enumerate(sub.skeleton.nodes)}).to_numpy()
    np.testing.assert_array_equal(df[["x", "y"]].to_numpy(), coords[df.frame.to_numpy(), track, node])


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        load_analysis_h5(tmp_path / "absent.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(FileFormatError, match="not an HDF5 file"):
        load_analysis_h5(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FileFormatError, match="tracks") as err:
        load_analysis_h5(other)
    assert str(other) in str(err.value)
    bad_shape = tmp_path / "bad_shape.h5"
    with h5py.File(bad_shape, "w") as f:
        f["tracks"] = np.zeros((1, 2, 3, 4))
        f["node_names"] = np.array([b"a", b"b"])
    with pytest.raises(FileFormatError, match="2 nodes"):
        load_analysis_h5(bad_shape)


def test_exports_carry_time_in_seconds_from_the_videos_own_timestamps(clip: Labels, tmp_path: Path) -> None:
    """Constant rate (the real clip at 25 fps), variable rate (irregular pts), and a missing video."""
    import pandas as pd

    sub = clip.subset(np.flatnonzero(clip.instances.frame < 20))
    save_tidy_csv(sub, tmp_path / "clip.csv")
    df = pd.read_csv(tmp_path / "clip.csv")
    np.testing.assert_allclose(df.time, df.frame / 25.0, atol=1e-9)
    save_analysis_h5(sub, tmp_path / "clip.h5")
    with h5py.File(tmp_path / "clip.h5") as f:
        times = f["frame_times"][:]
        assert f.attrs["fps"] == pytest.approx(25.0) and len(times) == f["track_occupancy"].shape[0]
    np.testing.assert_allclose(times, np.arange(len(times)) / 25.0, atol=1e-9)
    assert load_analysis_h5(tmp_path / "clip.h5").n_instances == sub.n_instances  # still loads

    av = pytest.importorskip("av")
    times_ms = np.array([0, 40, 80, 200, 240, 700, 740, 780])  # gaps at frames 3 and 5
    video = tmp_path / "vfr.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = __import__("fractions").Fraction(1, 1000)
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(ms), stream.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    vfr = Labels(Skeleton(["a", "b"], [(0, 1)]), [Video(str(video))])
    vfr.add_instances(0, np.arange(8), np.ones((8, 2, 2)))
    save_tidy_csv(vfr, tmp_path / "vfr.csv")
    from napari_posetrack.core.video import open_video

    with open_video(video) as reader:
        stamps = reader.timestamps  # the reader's exactness on VFR files is tested in tests/video
    exported = pd.read_csv(tmp_path / "vfr.csv").time.to_numpy()[::2]
    np.testing.assert_allclose(exported, stamps, atol=1e-9)
    assert np.ptp(np.diff(exported)) > 0.3  # the gaps survive: not frame / fps

    gone = Labels(Skeleton(["a", "b"], [(0, 1)]), [Video(str(tmp_path / "moved.mp4"))])
    gone.add_instances(0, [0, 1], np.ones((2, 2, 2)))
    save_tidy_csv(gone, tmp_path / "gone.csv")
    assert pd.read_csv(tmp_path / "gone.csv").time.isna().all()  # no file, no rate: no made-up times
