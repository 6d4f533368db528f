"""One round of frame suggestions over several videos, as the suggestions widget and scripts run it.

:mod:`napari_posetrack.core.tools.suggestions` holds the methods (one video at a time); this module
names them, gives each a suggestion group so a list can say which method proposed a frame, and
runs a method over a list of videos while reporting progress. A video that cannot be read is
skipped with a message instead of ending the round.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.core.labels import Labels, Suggestion
from napari_posetrack.core.tools import suggestions as methods

__all__ = [
    "METHODS",
    "RoundProgress",
    "SuggestionMethod",
    "group_name",
    "labelled_flags",
    "neighbour_suggestion",
    "run_suggestion_round",
]


@dataclass(frozen=True)
class SuggestionMethod:
    """A way of choosing frames: its key, the group its suggestions get, and words for users."""

    key: str
    group: int
    short: str
    title: str
    help: str
    needs_video: bool = False
    needs_predictions: bool = False


METHODS: dict[str, SuggestionMethod] = {
    m.key: m
    for m in (
        SuggestionMethod(
            "uniform",
            1,
            "uniform",
            "Spread evenly (uniform)",
            "Frames spaced evenly through each video, skipping frames you labelled. A good first round.",
        ),
        SuggestionMethod(
            "kmeans",
            2,
            "k-means",
            "Varied images (k-means)",
            "Frames that look different from each other: a sample of frames is shrunk, grouped by "
            "appearance (k-means) and one frame per group is suggested. Reads the video, so it takes a while.",
            needs_video=True,
        ),
        SuggestionMethod(
            "low_scores",
            3,
            "low score",
            "Low prediction scores",
            "Frames where the model was least sure of an animal. Needs predictions: predict first.",
            needs_predictions=True,
        ),
        SuggestionMethod(
            "motion",
            4,
            "motion",
            "Implausible motion",
            "Frames where a body part jumps much further than it usually moves between frames "
            "(a robust z-score of its speed above the threshold): likely mistakes or identity swaps. "
            "Needs tracked poses.",
            needs_predictions=True,
        ),
    )
}
_BY_GROUP = {m.group: m for m in METHODS.values()}


def group_name(group: int) -> str:
    """The short method name of a suggestion group (``"group N"`` for groups from other software)."""
    method = _BY_GROUP.get(int(group))
    return method.short if method is not None else f"group {int(group)}"


@dataclass
class RoundProgress:
    """Progress of :func:`run_suggestion_round`: ``done`` of ``total`` videos handled so far."""

    done: int
    total: int
    video: int
    found: list[Suggestion] = field(default_factory=list)
    problem: str | None = None


def run_suggestion_round(
    labels: Labels,
    method: str,
    videos: Sequence[int],
    n: int,
    *,
    sample: int = 300,
    z: float = 4.0,
    seed: int = 0,
) -> Iterator[RoundProgress]:
    """Run one suggestion method over ``videos``, yielding after each video.

    Parameters
    ----------
    labels
        The store (read only; run on a copy when the user may edit meanwhile).
    method
        A key of :data:`METHODS`.
    videos
        Video indices to suggest frames in.
    n
        How many frames per video.
    sample
        k-means: how many frames of each video to look at.
    z
        Implausible motion: the robust z-score a speed must exceed.
    seed
        Varies uniform and k-means choices between rounds.

    Yields
    ------
    RoundProgress
        One per video, with the suggestions found there (group set to the method's group) or the
        reason the video was skipped.
    """
    if method not in METHODS:
        raise ValueError(f"unknown suggestion method {method!r}; use one of {', '.join(METHODS)}")
    group = METHODS[method].group
    total = len(videos)
    for done, video in enumerate(videos, start=1):
        try:
            if method == "uniform":
                found = methods.suggest_uniform(labels, video, n, seed=seed)
            elif method == "kmeans":
                found = methods.suggest_kmeans(labels, video, n, sample=sample, seed=seed)
            elif method == "low_scores":
                found = methods.suggest_low_scores(labels, video, n)
            else:
                found = methods.suggest_motion_outliers(labels, video, n, z=z)
        except (PoseTrackError, OSError) as exc:
            name = labels.videos[video].name
            yield RoundProgress(done, total, video, problem=f"skipped video {name}: {exc}")
            continue
        yield RoundProgress(done, total, video, [Suggestion(s.video, s.frame, group) for s in found])


def labelled_flags(labels: Labels, suggestions: Sequence[Suggestion]) -> np.ndarray:
    """For each suggestion, whether its frame holds a user instance."""
    pairs = labels.user_frames()
    done = {(int(v), int(f)) for v, f in pairs}
    return np.array([(s.video, s.frame) in done for s in suggestions], dtype=bool)


def neighbour_suggestion(suggestions: Sequence[Suggestion], video: int, frame: int, step: int) -> int | None:
    """Index (in ``suggestions``) of the next (``step=1``) or previous (``-1``) suggestion after
    ``(video, frame)`` in (video, frame) order, wrapping around; ``None`` when there are none."""
    if not suggestions:
        return None
    keys = sorted(range(len(suggestions)), key=lambda i: (suggestions[i].video, suggestions[i].frame))
    here = (int(video), int(frame))
    if step > 0:
        after = [i for i in keys if (suggestions[i].video, suggestions[i].frame) > here]
        return after[0] if after else keys[0]
    before = [i for i in keys if (suggestions[i].video, suggestions[i].frame) < here]
    return before[-1] if before else keys[-1]
