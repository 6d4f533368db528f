"""The training config as a Qt form, generated from the :class:`TrainingConfig` dataclasses.

Every scalar field of the config gets one control, chosen from its type:

- ``bool`` -> check box;
- a string with a fixed set of values (pipeline, backbone, neck, optimiser, schedule...) -> drop-down
  list; a string with usual values that may also be a path (the initialisation) -> an editable
  drop-down list;
- ``int`` -> spin box; an optional ``int`` (``None`` = automatic / no limit) shows its empty value
  as text at the bottom of the range;
- ``float``, optional ``float``, free text and lists -> a line edit (numbers like ``1e-4`` read
  and write exactly; lists as comma-separated text; an empty box means "none" for optional fields).

Fields that take a path get a browse button beside them (:data:`FILE_PICKERS`). Each control and its
label carry the field's plain-language explanation from :data:`~napari_posetrack.core.config.FIELD_HELP`
as a tooltip, and the control's ``objectName`` is the dotted field name (``"optimization.batch_size"``)
so tests and guides can find it; a browse button is named ``"<field>.browse"``.

Fields that do not apply to the chosen pipeline, backbone, neck, initialisation or input size are
hidden (:func:`field_applies`), live as those change; hidden fields keep their values.

:func:`config_to_form` and :func:`form_to_config` are the two directions, like btrack's
``napari/sync.py``: they touch nothing but the controls they are given.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack.core import config as cfgmod
from napari_posetrack.core.config import FIELD_HELP, TrainingConfig
from napari_posetrack.core.config.model import ACTIVATIONS, DPK_BACKBONES, NECKS

CHOICES: dict[str, tuple[str, ...]] = {
    "model.pipeline": cfgmod.PIPELINES,
    "model.backbone": cfgmod.BACKBONES,
    "model.neck.type": NECKS,
    "model.stacked_densenet.activation": ACTIVATIONS,
    "data.channels": cfgmod.CHANNELS,
    "optimization.optimizer": cfgmod.OPTIMIZERS,
    "optimization.schedule.kind": cfgmod.SCHEDULES,
    "optimization.augmentation.flip_direction": cfgmod.FLIP_DIRECTIONS,
    "outputs.keep": cfgmod.KEEP_CHECKPOINTS,
}
"""Fields whose value is one of a fixed set: shown as drop-down lists."""

EDITABLE_CHOICES: dict[str, tuple[str, ...]] = {
    "optimization.initialization": ("random", "imagenet"),
}
"""Fields with usual values that also take other text (a path): editable drop-down lists."""

FILE_PICKERS: dict[str, str] = {
    "optimization.initialization": "run",
    "optimization.pretrained_weights": "weights",
}
"""Fields with a browse button: ``"run"`` picks a run folder or a checkpoint file, ``"weights"`` a weights file."""

CHECKPOINT_FILTER = "Checkpoints (*.ckpt *.pt *.pth);;All files (*)"
WEIGHTS_FILTER = "PyTorch weights (*.pth *.pt);;All files (*)"

EMPTY_TEXT: dict[str, str] = {
    "data.crop_size": "automatic",
    "data.centroid_input_scaling": "same as input scaling",
    "data.anchor_part": "mean of visible body parts",
    "data.input_size": "frames keep their size",
    "model.unet.stem_stride": "no stem",
    "model.heads.confmaps.levels": "one level",
    "model.heads.centroids.levels": "one level",
    "model.heads.pafs.levels": "one level",
    "model.heads.class_maps.levels": "one level",
    "optimization.pretrained_weights": "torch's cache",
    "optimization.batches_per_epoch": "one pass over the data",
    "optimization.gradient_clip_norm": "off",
    "optimization.max_iterations": "no limit",
    "optimization.max_training_hours": "no limit",
    "optimization.hard_keypoint_mining.max_hard_keypoints": "no limit",
    "outputs.run_name": "date, time and model type",
}
"""What an empty optional field means, shown in the empty control."""

LIST_EXAMPLES: dict[str, str] = {
    "data.input_size": "512, 512",
    "model.neck.levels": "3, 4, 5",
    "model.heads.confmaps.levels": "2, 3, 4",
    "model.heads.centroids.levels": "2, 3, 4",
    "model.heads.pafs.levels": "3, 4, 5",
    "model.heads.class_vectors.classes": "female, male",
    "model.heads.class_maps.classes": "female, male",
    "model.heads.class_maps.levels": "2, 3, 4",
    "optimization.schedule.milestones": "100, 150",
}
"""An example of each list field, shown in its empty control."""

SECTION_TITLES: dict[str, str] = {
    "data": "Data",
    "model": "Network",
    "model.unet": "UNet backbone",
    "model.stacked_densenet": "Stacked DenseNet backbone (DeepPoseKit)",
    "model.stacked_hourglass": "Stacked Hourglass backbone (DeepPoseKit)",
    "model.neck": "Neck (mixes the backbone's levels)",
    "model.heads.confmaps": "Body-part maps (confidence maps)",
    "model.heads.centroids": "Animal-centre maps (centroid model)",
    "model.heads.pafs": "Part affinity fields (bottom-up)",
    "model.heads.class_vectors": "Identity (top-down ID model: track names of the labelled animals)",
    "model.heads.class_maps": "Identity maps (bottom-up ID model: track names of the labelled animals)",
    "optimization": "Optimisation",
    "optimization.schedule": "Learning-rate schedule",
    "optimization.early_stopping": "Early stopping",
    "optimization.hard_keypoint_mining": "Hard keypoint mining",
    "optimization.augmentation": "Augmentation",
    "outputs": "Outputs",
}

INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class FieldSpec:
    """One scalar field of the config: dotted name, type hint, whether it may be empty (``None``)."""

    key: str
    hint: Any
    optional: bool

    @property
    def base(self) -> Any:
        """The hint without ``None`` (``int`` for ``int | None``)."""
        if not self.optional:
            return self.hint
        (arg,) = [a for a in typing.get_args(self.hint) if a is not type(None)]
        return arg

    @property
    def section(self) -> str:
        return self.key.rpartition(".")[0]

    @property
    def label(self) -> str:
        return self.key.rpartition(".")[2].replace("_", " ")


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def config_fields(cls: type = TrainingConfig, prefix: str = "") -> Iterator[FieldSpec]:
    """Every scalar field of the config dataclass ``cls``, depth first, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        key = prefix + f.name
        if _is_section(hint):
            yield from config_fields(hint, key + ".")
            continue
        optional = type(None) in typing.get_args(hint)
        yield FieldSpec(key, hint, optional)


