"""The whole loop through the docked widgets, as a user would click it, on the synthetic sample.

Label set -> suggestions -> train (a real child process, one epoch on CPU) -> predict every frame
and track -> export -> save, reload and compare.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("napari")

from napari_posetrack._widgets._project import project_for
from napari_posetrack.core.io import load_labels, save_labels
from napari_posetrack.core.labels import PREDICTED, USER, assert_labels_equal
from napari_posetrack.core.sample import write_sample
from napari_posetrack.core.tracking.tracker import TrackerConfig
from napari_posetrack.demo_viewer import dock_all_widgets

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _tiny_bottomup(training) -> None:
    training.set_pipeline("bottomup")
    form = training.form("bottomup")
    config = form.config()
    config.model.unet.filters = 4
    config.model.unet.max_stride = 8
    config.model.heads.confmaps.output_stride = 4
    config.model.heads.pafs.output_stride = 4
    config.optimization.epochs = 1
    config.optimization.batches_per_epoch = 3
    config.optimization.min_batches_per_epoch = 0
    config.optimization.batch_size = 2
    config.data.validation_fraction = 0.2
    form.set_config(config)
    training.device_combo.setCurrentText("cpu")


def test_label_train_predict_track_export_through_the_widgets(make_napari_viewer, tmp_path, qtbot):
    paths = write_sample(tmp_path / "sample", n_animals=2, n_frames=30, size=(96, 96))
    truth = load_labels(paths["labels"])
    project_path = tmp_path / "project.slp"
    save_labels(truth.subset(np.flatnonzero(truth.instances.frame % 3 == 0)), project_path)

    viewer = make_napari_viewer()
    widgets = dock_all_widgets(viewer)
    assert widgets["labelling"].open_path(project_path)
    project = project_for(viewer)
    n_user = int((project.labels.instances.kind == USER).sum())

    # a correction before training: drag-free edit through the labelling widget, then undo it
    project.go_to(1)
    widgets["labelling"].new_instance(at_xy=(40.0, 40.0))
    widgets["labelling"].undo()
    assert int((project.labels.instances.kind == USER).sum()) == n_user

    # suggestions for the next round
    suggestions = widgets["suggestions"]
    suggestions.set_method("uniform")
    suggestions.generate()
    qtbot.waitUntil(lambda: len(project.labels.suggestions) > 0, timeout=60_000)

    # train one epoch in a child process; the live plot gets the trainer's records
    training = widgets["training"]
    _tiny_bottomup(training)
    training.runs_folder_edit.setText(str(tmp_path / "runs"))
    records = []
    training.process.record.connect(lambda model, record: records.append(record))
    with qtbot.waitSignal(training.process.finished, timeout=300_000) as finished:
        training.run_button.click()
    run_dirs, cancelled = finished.args
    assert not cancelled and (records and records[-1]["event"] == "end")
    (run_dir,) = run_dirs
    assert (Path(run_dir) / "best.ckpt").is_file()

    # predict every frame and track two identities; results arrive as layers
    inference = widgets["inference"]
    inference.runs_folder_edit.setText(str(tmp_path / "runs"))
    inference.runs_folder_edit.editingFinished.emit()
    assert inference.model_combo.count() == 1
    inference.target_combo.setCurrentText("All frames")
    inference.track_check.setChecked(True)
    inference.tracker_form.set_config(TrackerConfig(max_tracks=2))
    # a one-epoch model is unsure of itself: keep its weak peaks
    inference.options_form.set_values({"peak_threshold": 0.05, "max_instances": 2, "device": "cpu"})
    inference.predict_button.click()
    qtbot.waitUntil(lambda: inference.worker is None and inference.predict_button.isEnabled(), timeout=300_000)
    outcome = inference.last_outcome
    assert outcome.error is None, outcome.error
    t = project.labels.instances
    predicted = t.kind == PREDICTED
    assert predicted.any() and int((t.kind == USER).sum()) == n_user
    tracked = t.track[predicted]
    assert (tracked >= 0).mean() > 0.9  # identities assigned (a stray detection may stay untracked)
    assert len(np.unique(tracked[tracked >= 0])) <= 2
    assert (project.points_layer.features["kind"] == "predicted").sum() > 0

    # export the trajectories for analysis
    export = widgets["tools"].export_tab
    export.set_format("analysis")
    out = tmp_path / "trajectories.h5"
    export.output.edit.setText(str(out))
    export.run_button.click()
    qtbot.waitUntil(lambda: bool(getattr(export, "written", None)), timeout=60_000)
    with h5py.File(export.written[0], "r") as f:
        assert f["tracks"].shape[-1] == 30  # one column per frame

    # save (atomic) and reload: what is on disk is what the session holds
    assert widgets["labelling"].save() == project_path
    assert_labels_equal(load_labels(project_path), project.labels)
