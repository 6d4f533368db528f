"""A dock widget's body that scrolls when the dock is shorter (or narrower) than the body needs.

napari's dock widgets do not scroll; a tall form would otherwise set the minimum height of the
whole napari window (taller than a 1366 x 768 or 1920 x 1080 screen) and be cut off.
"""

from __future__ import annotations

from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget


def scrolling_body(widget: QWidget, name: str) -> QVBoxLayout:
    """Give ``widget`` one scroll area holding a body widget; return the body's layout to fill.

    Parameters
    ----------
    widget
        The dock widget (it must have no layout yet).
    name
        Object name prefix: the scroll area is ``<name>_scroll``, the body ``<name>_body``.
    """
    body = QWidget()
    body.setObjectName(f"{name}_body")
    scroll = QScrollArea()
    scroll.setObjectName(f"{name}_scroll")
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(body)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return QVBoxLayout(body)


__all__ = ["scrolling_body"]
