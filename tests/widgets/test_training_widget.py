"""The Training widget: config form round trips, overlay, preview, real training in a child process."""

from __future__ import annotations

import os
import typing
from pathlib import Path

import numpy as np
import pytest

from napari_posetrack._widgets._config_form import CHOICES, ConfigForm, config_fields
from napari_posetrack.core.config import FIELD_HELP, TrainingConfig
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import PREDICTED
from napari_posetrack.core.models.receptive_field import receptive_field
from napari_posetrack.core.sample import write_sample
from napari_posetrack.core.training.trainer import read_metrics


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, str]:
    return write_sample(tmp_path_factory.mktemp("training_widget"), n_animals=2, n_frames=16, size=(64, 64))


def _different(spec, value):
    """A valid-looking value of the field's type that differs from ``value``."""
    base = spec.base
    if spec.key in CHOICES:
        return next((c for c in CHOICES[spec.key] if c != value), value)  # 'unet' is the only backbone
    if spec.key == "data.anchor_part":
        return "head"
    if base is bool:
        return not value
    if base is int:
        return 3 if value != 3 else 5
    if base is float:
        return 0.000123 if value != 0.000123 else 2.5
    if typing.get_origin(base) is list:
        return [3, 7]
    return "elsewhere" if value != "elsewhere" else "here"


def non_default_config() -> TrainingConfig:
    """Every field differs from its default."""
    config = TrainingConfig()
    for spec in config_fields():
        config.set(spec.key, _different(spec, config.get(spec.key)))
    return config


def tiny(config: TrainingConfig, *, epochs: int = 1, batches: int = 2) -> TrainingConfig:
    """Settings that train in seconds on a CPU."""
    config.model.unet.filters = 4
    config.model.unet.max_stride = 8
    config.model.heads.confmaps.output_stride = 4
    config.model.heads.centroids.output_stride = 4
    config.optimization.epochs = epochs
    config.optimization.batches_per_epoch = batches
    config.optimization.min_batches_per_epoch = 0
    config.optimization.batch_size = 2
    config.data.validation_fraction = 0.2
    return config


# --------------------------------------------------------------------------- the form (no viewer)


def test_every_field_has_a_control_with_its_help(qtbot):
    form = ConfigForm()
    qtbot.addWidget(form)
    keys = [spec.key for spec in config_fields()]
    assert set(keys) == set(form.controls)
    for key in keys:
        assert key in FIELD_HELP, f"{key} has no plain-language help"
        assert form.controls[key].toolTip() == FIELD_HELP[key]
        assert form.controls[key].objectName() == key


def test_form_round_trip_every_field(qtbot):
    form = ConfigForm()
    qtbot.addWidget(form)
    config = non_default_config()
    default = TrainingConfig()
    for spec in config_fields():  # the test config really changes every field that has a choice
        if len(CHOICES.get(spec.key, "ab")) > 1:
            assert config.get(spec.key) != default.get(spec.key), spec.key
    form.set_config(config)
    assert form.config() == config
    form.set_config(default)
    assert form.config() == default
    # optional fields cleared in the form read back as None
    config.optimization.max_iterations = None
    config.data.crop_size = None
    config.optimization.gradient_clip_norm = None
    form.set_config(config)
    assert form.config() == config


def test_bad_text_names_the_field(qtbot):
    from napari_posetrack.core.errors import ConfigError

    form = ConfigForm()
    qtbot.addWidget(form)
    form.controls["optimization.initial_learning_rate"].setText("fast")
    with pytest.raises(ConfigError, match="optimization.initial_learning_rate"):
        form.config()


# --------------------------------------------------------------------------- the widget


@pytest.fixture
def widget(make_napari_viewer, qtbot):
    from napari_posetrack._widgets.training import TrainingWidget

    viewer = make_napari_viewer()
    w = TrainingWidget(viewer)
    viewer.window.add_dock_widget(w, name="Training")
    yield w
    w.process.kill()


def _open(widget, labels_path, *, unsaved: bool = False):
    from napari_posetrack._widgets._project import project_for

    project = project_for(widget.viewer)
    if unsaved:
        project.set_labels(load_labels(labels_path), None)
    else:
        project.open(labels_path)
    return project


