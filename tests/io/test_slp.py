"""SLEAP .slp / .pkg.slp reading and writing, checked against sleap-io as an oracle on real files."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.io.slp import load_slp, save_slp
from napari_posetrack.core.io.slp_embedded import EmbeddedFrameReader
from napari_posetrack.core.labels import (
    PREDICTED,
    USER,
    Labels,
    Skeleton,
    Suggestion,
    Video,
    assert_labels_equal,
)

sys.path.insert(0, str(Path(__file__).parent))
from sleap_oracle import assert_same_as_sleap_io

sio = pytest.importorskip("sleap_io")

SLP_FILES = [
    "centered_pair_predictions.slp",
    "clip.2node.slp",
    "clip.predictions.slp",
    "clip.slp",
    "minimal_instance.pkg.slp",
    "minimal_instance.slp",
]


def load_quiet(path, **kw) -> Labels:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_slp(path, **kw)


def sio_load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sio.load_slp(str(path), open_videos=False)


# --------------------------------------------------------------------------- real files, both directions


@pytest.mark.parametrize("name", SLP_FILES)
def test_real_file_reads_like_sleap_io(flies, name):
    assert_same_as_sleap_io(load_slp(flies / name), sio_load(flies / name))


@pytest.mark.parametrize("name", SLP_FILES)
def test_our_file_opens_in_sleap_io_and_in_ours(flies, tmp_path, name):
    ours = load_slp(flies / name)
    out = tmp_path / name
    save_slp(ours, out)
    assert_same_as_sleap_io(ours, sio_load(out))
    again = load_quiet(out)
    assert_labels_equal(ours, again)
    assert again.skeleton == ours.skeleton
    assert [(t.name, t.spawned_on) for t in again.tracks] == [(t.name, t.spawned_on) for t in ours.tracks]
    assert again.provenance == ours.provenance
    np.testing.assert_array_equal(again.instances.tracking_score, ours.instances.tracking_score)
    np.testing.assert_array_equal(again.instances.complete, ours.instances.complete)


@pytest.mark.parametrize("name", SLP_FILES)
def test_sleap_io_file_opens_in_ours(flies, tmp_path, name):
    theirs = sio_load(flies / name)
    out = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save_slp(theirs, str(out), embed=False, verbose=False)
    assert_same_as_sleap_io(load_quiet(out), theirs)


def test_real_file_contents(flies):
    """Facts from the data README, read through our loader."""
    pred = load_slp(flies / "centered_pair_predictions.slp")
    assert pred.n_nodes == 24 and len(pred.skeleton.edges) == 23 and len(pred.tracks) == 27
    assert pred.n_instances == 2274 and (pred.instances.kind == PREDICTED).all()
    assert np.isfinite(pred.instances.score).all() and np.isfinite(pred.instances.point_scores).any()
    clip = load_slp(flies / "clip.slp")
    assert clip.n_nodes == 13 and len(clip) == 1500 and (clip.instances.kind == USER).all()
    assert [t.name for t in clip.tracks] == ["female", "male"] and (clip.instances.track >= 0).all()
    missing = np.isnan(clip.instances.points[..., 0]).mean()
    assert 0.005 < missing < 0.03  # about 1.6% of points are missing
    assert np.isnan(clip.instances.score).all()  # user instances carry no score


# --------------------------------------------------------------------------- everything a file can hold


def rich_labels(tmp_path: Path, flies: Path) -> Labels:
    """Two videos (a file and an image list), user + predicted instances with links, every column set."""
    sk = Skeleton(
        ["head", "thorax", "wingL", "wingR"],
        [("thorax", "head"), ("thorax", "wingL"), ("thorax", "wingR")],
        symmetries=[("wingL", "wingR")],
        name="fly4",
    )
    images = [str(tmp_path / f"img{i:02d}.png") for i in range(3)]
    lab = Labels(
        sk,
        videos=[
            Video(str(flies / "clip.mp4"), n_frames=1500, shape=(1024, 1024, 1), fps=25.0),
            Video(images, n_frames=3, shape=(64, 80, 3), backend="images"),
        ],
        suggestions=[Suggestion(0, 10, 0), Suggestion(1, 2, 1)],
        provenance={"software": "napari-posetrack", "nested": {"a": [1, 2.5, None]}, "n": np.int64(3)},
    )
    lab.add_track("female", spawned_on=3)
    lab.add_track("male")
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 60, size=(6, 4, 2))
    pts[1, 2] = np.nan
    pred_ids = lab.add_instances(
        [0, 0, 0, 1, 1, 0],
        [5, 5, 7, 0, 2, 3],
        pts,
        kind=PREDICTED,
        track=[0, 1, 0, -1, 1, 0],
        score=rng.uniform(0, 1, 6),
        point_scores=rng.uniform(0, 1, (6, 4)),
        tracking_score=rng.uniform(0, 1, 6),
    )
    user_pts = pts[[0, 3]] + 0.25
    vis = np.ones((2, 4), bool)
    vis[0, 1] = False  # occluded but placed: coordinates kept with visible=False
    lab.add_instances(
        [0, 1],
        [5, 0],
        user_pts,
        kind=USER,
        visible=vis,
        track=[0, -1],
        from_predicted=[pred_ids[0], pred_ids[3]],
        complete=np.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool),
    )
    lab.add_instances(0, 900, pts[2] * 2, kind=USER)  # a user frame with no prediction
    return lab


def test_everything_round_trips_through_ours_and_sleap_io(flies, tmp_path):
    lab = rich_labels(tmp_path, flies)
    out = tmp_path / "rich.slp"
    save_slp(lab, out)

    again = load_quiet(out)
    assert_labels_equal(lab, again)
    assert again.skeleton == lab.skeleton
    assert again.suggestions == lab.suggestions
    assert again.provenance == {"software": "napari-posetrack", "nested": {"a": [1, 2.5, None]}, "n": 3}
    assert [(t.name, t.spawned_on) for t in again.tracks] == [("female", 3), ("male", 0)]
    assert again.videos[0].path == lab.videos[0].path and again.videos[0].fps == 25.0
    assert (again.videos[0].n_frames, again.videos[0].shape) == (1500, (1024, 1024, 1))
    assert again.videos[1].backend == "images" and again.videos[1].path == lab.videos[1].path
    t0, t1 = lab.instances, again.instances
    order = np.lexsort((t0.frame, t0.video, t0.kind))
    order2 = np.lexsort((t1.frame, t1.video, t1.kind))
    for col in ("tracking_score", "complete", "visible"):
        np.testing.assert_array_equal(t0.column(col)[order], t1.column(col)[order2], err_msg=col)
    # links survive as links to the same predictions (ids are renumbered on write)
    user = np.flatnonzero(t1.kind == USER)
    linked = t1.from_predicted[user]
    assert (linked >= 0).sum() == 2
    for r in user[linked >= 0]:
        src = again.row_of_id(t1.from_predicted[r])[0]
        assert t1.kind[src] == PREDICTED and t1.frame[src] == t1.frame[r] and t1.video[src] == t1.video[r]
    assert again.shadowed_predictions().sum() == 2

    sl = sio_load(out)
    assert_same_as_sleap_io(lab, sl)
    assert sl.provenance["software"] == "napari-posetrack"
    assert len(sl.skeletons[0].symmetries) == 1
    assert [sf.metadata.get("group") for sf in sl.suggestions] == [0, 1]

    back = tmp_path / "from_sleap_io.slp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save_slp(sl, str(back), embed=False, verbose=False)
    from_sio = load_quiet(back)
    assert_same_as_sleap_io(from_sio, sl)
    assert [set(s) for s in from_sio.skeleton.symmetry_names] == [{"wingL", "wingR"}]
    assert from_sio.shadowed_predictions().sum() == 2


def test_file_layout_is_sleaps(flies, tmp_path):
    out = tmp_path / "layout.slp"
    save_slp(rich_labels(tmp_path, flies), out)
    with h5py.File(out, "r") as f:
        assert {
            "metadata",
            "videos_json",
            "tracks_json",
            "suggestions_json",
            "frames",
            "instances",
            "points",
            "pred_points",
        } <= set(f)
        assert float(f["metadata"].attrs["format_id"]) >= 1.2
        md = json.loads(f["metadata"].attrs["json"])
        assert [n["name"] for n in md["nodes"]] == ["head", "thorax", "wingL", "wingR"]
        assert f["instances"].dtype.names[-1] == "tracking_score"
        assert f["pred_points"].dtype.names == ("x", "y", "visible", "complete", "score")
        inst, frames = f["instances"][()], f["frames"][()]
        # every frame's instances are contiguous and point ranges are one skeleton long
        assert (frames["instance_id_end"] - frames["instance_id_start"]).sum() == len(inst)
        assert np.all(inst["point_id_end"] - inst["point_id_start"] == 4)


def test_old_format_coordinates_are_shifted(flies, tmp_path):
    out = tmp_path / "old.slp"
    shutil.copy(flies / "minimal_instance.slp", out)
    new = load_quiet(out)
    with h5py.File(out, "r+") as f:
        f["metadata"].attrs["format_id"] = 1.0
    old = load_quiet(out)
    np.testing.assert_allclose(old.instances.points, new.instances.points - 0.5)
    assert_same_as_sleap_io(old, sio_load(out))


def test_instances_on_two_skeletons(flies, tmp_path):
    out = tmp_path / "two.slp"
    shutil.copy(flies / "minimal_instance.slp", out)
    with h5py.File(out, "r+") as f:
        md = json.loads(f["metadata"].attrs["json"])
        md["nodes"].append({"name": "C", "weight": 1.0})
        # the same nodes in the other order: the second instance is mapped back onto skeleton 0
        md["skeletons"].append(
            {
                "directed": True,
                "graph": {"name": "reversed"},
                "links": [],
                "multigraph": True,
                "nodes": [{"id": 1}, {"id": 0}],
            }
        )
        f["metadata"].attrs["json"] = np.bytes_(json.dumps(md))
        inst = f["instances"][()]
        pts = f["points"][()]
        p0 = int(inst["point_id_start"][1])
        pts[p0 : p0 + 2] = pts[p0 : p0 + 2][::-1].copy()
        inst["skeleton"][1] = 1
        f["instances"][...] = inst
        f["points"][...] = pts
    np.testing.assert_array_equal(
        load_quiet(out).instances.points, load_quiet(flies / "minimal_instance.slp").instances.points
    )

    with h5py.File(out, "r+") as f:
        md = json.loads(f["metadata"].attrs["json"])
        md["skeletons"][1]["nodes"] = [{"id": 0}, {"id": 2}]  # A, C: different nodes
        f["metadata"].attrs["json"] = np.bytes_(json.dumps(md))
    with pytest.raises(FileFormatError, match="different nodes") as err:
        load_quiet(out)
    assert str(out) in str(err.value)


# --------------------------------------------------------------------------- bad input, atomic saving


def test_bad_files_name_the_file_and_the_problem(flies, tmp_path):
    with pytest.raises(MissingFileError, match="nope.slp"):
        load_slp(tmp_path / "nope.slp")

    text = tmp_path / "text.slp"
    text.write_text("this is not HDF5")
    with pytest.raises(FileFormatError, match="not an HDF5 file") as err:
        load_slp(text)
    assert err.value.path == str(text)

    data = (flies / "clip.slp").read_bytes()
    half = tmp_path / "half.slp"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="truncated or corrupt") as err:
        load_slp(half)
    assert err.value.path == str(half)

    bare = tmp_path / "bare.slp"
    with h5py.File(bare, "w") as f:
        f.create_dataset("frames", data=np.zeros(3))
    with pytest.raises(FileFormatError, match="no /metadata"):
        load_slp(bare)

    no_table = tmp_path / "no_table.slp"
    shutil.copy(flies / "minimal_instance.slp", no_table)
    with h5py.File(no_table, "r+") as f:
        del f["instances"]
    with pytest.raises(FileFormatError, match="no /instances"):
        load_quiet(no_table)


def test_failed_save_leaves_the_old_file_untouched(flies, tmp_path):
    out = tmp_path / "keep.slp"
    lab = load_quiet(flies / "minimal_instance.slp")
    save_slp(lab, out)
    before = out.read_bytes()
    lab.provenance["bad"] = object()  # not JSON-serialisable: saving must fail
    lab.add_instances(0, 3, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="provenance.bad"):
        save_slp(lab, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.slp"]  # no temporary file left


# --------------------------------------------------------------------------- packages (embedded frames)


def test_package_frames_read_like_sleap_io(flies):
    lab = load_slp(flies / "minimal_instance.pkg.slp")
    video = lab.videos[0]
    assert video.backend == "embedded" and lab.missing_videos() == []
    with EmbeddedFrameReader(video) as reader:
        frame = reader.frame(0)
        assert frame.shape == reader.shape == (384, 384, 1) and frame.dtype == np.uint8
        assert reader.has_frame(0) and len(reader) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sio.load_slp(str(flies / "minimal_instance.pkg.slp"))
        np.testing.assert_array_equal(theirs.videos[0][0], frame)


def test_embed_user_frames_and_copy_packages(flies, tmp_path):
    from napari_posetrack.core.video import open_video

    lab = load_slp(flies / "minimal_instance.slp")
    pkg = tmp_path / "minimal.pkg.slp"
    save_slp(lab, pkg, embed="user")
    with open_video(lab.videos[0]) as reader:
        expected = reader.frame(0)
    ours = load_quiet(pkg)
    assert ours.videos[0].backend == "embedded"
    assert ours.videos[0].backend_metadata["source_video"]["backend"]["filename"] == lab.videos[0].path
    with EmbeddedFrameReader(ours.videos[0]) as reader:
        np.testing.assert_array_equal(reader.frame(0), expected)
        assert reader.n_frames == 1100 and not reader.has_frame(1)
        assert not reader.frame(1).any()  # frames not in the package read as black
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sio.load_slp(str(pkg))
        np.testing.assert_array_equal(theirs.videos[0][0], expected)
        assert Path(theirs.videos[0].source_video.filename).name == "centered_pair_low_quality.mp4"
    assert_same_as_sleap_io(ours, sio_load(pkg))

    # a package sleap-io writes (zero-padded fixed-length rows) reads the same in ours
    sio_pkg = tmp_path / "sleap_io.pkg.slp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save_slp(
            sio.load_slp(str(flies / "minimal_instance.slp")), str(sio_pkg), embed="user", verbose=False
        )
    with EmbeddedFrameReader(load_quiet(sio_pkg).videos[0]) as reader:
        np.testing.assert_array_equal(reader.frame(0), expected)

    # saving a package again carries its frames over without the source video
    copy = tmp_path / "copy.pkg.slp"
    save_slp(ours, copy)
    again = load_quiet(copy)
    with EmbeddedFrameReader(again.videos[0]) as reader:
        np.testing.assert_array_equal(reader.frame(0), expected)
    assert_labels_equal(ours, again)


def test_embedding_a_missing_video_fails_cleanly(flies, tmp_path):
    lab = load_quiet(flies / "minimal_instance.slp")
    lab.replace_video(0, str(tmp_path / "gone.mp4"))
    with pytest.raises(MissingFileError, match="gone.mp4"):
        save_slp(lab, tmp_path / "x.pkg.slp", embed=True)
    assert not (tmp_path / "x.pkg.slp").exists()
    with pytest.raises(ValueError, match="embed must be"):
        save_slp(lab, tmp_path / "y.slp", embed="sometimes")


# --------------------------------------------------------------------------- moved projects


def test_moved_project_videos_are_found_next_to_the_labels(flies):
    for name in ("centered_pair_predictions.slp", "clip.2node.slp"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # nothing is missing: no warning
            lab = load_slp(flies / name)
        assert lab.missing_videos() == []
        assert Path(lab.videos[0].path).parent.resolve() == flies.resolve()


def test_missing_video_is_kept_with_a_warning(flies, tmp_path):
    moved = tmp_path / "project" / "labels.slp"
    moved.parent.mkdir()
    shutil.copy(flies / "minimal_instance.slp", moved)
    with pytest.warns(UserWarning, match="replace_video") as rec:
        lab = load_slp(moved)
    assert "centered_pair_low_quality.mp4" in str(rec[0].message)
    assert lab.missing_videos() == [0] and lab.n_instances == 2
    lab.replace_video(0, str(flies / "centered_pair_low_quality.mp4"))
    assert lab.missing_videos() == []

    found = load_slp(moved, search_paths=[flies])
    assert found.missing_videos() == [] and found.videos[0].path == str(
        flies / "centered_pair_low_quality.mp4"
    )


# --------------------------------------------------------------------------- scale


def test_many_predictions_round_trip(tmp_path):
    """20,000 predicted instances x 24 nodes (the 1,000,000-instance timing lives in bench/pose_store.py)."""
    sk = Skeleton([f"n{i}" for i in range(24)], name="big")
    lab = Labels(sk, videos=[Video("big.mp4", n_frames=10_000, shape=(64, 64, 1))])
    n = 20_000
    rng = np.random.default_rng(1)
    lab.add_track("a")
    lab.add_track("b")
    lab.add_instances(
        np.zeros(n, int),
        np.arange(n) // 2,
        rng.uniform(0, 64, (n, 24, 2)),
        kind=PREDICTED,
        track=np.arange(n) % 2,
        score=rng.uniform(0, 1, n),
        point_scores=rng.uniform(0, 1, (n, 24)),
    )
    out = tmp_path / "big.slp"
    save_slp(lab, out)
    again = load_quiet(out)
    assert_labels_equal(lab, again)
    np.testing.assert_array_equal(again.instances.points, lab.instances.points)  # same order, bit-exact


def test_tables_in_any_order_read_the_same(flies, tmp_path):
    """Frames listed out of order and point ranges out of order (both legal) take the gather paths."""
    out = tmp_path / "shuffled.slp"
    shutil.copy(flies / "clip.2node.slp", out)
    with h5py.File(out, "r+") as f:
        frames = f["frames"][()]
        f["frames"][...] = frames[np.random.default_rng(0).permutation(len(frames))]
        inst = f["instances"][()]
        pts = f["points"][()]
        a, b = inst[0].copy(), inst[5].copy()  # swap where the points of instances 0 and 5 live
        pa, pb = (
            pts[a["point_id_start"] : a["point_id_end"]].copy(),
            pts[b["point_id_start"] : b["point_id_end"]].copy(),
        )
        pts[a["point_id_start"] : a["point_id_end"]], pts[b["point_id_start"] : b["point_id_end"]] = pb, pa
        inst["point_id_start"][[0, 5]] = b["point_id_start"], a["point_id_start"]
        inst["point_id_end"][[0, 5]] = b["point_id_end"], a["point_id_end"]
        f["instances"][...] = inst
        f["points"][...] = pts
    assert_labels_equal(load_quiet(out), load_slp(flies / "clip.2node.slp"))
    assert_same_as_sleap_io(load_quiet(out), sio_load(out))
