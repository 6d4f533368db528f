"""Tools > Compare models: score every model of a runs folder on its validation frames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._plot import PlotCanvas
from napari_posetrack._widgets._tools_common import LABELS_FILTER, PathField, fill_table

if TYPE_CHECKING:
    import napari

    from napari_posetrack._widgets._project import PoseProject

COMPARE_HEADER = (
    "model",
    "architecture",
    "pipeline",
    "validation frames",
    "best val loss",
    "mean px",
    "median px",
    "p90 px",
    "PCK@5px",
    "mean OKS",
    "OKS mAP",
)


def comparison_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """One table row per model (headline numbers of ``compare_models``' result, as in ``COMPARE_HEADER``)."""
    out = []
    for r in rows:
        m = r["metrics"]
        d = m["distance"]["all"]
        out.append(
            (
                r["model"],
                r["architecture"],
                r["pipeline"],
                r["validation_frames"],
                r["best_val_loss"],
                d["mean"],
                d["median"],
                d["p90"],
                m["pck"].get("5"),
                m["oks"]["mean"],
                m["oks"]["mAP"],
            )
        )
    return out


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (Qt queues cross-thread signals)."""

    message = Signal(str)


class CompareTab(QWidget):
    """Pick a runs folder; every model (top-down pairs joined) is evaluated in a worker thread."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, project: PoseProject) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = project
        self.worker: Any = None
        self.results: list[dict[str, Any]] = []
        self.setObjectName("tools_compare")
        self.relay = _Relay()

        self.runs_dir = PathField(
            "folder", "compare_runs", "The folder holding your training runs (one sub-folder per model)."
        )
        self.labels_path = PathField(
            "open",
            "compare_labels",
            "Labels to score against. Leave empty to use the file each model was trained on.",
            LABELS_FILTER,
        )
        self.device = QComboBox()
        self.device.setObjectName("compare_device")
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setToolTip("Where the models run: auto picks the GPU when there is one.")
        self.peak_threshold = QDoubleSpinBox()
        self.peak_threshold.setObjectName("compare_peak_threshold")
        self.peak_threshold.setRange(0.0, 1.0)
        self.peak_threshold.setSingleStep(0.05)
        self.peak_threshold.setValue(0.2)
        self.peak_threshold.setToolTip(
            "Body parts whose confidence is below this are treated as not found (as when predicting)."
        )
        self.run_button = QPushButton("Compare models")
        self.run_button.setObjectName("compare_run")
        self.run_button.setToolTip(
            "Predict each model's validation frames and score them (can take a while)."
        )
        self.status = QLabel("")
        self.status.setObjectName("compare_status")
        self.status.setWordWrap(True)
        self.status.setToolTip("Which model is being evaluated, or how the last comparison ended.")
        self.table = QTableWidget()
        self.table.setObjectName("compare_table")
        self.table.setToolTip(
            "One row per model: distances in pixels between predicted and labelled points on validation "
            "frames, PCK (share of points within 5 px), OKS (COCO keypoint similarity, 1 is perfect)."
        )
        self.plot = PlotCanvas(height=4.5)
        self.plot.setObjectName("compare_plot")
        self.plot.setToolTip("Mean distance (lower is better) and OKS mAP (higher is better) per model.")
        self.plot.setMinimumHeight(260)

        form = QFormLayout()
        form.addRow("Runs folder", self.runs_dir)
        form.addRow("Labels (optional)", self.labels_path)
        form.addRow("Device", self.device)
        form.addRow("Peak threshold", self.peak_threshold)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.plot, 2)

        self.run_button.clicked.connect(self._on_run_clicked)
        self.relay.message.connect(self._on_progress_message)

    def _on_run_clicked(self) -> None:
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error

        from napari_posetrack.core.inference.pipelines import InferenceOptions
        from napari_posetrack.core.tools.compare_models import compare_models

        runs_dir = self.runs_dir.text()
        if not runs_dir:
            show_error("Compare models: choose the runs folder first.")
            return
        labels = self.labels_path.text() or None
        options = InferenceOptions(
            device=self.device.currentText(), peak_threshold=self.peak_threshold.value()
        )
        self.run_button.setEnabled(False)
        self.status.setText("finding models…")
        self.worker = create_worker(
            compare_models,
            runs_dir,
            labels,
            options,
            self.relay.message.emit,
            _start_thread=False,
            _ignore_errors=True,  # handled by _on_compare_errored
        )
        self.worker.returned.connect(self._on_compare_returned)
        self.worker.errored.connect(self._on_compare_errored)
        self.worker.start()

    def _on_progress_message(self, model: str) -> None:
        self.status.setText(f"evaluating {model}…")

    def _on_compare_returned(self, rows: list[dict[str, Any]]) -> None:
        from napari.utils.notifications import show_warning

        self.run_button.setEnabled(True)
        self.results = rows
        if not rows:
            self.status.setText("No trained models found in this folder.")
            show_warning(f"Compare models: no trained models in {self.runs_dir.text()}")
        else:
            self.status.setText(f"{len(rows)} model(s) evaluated.")
        fill_table(self.table, COMPARE_HEADER, comparison_rows(rows))
        self._draw(rows)

    def _on_compare_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.run_button.setEnabled(True)
        self.status.setText(f"Comparison failed: {exc}")
        show_error(f"Compare models failed: {exc}")

    def _draw(self, rows: list[dict[str, Any]]) -> None:
        ax_dist, ax_map = self.plot.axes(1, 2)
        names = [f"{i + 1}" for i in range(len(rows))]  # numbers match the table rows; run names are long
        x = np.arange(len(rows))
        ax_dist.bar(x, [r["metrics"]["distance"]["all"]["mean"] for r in rows], color="tab:orange")
        ax_dist.set_xticks(x, names)
        ax_dist.set_title("mean distance (px)", fontsize=9)
        ax_dist.set_xlabel("model (table row)", fontsize=8)
        ax_map.bar(x, [r["metrics"]["oks"]["mAP"] for r in rows], color="tab:blue")
        ax_map.set_xticks(x, names)
        ax_map.set_ylim(0, 1.0)
        ax_map.set_title("OKS mAP", fontsize=9)
        ax_map.set_xlabel("model (table row)", fontsize=8)
        self.plot.draw()
