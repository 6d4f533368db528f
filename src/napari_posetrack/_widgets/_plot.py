"""A matplotlib figure inside a Qt widget, for the loss plot and the dataset / model-comparison plots."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QVBoxLayout, QWidget

PANEL = "#262930"  # napari's dark theme background
INK = "#d6d0ce"  # napari's dark theme text


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
        self._dark_theme()
        self.canvas.draw_idle()

    def _dark_theme(self) -> None:
        """Light text and lines on napari's dark panel colour, whatever the plotting code set."""
        self.figure.set_facecolor(PANEL)
        for ax in self.figure.axes:
            ax.set_facecolor(PANEL)
            ax.tick_params(colors=INK, which="both")
            for spine in ax.spines.values():
                spine.set_color(INK)
            for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
                text.set_color(INK)
            legend = ax.get_legend()
            if legend is not None:
                legend.get_frame().set_facecolor(PANEL)
                for text in legend.get_texts():
                    text.set_color(INK)
