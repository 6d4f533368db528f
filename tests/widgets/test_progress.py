"""Jobs started from the widgets report to napari's activity dock; their errors are notifications.

Each test swaps the widget module's :class:`Activity` for a recording subclass (still the real
napari progress underneath), runs the job, and checks what reached the activity dock; then makes the
job fail and checks for an error notification naming the file and what to do.
"""

from __future__ import annotations

import shutil
from typing import ClassVar

import pytest

pytest.importorskip("napari")

from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_posetrack._widgets import _background, _tools_export, _tools_videos, labelling
from napari_posetrack._widgets._activity import Activity
from napari_posetrack._widgets._background import Progress, run_in_background
from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.labelling import LabellingWidget
from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.core.io.slp import save_slp
from napari_posetrack.core.labels import Labels, Skeleton, Video

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


class Recorded(Activity):
    """An :class:`Activity` that keeps what it was told (``log``: every instance made)."""

    log: ClassVar[list[Recorded]] = []

    def __init__(self, description: str, total: int | None = None) -> None:
        super().__init__(description, total)
        self.reports: list[tuple[str, int, int]] = []
        self.left: list[float | None] = []
        Recorded.log.append(self)

    def update(self, done: int, total: int | None = None, description: str | None = None) -> None:
        # what was reported, in the order it was (napari may handle the next report inside this one)
        self.reports.append((description or self.description, done, self.total if total is None else total))
        super().update(done, total, description)
        self.left.append(self.seconds_left())


@pytest.fixture
def recorded(monkeypatch) -> list[Recorded]:
    Recorded.log = []
    for module in (_background, _tools_export, _tools_videos, labelling):
        monkeypatch.setattr(module, "Activity", Recorded)
    return Recorded.log


def _errors_since(before: int) -> list[str]:
    return [n.message for n in notification_manager.records[before:] if n.severity == NotificationSeverity.ERROR]


def test_activity_counts_and_time_left(qtbot):
    activity = Activity("Counting", total=4)
    activity.update(1)
    qtbot.wait(20)
    activity.update(2)
    assert (activity.done, activity.total) == (2, 4)
    assert activity.seconds_left() is not None and activity.seconds_left() > 0
    activity.update(0, total=10, description="Next stage")  # a new stage restarts the count
    assert (activity.description, activity.done, activity.total) == ("Next stage", 0, 10)
    activity.close()
    assert activity.closed and activity.seconds_left() is None


def test_open_shows_activity_and_a_bad_file_is_a_notification(make_napari_viewer, flies, recorded, qtbot, tmp_path):
    widget = LabellingWidget(make_napari_viewer())
    worker = widget.open_path_in_background(flies / "clip.slp")
    assert recorded and recorded[-1].description == "Opening clip.slp" and not recorded[-1].closed
    qtbot.waitUntil(lambda: recorded[-1].closed, timeout=WAIT_MS)
    assert worker is not None and widget.project.labels is not None

    bad = tmp_path / "broken.slp"
    bad.write_bytes(b"not an HDF5 file at all")
    before = len(notification_manager.records)
    widget.open_path_in_background(bad)
    qtbot.waitUntil(lambda: bool(_errors_since(before)), timeout=WAIT_MS)
    (message,) = _errors_since(before)
    assert str(bad) in message and "open a sleap .slp" in message.lower()
    assert "Traceback" not in message
    assert recorded[-1].description == "Opening broken.slp" and recorded[-1].closed


