"""Suggestion rounds over several videos: method groups, skipped videos, labelled flags, navigation order."""

from __future__ import annotations

import numpy as np

from napari_posetrack.core.labels import Suggestion, Video
from napari_posetrack.core.sample import generate_sample
from napari_posetrack.core.tools.suggestion_rounds import (
    METHODS,
    group_name,
    labelled_flags,
    neighbour_suggestion,
    run_suggestion_round,
)


def test_round_over_videos_reports_progress_and_skips_unreadable(tmp_path) -> None:
    _, labels = generate_sample(n_animals=2, n_frames=30, size=(64, 64))
    labels.delete(np.flatnonzero(labels.instances.frame % 10 != 0))
    labels.add_video(Video(str(tmp_path / "gone.mp4"), n_frames=30))
    steps = list(run_suggestion_round(labels, "uniform", [0, 1], 4, seed=1))
    assert [(p.done, p.total, p.video) for p in steps] == [(1, 2, 0), (2, 2, 1)]
    assert len(steps[0].found) == 4 and all(s.group == METHODS["uniform"].group for s in steps[0].found)
    assert all(s.frame % 10 != 0 for s in steps[0].found)
    # uniform needs no pixels: the missing video falls back on its metadata (30 frames, none labelled)
    assert len(steps[1].found) == 4 and steps[1].problem is None
    # k-means must read pixels: the missing video is skipped with a reason naming it
    steps = list(run_suggestion_round(labels, "kmeans", [1], 4))
    assert steps[0].found == [] and "gone.mp4" in steps[0].problem


def test_labelled_flags_and_names() -> None:
    _, labels = generate_sample(n_animals=1, n_frames=10, size=(64, 64))
    labels.delete(np.flatnonzero(labels.instances.frame != 3))
    flags = labelled_flags(labels, [Suggestion(0, 3), Suggestion(0, 4)])
    assert flags.tolist() == [True, False]
    assert group_name(METHODS["kmeans"].group) == "k-means"
    assert group_name(0) == "group 0"  # SLEAP's own suggestion groups
    assert len({m.group for m in METHODS.values()}) == len(METHODS)


def test_neighbour_suggestion_order() -> None:
    sugg = [Suggestion(1, 5), Suggestion(0, 30), Suggestion(0, 10)]
    assert neighbour_suggestion(sugg, 0, 0, +1) == 2
    assert neighbour_suggestion(sugg, 0, 10, +1) == 1
    assert neighbour_suggestion(sugg, 0, 30, +1) == 0  # on to the next video
    assert neighbour_suggestion(sugg, 1, 5, +1) == 2  # wraps around
    assert neighbour_suggestion(sugg, 0, 10, -1) == 0  # wraps backwards
    assert neighbour_suggestion([], 0, 0, 1) is None