# --------------------------------------------------------------------------- controls


def _float_text(value: float) -> str:
    # repr is the shortest text that reads back as the same float (1e-08, 0.0001, 2.5)
    return repr(float(value))


def make_control(spec: FieldSpec) -> QWidget:
    """A control suited to ``spec``'s type, named after the field and explained by its tooltip."""
    base = spec.base
    if spec.key in CHOICES:
        control: QWidget = QComboBox()
        control.addItems(list(CHOICES[spec.key]))
    elif spec.key in EDITABLE_CHOICES:
        control = QComboBox()
        control.setEditable(True)
        control.addItems(list(EDITABLE_CHOICES[spec.key]))
        # a typed path is this run's choice, not a new entry for every later one
        control.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    elif spec.key == "data.anchor_part":
        control = QComboBox()
        control.setEditable(True)  # body parts come from the skeleton (set_anchor_choices)
        control.addItem("")
        control.lineEdit().setPlaceholderText(EMPTY_TEXT[spec.key])
    elif base is bool:
        control = QCheckBox()
    elif base is int:
        control = QSpinBox()
        if spec.optional:
            # the bottom of the range stands for "empty"; every optional int is >= 1 when set
            control.setRange(0, INT_MAX)
            control.setSpecialValueText(EMPTY_TEXT.get(spec.key, "none"))
        else:
            control.setRange(0, INT_MAX)
    else:
        control = QLineEdit()
        if typing.get_origin(base) is list:
            example = LIST_EXAMPLES.get(spec.key, "100, 150")
            empty = EMPTY_TEXT.get(spec.key) if spec.optional else None
            control.setPlaceholderText(f"{empty} (e.g. {example})" if empty else f"comma-separated, e.g. {example}")
        elif spec.optional:
            control.setPlaceholderText(EMPTY_TEXT.get(spec.key, "empty = none"))
    control.setObjectName(spec.key)
    control.setToolTip(FIELD_HELP.get(spec.key, spec.label))
    return control


