"""Multi-animal tracking: candidates, similarity, matching, optical flow and tracklet stitching.

Use :func:`track_labels` with a :class:`TrackerConfig`; ``posetrack track`` is the command line.
"""

from .tracker import TrackerConfig, track_labels

__all__ = ["TrackerConfig", "track_labels"]
