"""Dataclass options <-> form widgets: every tracker (and inference) option as a labelled control.

The form is generated from the dataclass fields, so a new engine option appears in the GUI without
touching this module. Tooltips join the short help of the ``posetrack`` command line with the
explanation from the dataclass docstring, so the GUI and the CLI describe an option in the same words.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack.core.tracking.candidates import CANDIDATES
from napari_posetrack.core.tracking.matching import MATCHINGS
from napari_posetrack.core.tracking.similarity import SIMILARITIES
from napari_posetrack.core.tracking.tracker import TrackerConfig

BIG = 1_000_000


@dataclass
class FieldSpec:
    """How one dataclass field is shown: its label, tooltip, control kind and limits.

    ``kind`` is ``"choice"``, ``"text_choice"`` (editable combo), ``"bool"``, ``"int"`` or
    ``"float"``. ``none_text`` (optional fields only) is shown at the minimum value, which stands
    for ``None``.
    """

    name: str
    label: str
    tooltip: str
    kind: str
    default: Any
    choices: tuple[str, ...] = ()
    minimum: float = 0.0
    maximum: float = BIG
    step: float = 1.0
    decimals: int = 2
    none_text: str | None = None
    group: str = ""


@dataclass
class FormOverrides:
    """Per-field presentation that the dataclass itself cannot say (labels, limits, groups)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict)
    editable_choices: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)  # min, max, step
    decimals: Mapping[str, int] = field(default_factory=dict)
    none_text: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)
    skip: Sequence[str] = ()


def docstring_parameters(cls: type) -> dict[str, str]:
    """The numpy-style ``Parameters`` section of a class docstring as ``{name: plain text}``.

    ``a, b`` headings give both names the same text; reST markup (````x````) is dropped.
    """
    doc = cls.__doc__ or ""
    match = re.search(r"Parameters\n\s*-+\n(.*)", doc, flags=re.DOTALL)
    if not match:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    body: list[str] = []
    head_indent = None

    def flush() -> None:
        text = " ".join(" ".join(body).split()).replace("``", "").replace(":class:", "")
        for n in names:
            out[n] = text

    for line in match.group(1).splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if head_indent is None:
            head_indent = indent
        if indent <= head_indent:
            flush()
            names = [n.strip() for n in line.split(",")]
            body = []
        else:
            body.append(line.strip())
    flush()
    return out


def cli_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{dest: help}`` of a command-line parser's options."""
    out = {}
    # argparse lists its options only in ``_actions`` (stable across Python versions)
    for a in parser._actions:
        if not a.help or a.dest == "help" or isinstance(a, argparse._StoreFalseAction):
            continue  # a --no-x flag's help describes the opposite of the field
        if a.help.lower().startswith("default "):
            continue  # only states the default, which the control already shows
        out[a.dest] = a.help
    return out