def test_video_check_reports_progress_and_a_missing_video_is_a_notification(
    make_napari_viewer, flies, recorded, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("POSETRACK_VIDEO_CACHE", str(tmp_path / "cache"))
    video = tmp_path / "fly.mp4"
    from napari_posetrack.core.tools.transcode import transcode_video

    transcode_video(flies / "clip.mp4", video, max_frames=30, crf=23)
    labels_path = tmp_path / "fly.slp"
    save_slp(Labels(Skeleton(["head", "tail"], [("head", "tail")]), videos=[Video(str(video))]), labels_path)
    widget = LabellingWidget(make_napari_viewer())
    assert widget.open_path(labels_path)
    widget.check_video()
    qtbot.waitUntil(lambda: widget._check_worker is None, timeout=WAIT_MS)
    (activity,) = recorded
    assert activity.description == "Checking fly.mp4" and activity.closed
    assert activity.reports and activity.reports[-1][1] == activity.reports[-1][2] >= 30  # every step done
    assert any(left is not None for left in activity.left)

    shutil.copy(video, tmp_path / "kept.mp4")
    video.unlink()  # the project's video is gone: the check cannot read it
    before = len(notification_manager.records)
    widget.check_video()
    qtbot.waitUntil(lambda: widget._check_worker is None, timeout=WAIT_MS)
    (message,) = _errors_since(before)
    assert str(video) in message and "posetrack transcode" in message
    assert recorded[-1].closed


def test_reencoding_reports_time_left_and_an_unwritable_output_is_a_notification(
    make_napari_viewer, flies, recorded, qtbot, tmp_path
):
    from napari_posetrack._widgets.tools import ToolsWidget
    from napari_posetrack.core.tools.transcode import transcode_video

    clip = transcode_video(flies / "clip.mp4", tmp_path / "fly.mp4", max_frames=12, crf=23)
    tools = ToolsWidget(make_napari_viewer())  # kept: the tab lives as long as its widget
    tab = tools.videos_tab
    tab.add_videos([clip])
    tab.output.set_text(str(tmp_path / "out"))
    tab.run_button.click()
    qtbot.waitUntil(lambda: bool(tab.written) and tab.activity is None, timeout=WAIT_MS)
    (activity,) = recorded
    assert activity.description == "Re-encoding fly.mp4" and activity.closed
    assert activity.reports[-1][1:] == (12, 12)

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    tab.output.set_text(str(blocker / "out"))  # a folder inside a file cannot be made
    before = len(notification_manager.records)
    tab.run_button.click()
    qtbot.waitUntil(lambda: tab.run_button.isEnabled() and bool(_errors_since(before)), timeout=WAIT_MS)
    (message,) = _errors_since(before)
    assert "Re-encoding failed" in message and str(blocker / "out") in message
    assert recorded[-1].closed


def test_export_shows_activity_and_an_unwritable_file_is_a_notification(
    make_napari_viewer, flies, recorded, qtbot, tmp_path
):
    from napari_posetrack._widgets.tools import ToolsWidget

    tools = ToolsWidget(make_napari_viewer())
    tools.project.open(flies / "clip.slp")
    tab = tools.export_tab
    tab.set_format("tidy")
    tab.output.set_text(str(tmp_path / "flies.csv"))
    tab.run_button.click()
    (activity,) = recorded  # open while the worker writes (its result arrives through the event loop)
    assert activity.description == "Exporting flies.csv" and not activity.closed
    qtbot.waitUntil(lambda: bool(tab.written) and tab.run_button.isEnabled(), timeout=WAIT_MS)
    assert activity.closed and tab.activity is None

    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    tab.output.set_text(str(blocker / "flies.csv"))  # a file inside a file cannot be written
    before = len(notification_manager.records)
    tab.run_button.click()
    qtbot.waitUntil(lambda: tab.run_button.isEnabled() and bool(_errors_since(before)), timeout=WAIT_MS)
    (message,) = _errors_since(before)
    assert "Export failed" in message and str(blocker) in message and "Traceback" not in message
    assert recorded[-1].description == "Exporting flies.csv" and recorded[-1].closed


def test_predict_and_track_jobs_report_stages_and_errors(make_napari_viewer, flies, recorded, qtbot):
    viewer = make_napari_viewer()
    project = project_for(viewer)
    project.open(flies / "clip.slp")
    labels = project.labels.copy()

    def compute(report, cancelled):
        report(Progress("loading", -1, 0, 0))
        for done in range(1, 4):
            report(Progress("predicting", 0, done, 3))
        report(Progress("tracking", -1, 2, 2))
        return labels, 0

    finished = []
    run_in_background(project, "predict", compute, on_done=finished.append)
    qtbot.waitUntil(lambda: bool(finished), timeout=WAIT_MS)
    (activity,) = recorded
    assert activity.closed
    stages = [description for description, _, _ in activity.reports]
    assert stages[0] == "Predict: loading the model"
    assert ("Predict: predicting video 1", 3, 3) in activity.reports
    assert activity.reports[-1] == ("Predict: tracking", 2, 2)

    def failing(report, cancelled):
        report(Progress("tracking", -1, 1, 5))
        raise PoseTrackError(f"{flies / 'clip.slp'}: no instances to track; predict first")

    before = len(notification_manager.records)
    finished.clear()
    run_in_background(project, "track", failing, on_done=finished.append)
    qtbot.waitUntil(lambda: bool(finished), timeout=WAIT_MS)
    (message,) = _errors_since(before)
    assert message.startswith("Track failed:") and "clip.slp" in message and "predict first" in message
    assert recorded[-1].closed and finished[0].error is not None


def test_adding_videos_indexes_them_off_the_gui_thread_with_progress(make_napari_viewer, flies, recorded, qtbot, tmp_path):
    widget = LabellingWidget(make_napari_viewer())
    widget.project.set_labels(Labels(Skeleton(["head", "tail"], [("head", "tail")])))
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    before = len(notification_manager.records)
    worker = widget.add_videos_in_background([flies / "clip.mp4", bogus])
    assert worker is not None
    qtbot.waitUntil(lambda: bool(recorded) and recorded[-1].closed, timeout=WAIT_MS)
    (activity,) = recorded
    assert activity.description == "Indexing 2 videos"
    assert [(done, total) for _, done, total in activity.reports] == [(1, 2), (2, 2)]
    assert [v.filename for v in widget.project.labels.videos] == [str(flies / "clip.mp4")]
    assert widget.project.video_index == 0 and widget.project.video_layer is not None
    (message,) = _errors_since(before)
    assert str(bogus) in message and "posetrack transcode" in message