def set_control_value(control: QWidget, spec: FieldSpec, value: Any) -> None:
    """Show ``value`` in ``control`` (the inverse of :func:`control_value`)."""
    if isinstance(control, QComboBox):
        text = "" if value is None else str(value)
        index = control.findText(text)
        if index < 0:
            # an anchor part the skeleton does not have (yet): keep it rather than lose it
            control.addItem(text)
            index = control.findText(text)
        control.setCurrentIndex(index)
        if control.isEditable():
            control.setEditText(text)
    elif isinstance(control, QCheckBox):
        control.setChecked(bool(value))
    elif isinstance(control, QSpinBox):
        control.setValue(control.minimum() if value is None else int(value))
    elif isinstance(control, QLineEdit):
        if value is None:
            text = ""
        elif isinstance(value, float):
            text = _float_text(value)
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        control.setText(text)
    else:  # pragma: no cover - make_control builds only the kinds above
        raise TypeError(f"no value setter for {type(control).__name__}")


def control_value(control: QWidget, spec: FieldSpec) -> Any:
    """The control's value in the field's type, or text that :meth:`TrainingConfig.set` parses."""
    if isinstance(control, QComboBox):
        text = control.currentText().strip()
        return None if (spec.optional and not text) else text
    if isinstance(control, QCheckBox):
        return control.isChecked()
    if isinstance(control, QSpinBox):
        value = control.value()
        return None if (spec.optional and value == control.minimum()) else value
    text = control.text().strip()
    if spec.optional and not text:
        return None
    if typing.get_origin(spec.base) is list:
        return f"[{text}]"
    return text


def config_to_form(config: TrainingConfig, controls: dict[str, QWidget]) -> None:
    """Show every field of ``config`` in the control of the same dotted name."""
    for spec in config_fields():
        if spec.key in controls:
            set_control_value(controls[spec.key], spec, config.get(spec.key))


def form_to_config(controls: dict[str, QWidget], base: TrainingConfig | None = None) -> TrainingConfig:
    """A new config: ``base`` (default: the defaults) with every field that has a control read from it.

    Raises
    ------
    ConfigError
        A control holds text that is not a value of its field (the message names the field).
    """
    config = base.copy() if base is not None else TrainingConfig()
    for spec in config_fields():
        if spec.key in controls:
            config.set(spec.key, control_value(controls[spec.key], spec))
    return config


# --------------------------------------------------------------------------- the form


VISIBILITY_DRIVERS = (
    "model.backbone",
    "model.neck.type",
    "optimization.initialization",
    "data.input_size",
    "model.heads.confmaps.levels",
    "model.heads.centroids.levels",
    "model.heads.pafs.levels",
    "model.heads.confmaps.posture_graph",
    "model.heads.centroids.posture_graph",
    "model.heads.class_vectors.enabled",
    "model.heads.class_maps.enabled",
)
"""Fields whose value decides whether other fields apply (see :func:`field_applies`)."""


