"""DeepLabCut / Lightning Pose labels tables on the real example projects."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError, MissingFileError, PoseTrackError
from napari_posetrack.core.io.dlc import load_dlc, load_dlc_config, save_dlc, save_dlc_project
from napari_posetrack.core.labels import NO_TRACK, USER, Labels, Skeleton, Video, assert_labels_equal


def raw_csv_values(path: Path, n_header: int = 3) -> tuple[list[str], np.ndarray]:
    """Row keys and coordinates parsed independently with pandas' round-trip float parser."""
    import pandas as pd

    df = pd.read_csv(
        path, header=list(range(n_header)), index_col=0
    )  # pandas 3 parses floats exactly by default
    return [str(k) for k in df.index], df.to_numpy(dtype=np.float64)


@pytest.fixture
def openfield(data: Path) -> Path:
    return data / "dlc-openfield"


@pytest.fixture
def openfield_copy(openfield: Path, tmp_path: Path) -> Path:
    """A writable DLC project: config and tables copied, images linked (the real folder is never written)."""
    project = tmp_path / "openfield"
    folder = project / "labeled-data" / "m4s1"
    folder.mkdir(parents=True)
    shutil.copy(openfield / "config.yaml", project / "config.yaml")
    for table in (openfield / "labeled-data" / "m4s1").glob("CollectedData_*"):
        shutil.copy(table, folder / table.name)
    for image in (openfield / "labeled-data" / "m4s1").glob("*.png"):
        os.symlink(image, folder / image.name)
    return project


def assert_points_equal(a: Labels, b: Labels) -> None:
    """Bitwise equality of coordinates after sorting by (video, frame, track)."""
    assert_labels_equal(a, b)
    oa = np.lexsort((a.instances.track, a.instances.frame, a.instances.video))
    ob = np.lexsort((b.instances.track, b.instances.frame, b.instances.video))
    np.testing.assert_array_equal(a.instances.points[oa], b.instances.points[ob])


def test_openfield_csv_loads_config_skeleton_and_image_video(openfield: Path) -> None:
    csv_path = openfield / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    labels = load_dlc(csv_path)
    assert labels.skeleton.nodes == ["snout", "leftear", "rightear", "tailbase"]
    assert labels.skeleton.edges == []
    assert labels.provenance["dlc_config"] == str((openfield / "config.yaml").resolve())
    assert labels.provenance["dlc_scorer"] == "Pranav"
    assert len(labels.videos) == 1 and labels.tracks == []
    video = labels.videos[0]
    assert video.backend == "images" and video.exists and video.n_frames == 116
    assert labels.n_instances == 116
    assert np.all(labels.instances.kind == USER) and np.all(labels.instances.track == NO_TRACK)
    # the frame index of each row is the position of its image in the folder
    keys, values = raw_csv_values(csv_path)
    frames = labels.instances.frame
    for key, frame in zip(keys, frames):
        assert Path(video.path[frame]).name == Path(key).name
    np.testing.assert_array_equal(labels.instances.points.reshape(116, -1), values)


def test_openfield_h5_equals_csv(openfield: Path) -> None:
    folder = openfield / "labeled-data" / "m4s1"
    from_csv = load_dlc(folder / "CollectedData_Pranav.csv")
    from_h5 = load_dlc(folder / "CollectedData_Pranav.h5")
    assert_points_equal(from_csv, from_h5)
    assert from_csv.videos[0].path == from_h5.videos[0].path


@pytest.mark.parametrize("ext", [".csv", ".h5"])
def test_openfield_round_trip_in_project(openfield: Path, openfield_copy: Path, ext: str) -> None:
    out = openfield_copy / "labeled-data" / "m4s1" / f"CollectedData_Pranav{ext}"
    original = load_dlc(out)
    save_dlc(original, out)
    again = load_dlc(out)
    assert_points_equal(original, again)
    assert [Path(p).name for p in again.videos[0].path] == [Path(p).name for p in original.videos[0].path]
    if ext == ".csv":
        # written in place of the original, the file is the original byte for byte
        assert (
            out.read_text() == (openfield / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv").read_text()
        )
    else:
        import pandas as pd

        ours = pd.read_hdf(out, "df_with_missing")
        theirs = pd.read_hdf(openfield / "labeled-data" / "m4s1" / "CollectedData_Pranav.h5")
        assert list(ours.columns) == list(theirs.columns) and ours.columns.names == theirs.columns.names
        assert list(ours.index) == list(theirs.index)
        np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy())


