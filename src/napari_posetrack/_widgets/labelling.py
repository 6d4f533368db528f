"""The labelling dock widget: project file, videos, instances, navigation, undo/redo, shortcuts.

Thin by design: every action is a call into the viewer's :class:`~._project.PoseProject`, its
session (undoable edits) or :mod:`napari_posetrack.core.labelling`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._activity import Activity
from napari_posetrack._widgets._background import error_message
from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets._scroll import scrolling_body
from napari_posetrack._widgets._shortcuts import SHORTCUTS, bind_shortcuts, shortcuts_table
from napari_posetrack.core import labelling as nav
from napari_posetrack.core.errors import PoseTrackError

if TYPE_CHECKING:
    import napari

    from napari_posetrack.core.video.check import VideoCheck

LABELS_FILTER = "Labels (*.slp *.h5 *.csv *.yaml *.yml);;All files (*)"
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv);;All files (*)"
# key auto-repeat arrives about every 30 ms; a longer gap means the key was released
REPEAT_GAP_S = 0.25
CHECK_CANCELLED = "Check cancelled."


def open_error_message(path: str | Path, error: BaseException) -> str:
    """Why ``path`` could not be opened, and what to do about it (a notification's text)."""
    if isinstance(error, FileNotFoundError):
        fix = "check the path, or pick the file again with Open"
    elif isinstance(error, PermissionError):
        fix = "the file is not readable: check its permissions"
    else:
        fix = ("open a SLEAP .slp, SLEAP analysis .h5 or DeepLabCut labels file (.csv, .h5, config.yaml); "
               "a damaged file can be recovered from its autosave, if there is one")
    return f"Could not open {path}: {error_message(error)}. {fix[0].upper()}{fix[1:]}."


def _key_of(action: str) -> str:
    key = next((s.key for s in SHORTCUTS if s.action == action), "")
    return key.replace("-", "+")


def _frames_in_words(frames: list[int], limit: int = 6) -> str:
    """``3 frames (4, 9-10)``: runs of consecutive frames, the first few of them."""
    runs: list[list[int]] = []
    for f in sorted(frames):
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:limit])
    more = f" and {len(runs) - limit} more ranges" if len(runs) > limit else ""
    return f"{len(frames)} frame{'s' if len(frames) != 1 else ''} ({shown}{more})"


def check_in_words(check: VideoCheck) -> str:
    """A video check as a few plain sentences for the widget (``posetrack info --check`` has details)."""
    if check.ok:
        return (
            f"No problems found: all {check.decoded_frames} frames decode cleanly, random access is exact "
            f"at {len(check.seek_points_checked)} sampled keyframes and the timestamps are regular."
        )
    lines = []
    if check.corrupt_frames:
        lines.append(f"Damaged, shown with errors hidden by the decoder: {_frames_in_words(check.corrupt_frames)}.")
    for e in check.decode_errors:
        where = "frames the decoder could not place" if e.first < 0 else _frames_in_words(
            list(range(e.first, e.last + 1))
        )
        lines.append(f"Cannot be decoded: {where} ({e.message}).")
    if check.missing_frames:
        lines.append(f"Never delivered by the decoder: {_frames_in_words(check.missing_frames)}.")
    for m in check.seek_mismatches:
        lines.append(
            f"Jumping to keyframe {m.keyframe} gives different pictures for {_frames_in_words(m.frames)}: "
            "frames there are read from an earlier keyframe (exact, slower)."
        )
    lines.extend(f"Timestamps: {p}." for p in check.timestamp_problems)
    return "\n".join(lines)


class _CheckSignals(QObject):
    """Progress from the check's worker thread, delivered on the GUI thread (queued signal)."""

    progressed = Signal(int, int)