def field_applies(key: str, pipeline: str | None, value: Callable[[str], Any]) -> bool:
    """Whether field ``key`` affects a model of ``pipeline`` with the other settings ``value(field)`` gives.

    Fields that do not apply are hidden but kept. A field that holds a value the model cannot use
    (head levels without a neck, a posture graph on a model that cannot train one) stays shown, so the
    error that names it can be fixed. ``pipeline`` ``None`` means any pipeline.
    """
    backbone = str(value("model.backbone"))
    neck = str(value("model.neck.type"))
    if key.startswith("model.unet."):
        return backbone == "unet"
    if key == "model.top_level":
        return backbone != "unet"
    for name in DPK_BACKBONES:
        if key.startswith(f"model.{name}."):
            return backbone == name
    if key.startswith("model.neck."):
        if backbone in DPK_BACKBONES:
            return False  # a stacked model has its own encoder-decoder and takes no neck
        if key == "model.neck.type":
            return True
        if key == "model.neck.layers":
            return neck == "bifpn"
        return neck != "none"
    if key == "optimization.pretrained_weights":
        return str(value("optimization.initialization")).strip() == "imagenet"
    if key == "data.resize_input":
        return value("data.input_size") is not None
    heads_levels = key.startswith("model.heads.") and key.endswith(".levels")
    if heads_levels and value(key) is None and (neck == "none" or backbone in DPK_BACKBONES):
        return False  # a head on several levels needs a neck
    if key == "model.heads.centroids.posture_graph" and not value(key):
        return False  # posture graphs are drawn for body parts, never for animal centres
    posture_graph_pipelines = (None, "single_instance", "centered_instance")
    if key == "model.heads.confmaps.posture_graph" and not value(key) and pipeline not in posture_graph_pipelines:
        return False
    if pipeline is None:
        return True
    if key == "data.centroid_input_scaling":
        return pipeline == "topdown"
    if key in ("data.crop_size", "data.crop_padding"):
        return pipeline in ("centered_instance", "topdown")
    if key == "data.anchor_part":
        return pipeline in ("centroid", "centered_instance", "topdown")
    if key.startswith("model.heads.confmaps."):
        return pipeline != "centroid"
    if key.startswith("model.heads.centroids."):
        return pipeline in ("centroid", "topdown")
    if key.startswith("model.heads.pafs."):
        # a bottom-up identity model groups body parts by their class maps, not by affinity fields
        return pipeline == "bottomup" and not value("model.heads.class_maps.enabled")
    if key.startswith("model.heads.class_maps."):
        if key == "model.heads.class_maps.enabled" or value("model.heads.class_maps.enabled"):
            return pipeline == "bottomup"
        return False
    if key.startswith("model.heads.class_vectors."):
        # an identity head sits on the centered-instance model; its details matter once it is on
        if key == "model.heads.class_vectors.enabled" or value(key.rsplit(".", 1)[0] + ".enabled"):
            return pipeline in ("centered_instance", "topdown")
        return False
    return True


