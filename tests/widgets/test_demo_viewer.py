"""``posetrack demo`` opens napari with the sample, its predictions and every widget docked."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_posetrack.core.io import load_labels, save_labels
from napari_posetrack.core.labels import PREDICTED, USER
from napari_posetrack.core.sample import write_sample
from napari_posetrack.demo_viewer import WIDGETS, open_demo_viewer

pytestmark = pytest.mark.gui


def test_demo_viewer_docks_every_widget_on_the_sample(tmp_path, screenshot_dir):
    paths = write_sample(tmp_path / "sample", n_animals=2, n_frames=30, size=(96, 96))
    truth = load_labels(paths["labels"])
    labelled = truth.subset(np.flatnonzero(truth.instances.frame % 5 == 0))
    labels_path = tmp_path / "labels.slp"
    save_labels(labelled, labels_path)
    predicted = truth.copy()
    predicted.instances.kind[:] = PREDICTED
    predicted.instances.score[:] = 0.9
    predictions_path = tmp_path / "predictions.slp"
    save_labels(predicted, predictions_path)
    summary = {"labels": str(labels_path), "predictions": str(predictions_path), "runs": []}

    viewer, widgets = open_demo_viewer(summary, show=False)
    try:
        assert set(widgets) == {module for module, _, _ in WIDGETS}
        from napari_posetrack._widgets._project import project_for

        project = project_for(viewer)
        kinds = project.labels.instances.kind
        assert (kinds == USER).sum() == labelled.n_instances
        assert (kinds == PREDICTED).sum() == truth.n_instances
        assert project.path == labels_path
        assert "poses: sample.mp4" in [layer.name for layer in viewer.layers]
        viewer.screenshot(str(screenshot_dir / "demo_viewer.png"), canvas_only=False)
        assert (screenshot_dir / "demo_viewer.png").stat().st_size > 0
    finally:
        viewer.close()
