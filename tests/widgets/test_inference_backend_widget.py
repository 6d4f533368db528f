"""The Inference widget's backend choice: a drop-down with the engine's choices, and what the user sees
when a backend is missing (an error naming the extra) or when auto falls back (one warning)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets.inference import InferenceWidget
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import USER

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


def _widget(make_napari_viewer, qtbot, small_sample, run) -> InferenceWidget:
    viewer = make_napari_viewer()
    labels = load_labels(small_sample["labels"])
    t = labels.instances
    project_for(viewer).set_labels(labels.subset(np.flatnonzero((t.kind == USER) & (t.frame < 4))))
    widget = InferenceWidget(viewer)
    qtbot.addWidget(widget)
    widget.runs_folder_edit.setText(str(run.parent))
    widget.runs_folder_edit.editingFinished.emit()
    widget.options_form.set_values({"peak_threshold": 0.0, "device": "cpu"})
    widget.target_combo.setCurrentText("Frame range")
    widget.range_start_spin.setValue(0)
    widget.range_stop_spin.setValue(1)
    return widget


def _predict(qtbot, widget: InferenceWidget) -> None:
    widget.predict_button.click()
    qtbot.waitUntil(lambda: widget.worker is None and widget.predict_button.isEnabled(), timeout=WAIT_MS)


def test_backend_drop_down_offers_every_backend_with_a_plain_tooltip(make_napari_viewer, qtbot, small_sample, single_instance_run):
    from qtpy.QtWidgets import QCheckBox, QComboBox

    widget = _widget(make_napari_viewer, qtbot, small_sample, single_instance_run)
    combo = widget.findChild(QComboBox, "inference_backend")
    assert [combo.itemText(i) for i in range(combo.count())] == ["auto", "torch", "onnxruntime", "openvino", "tensorrt"]
    assert combo.currentText() == "torch"
    tip = combo.toolTip()
    assert "picks the fastest one installed" in tip and "napari-posetrack[onnx]" in tip
    half = widget.findChild(QCheckBox, "inference_half")
    assert half.text() == "Half precision (GPU)" and not half.isChecked()
    combo.setCurrentText("openvino")
    assert widget.options_form.options().backend == "openvino"


@pytest.mark.slow  # trains the shared single-instance run once
def test_a_missing_backend_is_an_error_and_auto_falls_back_with_a_warning(
    make_napari_viewer, qtbot, small_sample, single_instance_run, monkeypatch
):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)
    widget = _widget(make_napari_viewer, qtbot, small_sample, single_instance_run)

    widget.options_form.set_values({"backend": "onnxruntime"})
    _predict(qtbot, widget)
    assert "ONNX Runtime is not installed: pip install 'napari-posetrack[onnx]'" in widget.last_outcome.error

    widget.options_form.set_values({"backend": "auto"})
    before = len(notification_manager.records)
    _predict(qtbot, widget)
    assert widget.last_outcome.error is None and widget.last_outcome.added == 2
    qtbot.waitUntil(lambda: len(notification_manager.records) > before, timeout=5_000)  # relayed from the worker
    warned = [n.message for n in notification_manager.records[before:] if n.severity == NotificationSeverity.WARNING]
    assert len(warned) == 1 and "backend auto runs on torch" in warned[0]
