"""A matplotlib figure inside a Qt widget, for the loss plot and the dataset / model-comparison plots."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QVBoxLayout, QWidget


class PlotCanvas(QWidget):
    """A Qt widget holding one matplotlib ``Figure`` (dark, to sit with napari's theme).

    Draw on ``self.figure`` (``self.figure.clear()``, ``self.figure.add_subplot(...)``) then call
    :meth:`draw`, which repaints when Qt next gets the chance, so calling it often costs little.
    """

    def __init__(self, parent: QWidget | None = None, *, height: float = 2.6, dpi: int = 90) -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, height), dpi=dpi, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

    def axes(self, rows: int = 1, cols: int = 1) -> Any:
        """Clear the figure and return fresh axes (one ``Axes`` or an array of them)."""
        self.figure.clear()
        axes = self.figure.subplots(rows, cols, squeeze=True)
        return axes

    def draw(self) -> None:
        """Schedule a repaint (cheap to call on every update)."""
        self.canvas.draw_idle()
