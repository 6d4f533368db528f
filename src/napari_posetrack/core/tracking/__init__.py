"""Multi-animal tracking: candidates, similarity, matching, optical flow, tracklet stitching and completion.

Use :func:`track` (labels and a :class:`TrackingSummary`) or :func:`track_labels` (labels only) with a
:class:`TrackerConfig`; ``posetrack track`` is the command line.
"""

from .summary import TrackingSummary
from .tracker import (
    TrackerConfig,
    TrackingInputError,
    TrackingResult,
    check_input,
    select_videos,
    track,
    track_labels,
)

__all__ = [
    "TrackerConfig",
    "TrackingInputError",
    "TrackingResult",
    "TrackingSummary",
    "check_input",
    "select_videos",
    "track",
    "track_labels",
]
