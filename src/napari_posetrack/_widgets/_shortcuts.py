"""Every keyboard shortcut of the plugin in one registry, bound on the viewer and listed in a help panel.

Keys are chosen not to collide with napari's Points layer keys (2/P add, 3/S select, 4/Z pan,
A, Delete, Ctrl+C/V), which take precedence while the poses layer is active.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


@dataclass(frozen=True)
class Shortcut:
    """One key binding: napari key string, the action's name (a labelling-widget method), what it does."""

    key: str
    action: str
    description: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("Right", "step_forward", "Next frame (hold to speed up)"),
    Shortcut("Left", "step_back", "Previous frame (hold to speed up)"),
    Shortcut("Shift-Right", "next_labelled", "Next labelled frame"),
    Shortcut("Shift-Left", "previous_labelled", "Previous labelled frame"),
    Shortcut("Control-Right", "next_unlabelled", "Next unlabelled frame"),
    Shortcut("Control-Left", "previous_unlabelled", "Previous unlabelled frame"),
    Shortcut("Alt-Right", "next_suggested", "Next suggested frame"),
    Shortcut("Alt-Left", "previous_suggested", "Previous suggested frame"),
    Shortcut("PageDown", "next_video", "Next video"),
    Shortcut("PageUp", "previous_video", "Previous video"),
    Shortcut("N", "new_instance", "New instance at the cursor"),
    Shortcut("O", "toggle_visible", "Mark the selected points occluded / visible"),
    Shortcut("U", "promote_selected", "Turn the selected prediction into a user instance"),
    Shortcut("Shift-D", "delete_selected_instances", "Delete the selected instance(s)"),
    Shortcut("Control-Z", "undo", "Undo"),
    Shortcut("Control-Shift-Z", "redo", "Redo"),
    Shortcut("Control-S", "save", "Save the project (atomic)"),
    Shortcut("F1", "show_help", "Show this list of shortcuts"),
)
"""The registry: one entry per key."""

MOUSE_HELP: tuple[tuple[str, str], ...] = (
    ("Drag a point", "Move it (it becomes a verified user point)"),
    ("Alt + drag a point", "Move the whole instance"),
    ("Click in add mode (2 / P)", "Place the next missing node of the active instance"),
    ("Double-click a prediction", "Turn it into a user instance"),
    ("Right-click a point", "Menu: occluded / visible, to user instance, delete the instance"),
    ("Delete / Backspace", "Remove the selected points (napari)"),
)


def bind_shortcuts(viewer: Any, target: Any, shortcuts: tuple[Shortcut, ...] = SHORTCUTS) -> None:
    """Bind every shortcut on ``viewer`` to the method of ``target`` named by its ``action``."""
    for shortcut in shortcuts:
        method: Callable[[], Any] = getattr(target, shortcut.action)
        viewer.bind_key(shortcut.key, _key_handler(method), overwrite=True)


def _key_handler(method: Callable[[], Any]) -> Callable[[Any], None]:
    def handler(viewer: Any) -> None:
        method()

    handler.__doc__ = method.__doc__
    return handler


def unbind_shortcuts(viewer: Any, shortcuts: tuple[Shortcut, ...] = SHORTCUTS) -> None:
    """Remove the bindings (a closed widget must not leave keys calling into it)."""
    for shortcut in shortcuts:
        viewer.bind_key(shortcut.key, None)


def shortcuts_table(parent: Any = None) -> QTableWidget:
    """A read-only table of every key and mouse gesture with what it does (the help panel)."""
    rows = [(s.key.replace("-", "+"), s.description) for s in SHORTCUTS] + list(MOUSE_HELP)
    table = QTableWidget(len(rows), 2, parent)
    table.setObjectName("shortcuts_table")
    table.setHorizontalHeaderLabels(["Key", "Action"])
    for i, (key, text) in enumerate(rows):
        table.setItem(i, 0, QTableWidgetItem(key))
        table.setItem(i, 1, QTableWidgetItem(text))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
    table.resizeColumnToContents(0)
    return table