class ConfigForm(QWidget):
    """All fields of a training config, one group box per section.

    Parameters
    ----------
    exclude
        Dotted names left out of the form (set elsewhere, e.g. the pipeline a tab stands for); their
        values come from ``base`` in :meth:`config`.

    Attributes
    ----------
    controls
        ``{field: control}``: what :func:`config_to_form` and :func:`form_to_config` read and write.
    rows
        ``{field: widget in the form's layout}``: the control, or a row holding it with its browse button
        (or, for the backbone, with the parameter count).
    parameter_label
        Shows the configured model's size beside the backbone (set by :meth:`set_parameter_count`).
    """

    def __init__(self, parent: QWidget | None = None, *, exclude: tuple[str, ...] = ()) -> None:
        super().__init__(parent)
        self.setObjectName("config_form")
        self.controls: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        self.rows: dict[str, QWidget] = {}
        self.groups: dict[str, QGroupBox] = {}
        self.specs: dict[str, FieldSpec] = {}
        self._base = TrainingConfig()
        self._pipeline: str | None = None
        self._changed_slots: list[Any] = []
        self.parameter_label = QLabel("")
        self.parameter_label.setObjectName("parameter_count")
        self.parameter_label.setToolTip("Trainable parameters of the configured network.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        forms: dict[str, QFormLayout] = {}
        for spec in config_fields():
            if spec.key in exclude:
                continue
            section = spec.section
            if section not in forms:
                group = QGroupBox(SECTION_TITLES.get(section, section))
                group.setObjectName(f"section:{section}")
                forms[section] = QFormLayout(group)
                # narrow docks: the control goes under its label instead of being squeezed
                forms[section].setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
                self.groups[section] = group
                layout.addWidget(group)
            control = make_control(spec)
            label = QLabel(spec.label)
            label.setToolTip(control.toolTip())
            row = self._row(spec, control)
            forms[section].addRow(label, row)
            self.controls[spec.key] = control
            self.labels[spec.key] = label
            self.rows[spec.key] = row
            self.specs[spec.key] = spec
        layout.addStretch(1)
        for key in VISIBILITY_DRIVERS:
            if key in self.controls:
                _on_any_change(self.controls[key], self._refresh_visibility, live=True)
        self.set_config(self._base)

    def _row(self, spec: FieldSpec, control: QWidget) -> QWidget:
        """The widget the form shows for ``spec``: the control alone, or with a browse button or the model size."""
        extra: QWidget | None = None
        if spec.key == "model.backbone":
            extra = self.parameter_label
        elif FILE_PICKERS.get(spec.key) == "run":
            button = QToolButton()
            button.setText("Browse…")
            button.setToolTip("Start from a previous run: pick its folder (its best checkpoint is used) or a checkpoint file.")
            button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
            menu = QMenu(button)
            menu.addAction("Run folder…", lambda: self.browse_initialization("folder"))
            menu.addAction("Checkpoint file…", lambda: self.browse_initialization("file"))
            button.setMenu(menu)
            extra = button
        elif FILE_PICKERS.get(spec.key) == "weights":
            button = QPushButton("Browse…")
            button.setToolTip("Pick torchvision's ImageNet weights file (.pth) for this backbone.")
            button.clicked.connect(lambda: self.browse_pretrained_weights())
            extra = button
        if extra is None:
            return control
        if extra is not self.parameter_label:
            extra.setObjectName(f"{spec.key}.browse")
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(control, 1)
        box.addWidget(extra)
        return row

    def set_config(self, config: TrainingConfig) -> None:
        """Show ``config``; fields without a control are kept from it for :meth:`config`."""
        self._base = config.copy()
        # one change notification for the whole config, not one per field
        for control in self.controls.values():
            control.blockSignals(True)
        try:
            config_to_form(config, self.controls)
        finally:
            for control in self.controls.values():
                control.blockSignals(False)
        self._refresh_visibility()
        for slot in self._changed_slots:
            slot()

    def config(self) -> TrainingConfig:
        """The config the form shows (raises :class:`ConfigError` naming a field with bad text)."""
        return form_to_config(self.controls, self._base)

    def set_anchor_choices(self, nodes: list[str]) -> None:
        """Offer the skeleton's body parts as anchor parts (the current choice is kept)."""
        combo = self.controls.get("data.anchor_part")
        if not isinstance(combo, QComboBox):
            return
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(["", *nodes])
        combo.blockSignals(False)
        set_control_value(combo, self.specs["data.anchor_part"], current or None)

    def show_fields_for(self, pipeline: str) -> None:
        """Hide the fields that do not affect a ``pipeline`` model (their values are kept).

        The choice of backbone, neck, initialisation and input size hides more, live (:func:`field_applies`).
        """
        self._pipeline = pipeline
        self._refresh_visibility()

    def field_shown(self, key: str) -> bool:
        """Whether the form shows field ``key`` (whether or not the form itself is on screen)."""
        return key in self.rows and not self.rows[key].isHidden()

    def _value(self, key: str) -> Any:
        """The current value of a field as its control holds it (the base config's for a field not in the form)."""
        if key in self.controls:
            return control_value(self.controls[key], self.specs[key])
        return self._base.get(key)

    def _refresh_visibility(self) -> None:
        visible_sections: dict[str, bool] = {}
        for key, row in self.rows.items():
            show = field_applies(key, self._pipeline, self._value)
            row.setVisible(show)
            self.labels[key].setVisible(show)
            section = self.specs[key].section
            visible_sections[section] = visible_sections.get(section, False) or show
        for section, group in self.groups.items():
            group.setVisible(visible_sections.get(section, False))

    def set_parameter_count(self, text: str, tooltip: str = "") -> None:
        """Show the configured model's size beside the backbone (e.g. ``"3.0 M parameters"``)."""
        self.parameter_label.setText(text)
        self.parameter_label.setToolTip(tooltip or "Trainable parameters of the configured network.")

    # ------------------------------------------------------------------ file pickers
    def _start_folder(self, key: str) -> str:
        """Where a file dialog for ``key`` opens: beside its current path, if it names one."""
        text = str(self._value(key) or "").strip()
        if text and text not in EDITABLE_CHOICES.get(key, ()):
            path = Path(text).expanduser()
            if path.is_dir():
                return str(path)
            if path.parent.is_dir():
                return str(path.parent)
        return ""

    def _set_path(self, key: str, path: str) -> None:
        """Put a picked path in ``key``'s control and tell the listeners, as typing it would."""
        control = self.controls[key]
        set_control_value(control, self.specs[key], path)
        if isinstance(control, QLineEdit):
            control.editingFinished.emit()  # setText alone does not: the widget listens for it

    def browse_initialization(self, kind: str) -> None:
        """Pick the run ``optimization.initialization`` starts from: ``kind`` ``"folder"`` (a run folder) or ``"file"``."""
        key = "optimization.initialization"
        if kind == "folder":
            path = QFileDialog.getExistingDirectory(self, "Start from a run folder", self._start_folder(key))
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "Start from a checkpoint", self._start_folder(key), CHECKPOINT_FILTER
            )
        if path:
            self._set_path(key, path)

    def browse_pretrained_weights(self) -> None:
        """Pick the ImageNet weights file of ``optimization.pretrained_weights``."""
        key = "optimization.pretrained_weights"
        path, _ = QFileDialog.getOpenFileName(self, "ImageNet weights", self._start_folder(key), WEIGHTS_FILTER)
        if path:
            self._set_path(key, path)

    def connect_changed(self, slot: Any) -> None:
        """Call ``slot()`` whenever any control changes (once per :meth:`set_config`)."""
        self._changed_slots.append(slot)
        for control in self.controls.values():
            _on_any_change(control, slot, live=False)


def _on_any_change(control: QWidget, slot: Callable[[], Any], *, live: bool) -> None:
    """Call ``slot()`` when ``control`` changes; a line edit ``live`` on every keystroke, else when edited."""
    if isinstance(control, QComboBox):
        control.currentTextChanged.connect(lambda *_: slot())
    elif isinstance(control, QCheckBox):
        control.toggled.connect(lambda *_: slot())
    elif isinstance(control, QSpinBox):
        control.valueChanged.connect(lambda *_: slot())
    elif live:
        control.textChanged.connect(lambda *_: slot())
    else:
        control.editingFinished.connect(slot)


__all__ = [
    "CHOICES",
    "EDITABLE_CHOICES",
    "FILE_PICKERS",
    "ConfigForm",
    "FieldSpec",
    "config_fields",
    "config_to_form",
    "control_value",
    "field_applies",
    "form_to_config",
    "make_control",
    "set_control_value",
]
