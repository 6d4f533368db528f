"""``check_video`` and ``posetrack info --check``: damaged frames, seek points, timestamps."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from video_media import damage_packet, decode_sequentially, encode

from napari_posetrack.core.cli import main
from napari_posetrack.core.video import (
    PyAVReader,
    VideoCheck,
    VideoCheckCancelled,
    cached_check,
    check_video,
)


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return encode(tmp_path / "clean.mp4")  # 60 frames, B-frames, keyframes 0, 20, 40


def quiet_check(path: Path, **kw) -> VideoCheck:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged files warn; the report is what is tested
        return check_video(path, **kw)


def test_a_clean_file_checks_ok_and_the_result_is_cached(clean: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = check_video(clean, progress=lambda done, total: seen.append((done, total)))
    assert result.ok and result.frames == result.decoded_frames == 60
    assert result.seek_points_checked == [20, 40] and not result.seek_mismatches
    assert result.corrupt_frames == [] and result.decode_errors == [] and result.missing_frames == []
    assert not result.single_threaded and result.x264_build is not None
    assert result.timing.nominal_fps == pytest.approx(25.0) and not result.timing.variable
    assert len(result.damaged_frames) == 0
    assert seen and seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in itertools.pairwise(seen))
    assert cached_check(clean) == result
    assert cached_check(encode(clean.with_name("other.mp4"), n_frames=5)) is None


def test_a_damaged_keyframe_is_reported_and_readers_learn_it(clean: Path) -> None:
    path = damage_packet(clean, clean.with_name("damaged.mp4"), 20)
    result = quiet_check(path)
    assert result.corrupt_frames == [20] and result.damaged_frames.tolist() == [20]
    assert [m.keyframe for m in result.seek_mismatches] == [20]
    assert result.seek_mismatches[0].flagged and 20 in result.seek_mismatches[0].frames
    assert result.single_threaded and not result.ok
    text = "\n".join(result.summary())
    assert "corrupt (concealed): 1 frame (20)" in text and "after keyframe 20" in text
    # Napari marks damaged frames from the cache; a reader opened now avoids keyframe 20 at once.
    assert cached_check(path).damaged_frames.tolist() == [20]
    frames, _ = decode_sequentially(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once per process: the check has said it already
        reader = PyAVReader(path, cache_size=0, rgb=True)
    with reader:
        assert reader.bad_seek_points == [20]
        assert np.array_equal(reader.frame(33), frames[33]) and reader.n_seeks == 1


def test_an_undecodable_packet_is_a_decode_error_with_its_frames(tmp_path: Path) -> None:
    clean = encode(tmp_path / "sliced.mp4", x264_params="keyint=20:min-keyint=20:bframes=0:slices=4")
    path = damage_packet(clean, tmp_path / "undecodable.mp4", 25)
    result = quiet_check(path)
    assert [(e.first, e.last) for e in result.decode_errors] == [(25, 25)]
    assert "Invalid data" in result.decode_errors[0].message
    assert result.missing_frames == [25] and result.decoded_frames == 59
    assert 25 in result.damaged_frames.tolist()
    assert "decode error at frame 25" in "\n".join(result.summary())


def test_variable_frame_rate_is_a_timestamp_finding(tmp_path: Path) -> None:
    times_ms = np.array([0, 40, 80, 120, 400, 440, 480, 520, 560, 600, 640, 680])
    path = encode(tmp_path / "vfr.mp4", n_frames=12, times_ms=times_ms)
    result = check_video(path)
    assert any("variable frame rate" in p for p in result.timestamp_problems)
    assert result.timing.largest_gap_s == pytest.approx(0.28) and result.timing.largest_gap_after == 3
    assert result.timing.irregular == [(3, pytest.approx(0.28))]
    assert VideoCheck.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_cancelled_check_stops_and_caches_nothing(clean: Path) -> None:
    with pytest.raises(VideoCheckCancelled):
        check_video(clean, cancel=lambda: True)
    assert cached_check(clean) is None


def test_a_real_recording_checks_ok(flies: Path) -> None:
    result = check_video(flies / "centered_pair_low_quality.mp4")
    assert result.ok and result.decoded_frames == result.frames == 1100
    assert result.x264_build == 148 and len(result.seek_points_checked) >= 5


# --------------------------------------------------------------------------- posetrack info


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_check_reports_and_caches(capsys: pytest.CaptureFixture[str], clean: Path) -> None:
    path = damage_packet(clean, clean.with_name("damaged.mp4"), 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run(capsys, "info", path, "--check", "--json")
    assert code == 0, err
    facts = json.loads(out)
    assert facts["check"]["corrupt_frames"] == [[20, 20]] and not facts["check_cached"]
    assert facts["bad_seek_points"] == [20]
    assert facts["timing"]["nominal_fps"] == pytest.approx(25.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run(capsys, "info", path)  # no --check: the cached result is shown
    assert code == 0, err
    assert "fps: 25 (nominal 25, measured 25; largest gap 40.0 ms" in out
    assert "(cached; --check runs it again)" in out and "corrupt (concealed): 1 frame (20)" in out
    assert "keyframes that cannot stand alone (seeking is slow there): 20" in out


def test_info_check_needs_a_video_file(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    folder = data / "dlc-openfield/labeled-data/m4s1"
    code, _, err = run(capsys, "info", folder, "--check")
    assert code == 1 and "m4s1" in err and "--check decodes video files" in err
    code, _, err = run(capsys, "info", data / "sleap-flies/clip.slp", "--check")
    assert code == 1 and "clip.slp" in err and "not labels files" in err
