"""The model zoo in the Training widget: backbone-dependent fields, file pickers, model size, receptive field."""

from __future__ import annotations

import re

import numpy as np
import pytest
from qtpy.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QToolButton

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.models import receptive_field as rf
from napari_posetrack.core.sample import write_sample

MODEL = "single_instance"


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """Measured receptive fields go to this module's cache folder, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        rf.clear_cache()
        yield
    rf.clear_cache()


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory) -> dict[str, str]:
    return write_sample(tmp_path_factory.mktemp("training_zoo"), n_animals=1, n_frames=8, size=(64, 64))


@pytest.fixture
def widget(make_napari_viewer, qtbot):
    from napari_posetrack._widgets.training import TrainingWidget

    viewer = make_napari_viewer()
    w = TrainingWidget(viewer)
    viewer.window.add_dock_widget(w, name="Training")
    w.set_pipeline(MODEL)
    yield w
    w.stop_measuring()  # no measuring child outlives the viewer
    qtbot.waitUntil(lambda: w.measure_worker is None, timeout=30_000)
    w.process.kill()


def choose(form, key: str, text: str) -> None:
    """Pick ``text`` in a drop-down list or type it in a line edit, as a user does."""
    control = form.controls[key]
    if isinstance(control, QComboBox):
        if control.isEditable():
            control.setEditText(text)
        else:
            index = control.findText(text)
            assert index >= 0, f"{text!r} is not offered by {key}"
            control.setCurrentIndex(index)
    else:
        assert isinstance(control, QLineEdit)
        control.setText(text)
        control.editingFinished.emit()


def settle(widget, qtbot) -> None:
    qtbot.waitUntil(lambda: widget.measure_worker is None, timeout=120_000)


@pytest.mark.gui
def test_drop_downs_offer_the_zoo(widget):
    from napari_posetrack.core.config.model import ACTIVATIONS, BACKBONES, NECKS

    form = widget.form(MODEL)
    for key, values in (
        ("model.backbone", BACKBONES),
        ("model.neck.type", NECKS),
        ("model.stacked_densenet.activation", ACTIVATIONS),
    ):
        combo = form.controls[key]
        assert isinstance(combo, QComboBox) and not combo.isEditable()
        assert [combo.itemText(i) for i in range(combo.count())] == list(values)
    assert form.groups["model.neck"].title().startswith("Neck")
    assert "DenseNet" in form.groups["model.stacked_densenet"].title()
    assert "Hourglass" in form.groups["model.stacked_hourglass"].title()
    assert "keep their size" in form.controls["data.input_size"].placeholderText()
    assert "torch's cache" in form.controls["optimization.pretrained_weights"].placeholderText()


@pytest.mark.gui
def test_backbone_neck_and_inputs_show_only_the_fields_that_apply(widget, qtbot):
    form = widget.form(MODEL)
    shown = form.field_shown
    form.controls["model.unet.filters"].setValue(24)

    choose(form, "model.backbone", "unet")
    assert shown("model.unet.filters") and not shown("model.top_level")
    assert shown("model.neck.type") and not shown("model.neck.levels")
    assert form.groups["model.stacked_densenet"].isHidden() and form.groups["model.stacked_hourglass"].isHidden()
    assert not shown("model.heads.confmaps.levels")  # one head on several levels needs a neck

    choose(form, "model.backbone", "mobilenet_v3_small")
    assert form.groups["model.unet"].isHidden() and shown("model.top_level")
    choose(form, "model.neck.type", "fpn")
    assert shown("model.neck.levels") and shown("model.neck.channels") and not shown("model.neck.layers")
    assert shown("model.heads.confmaps.levels")
    choose(form, "model.neck.type", "bifpn")
    assert shown("model.neck.layers")

    choose(form, "model.backbone", "stacked_densenet")
    assert form.groups["model.neck"].isHidden()
    assert not form.groups["model.stacked_densenet"].isHidden() and form.groups["model.stacked_hourglass"].isHidden()
    choose(form, "model.backbone", "stacked_hourglass")
    assert form.groups["model.stacked_densenet"].isHidden() and not form.groups["model.stacked_hourglass"].isHidden()

    assert not shown("data.resize_input")
    form.controls["data.input_size"].setText("256, 256")  # live, while typing
    assert shown("data.resize_input")
    form.controls["data.input_size"].setText("")
    assert not shown("data.resize_input")

    # hidden fields keep their values
    config = form.config()
    assert config.model.unet.filters == 24 and config.model.neck.type == "bifpn"
    assert config.model.backbone == "stacked_hourglass"


@pytest.mark.gui
def test_imagenet_shows_the_weights_picker_and_browse_buttons_fill_paths(widget, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    form = widget.form(MODEL)
    picker = form.findChild(QPushButton, "optimization.pretrained_weights.browse")
    run_button = form.findChild(QToolButton, "optimization.initialization.browse")
    assert picker is not None and run_button is not None and run_button.menu() is not None
    init = form.controls["optimization.initialization"]
    assert isinstance(init, QComboBox) and init.isEditable()
    assert [init.itemText(i) for i in range(init.count())] == ["random", "imagenet"]

    choose(form, "model.backbone", "resnet18")
    assert not form.field_shown("optimization.pretrained_weights")
    choose(form, "optimization.initialization", "imagenet")
    assert form.field_shown("optimization.pretrained_weights") and not picker.isHidden()

    weights = tmp_path / "resnet18-f37072fd.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(weights), "")))
    picker.click()
    assert form.controls["optimization.pretrained_weights"].text() == str(weights)
    assert form.config().optimization.pretrained_weights == str(weights)

    # a run folder or a checkpoint, from the browse button's menu
    run = tmp_path / "240101_120000.single_instance"
    run.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(run)))
    actions = {a.text(): a for a in run_button.menu().actions()}
    actions["Run folder…"].trigger()
    assert form.config().optimization.initialization == str(run)
    assert not form.field_shown("optimization.pretrained_weights")  # weights only for 'imagenet'
    checkpoint = run / "best.ckpt"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(checkpoint), "")))
    actions["Checkpoint file…"].trigger()
    assert form.config().optimization.initialization == str(checkpoint)
    # the picked weights stay in the config while hidden
    assert form.config().optimization.pretrained_weights == str(weights)


@pytest.mark.gui
def test_form_round_trip_keeps_the_zoo_fields(widget, tmp_path):
    config = TrainingConfig()
    config.model.pipeline = MODEL
    config.model.backbone = "resnet18"
    config.model.top_level = 4
    config.model.neck.type = "fpn"
    config.model.neck.levels = [2, 3, 4]
    config.model.heads.confmaps.levels = [2, 3]
    config.model.heads.confmaps.posture_graph = True
    config.data.input_size = [512, 640]
    config.data.resize_input = False
    config.optimization.initialization = "imagenet"
    config.optimization.pretrained_weights = str(tmp_path / "resnet18-f37072fd.pth")
    widget.set_model_config(config)
    assert widget.model_configs() == {MODEL: config}

    # a run to start from, on a UNet: the hidden weights and neck settings survive
    config.model.backbone = "unet"
    config.optimization.initialization = str(tmp_path)
    config.data.input_size = None
    widget.set_model_config(config)
    form = widget.form(MODEL)
    assert not form.field_shown("optimization.pretrained_weights") and not form.field_shown("data.resize_input")
    assert widget.model_configs() == {MODEL: config}
    assert form.controls["data.input_size"].text() == ""


@pytest.mark.gui
def test_parameter_count_follows_the_backbone(widget, qtbot):
    from napari_posetrack._widgets.training import format_parameter_count

    form = widget.form(MODEL)
    label = form.findChild(QLabel, "parameter_count")
    assert label is form.parameter_label and label.text().endswith("parameters")  # the UNet: by formula, at once
    skeleton = rf.stand_in_skeleton(2, 1)  # no labels open

    sizes = {}
    for backbone in ("mobilenet_v3_small", "resnet50"):
        choose(form, "model.backbone", backbone)
        form.controls["model.top_level"].setValue(3)  # a quick receptive field to measure
        qtbot.waitUntil(lambda: label.text().endswith(" parameters") and "counting" not in label.text(),
                        timeout=60_000)
        expected = rf.count_parameters(form.config(), 0, skeleton=skeleton)
        assert label.text() == format_parameter_count(expected)
        assert f"{expected:,}" in label.toolTip() and "2 body parts" in label.toolTip()
        sizes[backbone] = label.text()
        settle(widget, qtbot)
    assert sizes["mobilenet_v3_small"] != sizes["resnet50"] and sizes["resnet50"].endswith("M parameters")


@pytest.mark.gui
def test_receptive_field_of_a_torchvision_backbone(widget, sample_files, qtbot):
    from napari_posetrack._widgets._project import project_for

    project_for(widget.viewer).open(sample_files["labels"])
    form = widget.form(MODEL)
    choose(form, "model.backbone", "mobilenet_v3_small")
    form.controls["model.top_level"].setValue(3)
    choose(form, "data.input_scaling", "0.5")
    settle(widget, qtbot)
    field = rf.receptive_field(form.config())  # cached by the widget's measuring child: no build here
    assert not rf.has_formula(form.config()) and field.input_pixels > 0
    expected = field.image_pixels
    assert expected == pytest.approx(field.input_pixels / 0.5)  # shown in image pixels
    match = re.search(r"Receptive field: ([\d.]+) px \(single instance\)", widget.rf_label.text())
    assert match and float(match.group(1)) == pytest.approx(expected)
    box = np.asarray(widget.viewer.layers["receptive field"].data[0])
    assert np.ptp(box[:, -1]) == pytest.approx(expected)
    # the parameter count is for the open skeleton now
    assert "open skeleton" in form.parameter_label.toolTip()


@pytest.mark.gui
def test_a_failed_measurement_is_reported_not_raised(widget, qtbot, monkeypatch, tmp_path):
    import sys

    # a Python that cannot build networks (torch missing), as the measuring child would meet it
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    form = widget.form(MODEL)
    choose(form, "model.backbone", "stacked_densenet")
    form.controls["model.stacked_densenet.growth_rate"].setValue(7)  # an architecture nobody measured
    qtbot.waitUntil(lambda: "cannot measure" in widget.rf_label.text(), timeout=30_000)
    settle(widget, qtbot)
    assert "No module named 'torch'" in widget.rf_label.text() and "exit code 1" in widget.rf_label.text()
    assert form.parameter_label.text() == "size unknown"
    assert "No module named 'torch'" in form.parameter_label.toolTip()
    # back to a UNet: formulas again, no child needed
    choose(form, "model.backbone", "unet")
    assert widget.measure_worker is None
    assert "Receptive field:" in widget.rf_label.text() and form.parameter_label.text().endswith("parameters")
