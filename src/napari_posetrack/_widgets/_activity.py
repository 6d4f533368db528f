"""A background job's entry in napari's activity dock: what runs, how far it is, and the time left.

napari's :class:`napari.utils.progress` (a tqdm) shows each open entry in the activity dock (bottom
right of the status bar) with its count and tqdm's elapsed/remaining times. Jobs report from the
main thread (the worker's signals arrive there); a job whose size is unknown shows a busy entry.
"""

from __future__ import annotations

from typing import Any


class Activity:
    """One job in napari's activity dock; :meth:`close` removes it (also when the job failed).

    Parameters
    ----------
    description
        What runs, naming the file (``"Opening clip.slp"``).
    total
        Steps to do (frames, batches); ``None`` or 0 while unknown (a busy entry).
    """

    def __init__(self, description: str, total: int | None = None) -> None:
        from napari.utils import progress

        self.description = description
        self.done = 0
        self.total = int(total or 0)
        self.closed = False
        self._pushing = False
        self._bar: Any = progress(total=self.total, desc=description)

    def update(self, done: int, total: int | None = None, description: str | None = None) -> None:
        """Report ``done`` of ``total`` steps; a new ``total`` (the next stage) restarts the time left.

        Safe to call again while napari redraws the activity dock (which may handle the next report
        inside this call): the state is stored first and the outermost call shows the latest one.
        """
        if self.closed:
            return
        if description is not None:
            self.description = description
        if total is not None:
            self.total = int(total)
        self.done = int(done)
        if self._pushing:
            return
        self._pushing = True
        try:
            shown = None
            while shown != (self.description, self.total, self.done) and not self.closed:
                shown = (self.description, self.total, self.done)
                self._show(*shown)
        finally:
            self._pushing = False

    def _show(self, description: str, total: int, done: int) -> None:
        bar = self._bar
        if bar.desc != description:
            bar.set_description(description)
        if bar.total != total:
            bar.reset(total=total)  # tqdm: count and clock restart for the new stage
            bar.total = total  # napari's setter tells the activity dock
        if done != bar.n:
            bar.update(done - bar.n)

    def seconds_left(self) -> float | None:
        """Estimated seconds to the end of this stage (``None`` until a step is done or when the size is unknown)."""
        if self.closed or self.total <= 0 or self.done <= 0:
            return None
        done = self._bar.n
        if done <= 0:
            return None
        return self._bar.format_dict["elapsed"] * max(self.total - done, 0) / done

    def close(self) -> None:
        """Take the entry out of the activity dock (idempotent)."""
        if not self.closed:
            self.closed = True
            self._bar.close()


__all__ = ["Activity"]
