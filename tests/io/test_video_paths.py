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
