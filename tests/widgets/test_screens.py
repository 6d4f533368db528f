"""Every PoseTrack widget is usable on 1366 x 768 and 1920 x 1080 screens; the workspace command.

Screenshots of each dock go to pytest's ``tmp_path``. For every dock and every control inside it:
its rectangle, mapped to the main window, lies inside the window; a control inside a scroll area
lies inside the area's body (so scrolling reaches it), and the body is never wider than what shows.
"""

from __future__ import annotations

import pytest

pytest.importorskip("napari")

from qtpy.QtCore import QRect, Qt
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QWidget,
)

from napari_posetrack._widgets._workspace import (
    WORKSPACE_COMMAND,
    _app,
    posetrack_docks,
    toggle_workspace,
    workspace_active,
    workspace_in_menu,
)

pytestmark = pytest.mark.gui

CONTROLS = (QAbstractButton, QAbstractItemView, QAbstractSpinBox, QComboBox, QLabel, QLineEdit, QPlainTextEdit)


def _rect_in(widget: QWidget, ancestor: QWidget) -> QRect:
    return QRect(widget.mapTo(ancestor, widget.rect().topLeft()), widget.size())


def _scroll_area_of(widget: QWidget, stop: QWidget) -> QScrollArea | None:
    """The nearest scroll area (below ``stop``) whose body holds ``widget``."""
    parent = widget.parentWidget()
    while parent is not None and parent is not stop:
        if isinstance(parent, QScrollArea) and parent.widget() is not None and parent.widget().isAncestorOf(widget):
            return parent
        parent = parent.parentWidget()
    return None


def _reachable(control: QWidget, content: QWidget, main: QWidget) -> str | None:
    """Why ``control`` cannot be seen by scrolling (``None`` when it can).

    Inside a scroll area it must lie within the area's body (scrolling brings it into view), the
    area likewise within the next area out, and the outermost area (or the control) in the window.
    """
    widget = control
    area = _scroll_area_of(widget, content)
    while area is not None:
        body = area.widget()
        if not body.rect().contains(_rect_in(widget, body)):
            return f"lies outside the body of {area.objectName() or 'a scroll area'}: scrolling cannot reach it"
        widget = area.viewport()
        area = _scroll_area_of(area, content)
    if not main.rect().contains(_rect_in(widget, main)):
        return f"{_rect_in(widget, main)} is outside the window {main.rect()}"
    return None


def _check_dock(dock, main) -> list[str]:
    """Where the dock or a control in it is out of the window or unreachable (empty: all good)."""
    problems = []
    if not main.rect().contains(_rect_in(dock, main)):
        problems.append(f"dock {dock.windowTitle()} {_rect_in(dock, main)} outside the window {main.rect()}")
    content = dock.widget()
    for control in content.findChildren(QWidget):
        if not isinstance(control, CONTROLS) or not control.isVisibleTo(content):
            continue
        problem = _reachable(control, content, main)
        if problem is not None:
            text = control.objectName() or getattr(control, "text", str)()
            problems.append(f"{dock.windowTitle()}: {type(control).__name__} {text!r} {problem}")
    # the outermost scroll area of a dock never scrolls sideways: the dock is wide enough
    for area in content.findChildren(QScrollArea):
        outer = area.isVisibleTo(content) and area.widget() is not None and _scroll_area_of(area, content) is None
        if outer and area.widget().width() > area.viewport().width():
            problems.append(
                f"{dock.windowTitle()}: {area.objectName()} is cut off at the side (body "
                f"{area.widget().width()} px, shown {area.viewport().width()} px)"
            )
    return problems


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)], ids=["1366x768", "1920x1080"])
def test_every_widget_fits_the_screen(make_napari_viewer, dock_every_widget, flies, qtbot, tmp_path, size):
    viewer = make_napari_viewer(show=True)
    widgets = dock_every_widget(viewer)
    assert widgets["Labelling"].open_path(flies / "clip.slp")
    widgets["Training"].set_pipeline("topdown")  # the longest form: two models
    docks = posetrack_docks(viewer)
    assert len(docks) == len(widgets) >= 6
    main = docks[0].parentWidget()
    main.resize(*size)
    qtbot.waitUntil(lambda: (main.width(), main.height()) == size, timeout=5_000)
    assert main.minimumSizeHint().height() <= size[1]  # no dock forces the window taller than the screen

    assert toggle_workspace(viewer) == "laid out"
    qtbot.wait(50)
    assert {main.dockWidgetArea(d) for d in docks} == {Qt.DockWidgetArea.RightDockWidgetArea}
    assert all(set(main.tabifiedDockWidgets(d)) == set(docks) - {d} for d in docks)  # one column of tabs
    problems = []
    for dock in docks:
        dock.raise_()
        qtbot.waitUntil(lambda dock=dock: dock.widget().isVisible(), timeout=5_000)
        qtbot.wait(100)  # scroll areas size their bodies on the next layout pass
        tall = dock.widget().minimumSizeHint().height()
        assert (main.width(), main.height()) == size, f"{dock.windowTitle()} (needs {tall} px) resized the window"
        image = main.grab()
        path = tmp_path / f"{size[0]}x{size[1]}-{dock.windowTitle()}.png"
        assert image.save(str(path)) and path.stat().st_size > 0
        problems += _check_dock(dock, main)
    assert problems == [], "\n".join(problems[:40])


def test_workspace_toggles_and_restores_the_layout(make_napari_viewer, dock_every_widget, qtbot):
    viewer = make_napari_viewer(show=True)
    dock_every_widget(viewer)
    assert workspace_in_menu()  # Plugins > PoseTrack holds the command
    docks = posetrack_docks(viewer)
    main = docks[0].parentWidget()
    tools = docks[-1]
    main.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, tools)  # the user moved one dock
    qtbot.wait(50)
    assert main.dockWidgetArea(tools) == Qt.DockWidgetArea.LeftDockWidgetArea

    assert toggle_workspace(viewer) == "laid out"
    assert workspace_active(viewer)
    assert main.dockWidgetArea(tools) == Qt.DockWidgetArea.RightDockWidgetArea
    assert tools in main.tabifiedDockWidgets(docks[0])

    assert toggle_workspace(viewer) == "restored"
    assert not workspace_active(viewer)
    assert main.dockWidgetArea(tools) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert tools not in main.tabifiedDockWidgets(docks[0])

    # the menu item runs the napari.yaml command, which toggles the same way
    commands = _app().commands
    commands.execute_command(WORKSPACE_COMMAND).result()
    assert workspace_active(viewer) and main.dockWidgetArea(tools) == Qt.DockWidgetArea.RightDockWidgetArea
    commands.execute_command(WORKSPACE_COMMAND).result()
    assert not workspace_active(viewer) and main.dockWidgetArea(tools) == Qt.DockWidgetArea.LeftDockWidgetArea


def test_workspace_without_posetrack_docks_says_so(make_napari_viewer):
    viewer = make_napari_viewer()
    assert toggle_workspace(viewer).startswith("no PoseTrack widget is docked")
