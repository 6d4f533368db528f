"""Tools > Export: write the open project's labels as .slp, analysis HDF5, tidy CSV or DeepLabCut.

What is written is chosen here too: the videos, a frame range, user labels and/or predictions,
tracked instances only, and the body parts (a :class:`~napari_posetrack.core.tools.export.ExportSelection`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._activity import Activity
from napari_posetrack._widgets._tools_common import PathField

if TYPE_CHECKING:
    import napari

    from napari_posetrack._widgets._project import PoseProject


def default_export_path(project_path: Path | None, fmt: str) -> str:
    """A sensible output file beside the project file for format ``fmt`` ("" without a project file)."""
    from napari_posetrack.core.tools.export import EXPORT_FORMATS

    if project_path is None:
        return ""
    stem = project_path.name.split(".")[0]
    names = {
        "slp": f"{stem}.export.slp",
        "slp_predicted": f"{stem}.predictions.slp",
        "analysis": f"{stem}.analysis.h5",
        "tidy": f"{stem}.poses.csv",
        # DeepLabCut knows its tables by this name
        "dlc_csv": "CollectedData_posetrack.csv",
        "dlc_h5": "CollectedData_posetrack.h5",
        "dlc_predictions": f"{stem}DLC_posetrack.h5",
    }
    return str(project_path.with_name(names.get(fmt, stem + EXPORT_FORMATS[fmt].suffix)))


class ExportTab(QWidget):
    """Pick a format and a file; the open project's labels are written there in a worker thread."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, project: PoseProject) -> None:
        from napari_posetrack.core.tools.export import EXPORT_FORMATS

        super().__init__()
        self.viewer = napari_viewer
        self.project = project
        self.worker: Any = None
        self.written: list[Path] = []
        self.activity: Activity | None = None  # the running export's entry in napari's activity dock
        self._suggested = ""  # the output path we filled in last (replaced when the format changes)
        self.setObjectName("tools_export")

        self.format = QComboBox()
        self.format.setObjectName("export_format")
        for key, fmt in EXPORT_FORMATS.items():
            self.format.addItem(fmt.title, key)
            self.format.setItemData(self.format.count() - 1, fmt.help, Qt.ItemDataRole.ToolTipRole)
        self.format.setToolTip("The file format to write; hover an entry for what it holds.")
        self.output = PathField("save", "export_output", "The file to write (existing files are replaced).")
        self.extract_frames = QCheckBox("also save the labelled frames as images")
        self.extract_frames.setObjectName("export_extract_frames")
        self.extract_frames.setToolTip(
            "DeepLabCut reads the labelled frames from labeled-data/<video>/img#####.png beside the "
            "table: write them now (or let DeepLabCut extract them)."
        )
        self.videos = self._check_list(
            "export_videos", "The videos to export (each analysis / DeepLabCut predictions file holds one)."
        )
        self.frames = QLineEdit()
        self.frames.setObjectName("export_frames")
        self.frames.setPlaceholderText("all frames (or e.g. 100-200)")
        self.frames.setToolTip(
            "Only frames FIRST to LAST, both included. Frame numbers and times in seconds are kept: "
            "per-frame files still start at frame 0, with the frames outside the range empty."
        )
        self.source = QComboBox()
        self.source.setObjectName("export_source")
        for key, title in (
            ("both", "user labels and predictions"),
            ("user", "user labels"),
            ("predicted", "predictions"),
        ):
            self.source.addItem(title, key)
        self.source.setToolTip("Which instances to write; where both are on a frame the user label wins.")
        self.tracked_only = QCheckBox("tracked instances only")
        self.tracked_only.setObjectName("export_tracked_only")
        self.tracked_only.setToolTip("Leave out instances that are on no track.")
        self.nodes = self._check_list("export_nodes", "The body parts to write.")
        self.run_button = QPushButton("Export")
        self.run_button.setObjectName("export_run")
        self.run_button.setToolTip("Write the open project's labels to the file.")
        self.status = QLabel("")
        self.status.setObjectName("export_status")
        self.status.setWordWrap(True)
        self.status.setToolTip("The files the last export wrote.")

        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Output", self.output)
        form.addRow("", self.extract_frames)
        form.addRow("Videos", self.videos)
        form.addRow("Frames", self.frames)
        form.addRow("Instances", self.source)
        form.addRow("", self.tracked_only)
        form.addRow("Body parts", self.nodes)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.format.currentIndexChanged.connect(self._on_format_changed)
        self.project.events.labels_replaced.connect(self._on_labels_replaced)
        self.run_button.clicked.connect(self._on_run_clicked)
        self._on_format_changed()
        self._fill_choices()

    @staticmethod
    def _check_list(name: str, tip: str) -> QListWidget:
        widget = QListWidget()
        widget.setObjectName(name)
        widget.setToolTip(tip)
        widget.setMaximumHeight(90)
        return widget

    def _fill_choices(self) -> None:
        """Videos and body parts of the open project, all ticked."""
        labels = self.project.labels
        for widget, names in (
            (self.videos, [v.name for v in labels.videos] if labels is not None else []),
            (self.nodes, list(labels.skeleton.nodes) if labels is not None else []),
        ):
            widget.clear()
            for name in names:
                item = QListWidgetItem(name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked)
                widget.addItem(item)

    @staticmethod
    def _ticked(widget: QListWidget) -> list[int]:
        return [i for i in range(widget.count()) if widget.item(i).checkState() == Qt.CheckState.Checked]

    def set_ticked(self, widget: QListWidget, names: list[str]) -> None:
        """Tick exactly the entries named ``names`` of the videos or body parts list."""
        for i in range(widget.count()):
            item = widget.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def selection(self) -> Any:
        """The :class:`ExportSelection` the controls describe (``ValueError`` naming a bad choice)."""
        from napari_posetrack.core.tools.export import ExportSelection, parse_frame_range

        videos = self._ticked(self.videos)
        nodes = self._ticked(self.nodes)
        if self.videos.count() and not videos:
            raise ValueError("tick at least one video")
        if self.nodes.count() and not nodes:
            raise ValueError("tick at least one body part")
        text = self.frames.text().strip()
        return ExportSelection(
            videos=None if len(videos) == self.videos.count() else videos,
            frames=parse_frame_range(text) if text else None,
            source=str(self.source.currentData()),
            tracked_only=self.tracked_only.isChecked(),
            nodes=None if len(nodes) == self.nodes.count() else [self.nodes.item(i).text() for i in nodes],
        )

    def format_key(self) -> str:
        return str(self.format.currentData())

    def set_format(self, key: str) -> None:
        self.format.setCurrentIndex(self.format.findData(key))

    def _on_labels_replaced(self, *_: Any) -> None:
        self._on_format_changed()
        self._fill_choices()

    def _on_format_changed(self, *_: Any) -> None:
        from napari_posetrack.core.tools.export import EXPORT_FORMATS

        fmt = EXPORT_FORMATS[self.format_key()]
        self.extract_frames.setEnabled(fmt.key in ("dlc_csv", "dlc_h5"))
        self.output.file_filter = f"{fmt.title} (*{fmt.suffix});;All files (*)"
        current = self.output.text()
        # follow the format with the suggested name unless the user typed their own
        if not current or current == self._suggested or Path(current).suffix != fmt.suffix:
            suggested = default_export_path(self.project.path, fmt.key)
            if current and not suggested:
                suggested = str(Path(current).with_suffix(fmt.suffix))
            self._suggested = suggested
            self.output.set_text(suggested)

    def _on_run_clicked(self) -> None:
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        from napari_posetrack.core.tools.export import export_labels

        if self.project.labels is None:
            show_error("Export: no labels are open.")
            return
        out = self.output.text()
        if not out:
            show_error("Export: choose the file to write.")
            return
        try:
            selection = self.selection()
        except ValueError as err:
            self.status.setText(f"Export: {err}")
            show_error(f"Export: {err}")
            return
        self.run_button.setEnabled(False)
        self.status.setText("writing…")
        # the writers report no steps: a busy entry in the activity dock, named after the file
        self.activity = Activity(f"Exporting {Path(out).name}")
        snapshot = self.project.labels.copy()  # the user may keep editing while the file is written
        options = (
            {"extract_frames": True}
            if self.extract_frames.isEnabled() and self.extract_frames.isChecked()
            else {}
        )
        self.worker = create_worker(
            export_labels,
            snapshot,
            out,
            self.format_key(),
            selection,
            **options,
            _start_thread=False,
            _ignore_errors=True,
        )
        self.worker.returned.connect(self._on_export_returned)
        self.worker.errored.connect(self._on_export_errored)
        self.worker.start()

    def _on_export_returned(self, paths: list[Path]) -> None:
        from napari.utils.notifications import show_info

        self._close_activity()
        self.run_button.setEnabled(True)
        self.written = list(paths)
        text = "Wrote " + ", ".join(str(p) for p in paths)
        self.status.setText(text)
        show_info(text)

    def _on_export_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._close_activity()
        self.run_button.setEnabled(True)
        self.status.setText(f"Export failed: {exc}")
        show_error(f"Export failed: {exc}")

    def _close_activity(self) -> None:
        if self.activity is not None:
            self.activity.close()
            self.activity = None
