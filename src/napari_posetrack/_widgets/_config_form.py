"""The training config as a Qt form, generated from the :class:`TrainingConfig` dataclasses.

Every scalar field of the config gets one control, chosen from its type:

- ``bool`` -> check box;
- a string with a fixed set of values (pipeline, optimiser, schedule...) -> drop-down list;
- ``int`` -> spin box; an optional ``int`` (``None`` = automatic / no limit) shows its empty value
  as text at the bottom of the range;
- ``float``, optional ``float``, free text and lists -> a line edit (numbers like ``1e-4`` read
  and write exactly; an empty box means "none" for optional fields).

Each control and its label carry the field's plain-language explanation from
:data:`~napari_posetrack.core.config.FIELD_HELP` as a tooltip, and the control's ``objectName``
is the dotted field name (``"optimization.batch_size"``) so tests and guides can find it.

:func:`config_to_form` and :func:`form_to_config` are the two directions, like btrack's
``napari/sync.py``: they touch nothing but the controls they are given.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack.core import config as cfgmod
from napari_posetrack.core.config import FIELD_HELP, TrainingConfig

CHOICES: dict[str, tuple[str, ...]] = {
    "model.pipeline": cfgmod.PIPELINES,
    "model.backbone": cfgmod.BACKBONES,
    "data.channels": cfgmod.CHANNELS,
    "optimization.optimizer": cfgmod.OPTIMIZERS,
    "optimization.schedule.kind": cfgmod.SCHEDULES,
    "optimization.augmentation.flip_direction": cfgmod.FLIP_DIRECTIONS,
    "outputs.keep": cfgmod.KEEP_CHECKPOINTS,
}
"""Fields whose value is one of a fixed set: shown as drop-down lists."""

EMPTY_TEXT: dict[str, str] = {
    "data.crop_size": "automatic",
    "data.centroid_input_scaling": "same as input scaling",
    "data.anchor_part": "mean of visible body parts",
    "model.unet.stem_stride": "no stem",
    "optimization.batches_per_epoch": "one pass over the data",
    "optimization.gradient_clip_norm": "off",
    "optimization.max_iterations": "no limit",
    "optimization.max_training_hours": "no limit",
    "optimization.hard_keypoint_mining.max_hard_keypoints": "no limit",
    "outputs.run_name": "date, time and model type",
}
"""What an empty optional field means, shown in the empty control."""

SECTION_TITLES: dict[str, str] = {
    "data": "Data",
    "model": "Network",
    "model.unet": "UNet backbone",
    "model.heads.confmaps": "Body-part maps (confidence maps)",
    "model.heads.centroids": "Animal-centre maps (centroid model)",
    "model.heads.pafs": "Part affinity fields (bottom-up)",
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
        if spec.optional:
            control.setPlaceholderText(EMPTY_TEXT.get(spec.key, "empty = none"))
        if typing.get_origin(base) is list:
            control.setPlaceholderText("comma-separated, e.g. 100, 150")
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
    if typing.get_origin(spec.base) is list:
        return f"[{text}]"
    if spec.optional and not text:
        return None
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


def _relevant(key: str, pipeline: str) -> bool:
    """Whether a field affects a model of this ``pipeline`` (others are hidden, but kept)."""
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
        return pipeline == "bottomup"
    return True


class ConfigForm(QWidget):
    """All fields of a training config, one group box per section.

    Parameters
    ----------
    exclude
        Dotted names left out of the form (set elsewhere, e.g. the pipeline a tab stands for); their
        values come from ``base`` in :meth:`config`.
    """

    def __init__(self, parent: QWidget | None = None, *, exclude: tuple[str, ...] = ()) -> None:
        super().__init__(parent)
        self.setObjectName("config_form")
        self.controls: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        self.groups: dict[str, QGroupBox] = {}
        self.specs: dict[str, FieldSpec] = {}
        self._base = TrainingConfig()
        self._changed_slots: list[Any] = []
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
                forms[section].setRowWrapPolicy(QFormLayout.WrapLongRows)
                self.groups[section] = group
                layout.addWidget(group)
            control = make_control(spec)
            label = QLabel(spec.label)
            label.setToolTip(control.toolTip())
            forms[section].addRow(label, control)
            self.controls[spec.key] = control
            self.labels[spec.key] = label
            self.specs[spec.key] = spec
        layout.addStretch(1)
        self.set_config(self._base)

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
        """Hide the fields that do not affect a ``pipeline`` model (their values are kept)."""
        visible_sections: dict[str, bool] = {}
        for key, control in self.controls.items():
            show = _relevant(key, pipeline)
            control.setVisible(show)
            self.labels[key].setVisible(show)
            section = self.specs[key].section
            visible_sections[section] = visible_sections.get(section, False) or show
        for section, group in self.groups.items():
            group.setVisible(visible_sections.get(section, False))

    def connect_changed(self, slot: Any) -> None:
        """Call ``slot()`` whenever any control changes (once per :meth:`set_config`)."""
        self._changed_slots.append(slot)
        for control in self.controls.values():
            if isinstance(control, QComboBox):
                control.currentTextChanged.connect(lambda *_: slot())
            elif isinstance(control, QCheckBox):
                control.toggled.connect(lambda *_: slot())
            elif isinstance(control, QSpinBox):
                control.valueChanged.connect(lambda *_: slot())
            else:
                control.editingFinished.connect(slot)


__all__ = [
    "CHOICES",
    "ConfigForm",
    "FieldSpec",
    "config_fields",
    "config_to_form",
    "control_value",
    "form_to_config",
    "make_control",
    "set_control_value",
]
