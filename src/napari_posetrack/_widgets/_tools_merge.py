"""Tools > Merge: merge labels files into the open project or into a new file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._tools_common import LABELS_FILTER, PathField

if TYPE_CHECKING:
    import napari

    from napari_posetrack._widgets._project import PoseProject


def _merge_job(base: Any, paths: list[str], out: str | None) -> tuple[Any, dict[str, Any]]:
    """Worker body: merge ``paths`` into ``base`` (a Labels copy or a file) and save when ``out`` is given."""
    from napari_posetrack.core.io import load_labels, save_labels
    from napari_posetrack.core.tools.merge import merge_into

    base_labels = load_labels(base) if isinstance(base, str) else base
    merged, summary = merge_into(base_labels, paths)
    if out:
        save_labels(merged, out)
        summary["output"] = out
    return merged, summary


class MergeTab(QWidget):
    """Pick a base (the open project or a file) and files to merge in; apply or save the result.

    User instances of later files replace matching predictions of earlier ones; videos are
    matched by path and tracks by name (see ``Labels.merge``).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, project: PoseProject) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = project
        self.worker: Any = None
        self.setObjectName("tools_merge")

        self.base_project = QRadioButton("the open project")
        self.base_project.setObjectName("merge_base_project")
        self.base_project.setToolTip("Merge the files into the labels open in napari.")
        self.base_file = QRadioButton("a file:")
        self.base_file.setObjectName("merge_base_file")
        self.base_file.setToolTip("Start from this labels file instead of the open project.")
        self.base_path = PathField(
            "open", "merge_base_path", "The labels file the others are merged into.", LABELS_FILTER
        )

        self.inputs = QListWidget()
        self.inputs.setObjectName("merge_inputs")
        self.inputs.setToolTip("Labels files merged in, in this order (they must have the same body parts).")
        self.add_button = QPushButton("Add files…")
        self.add_button.setObjectName("merge_add")
        self.add_button.setToolTip("Choose labels files to merge in.")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("merge_remove")
        self.remove_button.setToolTip("Remove the selected file from the list.")

        self.to_project = QRadioButton("replace the open project's labels (undoable)")
        self.to_project.setObjectName("merge_to_project")
        self.to_project.setToolTip(
            "Put the merged labels in napari as one undoable step; save the project afterwards."
        )
        self.to_file = QRadioButton("save to a new file:")
        self.to_file.setObjectName("merge_to_file")
        self.to_file.setToolTip(
            "Write the merged labels to a new file; what is open in napari is not changed."
        )
        self.output = PathField(
            "save", "merge_output", "Where the merged labels are saved (.slp).", "SLEAP labels (*.slp)"
        )

        self.run_button = QPushButton("Merge")
        self.run_button.setObjectName("merge_run")
        self.run_button.setToolTip("Merge the files now.")
        self.summary = QLabel("")
        self.summary.setObjectName("merge_summary")
        self.summary.setWordWrap(True)
        self.summary.setToolTip("What the last merge did.")

        base_row = QHBoxLayout()
        base_row.addWidget(self.base_project)
        base_row.addWidget(self.base_file)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        form = QFormLayout()
        form.addRow("Merge into", base_row)
        form.addRow("", self.base_path)
        form.addRow("Files", self.inputs)
        form.addRow("", buttons)
        form.addRow("Result", self.to_project)
        form.addRow("", self.to_file)
        form.addRow("", self.output)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.summary)
        layout.addStretch(1)

        # two independent choices: radio buttons sharing a parent would otherwise exclude each other
        self.base_group = QButtonGroup(self)
        self.base_group.addButton(self.base_project)
        self.base_group.addButton(self.base_file)
        self.result_group = QButtonGroup(self)
        self.result_group.addButton(self.to_project)
        self.result_group.addButton(self.to_file)
        self.base_project.setChecked(True)
        self.to_project.setChecked(True)
        self.base_project.toggled.connect(self._on_choice_toggled)
        self.to_project.toggled.connect(self._on_choice_toggled)
        self.add_button.clicked.connect(self._on_add_clicked)
        self.remove_button.clicked.connect(self._on_remove_clicked)
        self.run_button.clicked.connect(self._on_run_clicked)
        self._on_choice_toggled()

    # ------------------------------------------------------------------ inputs
    def add_files(self, paths: list[str | Path]) -> None:
        """Append files to the list of files merged in."""
        for p in paths:
            self.inputs.addItem(str(p))

    def input_paths(self) -> list[str]:
        return [self.inputs.item(i).text() for i in range(self.inputs.count())]

    def _on_add_clicked(self) -> None:
        chosen, _ = QFileDialog.getOpenFileNames(self, "Labels files to merge", "", LABELS_FILTER)
        self.add_files(chosen)

    def _on_remove_clicked(self) -> None:
        for item in self.inputs.selectedItems():
            self.inputs.takeItem(self.inputs.row(item))

    def _on_choice_toggled(self, *_: Any) -> None:
        self.base_path.setEnabled(self.base_file.isChecked())
        self.output.setEnabled(self.to_file.isChecked())

    # ------------------------------------------------------------------ run
    def _on_run_clicked(self) -> None:
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        paths = self.input_paths()
        if not paths:
            show_error("Merge: add at least one labels file to merge in.")
            return
        if self.base_project.isChecked():
            if self.project.labels is None:
                show_error("Merge: no project is open; open labels first or merge into a file.")
                return
            base: Any = self.project.labels.copy()  # a snapshot: the user may keep editing meanwhile
        else:
            base = self.base_path.text()
            if not base:
                show_error("Merge: choose the labels file to merge into.")
                return
        out = self.output.text() if self.to_file.isChecked() else None
        if self.to_file.isChecked() and not out:
            show_error("Merge: choose where to save the merged labels.")
            return
        self.run_button.setEnabled(False)
        self.summary.setText("merging…")
        self.worker = create_worker(
            _merge_job,
            base,
            paths,
            out,
            _start_thread=False,
            _ignore_errors=True,  # errors: _on_merge_errored
        )
        self.worker.returned.connect(self._on_merge_returned)
        self.worker.errored.connect(self._on_merge_errored)
        self.worker.start()

    def _on_merge_returned(self, result: tuple[Any, dict[str, Any]]) -> None:
        merged, summary = result
        self.run_button.setEnabled(True)
        text = (
            f"Merged {summary['files']} file(s): {summary['added']} instances added, "
            f"{summary['replaced_predictions']} predictions replaced by user labels; now "
            f"{summary['instances']} instances in {summary['videos']} video(s)."
        )
        if "output" in summary:
            text += f" Saved to {summary['output']}."
        else:
            if self.project.labels is None and self.base_project.isChecked():
                self.summary.setText("Merge: the project was closed meanwhile; nothing applied.")
                return
            if self.project.labels is None:
                self.project.set_labels(merged)
            else:
                self.project.apply(merged, "merge")
            text += " Applied to the open project (Undo reverts it)."
        self.summary.setText(text)

    def _on_merge_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.run_button.setEnabled(True)
        self.summary.setText(f"Merge failed: {exc}")
        show_error(f"Merge failed: {exc}")