def _set_tiny(widget, pipeline="single_instance", tmp_path=None, **kw):
    widget.set_pipeline(pipeline)
    for model in ("single_instance", "centroid", "centered_instance", "bottomup"):
        form = widget.form(model)
        config = form.config()
        config.model.pipeline = model
        form.set_config(tiny(config, **kw))
    widget.device_combo.setCurrentText("cpu")
    if tmp_path is not None:
        widget.runs_folder_edit.setText(str(tmp_path / "runs"))


@pytest.mark.gui
def test_widget_round_trip_and_config_files(widget, tmp_path):
    config = non_default_config()
    config.model.pipeline = "bottomup"
    widget.set_model_config(config)
    assert widget.pipeline == "bottomup"
    assert widget.model_configs() == {"bottomup": config}

    path = tmp_path / "bottomup.yaml"
    assert widget.save_config(path) == [path]
    assert TrainingConfig.from_file(path) == config
    widget._on_reset_clicked()
    assert widget.model_configs()["bottomup"] != config
    widget.load_config(path)
    assert widget.model_configs() == {"bottomup": config}

    # top-down: one tab per model, each with its own settings, one file per model
    centroid = tiny(TrainingConfig())
    centroid.model.pipeline = "centroid"
    centroid.data.input_scaling = 0.5
    centered = TrainingConfig()
    centered.model.pipeline = "centered_instance"
    centered.model.unet.filters = 48
    widget.set_pipeline("topdown")
    widget.set_model_config(centroid)
    widget.set_model_config(centered)
    assert widget.pipeline == "topdown" and widget.tabs.count() == 2
    assert [widget.tabs.tabText(i) for i in range(2)] == ["Centroid", "Centered instance"]
    assert widget.model_configs() == {"centroid": centroid, "centered_instance": centered}
    written = widget.save_config(tmp_path / "job.yaml")
    assert [p.name for p in written] == ["job.centroid.yaml", "job.centered_instance.yaml"]
    assert TrainingConfig.from_file(written[1]) == centered

    # a top-down file (SLEAP-style single config) fills both tabs
    job = TrainingConfig()
    job.model.pipeline = "topdown"
    job.data.centroid_input_scaling = 0.25
    job.to_yaml(tmp_path / "topdown.yaml")
    widget.set_pipeline("single_instance")
    widget.load_config(tmp_path / "topdown.yaml")
    configs = widget.model_configs()
    assert widget.pipeline == "topdown"
    assert configs["centroid"].data.input_scaling == 0.25
    assert configs["centered_instance"].data.input_scaling == 1.0


@pytest.mark.gui
def test_receptive_field_overlay_follows_the_form(widget, sample_files):
    _open(widget, sample_files["labels"])
    widget.set_pipeline("single_instance")
    layer = widget.viewer.layers["receptive field"]
    config = widget.model_configs()["single_instance"]
    expected = receptive_field(config).image_pixels
    box = np.asarray(layer.data[0])
    assert np.ptp(box[:, -2]) == pytest.approx(expected) and np.ptp(box[:, -1]) == pytest.approx(expected)
    assert np.mean(box[:, -2:], axis=0) == pytest.approx([32.0, 32.0])  # centred in the 64 x 64 frame

    form = widget.form("single_instance")
    form.controls["data.input_scaling"].setText("0.5")
    form.controls["data.input_scaling"].editingFinished.emit()
    box = np.asarray(widget.viewer.layers["receptive field"].data[0])
    assert np.ptp(box[:, -1]) == pytest.approx(2 * expected)
    assert "px" in widget.rf_label.text()

    widget.set_pipeline("topdown")  # one box per model
    assert len(widget.viewer.layers["receptive field"].data) == 2