class LabellingWidget(QWidget):
    """Open / save labels, switch videos, add and correct instances, navigate frames."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.setObjectName("posetrack_labelling")
        self.viewer = napari_viewer
        self.project = project_for(napari_viewer)
        self._repeat_at = 0.0
        self._repeats = 0
        self._help: QDialog | None = None
        self.open_menu: QMenu | None = None

        layout = scrolling_body(self, "labelling")
        layout.addWidget(self._file_box())
        layout.addWidget(self._video_box())
        layout.addWidget(self._instance_box())
        layout.addWidget(self._navigation_box())
        self.status = QLabel("")
        self.status.setObjectName("labelling_status")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

        bind_shortcuts(napari_viewer, self)
        self.project.events.labels_replaced.connect(self._on_project_replaced)
        self.project.events.labels_changed.connect(self._on_project_changed)
        self.project.events.video_changed.connect(self._on_project_video)
        self.project.events.saved.connect(self._on_project_saved)
        self.project.events.point_menu_requested.connect(self._on_point_menu_requested)
        self._on_project_replaced()

    # ------------------------------------------------------------------ layout
    def _button(self, text: str, name: str, tip: str, slot: Any, action: str | None = None) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        key = _key_of(action) if action else ""
        button.setToolTip(f"{tip} ({key})" if key else tip)
        button.clicked.connect(slot)
        return button

    def _file_box(self) -> QGroupBox:
        box = QGroupBox("Project")
        grid = QGridLayout(box)
        self.file_label = QLabel("No labels open")
        self.file_label.setObjectName("project_file")
        self.file_label.setWordWrap(True)
        grid.addWidget(self.file_label, 0, 0, 1, 3)
        grid.addWidget(self._button("Open…", "open_labels", "Open a SLEAP .slp, DeepLabCut or analysis HDF5 file",
                                    self._on_open_clicked), 1, 0)
        grid.addWidget(self._button("Save", "save_labels", "Save the project atomically", self._on_save_clicked,
                                    "save"), 1, 1)
        grid.addWidget(self._button("Save as…", "save_labels_as", "Save the project to a new .slp file",
                                    self._on_save_as_clicked), 1, 2)
        self.undo_button = self._button("Undo", "undo", "Undo the last edit", self.undo, "undo")
        self.redo_button = self._button("Redo", "redo", "Redo the edit you undid", self.redo, "redo")
        grid.addWidget(self.undo_button, 2, 0)
        grid.addWidget(self.redo_button, 2, 1)
        grid.addWidget(self._button("Shortcuts", "show_shortcuts", "List every key and mouse gesture",
                                    self.show_help, "show_help"), 2, 2)
        return box

    def _video_box(self) -> QGroupBox:
        box = QGroupBox("Video")
        grid = QGridLayout(box)
        self.video_label = QLabel("")
        self.video_label.setObjectName("video_name")
        self.video_label.setStyleSheet("font-weight: bold")
        self.video_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.video_label.setWordWrap(True)
        grid.addWidget(self._button("◀", "previous_video", "Previous video", self.previous_video,
                                    "previous_video"), 0, 0)
        grid.addWidget(self.video_label, 0, 1)
        grid.addWidget(self._button("▶", "next_video", "Next video", self.next_video, "next_video"), 0, 2)
        grid.addWidget(self._button("Add video…", "add_video", "Add a video file to the project",
                                    self._on_add_video_clicked), 1, 0, 1, 3)
        self.check_button = self._button("Check video", "check_video", "Decode the whole video once and "
                                         "report damaged frames, seek problems and timestamp trouble",
                                         self.check_video)
        self.cancel_check_button = self._button("Cancel", "cancel_check", "Stop the video check",
                                                self.cancel_check)
        self.cancel_check_button.setVisible(False)
        self.check_progress = QProgressBar()
        self.check_progress.setObjectName("check_progress")
        self.check_progress.setVisible(False)
        self.check_result = QLabel("")
        self.check_result.setObjectName("check_result")
        self.check_result.setWordWrap(True)
        self.damage_button = self._button("Go to first damaged frame", "go_to_damage",
                                          "Show the first frame the check found damaged", self.go_to_damage)
        self.damage_button.setVisible(False)
        grid.addWidget(self.check_button, 2, 0, 1, 2)
        grid.addWidget(self.cancel_check_button, 2, 2)
        grid.addWidget(self.check_progress, 3, 0, 1, 3)
        grid.addWidget(self.check_result, 4, 0, 1, 3)
        grid.addWidget(self.damage_button, 5, 0, 1, 3)
        self._check_signals = _CheckSignals()
        self._check_signals.progressed.connect(self._on_check_progress)
        self._check_cancel = threading.Event()
        self._check_activity: Activity | None = None
        self._check_worker: Any = None
        self._damaged: list[int] = []
        grid.setColumnStretch(1, 1)
        return box

    def _instance_box(self) -> QGroupBox:
        box = QGroupBox("Instances")
        grid = QGridLayout(box)
        self.new_source = QComboBox()
        self.new_source.setObjectName("new_instance_source")
        self.new_source.addItem("mean pose at the cursor", "mean")
        self.new_source.addItem("copy of the nearest labelled frame", "nearest")
        self.new_source.setToolTip("Where the points of a new instance start: the skeleton's average pose "
                                   "placed at the mouse, or the instances of the closest labelled frame")
        grid.addWidget(QLabel("New from"), 0, 0)
        grid.addWidget(self.new_source, 0, 1, 1, 2)
        grid.addWidget(self._button("New instance", "new_instance", "Add an instance on this frame",
                                    self.new_instance, "new_instance"), 1, 0)
        grid.addWidget(self._button("Occluded", "toggle_visible", "Mark the selected points occluded "
                                    "(kept in the data, drawn hollow) or visible again", self.toggle_visible,
                                    "toggle_visible"), 1, 1)
        grid.addWidget(self._button("To user", "promote_selected", "Turn the selected predicted instance "
                                    "into a user instance you can correct", self.promote_selected,
                                    "promote_selected"), 1, 2)
        grid.addWidget(self._button("Delete instance", "delete_instance", "Delete every instance with a "
                                    "selected point", self.delete_selected_instances,
                                    "delete_selected_instances"), 2, 0, 1, 3)
        return box

    def _navigation_box(self) -> QGroupBox:
        box = QGroupBox("Go to")
        grid = QGridLayout(box)
        pairs = [
            ("labelled", "previous_labelled", "next_labelled"),
            ("unlabelled", "previous_unlabelled", "next_unlabelled"),
            ("suggested", "previous_suggested", "next_suggested"),
        ]
        for row, (what, back, forward) in enumerate(pairs):
            grid.addWidget(self._button("◀", back, f"Previous {what} frame", getattr(self, back), back), row, 0)
            grid.addWidget(QLabel(f"{what} frame"), row, 1, Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(self._button("▶", forward, f"Next {what} frame", getattr(self, forward), forward),
                           row, 2)
        grid.setColumnStretch(1, 1)
        return box

    # ------------------------------------------------------------------ project events
    def _on_project_replaced(self) -> None:
        self._on_project_video(self.project.video_index)
        self._update_state()

    def _on_project_changed(self, change: Any) -> None:
        self._update_state()

    def _on_project_saved(self, path: Any) -> None:
        self._update_state()
        self.status.setText(f"Saved {path}")

    def _on_project_video(self, index: int) -> None:
        labels = self.project.labels
        if labels is None or not labels.videos:
            self.video_label.setText("no video")
            self._show_check(None)
            return
        video = labels.videos[index]
        self.video_label.setText(f"{video.name}  ({index + 1} of {len(labels.videos)})")
        self.video_label.setToolTip(str(video.path))
        if self._check_worker is None:
            self._show_check(self._cached_check(video))

    @staticmethod
    def _cached_check(video: Any) -> VideoCheck | None:
        """The last check of this video file, if it has not changed since (no decoding)."""
        from napari_posetrack.core.video.check import cached_check

        if video.backend != "pyav" or not Path(video.filename).is_file():
            return None
        return cached_check(video.filename)

    def _update_state(self) -> None:
        session = self.project.session
        if session is None:
            self.file_label.setText("No labels open: open a file, or pick a skeleton in the Skeleton widget")
            self.undo_button.setEnabled(False)
            self.redo_button.setEnabled(False)
            return
        name = str(session.path) if session.path is not None else "untitled (not saved yet)"
        self.file_label.setText(("* " if session.dirty else "") + name)
        self.undo_button.setEnabled(session.can_undo)
        self.redo_button.setEnabled(session.can_redo)

    def _need_session(self) -> bool:
        if self.project.session is None:
            self.status.setText("Open a labels file or create a project first.")
            return False
        return True

    # ------------------------------------------------------------------ files
    def _on_open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open labels", "", LABELS_FILTER)
        if path:
            recover = False
            if self.project.autosave_of(path) is not None:
                answer = QMessageBox.question(
                    self, "Recover unsaved work?",
                    f"{Path(path).name} has newer unsaved edits (from a crash or an unsaved session). "
                    "Recover them?",
                )
                recover = answer == QMessageBox.StandardButton.Yes
            self.open_path_in_background(path, recover=recover)

    def open_path_in_background(self, path: str | Path, *, recover: bool = False) -> Any:
        """Read the file on a worker thread (big prediction files take seconds), then show it."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        self.status.setText(f"Opening {path}…")
        project = self.project
        # reading reports no steps: a busy entry in napari's activity dock while it lasts
        activity = Activity(f"Opening {Path(path).name}")

        def load() -> Any:
            # a bad file is an answer, not a crash: hand the error back to the main thread
            # (a worker that returns an exception object re-raises it, so wrap it in a tuple)
            try:
                return project.load_session(path, recover=recover), None
            except Exception as err:  # noqa: BLE001 - every failure is a notification, never a traceback
                return None, err

        def shown(result: tuple[Any, Exception | None]) -> None:
            session, error = result
            if error is not None:
                self.status.setText("")
                show_error(open_error_message(path, error))
                return
            project.start_session(session)
            self.status.setText(f"Opened {path}" + (" (recovered unsaved edits)" if recover else ""))

        worker = create_worker(load)
        worker.returned.connect(shown)
        worker.finished.connect(activity.close)
        worker.start()
        return worker

    def open_path(self, path: str | Path, *, recover: bool = False) -> bool:
        """Open a labels file (or its autosave); on failure the current project stays as it was."""
        from napari.utils.notifications import show_error

        try:
            self.project.open(path, recover=recover)
        except (PoseTrackError, OSError, ValueError) as err:
            show_error(f"Could not open {path}: {err}")
            return False
        self.status.setText(f"Opened {path}" + (" (recovered unsaved edits)" if recover else ""))
        return True

    def save(self) -> Path | None:
        """Save the project (asks for a file the first time)."""
        if not self._need_session():
            return None
        if self.project.path is None:
            return self._on_save_as_clicked()
        return self.save_to(self.project.path)

    def _on_save_clicked(self) -> None:
        self.save()

    def _on_save_as_clicked(self) -> Path | None:
        if not self._need_session():
            return None
        path, _ = QFileDialog.getSaveFileName(self, "Save labels as", "", "SLEAP labels (*.slp)")
        return self.save_to(path) if path else None

    def save_to(self, path: str | Path) -> Path | None:
        """Save atomically to ``path``; a failure leaves the previous file untouched and says why."""
        from napari.utils.notifications import show_error

        try:
            return self.project.save(path)
        except (PoseTrackError, OSError, ValueError) as err:
            show_error(f"Could not save {path}: {err}")
            return None

    def _on_add_video_clicked(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add videos", "", VIDEO_FILTER)
        if paths:
            self.add_videos_in_background(paths)

    def add_videos_in_background(self, paths: list[str | Path]) -> Any:
        """Index each video on a worker (a long file takes seconds), then add it (one undoable step each).

        Progress goes to napari's activity dock; a file that is not a readable video is an error
        notification naming it. Returns the worker (``None`` when no project is open).
        """
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        from napari_posetrack.core.video import probe_video

        if not self._need_session() or not paths:
            return None
        paths = [Path(p) for p in paths]
        what = paths[0].name if len(paths) == 1 else f"{len(paths)} videos"
        activity = Activity(f"Indexing {what}", total=len(paths))
        added: list[int] = []

        def probe() -> Any:
            for i, path in enumerate(paths):
                try:
                    yield i, path, probe_video(path), None
                except Exception as err:  # noqa: BLE001 - every failure is a notification, never a traceback
                    yield i, path, None, err

        def on_probed(item: tuple[int, Path, Any, Exception | None]) -> None:
            i, path, video, error = item
            activity.update(i + 1)
            if error is not None:
                show_error(
                    f"Could not add {path}: {error_message(error)}. Check that it is a video file "
                    "(.mp4, .avi, .mov, .mkv) and readable; `posetrack transcode` re-encodes a damaged one."
                )
                return
            try:
                added.append(self.project.add_video(video))
            except (PoseTrackError, ValueError) as err:
                show_error(f"Could not add {path}: {error_message(err)}")

        def on_finished() -> None:
            activity.close()
            if added:
                self.project.show_video(added[-1])

        worker = create_worker(probe)
        worker.yielded.connect(on_probed)
        worker.finished.connect(on_finished)
        worker.start()
        return worker

    def add_video(self, path: str | Path) -> int | None:
        """Add a video to the project and show it."""
        from napari.utils.notifications import show_error

        if not self._need_session():
            return None
        try:
            index = self.project.add_video(path)
        except (PoseTrackError, OSError, ValueError) as err:
            show_error(f"Could not add {path}: {err}")
            return None
        self.project.show_video(index)
        return index

    # ------------------------------------------------------------------ video check
    def check_video(self) -> Any:
        """Check the shown video on a worker thread (progress bar, Cancel); returns the worker."""
        from napari.qt.threading import create_worker

        from napari_posetrack.core.video.check import VideoCheckCancelled, check_video

        video = self.project.video
        if video is None:
            self.status.setText("Open a project with a video first.")
            return None
        if video.backend != "pyav":
            self.status.setText("Only video files can be checked (image folders and embedded frames have "
                                "no stream to decode).")
            return None
        if self._check_worker is not None:
            return self._check_worker
        path = video.filename
        self._check_cancel.clear()
        signals, cancel = self._check_signals, self._check_cancel

        def run() -> tuple[VideoCheck | None, str | None]:
            # errors are answers: hand them back as text so the GUI thread can show them
            try:
                return check_video(path, progress=signals.progressed.emit, cancel=cancel.is_set), None
            except VideoCheckCancelled:
                return None, CHECK_CANCELLED
            except Exception as err:  # noqa: BLE001 - every failure is a notification, never a traceback
                return None, (
                    f"Could not check {path}: {error_message(err)}. Check that the file is a video "
                    "and is readable; `posetrack transcode` re-encodes a damaged one."
                )

        self._show_check(None)
        self.check_result.setText(f"Checking {Path(path).name}…")
        self._check_activity = Activity(f"Checking {Path(path).name}")
        self.check_progress.setRange(0, 0)  # busy until the first progress report
        self.check_progress.setVisible(True)
        self.cancel_check_button.setVisible(True)
        self.check_button.setEnabled(False)
        worker = create_worker(run)
        worker.returned.connect(self._on_check_done)
        worker.finished.connect(self._on_check_finished)
        self._check_worker = worker
        worker.start()
        return worker

    def cancel_check(self) -> None:
        """Stop a running video check (it stops within a few frames)."""
        self._check_cancel.set()
        self.check_result.setText("Cancelling…")

    def _on_check_progress(self, done: int, total: int) -> None:
        self.check_progress.setRange(0, max(total, 1))
        self.check_progress.setValue(done)
        if self._check_activity is not None:
            self._check_activity.update(done, total)

    def _on_check_done(self, result: tuple[VideoCheck | None, str | None]) -> None:
        check, error = result
        video = self.project.video
        if check is not None and (video is None or video.filename != check.path):
            # another video is shown now: its own (cached) result stays; this one shows on return
            self._show_check(self._cached_check(video) if video is not None else None)
            self.status.setText(f"Checked {Path(check.path).name}: {'no problems' if check.ok else 'problems found'}.")
            return
        if check is None:
            self._show_check(None)
            self.check_result.setText(error or "")
            if error and error != CHECK_CANCELLED:
                from napari.utils.notifications import show_error

                show_error(error)
            return
        self._show_check(check)

    def _on_check_finished(self) -> None:
        if self._check_activity is not None:
            self._check_activity.close()
            self._check_activity = None
        self._check_worker = None
        self.check_progress.setVisible(False)
        self.cancel_check_button.setVisible(False)
        self.check_button.setEnabled(True)

    def _show_check(self, check: VideoCheck | None) -> None:
        self._damaged = [] if check is None else [int(f) for f in check.damaged_frames]
        self.check_result.setText("" if check is None else check_in_words(check))
        self.damage_button.setVisible(bool(self._damaged))
        if self._damaged:
            self.damage_button.setText(f"Go to first damaged frame ({self._damaged[0]})")

    def go_to_damage(self) -> None:
        """Show the first frame the last check found damaged."""
        if self._damaged:
            self.project.go_to(self._damaged[0])

    # ------------------------------------------------------------------ history
    def undo(self) -> None:
        """Undo the last edit."""
        if self._need_session() and self.project.session.undo() is None:
            self.status.setText("Nothing to undo.")

    def redo(self) -> None:
        """Redo the last undone edit."""
        if self._need_session() and self.project.session.redo() is None:
            self.status.setText("Nothing to redo.")

    def show_help(self) -> None:
        """Show every shortcut."""
        if self._help is None:
            self._help = QDialog(self)
            self._help.setObjectName("shortcuts_help")
            self._help.setWindowTitle("PoseTrack shortcuts")
            box = QVBoxLayout(self._help)
            box.addWidget(shortcuts_table(self._help))
            self._help.resize(460, 560)
        self._help.show()
        self._help.raise_()

    # ------------------------------------------------------------------ instances
    def _cursor_xy(self) -> tuple[float, float] | None:
        """The mouse position as ``x, y`` in the frame when it is over the image, else the image centre."""
        pos = np.asarray(self.viewer.cursor.position, dtype=np.float64)
        layer = self.project.video_layer
        if layer is not None:
            data_pos = np.asarray(layer.world_to_data(pos))
            h, w = layer.data.shape[1:3]
            if len(data_pos) >= 3 and 0 <= data_pos[1] < h and 0 <= data_pos[2] < w:
                return float(data_pos[2]), float(data_pos[1])
            return w / 2.0, h / 2.0
        video = self.project.video
        if video is not None and video.shape:
            return video.shape[1] / 2.0, video.shape[0] / 2.0
        return None

    def new_instance(self, at_xy: tuple[float, float] | None = None) -> list[int]:
        """Add a user instance on the current frame (mean pose at the cursor, or the nearest frame's)."""
        if not self._need_session():
            return []
        project = self.project
        if project.video is None:
            self.status.setText("Add a video to the project first.")
            return []
        frame = project.current_frame
        at = at_xy if at_xy is not None else self._cursor_xy()
        poses = nav.new_instance_points(project.labels, project.video_index, frame, at, self.new_source.currentData())
        ids = [project.session.add_instance(project.video_index, frame, pose) for pose in poses]
        project.active_instance = ids[-1]
        self.status.setText(f"Added {len(ids)} instance(s) on frame {frame}: drag the points into place.")
        return ids

    def delete_selected_instances(self) -> None:
        """Delete every instance with a selected point."""
        ids = self.project.selected_instances() if self.project.session else []
        if len(ids) == 0:
            self.status.setText("Select a point of the instance to delete.")
            return
        self.project.session.delete_instances(ids)
        self.status.setText(f"Deleted {len(ids)} instance(s).")

    def toggle_visible(self) -> None:
        """Mark the selected points occluded, or visible when they all are occluded already."""
        project = self.project
        layer = project.points_layer
        if project.session is None or layer is None or not layer.selected_data:
            self.status.setText("Select the points to mark occluded or visible.")
            return
        rows = np.fromiter(layer.selected_data, dtype=np.int64)
        inst, nodes = project.rows_info(rows)
        visible = layer.features["visible"].to_numpy()[rows].astype(bool)
        make_visible = not visible.any()
        for instance_id, node in zip(inst.tolist(), nodes.tolist()):
            if instance_id >= 0 and node >= 0:
                project.session.set_visible(instance_id, node, make_visible)
        project.session.seal()
        self.status.setText(f"{len(rows)} point(s) marked {'visible' if make_visible else 'occluded'}.")

    def promote_selected(self) -> None:
        """Turn the selected predicted instance(s) into user instances."""
        project = self.project
        layer = project.points_layer
        if project.session is None or layer is None or not layer.selected_data:
            self.status.setText("Select a point of the prediction to turn into a user instance.")
            return
        rows = np.fromiter(layer.selected_data, dtype=np.int64)
        kinds = layer.features["kind"].to_numpy()[rows]
        ids = np.unique(layer.features["instance"].to_numpy()[rows][kinds == "predicted"].astype(np.int64))
        for instance_id in ids.tolist():
            project.promote(instance_id)
        self.status.setText(f"{len(ids)} prediction(s) turned into user instances.")

    def point_menu(self, row: int) -> QMenu:
        """The right-click menu of a point (Points layer ``row``), acting on it and its instance."""
        layer = self.project.points_layer
        layer.selected_data = {int(row)}
        menu = QMenu(self)
        menu.setObjectName("point_menu")
        visible = bool(layer.features["visible"].to_numpy()[row])
        menu.addAction("Mark occluded" if visible else "Mark visible", self.toggle_visible)
        if layer.features["kind"].to_numpy()[row] == "predicted":
            menu.addAction("Turn into a user instance", self.promote_selected)
        menu.addAction("Delete this instance", self.delete_selected_instances)
        return menu

    def _on_point_menu_requested(self, row: int) -> None:
        from qtpy.QtGui import QCursor

        # popup, not exec: a modal menu would block the caller (napari's mouse handler)
        self.open_menu = self.point_menu(row)
        self.open_menu.popup(QCursor.pos())

    # ------------------------------------------------------------------ navigation
    def _go(self, frame: int | None, what: str) -> None:
        if frame is None:
            self.status.setText(f"No {what} frame that way.")
            return
        self.project.go_to(frame)

    def _step(self, direction: int) -> None:
        now = time.monotonic()
        self._repeats = self._repeats + 1 if now - self._repeat_at < REPEAT_GAP_S else 0
        self._repeat_at = now
        step = nav.accelerated_step(self._repeats) * direction
        n_frames = int(self.viewer.dims.range[0].stop) if self.viewer.dims.ndim else 1
        frame = int(np.clip(self.project.current_frame + step, 0, max(n_frames - 1, 0)))
        self.viewer.dims.set_current_step(0, frame)

    def step_forward(self) -> None:
        """Next frame (faster while the key is held)."""
        self._step(1)

    def step_back(self) -> None:
        """Previous frame (faster while the key is held)."""
        self._step(-1)

    def _labels_nav(self, fn: Any, direction: int, what: str) -> None:
        if self._need_session() and self.project.video is not None:
            p = self.project
            self._go(fn(p.labels, p.video_index, p.current_frame, direction), what)

    def next_labelled(self) -> None:
        """Next labelled frame."""
        self._labels_nav(nav.next_labelled_frame, 1, "labelled")

    def previous_labelled(self) -> None:
        """Previous labelled frame."""
        self._labels_nav(nav.next_labelled_frame, -1, "labelled")

    def next_unlabelled(self) -> None:
        """Next unlabelled frame."""
        self._labels_nav(nav.next_unlabelled_frame, 1, "unlabelled")

    def previous_unlabelled(self) -> None:
        """Previous unlabelled frame."""
        self._labels_nav(nav.next_unlabelled_frame, -1, "unlabelled")

    def _suggested(self, direction: int) -> None:
        if not self._need_session():
            return
        p = self.project
        hit = nav.next_suggested_frame(p.labels, p.video_index, p.current_frame, direction)
        if hit is None:
            self.status.setText("No suggested frame that way (make suggestions in the Suggestions widget).")
            return
        p.go_to(hit[1], hit[0])

    def next_suggested(self) -> None:
        """Next suggested frame (across videos)."""
        self._suggested(1)

    def previous_suggested(self) -> None:
        """Previous suggested frame (across videos)."""
        self._suggested(-1)

    def _video_step(self, direction: int) -> None:
        if not self._need_session():
            return
        n = len(self.project.labels.videos)
        if n:
            self.project.show_video((self.project.video_index + direction) % n)

    def next_video(self) -> None:
        """Show the next video of the project."""
        self._video_step(1)

    def previous_video(self) -> None:
        """Show the previous video of the project."""
        self._video_step(-1)


__all__ = ["LabellingWidget"]
