"""Tools > Videos: re-encode videos to H.264 with short keyframe intervals (fast, exact seeking)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._activity import Activity
from napari_posetrack._widgets._background import error_message
from napari_posetrack._widgets._loss_plot import format_duration
from napari_posetrack._widgets._tools_common import VIDEO_FILTER, PathField

if TYPE_CHECKING:
    import napari

    from napari_posetrack._widgets._project import PoseProject


class _Relay(QObject):
    """Carries per-frame progress from the worker thread to the GUI thread (queued signal)."""

    progress = Signal(int, int)


class VideosTab(QWidget):
    """Re-encode videos (files or whole folders) with PyAV; progress bar and Cancel.

    Short keyframe intervals make every frame quick to reach, so scrubbing in napari and reading
    training frames are fast and frame-exact. Optional grayscale, crop (applied first) and scale.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, project: PoseProject) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = project
        self.worker: Any = None
        self.activity: Activity | None = None  # the running job's entry in napari's activity dock
        self.written: list[tuple[Path, Path]] = []
        self._cancel = threading.Event()
        self.relay = _Relay()
        self.setObjectName("tools_videos")

        self.inputs = QListWidget()
        self.inputs.setObjectName("videos_inputs")
        self.inputs.setToolTip("The videos to re-encode.")
        self.add_files_button = QPushButton("Add files…")
        self.add_files_button.setObjectName("videos_add_files")
        self.add_files_button.setToolTip("Choose video files to re-encode.")
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setObjectName("videos_add_folder")
        self.add_folder_button.setToolTip("Add every video file of a folder.")
        self.add_project_button = QPushButton("Project videos")
        self.add_project_button.setObjectName("videos_add_project")
        self.add_project_button.setToolTip("Add the videos of the open project.")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("videos_clear")
        self.clear_button.setToolTip("Empty the list.")
        self.output = PathField(
            "folder", "videos_output", "Folder the re-encoded videos are written to (same names, .mp4)."
        )

        self.keyframe_interval = QSpinBox()
        self.keyframe_interval.setObjectName("videos_keyframe_interval")
        self.keyframe_interval.setRange(1, 1000)
        self.keyframe_interval.setValue(25)
        self.keyframe_interval.setToolTip(
            "Frames between keyframes. Smaller: faster jumping to any frame, bigger files. 25 suits most uses."
        )
        self.crf = QSpinBox()
        self.crf.setObjectName("videos_crf")
        self.crf.setRange(0, 51)
        self.crf.setValue(18)
        self.crf.setToolTip(
            "Quality: 0 is lossless, 18 looks identical to the original, 23 is smaller. Lower is better."
        )
        self.grayscale = QCheckBox("grayscale")
        self.grayscale.setObjectName("videos_grayscale")
        self.grayscale.setToolTip("Keep brightness only (smaller files; fine for most animal videos).")
        self.scale = QDoubleSpinBox()
        self.scale.setObjectName("videos_scale")
        self.scale.setRange(0.05, 4.0)
        self.scale.setSingleStep(0.25)
        self.scale.setDecimals(2)
        self.scale.setValue(1.0)
        self.scale.setToolTip("Resize factor applied after cropping (0.5 halves width and height).")
        self.crop_enabled = QCheckBox("crop")
        self.crop_enabled.setObjectName("videos_crop_enabled")
        self.crop_enabled.setToolTip("Keep only a rectangle of the frame.")
        self.crop_fields: list[QSpinBox] = []
        crop_row = QHBoxLayout()
        crop_row.addWidget(self.crop_enabled)
        for name, help_text in (
            ("x", "Left edge of the kept rectangle, in pixels."),
            ("y", "Top edge of the kept rectangle, in pixels."),
            ("w", "Width of the kept rectangle, in pixels."),
            ("h", "Height of the kept rectangle, in pixels."),
        ):
            box = QSpinBox()
            box.setObjectName(f"videos_crop_{name}")
            box.setRange(0, 100_000)
            box.setPrefix(f"{name} ")
            box.setToolTip(help_text)
            box.setEnabled(False)
            self.crop_fields.append(box)
            crop_row.addWidget(box)
        self.relink = QCheckBox("point the open project at the new videos")
        self.relink.setObjectName("videos_relink")
        self.relink.setToolTip(
            "After re-encoding, the project's videos that were re-encoded use the new files (one undoable "
            "step). Only without crop and scaling, which would move the labelled points."
        )

        self.run_button = QPushButton("Re-encode")
        self.run_button.setObjectName("videos_run")
        self.run_button.setToolTip("Start re-encoding the listed videos.")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("videos_cancel")
        self.cancel_button.setToolTip("Stop; the video being written is discarded, finished ones are kept.")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("videos_progress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setToolTip("Progress over all listed videos.")
        self.status = QLabel("")
        self.status.setObjectName("videos_status")
        self.status.setWordWrap(True)
        self.status.setToolTip("Which video is being written, or how the last run ended.")

        list_buttons = QHBoxLayout()
        for button in (
            self.add_files_button,
            self.add_folder_button,
            self.add_project_button,
            self.clear_button,
        ):
            list_buttons.addWidget(button)
        form = QFormLayout()
        form.addRow("Videos", self.inputs)
        form.addRow("", list_buttons)
        form.addRow("Output folder", self.output)
        form.addRow("Keyframe every", self.keyframe_interval)
        form.addRow("Quality (CRF)", self.crf)
        form.addRow("Colour", self.grayscale)
        form.addRow("Scale", self.scale)
        form.addRow("Crop", crop_row)
        form.addRow("", self.relink)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(run_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.add_files_button.clicked.connect(self._on_add_files_clicked)
        self.add_folder_button.clicked.connect(self._on_add_folder_clicked)
        self.add_project_button.clicked.connect(self._on_add_project_clicked)
        self.clear_button.clicked.connect(self.inputs.clear)
        self.crop_enabled.toggled.connect(self._on_geometry_changed)
        self.scale.valueChanged.connect(self._on_geometry_changed)
        self.run_button.clicked.connect(self._on_run_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.relay.progress.connect(self._on_worker_progress)

    # ------------------------------------------------------------------ inputs
    def add_videos(self, paths: list[str | Path]) -> None:
        """Append video files to the list (duplicates skipped)."""
        present = set(self.input_paths())
        for p in paths:
            if Path(p) not in present:
                self.inputs.addItem(str(p))
                present.add(Path(p))

    def add_folder(self, folder: str | Path) -> None:
        """Append every video file directly inside ``folder``."""
        from napari_posetrack.core.tools.transcode import list_videos

        self.add_videos(list_videos(folder))

    def input_paths(self) -> list[Path]:
        return [Path(self.inputs.item(i).text()) for i in range(self.inputs.count())]

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``transcode_video`` from the form."""
        crop = tuple(b.value() for b in self.crop_fields) if self.crop_enabled.isChecked() else None
        return {
            "keyframe_interval": self.keyframe_interval.value(),
            "crf": self.crf.value(),
            "grayscale": self.grayscale.isChecked(),
            "scale": float(self.scale.value()),
            "crop": crop,
        }

    def _on_add_files_clicked(self) -> None:
        chosen, _ = QFileDialog.getOpenFileNames(self, "Videos to re-encode", "", VIDEO_FILTER)
        self.add_videos(chosen)

    def _on_add_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of videos")
        if folder:
            self.add_folder(folder)

    def _on_add_project_clicked(self) -> None:
        labels = self.project.labels
        if labels is None:
            return
        # only video files can be re-encoded (not image folders or frames embedded in a .slp)
        self.add_videos([v.filename for v in labels.videos if v.backend == "pyav" and v.exists])

    def _on_geometry_changed(self, *_: Any) -> None:
        cropping = self.crop_enabled.isChecked()
        for box in self.crop_fields:
            box.setEnabled(cropping)
        # cropped or scaled videos would no longer line up with the labelled points
        same_geometry = not cropping and self.scale.value() == 1.0
        self.relink.setEnabled(same_geometry)
        if not same_geometry:
            self.relink.setChecked(False)

    # ------------------------------------------------------------------ run
    def _on_run_clicked(self) -> None:
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        sources = self.input_paths()
        if not sources:
            show_error("Re-encode: add videos first.")
            return
        out = self.output.text()
        if not out:
            show_error("Re-encode: choose the output folder.")
            return
        out_dir = Path(out)
        clashes = [s for s in sources if (out_dir / (s.stem + ".mp4")).resolve() == s.resolve()]
        if clashes:
            show_error(f"Re-encode: {clashes[0]} would be overwritten; choose another output folder.")
            return
        self._cancel.clear()
        self.progress.setValue(0)
        self.status.setText("starting…")
        self._set_running(True)
        names = sources[0].name if len(sources) == 1 else f"{len(sources)} videos"
        self.activity = Activity(f"Re-encoding {names}")
        from napari_posetrack.core.tools.transcode import transcode_files

        def run() -> list[tuple[Path, Path]]:
            outputs = transcode_files(
                sources, out_dir, progress=self.relay.progress.emit, cancel=self._cancel.is_set,
                overwrite=True, **self.options(),
            )
            return list(zip(sources, outputs))

        self.worker = create_worker(
            run,
            _start_thread=False,
            _ignore_errors=True,  # handled by _on_worker_errored
        )
        self.worker.returned.connect(self._on_worker_returned)
        self.worker.errored.connect(self._on_worker_errored)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.start()

    def _on_cancel_clicked(self) -> None:
        self._cancel.set()
        self.status.setText("cancelling…")

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_worker_progress(self, done: int, total: int) -> None:
        self.progress.setValue(round(100 * done / total) if total else 100)
        left = ""
        # a local: napari may process events inside update(), among them the end of the job, which
        # closes the entry and clears self.activity
        activity = self.activity
        if activity is not None:
            activity.update(done, total)
            remaining = activity.seconds_left()
            left = "" if remaining is None else f", about {format_duration(remaining)} left"
        self.status.setText(f"frame {done} of {total} (all videos){left}")

    def _on_worker_finished(self) -> None:
        if self.activity is not None:
            self.activity.close()
            self.activity = None

    def _on_worker_returned(self, written: list[tuple[Path, Path]]) -> None:
        self._set_running(False)
        self.written = written
        self.progress.setValue(100)
        self.status.setText(f"Re-encoded {len(written)} video(s) into {self.output.text()}.")
        if self.relink.isChecked() and self.relink.isEnabled():
            self._relink(written)

    def _on_worker_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error, show_info

        from napari_posetrack.core.tools.transcode import TranscodeCancelled

        self._set_running(False)
        if isinstance(exc, TranscodeCancelled):
            self.status.setText("Cancelled; the unfinished video was not written.")
            show_info("Re-encoding cancelled.")
            return
        self.status.setText(f"Re-encoding failed: {exc}")
        show_error(
            f"Re-encoding failed: {error_message(exc)}. Check that every listed file is a readable video "
            f"and that {self.output.text()} is a folder you can write to."
        )

    def _relink(self, written: list[tuple[Path, Path]]) -> None:
        """Point the project's videos that were re-encoded at their new files (one undoable step)."""
        from napari_posetrack.core.video import probe_video

        labels = self.project.labels
        if labels is None:
            return
        new = labels.copy()
        moved = 0
        for src, dst in written:
            for index, video in enumerate(new.videos):
                if video.matches_path(str(src)):
                    new.replace_video(index, str(dst))
                    # grayscale changes the channel count; keep the metadata true to the new file
                    probed = probe_video(dst)
                    new.videos[index].shape, new.videos[index].n_frames = probed.shape, probed.n_frames
                    moved += 1
        if moved:
            self.project.apply(new, "use re-encoded videos")
            self.status.setText(self.status.text() + f" The project now uses {moved} re-encoded video(s).")
