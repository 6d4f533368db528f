"""Moved projects: stored video paths that no longer exist are found by file name."""

from __future__ import annotations

import os
import shutil
import warnings

import pytest

from napari_posetrack.core.io.video_paths import resolve_video_paths
from napari_posetrack.core.labels import Labels, Skeleton, Video


def labels_with(*videos: Video) -> Labels:
    return Labels(Skeleton(["a", "b"], [("a", "b")]), videos=list(videos))


def test_relative_and_windows_paths_resolve_next_to_the_labels_file(flies):
    lab = labels_with(
        Video("tests/data/json_format_v1/centered_pair_low_quality.mp4", n_frames=1100, shape=(384, 384, 1)),
        Video("tests/data/tracks\\clip.mp4", n_frames=1500, shape=(1024, 1024, 1)),
        Video("C:\\Users\\someone\\videos\\centered_pair_small.mp4", n_frames=1100, shape=(384, 384, 1)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        missing = resolve_video_paths(lab, flies / "labels.slp")
    assert missing == []
    assert [os.path.basename(v.path) for v in lab.videos] == [
        "centered_pair_low_quality.mp4",
        "clip.mp4",
        "centered_pair_small.mp4",
    ]
    assert all(os.path.isfile(v.path) for v in lab.videos)


def test_search_paths_and_the_missing_warning(flies, tmp_path):
    lab = labels_with(Video("/old/machine/clip.mp4"), Video("/old/machine/lost.mp4"))
    with pytest.warns(UserWarning, match=r"replace_video\(old_path, new_path\)") as rec:
        missing = resolve_video_paths(lab, tmp_path / "labels.slp", search_paths=[flies])
    assert missing == ["/old/machine/lost.mp4"]
    assert "lost.mp4" in str(rec[0].message) and "clip.mp4" not in str(rec[0].message)
    assert lab.videos[0].path == str(flies / "clip.mp4")
    assert lab.missing_videos() == [1]
    # metadata the labels did not store is filled from the video header (no decoding of the video)
    assert lab.videos[0].n_frames == 1500 and lab.videos[0].shape[:2] == (1024, 1024)


def test_stored_metadata_is_preferred_and_existing_paths_are_kept(flies):
    path = str(flies / "clip.mp4")
    lab = labels_with(Video(path, n_frames=7, shape=(1, 2, 1), fps=3.0))
    assert resolve_video_paths(lab, None) == []
    assert (lab.videos[0].path, lab.videos[0].n_frames, lab.videos[0].shape, lab.videos[0].fps) == (
        path,
        7,
        (1, 2, 1),
        3.0,
    )


def test_image_lists_move_as_a_folder(data, tmp_path):
    src = data / "dlc-openfield" / "labeled-data" / "m4s1"
    names = sorted(p.name for p in src.glob("*.png"))[:3]
    moved = tmp_path / "frames"
    moved.mkdir()
    for n in names:
        shutil.copy(src / n, moved / n)
    lab = labels_with(Video([f"D:\\lab\\frames\\{n}" for n in names], backend="images"))
    assert resolve_video_paths(lab, tmp_path / "project.slp", search_paths=[moved]) == []
    assert lab.videos[0].path == [str(moved / n) for n in names]
    gone = labels_with(Video(["/nowhere/x.png", "/nowhere/y.png"], backend="images"))
    with pytest.warns(UserWarning, match="x.png"):
        assert resolve_video_paths(gone, tmp_path / "project.slp") == ["/nowhere/x.png"]


def test_embedded_videos_are_never_missing(flies):
    lab = labels_with(
        Video(str(flies / "minimal_instance.pkg.slp"), backend="embedded"), Video("/x/missing.mp4")
    )
    assert resolve_video_paths(lab, flies / "minimal_instance.pkg.slp", warn=False) == ["/x/missing.mp4"]


# --------------------------------------------------------------------------- replacing moved videos (GUI dialog's core)


def test_prefix_change_is_the_folder_that_changed():
    from napari_posetrack.core.io.video_paths import prefix_change

    assert prefix_change("/lab/2023/mouse1/a.mp4", "/data/2023/mouse1/a.mp4") == ("/lab", "/data")
    assert prefix_change("/a/x.mp4", "/a/b/x.mp4") == ("/a", "/a/b")
    assert prefix_change("C:\\Users\\me\\vids\\a.mp4", "/home/me/vids/a.mp4") == ("C:\\Users", "/home")
    assert prefix_change("/lab/a.mp4", "/data/renamed.mp4") is None


def test_other_videos_that_moved_the_same_way_follow(tmp_path):
    from napari_posetrack.core.io.video_paths import propagate_replacement

    new_root = tmp_path / "new"
    for rel in ("day1/a.mp4", "day1/b.mp4", "day2/c.mp4"):
        (new_root / rel).parent.mkdir(parents=True, exist_ok=True)
        (new_root / rel).write_bytes(b"x")
    others = [
        "C:\\rig\\exp\\day1\\a.mp4",
        "C:\\rig\\exp\\day1\\b.mp4",
        "C:\\rig\\exp\\day2\\c.mp4",
        "C:\\rig\\exp\\day3\\gone.mp4",  # same move, but no file there: stays missing
        "D:\\elsewhere\\day1\\b.mp4",  # another old prefix: not touched
    ]
    found = propagate_replacement(others[0], new_root / "day1" / "a.mp4", others)
    assert found == {others[1]: str(new_root / "day1" / "b.mp4"), others[2]: str(new_root / "day2" / "c.mp4")}


def test_find_in_folder_prefers_the_stored_subfolders_then_any_depth(tmp_path):
    from napari_posetrack.core.errors import MissingFileError
    from napari_posetrack.core.io.video_paths import find_in_folder

    (tmp_path / "x" / "day2").mkdir(parents=True)
    (tmp_path / "day1").mkdir()
    (tmp_path / "x" / "day2" / "a.mp4").write_bytes(b"x")
    (tmp_path / "day1" / "a.mp4").write_bytes(b"x")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "only.mp4").write_bytes(b"x")
    assert find_in_folder("/old/day1/a.mp4", tmp_path) == tmp_path / "day1" / "a.mp4"
    assert find_in_folder("C:\\old\\day2\\a.mp4", tmp_path / "x") == tmp_path / "x" / "day2" / "a.mp4"
    assert find_in_folder("/old/only.mp4", tmp_path) == tmp_path / "deep" / "er" / "only.mp4"
    assert find_in_folder("/old/none.mp4", tmp_path) is None
    with pytest.raises(MissingFileError, match="nofolder"):
        find_in_folder("/old/a.mp4", tmp_path / "nofolder")


def test_replace_videos_fills_metadata_and_refuses_a_missing_file(flies, tmp_path):
    from napari_posetrack.core.errors import MissingFileError
    from napari_posetrack.core.io.video_paths import replace_videos

    lab = labels_with(Video("/gone/clip.mp4"), Video("/gone/other.mp4"))
    with pytest.raises(MissingFileError, match="nothere.mp4"):
        replace_videos(lab, {"/gone/clip.mp4": str(tmp_path / "nothere.mp4")})
    assert lab.videos[0].path == "/gone/clip.mp4"
    assert replace_videos(lab, {"/gone/clip.mp4": str(flies / "clip.mp4")}) == [0]
    assert lab.videos[0].path == str(flies / "clip.mp4") and lab.videos[0].n_frames == 1500
    assert lab.missing_videos() == [1]