def _field_kind(tp: Any) -> tuple[str, bool, tuple[str, ...]]:
    """``(kind, optional, literal choices)`` of a resolved type hint."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        tp = next(a for a in args if a is not type(None))
    if typing.get_origin(tp) is typing.Literal:
        return "choice", optional, tuple(str(c) for c in typing.get_args(tp))
    if tp is bool:
        return "bool", optional, ()
    if tp is int:
        return "int", optional, ()
    if tp is float:
        return "float", optional, ()
    if tp is str:
        return "str", optional, ()
    return "unsupported", optional, ()


def field_specs(cls: type, help_texts: Mapping[str, str], overrides: FormOverrides) -> list[FieldSpec]:
    """One :class:`FieldSpec` per (supported, not skipped) field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    docs = docstring_parameters(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in overrides.skip:
            continue
        kind, optional, choices = _field_kind(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if f.name in overrides.choices:
            kind, choices = "choice", tuple(overrides.choices[f.name])
        elif f.name in overrides.editable_choices:
            kind, choices = "text_choice", tuple(overrides.editable_choices[f.name])
        if kind in ("str", "unsupported"):
            continue  # free text without a list of values has no good control; none exist today
        short = help_texts.get(f.name, "")
        long = docs.get(f.name, "")
        tooltip = "\n".join(t for t in (short[:1].upper() + short[1:] if short else "", long) if t)
        lo, hi, step = overrides.ranges.get(f.name, (0.0, float(BIG), 1.0 if kind == "int" else 0.1))
        none_text = overrides.none_text.get(f.name, "none") if optional else None
        specs.append(
            FieldSpec(
                name=f.name,
                label=overrides.labels.get(f.name, f.name.replace("_", " ").capitalize()),
                tooltip=tooltip or f.name.replace("_", " "),
                kind=kind,
                default=default,
                choices=choices,
                minimum=lo,
                maximum=hi,
                step=step,
                decimals=overrides.decimals.get(f.name, 2),
                none_text=none_text,
                group=overrides.groups.get(f.name, ""),
            )
        )
    return specs


class DataclassForm(QWidget):
    """Controls for the fields of an options dataclass, grouped into boxes.

    Each control's ``objectName`` is ``"<prefix><field name>"``. An optional field's control shows
    ``none_text`` at its minimum value, which reads back as ``None``.
    """

    def __init__(
        self,
        cls: type,
        help_texts: Mapping[str, str],
        overrides: FormOverrides,
        *,
        prefix: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._cls = cls
        self.specs = field_specs(cls, help_texts, overrides)
        self.controls: dict[str, QWidget] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        forms: dict[str, QFormLayout] = {}
        for spec in self.specs:
            if spec.group not in forms:
                if spec.group:
                    box = QGroupBox(spec.group)
                    box.setObjectName(f"{prefix}group_{spec.group.lower().replace(' ', '_')}")
                    forms[spec.group] = QFormLayout(box)
                    outer.addWidget(box)
                else:
                    holder = QWidget()
                    forms[spec.group] = QFormLayout(holder)
                    forms[spec.group].setContentsMargins(0, 0, 0, 0)
                    outer.addWidget(holder)
            control = self._make_control(spec)
            control.setObjectName(f"{prefix}{spec.name}")
            control.setToolTip(spec.tooltip)
            self.controls[spec.name] = control
            if spec.kind == "bool":
                forms[spec.group].addRow(control)
            else:
                forms[spec.group].addRow(spec.label, control)
        self.set_values({s.name: s.default for s in self.specs})

    @staticmethod
    def _make_control(spec: FieldSpec) -> QWidget:
        if spec.kind == "bool":
            return QCheckBox(spec.label)
        if spec.kind in ("choice", "text_choice"):
            combo = QComboBox()
            combo.addItems(list(spec.choices))
            combo.setEditable(spec.kind == "text_choice")
            return combo
        if spec.kind == "int":
            spin = QSpinBox()
            spin.setRange(int(spec.minimum), int(spec.maximum))
            spin.setSingleStep(max(1, int(spec.step)))
        else:
            spin = QDoubleSpinBox()
            spin.setDecimals(spec.decimals)
            spin.setRange(spec.minimum, spec.maximum)
            spin.setSingleStep(spec.step)
        if spec.none_text is not None:
            spin.setSpecialValueText(spec.none_text)  # shown at the minimum, read back as None
        return spin

    def values(self) -> dict[str, Any]:
        """The form's values by field name."""
        out: dict[str, Any] = {}
        for spec in self.specs:
            c = self.controls[spec.name]
            if spec.kind == "bool":
                out[spec.name] = c.isChecked()
            elif spec.kind in ("choice", "text_choice"):
                out[spec.name] = c.currentText().strip()
            else:
                v = c.value()
                if spec.none_text is not None and v == c.minimum():
                    out[spec.name] = None
                else:
                    out[spec.name] = int(v) if spec.kind == "int" else float(v)
        return out

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Show ``values`` (field name -> value); unknown names are ignored."""
        for spec in self.specs:
            if spec.name not in values:
                continue
            v, c = values[spec.name], self.controls[spec.name]
            if spec.kind == "bool":
                c.setChecked(bool(v))
            elif spec.kind in ("choice", "text_choice"):
                i = c.findText(str(v))
                if i >= 0:
                    c.setCurrentIndex(i)
                elif spec.kind == "text_choice":
                    c.setEditText(str(v))
            else:
                c.setValue(c.minimum() if v is None else v)

    def options(self) -> Any:
        """A new dataclass instance from the form (its own validation runs)."""
        return self._cls(**self.values())

    def set_options(self, options: Any) -> None:
        self.set_values({s.name: getattr(options, s.name) for s in self.specs})


# --------------------------------------------------------------------------- the tracker


TRACKER_OVERRIDES = FormOverrides(
    labels={
        "candidates": "Candidates",
        "similarity": "Similarity",
        "matching": "Matching",
        "window": "Elapsed-frame window",
        "max_tracks": "Number of animals",
        "min_points": "Min points to start a track",
        "min_similarity": "Min similarity",
        "motion_prior": "Constant-velocity motion prior",
        "kind": "Track which instances",
        "stitch": "Stitch tracklets into identities",
        "ambiguity_ratio": "Ambiguity ratio",
        "max_node_jump": "Max node jump",
        "shape_outlier": "Shape outlier limit",
        "distance_scale": "Distance scale (px)",
        "stitch_max_gap": "Max gap (frames)",
        "stitch_reward": "Reward per instance",
        "stitch_min_length": "Hierarchical min length",
        "stitch_motion_horizon": "Motion horizon (frames)",
        "stitch_insert_margin": "Insert margin",
        "shape_weight": "Limb-length weight",
        "appearance_weight": "Histogram appearance weight",
        "embedding_weight": "Learnt appearance weight",
        "embedding_seed": "Appearance learning seed",
        "flow_window": "Flow window (px)",
        "flow_levels": "Flow pyramid levels",
    },
    choices={
        "candidates": CANDIDATES,
        "similarity": SIMILARITIES,
        "matching": MATCHINGS,
        "kind": ("predicted", "user", "all"),
    },
    ranges={
        "window": (1, 100_000, 1),
        "max_tracks": (0, 10_000, 1),
        "min_points": (0, 1_000, 1),
        "min_similarity": (0.0, 1.0, 0.01),
        "ambiguity_ratio": (0.01, 1.0, 0.05),
        "max_node_jump": (0.0, 1_000.0, 0.5),
        "shape_outlier": (0.0, 1_000.0, 0.5),
        "distance_scale": (0.0, 10_000.0, 1.0),
        "stitch_max_gap": (1, 1_000_000, 10),
        "stitch_reward": (0.0, 10_000.0, 1.0),
        "stitch_min_length": (0, 1_000_000, 1),
        "stitch_motion_horizon": (0, 10_000, 1),
        "stitch_insert_margin": (0.0, 1_000.0, 0.5),
        "shape_weight": (0.0, 1_000.0, 0.1),
        "appearance_weight": (0.0, 1_000.0, 0.1),
        "embedding_weight": (0.0, 1_000.0, 0.5),
        "embedding_seed": (0, 2**31 - 1, 1),
        "flow_window": (3, 501, 2),
        "flow_levels": (0, 10, 1),
    },
    decimals={"min_similarity": 3, "ambiguity_ratio": 3},
    none_text={
        "max_tracks": "no limit",
        "max_node_jump": "never cut",
        "shape_outlier": "keep all",
        "distance_scale": "automatic",
    },
    groups={
        **{
            n: "Association"
            for n in (
                "candidates",
                "similarity",
                "matching",
                "window",
                "max_tracks",
                "min_points",
                "min_similarity",
                "motion_prior",
                "kind",
            )
        },
        **{
            n: "Stitching"
            for n in (
                "stitch",
                "ambiguity_ratio",
                "max_node_jump",
                "shape_outlier",
                "distance_scale",
                "stitch_max_gap",
                "stitch_reward",
                "stitch_min_length",
                "stitch_motion_horizon",
                "stitch_insert_margin",
                "shape_weight",
                "appearance_weight",
                "embedding_weight",
                "embedding_seed",
            )
        },
        **{n: "Optical flow" for n in ("flow_window", "flow_levels")},
    },
)


def tracker_help_texts() -> dict[str, str]:
    """The ``posetrack track`` help of each tracker option, by TrackerConfig field name."""
    from napari_posetrack.core.tracking.cli import add_tracker_options

    parser = argparse.ArgumentParser(add_help=False)
    add_tracker_options(parser)
    return cli_help(parser)


class TrackerForm(DataclassForm):
    """Every :class:`~napari_posetrack.core.tracking.tracker.TrackerConfig` option as a control."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            TrackerConfig, tracker_help_texts(), TRACKER_OVERRIDES, prefix="tracker_", parent=parent
        )
        self.setObjectName("tracker_form")

    def config(self) -> TrackerConfig:
        """The tracker settings shown (raises ``ConfigError`` naming an invalid option)."""
        return self.options()

    def set_config(self, config: TrackerConfig) -> None:
        self.set_options(config)


__all__ = [
    "DataclassForm",
    "FieldSpec",
    "FormOverrides",
    "TrackerForm",
    "cli_help",
    "docstring_parameters",
    "field_specs",
    "tracker_help_texts",
]
