"""The "PoseTrack workspace": every PoseTrack dock in one column of tabs, and back.

The first use saves napari's window layout (Qt's ``QMainWindow.saveState``), then puts every
PoseTrack dock widget on the right, tabbed into one column as wide as the widest one needs, with
the Labelling tab in front. The second use restores the saved layout. The command is contributed
in ``napari.yaml`` (so it is in napari's command palette) and is added to the plugin's own menu
(Plugins > PoseTrack) when the first PoseTrack widget is created.
"""

from __future__ import annotations

import weakref
from typing import Any

from qtpy.QtCore import QByteArray, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QStyle, QWidget

WORKSPACE_COMMAND = "napari-posetrack.workspace"
WORKSPACE_TITLE = "PoseTrack workspace (one column of tabs / restore)"
# napari's submenu of a plugin with several widgets: Plugins > <display name>
PLUGIN_MENU = "napari/plugins/napari-posetrack"
# the docks of napari's main windows before the workspace was laid out, by main window
_SAVED: weakref.WeakKeyDictionary[QMainWindow, QByteArray] = weakref.WeakKeyDictionary()


def _is_posetrack(widget: Any) -> bool:
    return type(widget).__module__.startswith("napari_posetrack.")


def _dock_of(widget: QWidget) -> QDockWidget | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def posetrack_docks(viewer: Any) -> list[QDockWidget]:
    """The dock widgets holding PoseTrack widgets in ``viewer``'s window, in the order they were added."""
    docks = []
    for widget in viewer.window.dock_widgets.values():
        native = getattr(widget, "native", widget)  # magicgui widgets wrap a Qt widget
        if _is_posetrack(widget) and isinstance(native, QWidget):
            dock = _dock_of(native)
            if dock is not None and dock not in docks:
                docks.append(dock)
    return docks


def needed_width(widget: QWidget) -> int:
    """The width ``widget`` needs to show its contents without scrolling sideways.

    A scroll area's minimum size says nothing of what it holds: the widest body of the scroll areas
    inside counts, plus room for a vertical scroll bar.
    """
    widget.ensurePolished()  # a tab never shown yet has no style (napari's) yet: its sizes would be off
    width = max(widget.sizeHint().width(), widget.minimumSizeHint().width())
    bar = widget.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
    for area in widget.findChildren(QScrollArea):
        body = area.widget()
        if body is not None and area.isVisibleTo(widget):
            width = max(width, body.minimumSizeHint().width() + bar + 2 * area.frameWidth())
    return width


def _main_window(docks: list[QDockWidget]) -> QMainWindow | None:
    for dock in docks:
        parent = dock.parentWidget()
        if isinstance(parent, QMainWindow):
            return parent
    return None


def workspace_active(viewer: Any) -> bool:
    """Whether the workspace is laid out (its next use restores the saved layout)."""
    main = _main_window(posetrack_docks(viewer))
    return main is not None and main in _SAVED


def lay_out_workspace(viewer: Any) -> bool:
    """Save the window layout and put every PoseTrack dock in one column of tabs on the right.

    Returns ``False`` (and changes nothing) when no PoseTrack widget is docked.
    """
    docks = posetrack_docks(viewer)
    main = _main_window(docks)
    if main is None:
        return False
    if main not in _SAVED:
        _SAVED[main] = main.saveState()
    size = main.size()  # re-adding docks lets Qt grow the window to their preferred heights
    first = docks[0]
    right = Qt.DockWidgetArea.RightDockWidgetArea
    for dock in docks:
        # touch only what must move: re-docking a docked widget lets Qt grow the window
        if dock.isFloating():
            dock.setFloating(False)
        if main.dockWidgetArea(dock) != right:
            main.addDockWidget(right, dock)
        dock.show()
    for dock in docks[1:]:
        main.tabifyDockWidget(first, dock)
    # as wide as the widest widget needs (no sideways scrolling), but never more than half the window
    frame = max(first.width() - first.widget().width(), 0)  # the dock's own margins
    width = max(needed_width(dock.widget()) for dock in docks) + frame
    width = min(max(width, first.minimumSizeHint().width()), max(main.width() // 2, 1))
    main.resizeDocks([first], [width], Qt.Orientation.Horizontal)
    if not (main.isMaximized() or main.isFullScreen()):
        main.resize(size)
        QTimer.singleShot(0, lambda: main.resize(size))  # after Qt's own layout pass
    first.raise_()
    return True


def restore_layout(viewer: Any) -> bool:
    """Put the docks back as they were before :func:`lay_out_workspace`; ``False`` if nothing was saved."""
    main = _main_window(posetrack_docks(viewer))
    if main is None or main not in _SAVED:
        return False
    main.restoreState(_SAVED.pop(main))
    return True


def toggle_workspace(viewer: Any) -> str:
    """The menu command: lay the workspace out, or restore the layout if it is laid out.

    Returns what happened: ``"laid out"``, ``"restored"`` or ``"no PoseTrack widget is docked"``
    (also shown as a napari notification).
    """
    from napari.utils.notifications import show_info

    if workspace_active(viewer):
        restore_layout(viewer)
        return "restored"
    if lay_out_workspace(viewer):
        return "laid out"
    message = "no PoseTrack widget is docked: open one from Plugins > PoseTrack first"
    show_info(f"PoseTrack workspace: {message}")
    return message


def workspace_command(viewer: Any = None) -> None:
    """The ``napari-posetrack.workspace`` command (napari passes the current viewer)."""
    if viewer is None:
        from napari import current_viewer

        viewer = current_viewer()
    if viewer is not None:
        toggle_workspace(viewer)


def _app() -> Any:
    """napari's app-model application (``napari._app_model.get_app_model``, documented by napari as
    its public accessor; app-model's own registry when that moves)."""
    try:
        from napari._app_model import get_app_model

        return get_app_model()
    except ImportError:
        from app_model import Application

        return Application.get_app("napari")


def workspace_in_menu() -> bool:
    """Whether napari's Plugins > PoseTrack menu holds the workspace command."""
    app = _app()
    if app is None or PLUGIN_MENU not in app.menus:
        return False
    return any(getattr(getattr(item, "command", None), "id", None) == WORKSPACE_COMMAND
               for item in app.menus.get_menu(PLUGIN_MENU))


def add_workspace_menu_item() -> bool:
    """Put the workspace command into napari's Plugins > PoseTrack menu (once per application).

    npe2 manifests cannot contribute to a plugin's own widget submenu, so the item is added through
    napari's app-model application when the first PoseTrack widget is created. Returns whether the
    item is (now) in the menu.
    """
    app = _app()
    if app is None or WORKSPACE_COMMAND not in app.commands:
        return False
    if workspace_in_menu():
        return True
    from app_model.types import MenuItem

    app.menus.append_menu_items(
        [(PLUGIN_MENU, MenuItem(command={"id": WORKSPACE_COMMAND, "title": WORKSPACE_TITLE}, group="0_workspace"))]
    )
    return True


__all__ = [
    "PLUGIN_MENU",
    "WORKSPACE_COMMAND",
    "add_workspace_menu_item",
    "lay_out_workspace",
    "needed_width",
    "posetrack_docks",
    "restore_layout",
    "toggle_workspace",
    "workspace_active",
    "workspace_command",
    "workspace_in_menu",
]
