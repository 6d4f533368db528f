"""The Labelling widget's "Check video" button (issue #11 item 2), in a real napari viewer.

QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/widgets/test_video_check_widget.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

napari = pytest.importorskip("napari")

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.labelling import LabellingWidget, check_in_words
from napari_posetrack.core.io.slp import save_slp
from napari_posetrack.core.labels import Labels, Skeleton, Video
from napari_posetrack.core.video.check import DecodeError, SeekMismatch, VideoCheck, cached_check

sys.path.insert(0, str(Path(__file__).parents[1] / "video"))
from video_media import damage_packet, encode

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def video_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private video cache: check results stay within the test."""
    folder = tmp_path_factory.mktemp("video-cache")
    monkeypatch.setenv("POSETRACK_VIDEO_CACHE", str(folder))
    return folder


def project_with(video: Path, folder: Path) -> Path:
    path = folder / f"{video.stem}.slp"
    save_slp(Labels(Skeleton(["head", "tail"], [("head", "tail")]), videos=[Video(str(video))]), path)
    return path


def open_widget(make_napari_viewer, labels: Path) -> LabellingWidget:
    widget = LabellingWidget(make_napari_viewer())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged videos warn when opened
        assert widget.open_path(labels)
    return widget


def shown(w) -> bool:
    """Whether a child widget is shown (the dock itself is never put on screen in these tests)."""
    return not w.isHidden()


def run_check(qtbot, widget: LabellingWidget) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    widget._check_signals.progressed.connect(lambda done, total: seen.append((done, total)))
    assert widget.check_video() is not None
    assert shown(widget.cancel_check_button) and shown(widget.check_progress)
    assert not widget.check_button.isEnabled()
    qtbot.waitUntil(lambda: widget._check_worker is None, timeout=120_000)
    assert widget.check_button.isEnabled() and not shown(widget.cancel_check_button)
    return seen


def test_a_damaged_keyframe_is_reported_and_can_be_jumped_to(make_napari_viewer, qtbot, tmp_path):
    clean = encode(tmp_path / "clean.mp4")  # 60 frames, keyframes 0, 20, 40
    damaged = damage_packet(clean, tmp_path / "damaged.mp4", 20)
    widget = open_widget(make_napari_viewer, project_with(damaged, tmp_path))
    assert widget.check_result.text() == "" and not shown(widget.damage_button)

    seen = run_check(qtbot, widget)
    assert seen and seen[-1][0] == seen[-1][1]  # the bar filled up from the worker's reports
    text = widget.check_result.text()
    assert "Damaged, shown with errors hidden by the decoder: 1 frame (20)." in text
    assert "Jumping to keyframe 20 gives different pictures" in text
    assert shown(widget.damage_button) and "(20)" in widget.damage_button.text()
    widget.damage_button.click()
    assert project_for(widget.viewer).current_frame == 20
    assert cached_check(damaged).damaged_frames.tolist() == [20]

    # opening the project again shows the last result without decoding anything
    again = open_widget(make_napari_viewer, project_with(damaged, tmp_path))
    assert again.check_result.text() == text and shown(again.damage_button)


def test_a_clean_real_recording_checks_ok(make_napari_viewer, qtbot, flies, tmp_path):
    widget = open_widget(make_napari_viewer, project_with(flies / "centered_pair_low_quality.mp4", tmp_path))
    run_check(qtbot, widget)
    assert widget.check_result.text().startswith("No problems found: all 1100 frames decode cleanly")
    assert not shown(widget.damage_button)


def test_cancel_stops_the_check_and_caches_nothing(make_napari_viewer, qtbot, flies, tmp_path):
    video = flies / "clip.mp4"
    widget = open_widget(make_napari_viewer, project_with(video, tmp_path))
    widget.check_video()
    widget.cancel_check_button.click()
    qtbot.waitUntil(lambda: widget._check_worker is None, timeout=60_000)
    assert widget.check_result.text() == "Check cancelled."
    assert cached_check(video) is None and widget.check_button.isEnabled()


def test_the_words_name_each_kind_of_problem():
    check = VideoCheck(
        path="v.mp4",
        frames=100,
        decoded_frames=97,
        corrupt_frames=[3, 4, 5, 9],
        decode_errors=[DecodeError(50, 51, "Invalid data found")],
        missing_frames=[50, 51, 80],
        seek_points_checked=[20, 40],
        seek_mismatches=[SeekMismatch(40, [40, 41])],
        timestamp_problems=["2 frames share a timestamp"],
    )
    assert check_in_words(check).splitlines() == [
        "Damaged, shown with errors hidden by the decoder: 4 frames (3-5, 9).",
        "Cannot be decoded: 2 frames (50-51) (Invalid data found).",
        "Never delivered by the decoder: 3 frames (50-51, 80).",
        (
            "Jumping to keyframe 40 gives different pictures for 2 frames (40-41): frames there are read "
            "from an earlier keyframe (exact, slower)."
        ),
        "Timestamps: 2 frames share a timestamp.",
    ]
