"""Small pieces shared by the Tools tabs: a path field with a Browse button, and table filling."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

LABELS_FILTER = "Labels files (*.slp *.h5 *.hdf5 *.csv *.yaml);;All files (*)"
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.m4v *.mpg *.mpeg *.wmv *.webm);;All files (*)"


class PathField(QWidget):
    """A line edit holding a path, with a Browse button opening the right file dialog.

    Parameters
    ----------
    mode
        ``"open"`` (an existing file), ``"save"`` (a file to write) or ``"folder"``.
    name
        ``objectName`` of the widget; the line edit gets ``<name>_edit`` and the button ``<name>_browse``.
    tooltip
        What the path is for, in plain words (shown on both controls).
    """

    path_changed = Signal(str)

    def __init__(
        self, mode: str, name: str, tooltip: str, file_filter: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.mode = mode
        self.file_filter = file_filter
        self.setObjectName(name)
        self.edit = QLineEdit()
        self.edit.setObjectName(f"{name}_edit")
        self.edit.setToolTip(tooltip)
        self.edit.setPlaceholderText("folder…" if mode == "folder" else "file…")
        self.browse = QPushButton("Browse…")
        self.browse.setObjectName(f"{name}_browse")
        self.browse.setToolTip(tooltip)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)
        self.browse.clicked.connect(self._on_browse_clicked)
        self.edit.textChanged.connect(self.path_changed.emit)

    def text(self) -> str:
        """The path typed or picked, stripped, with a leading ``~`` expanded ("" when empty)."""
        text = self.edit.text().strip()
        return os.path.expanduser(text) if text else ""

    def set_text(self, text: str) -> None:
        self.edit.setText(text)

    def _on_browse_clicked(self) -> None:
        start = self.text()
        if self.mode == "folder":
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", start)
        elif self.mode == "save":
            chosen, _ = QFileDialog.getSaveFileName(self, "Save as", start, self.file_filter)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Open", start, self.file_filter)
        if chosen:
            self.edit.setText(chosen)


def fill_table(table: QTableWidget, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Replace a table's contents: one row per sequence, numbers formatted briefly, read-only cells."""
    table.clear()
    table.setColumnCount(len(header))
    table.setRowCount(len(rows))
    table.setHorizontalHeaderLabels(list(header))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem(format_cell(value))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()


def format_cell(value: Any) -> str:
    """Table text of a value: '' for None, 3 significant decimals for floats, NaN as '–'."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):  # nothing was measured
            return "–"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)