def test_lightning_pose_csv_round_trip(data: Path, tmp_path: Path) -> None:
    src = data / "lp-mirror-mouse" / "CollectedData.csv"
    labels = load_dlc(src)
    assert labels.n_nodes == 17 and labels.skeleton.edges == []
    assert labels.n_instances == 90
    video = labels.videos[0]
    # img00, img91, img92 are unlabelled images of the same folder: frames, but no instances
    assert video.n_frames == 93 and Path(video.path[0]).name == "img00.png"
    assert sorted(labels.instances.frame) == list(range(1, 91))
    _keys, values = raw_csv_values(src)
    order = np.argsort(labels.instances.frame)
    np.testing.assert_array_equal(labels.instances.points[order].reshape(90, -1), values)
    assert np.isnan(values).any()  # real missing keypoints survive as NaN

    out = tmp_path / "lp" / "CollectedData.csv"
    save_dlc(labels, out)  # images live elsewhere: keys become relative paths to them
    again = load_dlc(out)
    assert_points_equal(labels, again)
    assert again.videos[0].path == video.path
    _keys_out, values_out = raw_csv_values(out)
    np.testing.assert_array_equal(values_out, values)


def test_three_level_index_and_multianimal_round_trip(openfield: Path, openfield_copy: Path) -> None:
    labels = load_dlc(openfield_copy / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv")
    # a second animal and the arena corner as a DLC unique body part
    cfg_path = openfield_copy / "config.yaml"
    cfg_path.write_text(
        "scorer: Pranav\nmultianimalproject: true\nbodyparts: MULTI!\n"
        "multianimalbodyparts: [snout, leftear, rightear, tailbase]\n"
        "uniquebodyparts: [corner]\nindividuals: [mus1, mus2]\n"
        "skeleton:\n- [snout, leftear]\n- [snout, rightear]\n- [leftear, tailbase]\n"
    )
    skeleton = Skeleton(["snout", "leftear", "rightear", "tailbase", "corner"])
    multi = Labels(skeleton, [v.copy() for v in labels.videos])
    for name in ("mus1", "mus2", "single"):
        multi.add_track(name)
    pts = np.full((labels.n_instances, 5, 2), np.nan)
    pts[:, :4] = labels.instances.points
    frames = labels.instances.frame
    multi.add_instances(0, frames, pts, track=0)
    moved = pts + 7.25
    moved[::3] = np.nan  # mus2 absent on a third of the frames
    keep = ~np.isnan(moved).all(axis=(1, 2))
    multi.add_instances(0, frames[keep], moved[keep], track=1)
    corner = np.full((10, 5, 2), np.nan)
    corner[:, 4] = [3.5, 4.0]
    multi.add_instances(0, frames[:10], corner, track=2)
    multi.provenance["dlc_uniquebodyparts"] = ["corner"]

    out = openfield_copy / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    save_dlc(multi, out, index_style="multi")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("scorer,,,Pranav")
    assert lines[1].startswith("individuals,,,mus1") and lines[1].endswith("single,single")
    assert lines[4].startswith("labeled-data,m4s1,img0000.png,")
    again = load_dlc(out)  # finds the multi-animal config two folders up
    assert again.provenance["dlc_multianimal"] and again.provenance["dlc_index_style"] == "multi"
    assert again.skeleton.edge_names == [("snout", "leftear"), ("snout", "rightear"), ("leftear", "tailbase")]
    assert [t.name for t in again.tracks] == ["mus1", "mus2", "single"]
    assert again.provenance["dlc_uniquebodyparts"] == ["corner"]
    assert_points_equal(
        multi, Labels(Skeleton(again.skeleton.nodes), again.videos, again.tracks, instances=again.instances)
    )

    h5 = out.with_suffix(".h5")
    save_dlc(again, h5)
    assert_points_equal(again, load_dlc(h5))


def test_video_frames_named_like_dlc_and_extracted(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("napari_posetrack.core.video")
    video_path = data / "lp-mirror-mouse" / "videos" / "test_vid.mp4"
    labels = Labels(Skeleton(["a", "b"]), [Video(str(video_path), n_frames=994)])
    labels.add_instances(0, [3, 40], np.array([[[1.5, 2.0], [np.nan, np.nan]], [[10.0, 11.0], [12.0, 13.0]]]))
    out = tmp_path / "proj" / "labeled-data" / "test_vid" / "CollectedData_me.csv"
    save_dlc(labels, out, extract_frames=True)
    assert "labeled-data/test_vid/img00003.png" in out.read_text()
    images = sorted(p.name for p in out.parent.glob("*.png"))
    assert images == ["img00003.png", "img00040.png"]
    again = load_dlc(out)
    assert again.videos[0].backend == "images" and again.videos[0].exists
    np.testing.assert_array_equal(again.instances.points, labels.instances.points)
    assert list(again.instances.frame) == [0, 1]


def test_config_superset_loads_missing_nodes(openfield: Path, tmp_path: Path) -> None:
    cfg = load_dlc_config(openfield / "config.yaml")
    cfg["bodyparts"] = ["snout", "leftear", "rightear", "tailbase", "tailtip"]
    cfg["skeleton"] = [["snout", "tailbase"]]
    labels = load_dlc(openfield / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv", config=cfg)
    assert labels.skeleton.nodes[-1] == "tailtip" and labels.skeleton.edges == [(0, 3)]
    assert np.isnan(labels.instances.points[:, 4]).all()


def test_table_bodypart_missing_from_config_loads_as_extra_node(openfield: Path, tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("bodyparts: [snout, leftear, rightear]\nskeleton: []\n")
    csv_path = openfield / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    with pytest.warns(UserWarning, match="tailbase") as record:
        labels = load_dlc(csv_path, config=bad)
    assert str(csv_path) in str(record[0].message) and str(bad) in str(record[0].message)
    # nothing of the file is hidden: the table's body part is an extra node with its points
    assert labels.skeleton.nodes == ["snout", "leftear", "rightear", "tailbase"]
    _keys, values = raw_csv_values(csv_path)
    order = np.argsort(labels.instances.frame)
    np.testing.assert_array_equal(labels.instances.points[order].reshape(116, -1), values)


def test_config_errors_name_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("bodyparts: [a, b]\nskeleton: [[a, c]]\n")
    with pytest.raises(FileFormatError, match=r"config\.yaml.*unknown body part"):
        load_dlc_config(cfg)
    cfg.write_text("bodyparts: [a, b\n")
    with pytest.raises(FileFormatError, match="YAML"):
        load_dlc_config(cfg)
    with pytest.raises(MissingFileError):
        load_dlc_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("frame,x,y\n0,1.0,2.0\n", "header rows"),
        ("scorer,me,me\nbodyparts,a,a\nlabeled-data/v/img0.png,1.0,2.0\n", "header rows"),
        ("scorer,me,me\nbodyparts,a,a\ncoords,x,z\nlabeled-data/v/img0.png,1.0,2.0\n", "coords"),
        ("scorer,me,me\nbodyparts,a,a\ncoords,x,y\nlabeled-data/v/img0.png,1.0,oops\n", "not a number"),
        ("", "empty"),
        (
            "scorer,me,me,me,me\nbodyparts,a,a,a,a\ncoords,x,y,x,y\nlabeled-data/v/img0.png,1,2,3,4\n",
            "repeat",
        ),
    ],
)
def test_bad_csv_raises_file_format_error(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "CollectedData_me.csv"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=problem) as err:
        load_dlc(path)
    assert err.value.path == str(path)


def test_bad_h5_and_missing_file(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "CollectedData_me.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FileFormatError) as err:
        load_dlc(path)
    assert str(path) in str(err.value)
    with pytest.raises(PoseTrackError, match="not found"):
        load_dlc(tmp_path / "CollectedData_absent.csv")


def test_failed_save_leaves_existing_file(openfield: Path, tmp_path: Path) -> None:
    labels = load_dlc(openfield / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv")
    out = tmp_path / "CollectedData_x.csv"
    out.write_text("previous contents")
    labels.add_instances(0, 0, labels.instances.points[0])  # two untracked instances on frame 0
    with pytest.raises(ValueError, match="multi-animal"):
        save_dlc(labels, out, multianimal=False)
    assert out.read_text() == "previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["CollectedData_x.csv"]
    save_dlc(labels, out)  # defaults to a multi-animal table: nothing is lost
    again = load_dlc(out)
    assert [t.name for t in again.tracks] == ["individual1", "individual2"]
    assert again.n_instances == labels.n_instances


def test_only_user_instances_are_written(openfield: Path, tmp_path: Path) -> None:
    labels = load_dlc(openfield / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv")
    labels.add_instances(0, 5, labels.instances.points[0] + 1, kind="predicted", score=0.9)
    out = tmp_path / "CollectedData_x.csv"
    save_dlc(labels, out)
    again = load_dlc(out)
    assert again.n_instances == 116 and not again.provenance["dlc_multianimal"]


def test_dlc_analysis_output_loads_as_predictions(data: Path, tmp_path: Path) -> None:
    import pandas as pd

    os.symlink(data / "lp-mirror-mouse" / "videos" / "test_vid.mp4", tmp_path / "test_vid.mp4")
    columns = pd.MultiIndex.from_product(
        [["DLC_resnet50_miceJan1shuffle1_1000"], ["nose", "tail"], ["x", "y", "likelihood"]],
        names=["scorer", "bodyparts", "coords"],
    )
    values = np.array([[1.0, 2.0, 0.9, 3.0, 4.0, 0.5], [5.0, 6.0, 0.8, 7.0, 8.0, 0.25], [np.nan] * 6])
    table = tmp_path / "test_vidDLC_resnet50_miceJan1shuffle1_1000.h5"
    pd.DataFrame(values, index=[10, 11, 12], columns=columns).to_hdf(table, key="df_with_missing")
    labels = load_dlc(table)
    assert labels.videos[0].path == str(tmp_path / "test_vid.mp4") and labels.videos[0].exists
    assert list(labels.instances.frame) == [10, 11]  # frame 12 has no coordinates
    assert np.all(labels.instances.kind == 1)
    np.testing.assert_allclose(labels.instances.point_scores, [[0.9, 0.5], [0.8, 0.25]])
    np.testing.assert_allclose(labels.instances.score, [0.7, 0.525])
    np.testing.assert_array_equal(labels.instances.points, values[:2].reshape(2, 2, 3)[..., :2])


def test_save_project_writes_csv_and_h5_per_folder(openfield_copy: Path) -> None:
    folder = openfield_copy / "labeled-data" / "m4s1"
    labels = load_dlc(folder / "CollectedData_Pranav.csv")
    original_csv = (folder / "CollectedData_Pranav.csv").read_text()
    (folder / "CollectedData_Pranav.csv").unlink()
    (folder / "CollectedData_Pranav.h5").unlink()
    written = save_dlc_project(labels, openfield_copy)
    assert written == [folder / "CollectedData_Pranav.csv", folder / "CollectedData_Pranav.h5"]
    assert (folder / "CollectedData_Pranav.csv").read_text() == original_csv
    assert_points_equal(labels, load_dlc(folder / "CollectedData_Pranav.h5"))


def test_save_project_from_generated_video(tmp_path: Path) -> None:
    from napari_posetrack.core.io.slp import load_slp
    from napari_posetrack.core.sample import write_sample

    paths = write_sample(tmp_path / "src", n_animals=2, n_frames=30, size=(96, 96), seed=1)
    labels = load_slp(paths["labels"])
    labels = labels.subset(np.flatnonzero(labels.instances.frame % 10 == 0))  # 3 labelled frames
    project = tmp_path / "dlcproj"
    written = save_dlc_project(labels, project, scorer="me", extract_frames=True)
    folder = project / "labeled-data" / "sample"
    assert written == [folder / "CollectedData_me.csv", folder / "CollectedData_me.h5"]
    assert sorted(p.name for p in folder.glob("*.png")) == ["img00000.png", "img00010.png", "img00020.png"]
    import cv2

    from napari_posetrack.core.video import open_video

    with open_video(paths["video"]) as reader:
        np.testing.assert_array_equal(
            cv2.imread(str(folder / "img00010.png"), cv2.IMREAD_GRAYSCALE), reader.frame(10)[..., 0]
        )
    again = load_dlc(folder / "CollectedData_me.h5")
    assert [t.name for t in again.tracks] == ["animal_0", "animal_1"]
    assert again.n_instances == 6 and list(np.unique(again.instances.frame)) == [0, 1, 2]
    order = np.lexsort((labels.instances.track, labels.instances.frame))
    order_again = np.lexsort((again.instances.track, again.instances.frame))
    np.testing.assert_array_equal(again.instances.points[order_again], labels.instances.points[order])


def test_windows_separators_in_row_keys(openfield_copy: Path) -> None:
    folder = openfield_copy / "labeled-data" / "m4s1"
    labels = load_dlc(folder / "CollectedData_Pranav.csv")
    text = (
        (folder / "CollectedData_Pranav.csv")
        .read_text()
        .replace("labeled-data/m4s1/", "labeled-data\\m4s1\\")
    )
    windows = folder / "CollectedData_win.csv"
    windows.write_text(text)
    again = load_dlc(windows)
    assert again.videos[0].path == labels.videos[0].path and again.videos[0].exists
    assert_points_equal(labels, again)
