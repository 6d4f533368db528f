"""The training widget's live loss plot and the history of records it draws."""

from __future__ import annotations

import math
import time
from typing import Any

from qtpy.QtWidgets import QWidget

from napari_posetrack._widgets._plot import PlotCanvas

# batches can arrive faster than is worth redrawing
MIN_REDRAW_S = 0.2


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``; ``"?"`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LossHistory:
    """The records of the model being trained, as arrays the loss plot draws."""

    def __init__(self, model: str = "", epochs: int = 0) -> None:
        self.model = model
        self.epochs = epochs
        self.steps_per_epoch = 0
        self.max_steps: int | None = None
        self.batch_steps: list[int] = []
        self.batch_loss: list[float] = []
        self.epoch_steps: list[int] = []
        self.train_loss: list[float] = []
        self.val_loss: list[float] = []
        self.last: dict[str, Any] = {}

    def add(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == "start":
            self.steps_per_epoch = int(record.get("steps_per_epoch") or 0)
        elif event == "batch":
            self.batch_steps.append(int(record["step"]))
            self.batch_loss.append(float(record["loss"]))
        elif event == "epoch":
            self.epoch_steps.append(int(record["step"]))
            self.train_loss.append(float(record["train_loss"]))
            self.val_loss.append(float(record["val_loss"]))
        self.last = record

    def eta(self) -> float:
        """Seconds left, from the time per step so far (``nan`` before the first batch)."""
        rec = self.last
        step, elapsed = rec.get("step"), rec.get("elapsed")
        if not step or elapsed is None or not self.steps_per_epoch:
            return math.nan
        total = self.epochs * self.steps_per_epoch
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        return float(elapsed) / int(step) * max(total - int(step), 0)


class LossPlot(PlotCanvas):
    """Loss per batch, and train / validation loss per epoch, of the model being trained."""

    def __init__(self, parent: QWidget | None = None, *, height: float = 2.4) -> None:
        super().__init__(parent, height=height)
        self.lines: dict[str, Any] = {}
        self._axes: Any = None
        self._last_draw = 0.0

    def reset(self, title: str) -> None:
        """Empty plot titled ``title`` (a new model starts)."""
        ax = self.axes()
        ax.set_xlabel("training step (batch)")
        ax.set_ylabel("loss")
        ax.set_title(title or "loss", fontsize=9)
        (batch,) = ax.plot([], [], lw=0.8, alpha=0.6, color="tab:blue", label="batch")
        (train,) = ax.plot([], [], "o-", ms=3, color="tab:orange", label="train (epoch)")
        (val,) = ax.plot([], [], "s-", ms=3, color="tab:green", label="validation (epoch)")
        ax.legend(fontsize=7, loc="upper right")
        self._axes = ax
        self.lines = {"batch": batch, "train": train, "val": val}
        self.draw()

    def show_history(self, history: LossHistory, *, force: bool = False) -> None:
        """Draw ``history`` (at most every :data:`MIN_REDRAW_S` unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_draw < MIN_REDRAW_S:
            return
        self._last_draw = now
        self.lines["batch"].set_data(history.batch_steps, history.batch_loss)
        self.lines["train"].set_data(history.epoch_steps, history.train_loss)
        self.lines["val"].set_data(history.epoch_steps, history.val_loss)
        values = [v for v in history.batch_loss + history.train_loss + history.val_loss if math.isfinite(v)]
        if values and min(values) > 0:
            self._axes.set_yscale("log")
        self._axes.relim()
        self._axes.autoscale_view()
        self.draw()


__all__ = ["LossHistory", "LossPlot", "format_duration"]
