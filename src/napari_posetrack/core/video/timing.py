"""Frame rate and timestamp regularity of a video, from its per-frame timestamps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# An interval counts as irregular when it is this far from the median interval: a dropped
# frame shows as about twice the median, a duplicated one as about zero.
IRREGULAR_LONG = 1.5
IRREGULAR_SHORT = 0.5
MAX_LISTED = 100  # irregular intervals listed one by one; more are only counted


@dataclass
class FrameTiming:
    """Rates and gaps of a video's frame timestamps.

    Attributes
    ----------
    nominal_fps
        The rate the stream declares (container or codec header), if any.
    measured_fps
        One over the median interval between consecutive frames.
    mean_fps
        Frames per second over the whole video: ``(n - 1) / (last - first timestamp)``.
    median_interval_s, largest_gap_s
        The median and the largest interval between consecutive frames, in seconds.
    largest_gap_after
        The frame after which the largest gap occurs (the gap ends at the next frame).
    variable
        Whether intervals differ by more than timestamp rounding (a variable-frame-rate file).
    irregular
        ``(frame, interval_s)`` for the first ``MAX_LISTED`` intervals more than 1.5 times or
        less than half the median; the interval runs from ``frame`` to ``frame + 1``.
    n_irregular
        How many intervals are irregular in all.
    """

    nominal_fps: float | None = None
    measured_fps: float | None = None
    mean_fps: float | None = None
    median_interval_s: float | None = None
    largest_gap_s: float | None = None
    largest_gap_after: int | None = None
    variable: bool = False
    irregular: list[tuple[int, float]] = field(default_factory=list)
    n_irregular: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["irregular"] = [[int(f), float(s)] for f, s in self.irregular]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameTiming:
        data = dict(data)
        data["irregular"] = [(int(f), float(s)) for f, s in data.get("irregular", [])]
        return cls(**data)


def frame_timing(
    timestamps: np.ndarray | None, nominal_fps: float | None = None, tick: float = 0.0
) -> FrameTiming:
    """Rates and gaps from per-frame timestamps in seconds (presentation order).

    Parameters
    ----------
    timestamps
        Seconds of each frame; None when the file has no usable timestamps.
    nominal_fps
        The rate the stream declares, reported as is.
    tick
        The timestamp resolution in seconds (the stream's time base): intervals that differ
        by no more than one tick are rounding, not a variable rate.
    """
    timing = FrameTiming(nominal_fps=None if not nominal_fps else float(nominal_fps))
    if timestamps is None or len(timestamps) < 2:
        return timing
    steps = np.diff(np.asarray(timestamps, dtype=np.float64))
    median = float(np.median(steps))
    span = float(timestamps[-1] - timestamps[0])
    timing.median_interval_s = median
    timing.measured_fps = 1.0 / median if median > 0 else None
    timing.mean_fps = (len(timestamps) - 1) / span if span > 0 else None
    largest = int(np.argmax(steps))
    timing.largest_gap_s, timing.largest_gap_after = float(steps[largest]), largest
    tolerance = max(tick, 1e-6) * 1.01 + 1e-3 * abs(median)
    timing.variable = bool(np.any(np.abs(steps - median) > tolerance))
    if median > 0:
        odd = np.flatnonzero((steps > IRREGULAR_LONG * median) | (steps < IRREGULAR_SHORT * median))
    else:
        odd = np.flatnonzero(steps != median)
    timing.n_irregular = len(odd)
    timing.irregular = [(int(f), float(steps[f])) for f in odd[:MAX_LISTED]]
    return timing
