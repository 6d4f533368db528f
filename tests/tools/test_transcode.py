"""Video transcoding with real PyAV on the first frames of a real fly video."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.tools.transcode import (
    TranscodeCancelled,
    transcode_files,
    transcode_folder,
    transcode_video,
)
from napari_posetrack.core.video import open_video

N_FRAMES = 60


@pytest.fixture(scope="module")
def source(flies):
    return flies / "centered_pair_small.mp4"


def test_transcode_keeps_frames_with_short_keyframe_interval(source, tmp_path):
    calls = []
    out = transcode_video(
        source,
        tmp_path / "out.mp4",
        keyframe_interval=10,
        max_frames=N_FRAMES,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[-1] == (N_FRAMES, N_FRAMES)
    with open_video(source) as src, open_video(out) as dst:
        assert dst.n_frames == N_FRAMES
        assert dst.shape == src.shape
        assert dst.fps == pytest.approx(src.fps, rel=1e-3)
        np.testing.assert_array_equal(np.asarray(dst.keyframes), np.arange(0, N_FRAMES, 10))
        for i in (0, 17, 59):
            diff = np.abs(dst.frame(i).astype(np.int16) - src.frame(i).astype(np.int16)).mean()
            assert diff < 3.0, f"frame {i} differs by {diff}"


def test_grayscale_scale_and_crop(source, tmp_path):
    with open_video(source, rgb=True) as src:
        h, w = src.shape[:2]
    gray = transcode_video(source, tmp_path / "gray.mp4", grayscale=True, max_frames=5)
    with open_video(gray) as reader:
        assert reader.grayscale and reader.shape == (h, w, 1)
    half = transcode_video(source, tmp_path / "half.mp4", scale=0.5, max_frames=5)
    with open_video(half) as reader:
        assert reader.shape[:2] == (h // 2 + (h // 2) % 2, w // 2 + (w // 2) % 2)
    cropped = transcode_video(source, tmp_path / "crop.mp4", crop=(10, 20, 64, 48), max_frames=5)
    with open_video(cropped, rgb=True) as reader, open_video(source, rgb=True) as src:
        assert reader.shape[:2] == (48, 64)
        expected = src.frame(0)[20:68, 10:74].astype(np.int16)
        assert np.abs(reader.frame(0).astype(np.int16) - expected).mean() < 4.0


def test_cancel_leaves_nothing(source, tmp_path):
    out = tmp_path / "cancelled.mp4"
    seen = []

    def cancel():
        seen.append(1)
        return len(seen) > 3

    with pytest.raises(TranscodeCancelled):
        transcode_video(source, out, max_frames=N_FRAMES, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_input_names_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(FileFormatError, match="broken.mp4"):
        transcode_video(bad, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_folder_skips_existing_outputs(source, tmp_path):
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    (src_dir / "a.mp4").symlink_to(source)
    (src_dir / "b.mp4").symlink_to(source)
    (src_dir / "notes.txt").write_text("not a video")
    dst_dir = tmp_path / "out"
    dst_dir.mkdir()
    (dst_dir / "b.mp4").write_bytes(b"already here")
    calls = []
    outputs = transcode_folder(src_dir, dst_dir, max_frames=5, progress=lambda d, t: calls.append((d, t)))
    assert outputs == [dst_dir / "a.mp4", dst_dir / "b.mp4"]
    assert (dst_dir / "b.mp4").read_bytes() == b"already here"
    assert calls[-1] == (5, 5)
    with open_video(dst_dir / "a.mp4") as reader:
        assert reader.n_frames == 5


def test_listed_files_overwrite_and_count_frames_over_all_files(source, tmp_path):
    dst_dir = tmp_path / "out"
    dst_dir.mkdir()
    (dst_dir / "centered_pair_small.mp4").write_bytes(b"old output")
    calls = []
    outputs = transcode_files(
        [source, source], dst_dir, max_frames=4, overwrite=True, progress=lambda d, t: calls.append((d, t))
    )
    assert outputs == [dst_dir / "centered_pair_small.mp4"] * 2
    assert calls[-1] == (8, 8) and all(t == 8 for _, t in calls)  # one total over both files
    with open_video(dst_dir / "centered_pair_small.mp4") as reader:
        assert reader.n_frames == 4


def test_cli_subcommand(source, tmp_path):
    import argparse

    from napari_posetrack.core.tools.transcode import add_transcode_parser

    parser = argparse.ArgumentParser(prog="posetrack")
    add_transcode_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli.mp4"
    args = parser.parse_args(
        [
            "transcode",
            str(source),
            str(out),
            "--keyframe-interval",
            "5",
            "--crop",
            "0,0,32,32",
            "--max-frames",
            "10",
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    with open_video(out) as reader:
        assert reader.n_frames == 10 and reader.shape[:2] == (32, 32)
        np.testing.assert_array_equal(np.asarray(reader.keyframes), [0, 5])
    with pytest.raises(SystemExit):
        parser.parse_args(["transcode", str(source), str(out), "--crop", "1,2,3"])