@pytest.mark.gui
@pytest.mark.slow
def test_training_inputs_preview_adds_layers(widget, sample_files, qtbot):
    _open(widget, sample_files["labels"])
    _set_tiny(widget, "topdown")
    widget.tabs.setCurrentIndex(1)  # the centered-instance model: crops
    widget.preview_count.setValue(3)
    widget.preview_button.click()
    qtbot.waitUntil(lambda: widget._preview_worker is None, timeout=60_000)
    inputs = widget.viewer.layers["training inputs"]
    confmaps = widget.viewer.layers["training confmaps"]
    assert inputs.data.shape[0] == 3 and inputs.data.shape[1] == inputs.data.shape[2] < 64
    stride = widget.form("centered_instance").config().model.heads.confmaps.output_stride
    assert confmaps.data.shape == (3, inputs.data.shape[1] // stride, inputs.data.shape[2] // stride)
    assert tuple(confmaps.scale[-2:]) == (stride, stride)
    assert confmaps.blending == "additive" and confmaps.data.max() > 0.5
    assert widget.preview_button.isEnabled()


@pytest.mark.gui
def test_preview_without_labels_says_so(widget, qtbot):
    widget.preview_button.click()
    assert "training inputs" not in widget.viewer.layers
    assert "Open or create labels" in widget.log_view.toPlainText()


@pytest.mark.gui
@pytest.mark.slow
def test_training_runs_in_a_subprocess_with_a_live_plot(widget, sample_files, tmp_path, qtbot):
    project = _open(widget, sample_files["labels"], unsaved=True)  # never saved: a copy is trained on
    _set_tiny(widget, "single_instance", tmp_path, epochs=2, batches=2)
    # then predict on the current frame with the new model (the inference widget's engine)
    widget.predict_check.setChecked(True)
    widget.predict_target.setCurrentIndex(widget.predict_target.findData("current"))
    project.go_to(5)
    records = []
    widget.process.record.connect(lambda model, rec: records.append(rec))
    widget.run_button.click()
    assert widget.process.running and not widget.run_button.isEnabled() and widget.stop_button.isEnabled()
    with qtbot.waitSignal(widget.process.finished, timeout=120_000) as blocker:
        pass
    run_dirs, cancelled = blocker.args
    assert not cancelled
    (run_dir,) = [Path(d) for d in run_dirs]
    assert run_dir == widget.run_dirs[0] and run_dir.name.endswith(".single_instance")
    assert (run_dir / "best.ckpt").is_file()
    # the live plot got every record the trainer wrote
    events = [r["event"] for r in records]
    assert events == [r["event"] for r in read_metrics(run_dir / "metrics.jsonl")]
    assert events.count("batch") == 4 and events.count("epoch") == 2 and events[-1] == "end"
    lines = widget.plot.lines
    assert len(lines["batch"].get_xdata()) == 4 and len(lines["val"].get_ydata()) == 2
    assert "finished" in widget.status_label.text()
    # the best model so far predicted the current frame while training
    qtbot.waitUntil(lambda: widget.sample_worker is None, timeout=60_000)
    sample = widget.viewer.layers["sample prediction"]
    assert len(sample.data) and set(sample.data[:, 0].tolist()) == {5.0}
    assert widget.run_button.isEnabled() and not widget.stop_button.isEnabled()
    # unsaved labels went to the job's inputs folder; the child trained on that copy
    copy = run_dir.parent / (run_dir.name.rsplit(".", 1)[0] + ".inputs") / "labels.slp"
    assert copy.is_file()
    assert (run_dir / "labels_source.txt").read_text().strip() == str(copy.resolve())
    assert project.path is None
    # predictions of the new model appear on the current frame only
    qtbot.waitUntil(lambda: "Predictions added" in widget.status_label.text(), timeout=120_000)
    assert widget.predict_worker is None
    t = project.labels.instances
    predicted = t.kind == PREDICTED
    assert predicted.any() and set(t.frame[predicted].tolist()) == {5}


@pytest.mark.gui
@pytest.mark.slow
def test_stop_cancels_a_long_run_and_keeps_the_checkpoint(widget, sample_files, tmp_path, qtbot):
    project = _open(widget, sample_files["labels"])
    _set_tiny(widget, "single_instance", tmp_path, epochs=500, batches=50)
    batches = []
    widget.process.record.connect(lambda m, r: batches.append(r) if r["event"] == "batch" else None)
    widget.run_button.click()
    qtbot.waitUntil(lambda: len(batches) >= 2, timeout=120_000)
    with qtbot.waitSignal(widget.process.finished, timeout=60_000) as blocker:
        widget.stop_button.click()
    _, cancelled = blocker.args
    assert cancelled
    run_dir = widget.run_dirs[0]
    end = read_metrics(run_dir / "metrics.jsonl")[-1]
    assert end["event"] == "end" and end["reason"] == "cancelled" and end["step"] < 500 * 50
    assert (run_dir / "last.ckpt").is_file()
    assert "Stopped" in widget.status_label.text() and widget.run_button.isEnabled()
    # a saved project file is trained on directly (and not rewritten)
    assert (run_dir / "labels_source.txt").read_text().strip() == str(project.path.resolve())


@pytest.mark.gui
@pytest.mark.slow
def test_a_crashing_child_shows_an_error_and_resets_the_ui(widget, sample_files, tmp_path, qtbot):
    import shutil

    # a project whose video disappears after it was opened: the child fails reading frames
    folder = tmp_path / "moved"
    folder.mkdir()
    for key in ("video", "labels"):
        shutil.copy(sample_files[key], folder)
    labels = load_labels(folder / "sample.slp")
    labels.videos[0].path = str(folder / "sample.mp4")
    from napari_posetrack.core.io import save_labels

    save_labels(labels, folder / "sample.slp")
    _open(widget, folder / "sample.slp")
    (folder / "sample.mp4").unlink()
    _set_tiny(widget, "single_instance", tmp_path)
    with qtbot.waitSignal(widget.process.failed, timeout=120_000) as blocker:
        widget.run_button.click()
    (message,) = blocker.args
    assert "sample.mp4" in message and "exit code 1" in message
    assert "failed" in widget.status_label.text()
    assert "sample.mp4" in widget.log_view.toPlainText()
    assert widget.run_button.isEnabled() and not widget.stop_button.isEnabled()
    assert not widget.process.running


@pytest.mark.gui
def test_invalid_settings_start_nothing(widget, sample_files, tmp_path):
    _open(widget, sample_files["labels"])
    _set_tiny(widget, "single_instance", tmp_path)
    widget.form("single_instance").controls["optimization.batch_size"].setValue(0)
    widget.run_button.click()
    assert not widget.process.running and widget.run_button.isEnabled()
    assert "optimization.batch_size" in widget.log_view.toPlainText()
    assert not (tmp_path / "runs").exists()


@pytest.mark.gui
def test_closing_the_widget_ends_the_child(widget, sample_files, tmp_path, qtbot):
    _open(widget, sample_files["labels"])
    _set_tiny(widget, "single_instance", tmp_path, epochs=500, batches=50)
    with qtbot.waitSignal(widget.process.step_started, timeout=10_000):
        widget.run_button.click()
    pid = widget.process._process.processId()
    assert pid > 0
    widget.close()
    assert not widget.process.running
    with pytest.raises(ProcessLookupError):  # the child is gone (killed and reaped), not orphaned
        os.kill(pid, 0)


@pytest.mark.gui
@pytest.mark.slow
def test_screenshot(widget, sample_files, screenshot_dir, qtbot):
    _open(widget, sample_files["labels"])
    widget.rf_combo.setCurrentText("small")
    widget.set_pipeline("topdown")
    widget._on_reset_clicked()
    for model in ("centroid", "centered_instance"):
        widget.form(model).controls["data.input_scaling"].setText("4.0")  # a box that fits the 64 px frame
    widget._on_form_changed()
    # a loss curve, as a running training shows it
    from napari_posetrack._widgets._loss_plot import LossHistory

    widget.history = LossHistory("centroid", epochs=5)
    for i, rec in enumerate(
        [{"event": "start", "steps_per_epoch": 4}]
        + [{"event": "batch", "epoch": s // 4, "batch": s % 4, "step": s + 1, "loss": 0.02 * 0.8**s,
            "elapsed": s} for s in range(12)]
    ):
        widget._on_process_record("centroid", rec)
        if i and i % 4 == 0:
            step = i
            widget._on_process_record("centroid", {"event": "epoch", "epoch": step // 4 - 1, "step": step,
                                                   "train_loss": 0.02 * 0.8**step, "val_loss": 0.025 * 0.8**step,
                                                   "val_mean_pixel_error": 3.0, "lr": 1e-4, "elapsed": step})
    widget._update_plot(force=True)
    qtbot.wait(100)
    path = screenshot_dir / "training.png"
    widget.grab().save(str(path))
    assert path.is_file() and path.stat().st_size > 0
    whole = screenshot_dir / "training_viewer.png"
    widget.viewer.screenshot(str(whole), canvas_only=False)
    assert whole.is_file() and whole.stat().st_size > 0


def test_loss_history_eta():
    from napari_posetrack._widgets._loss_plot import LossHistory

    h = LossHistory("single_instance", epochs=10)
    h.add({"event": "start", "steps_per_epoch": 10})
    h.add({"event": "batch", "epoch": 0, "batch": 9, "step": 10, "loss": 0.1, "elapsed": 20.0})
    assert h.eta() == pytest.approx(180.0)  # 2 s a step, 90 steps left
    h.max_steps = 20
    assert h.eta() == pytest.approx(20.0)
