"""Frame suggestions on real SLEAP fly data."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import PREDICTED, USER, Labels, Skeleton, Suggestion, Video
from napari_posetrack.core.tools.suggestions import (
    add_suggestions,
    motion_outlier_scores,
    suggest_kmeans,
    suggest_low_scores,
    suggest_motion_outliers,
    suggest_uniform,
)


@pytest.fixture(scope="module")
def gt(flies) -> Labels:
    return load_labels(flies / "clip.slp")


@pytest.fixture(scope="module")
def predictions(flies) -> Labels:
    return load_labels(flies / "clip.predictions.slp")


def test_uniform_spreads_and_skips_user_frames(predictions: Labels) -> None:
    labels = predictions.copy()
    rows = labels.rows(video=0, frame=300)
    labels.promote_prediction(int(rows[0]))  # frame 300 now holds a user instance
    sug = suggest_uniform(labels, 0, 15, seed=1)
    frames = np.array([s.frame for s in sug])
    assert len(sug) == 15 and len(set(frames)) == 15
    assert 300 not in frames and frames.min() >= 0 and frames.max() < 1500
    gaps = np.diff(np.sort(frames))
    assert gaps.min() >= 90 and gaps.max() <= 110  # about 1500 / 15 apart


def test_uniform_on_fully_labelled_video_is_empty(gt: Labels) -> None:
    assert suggest_uniform(gt, 0, 10) == []


def test_low_scores_match_brute_force(predictions: Labels) -> None:
    sug = suggest_low_scores(predictions, 0, 20)
    t = predictions.instances
    worst: dict[int, float] = {}
    for f, s in zip(t.frame[t.kind == PREDICTED], t.score[t.kind == PREDICTED]):
        worst[int(f)] = min(worst.get(int(f), np.inf), float(s))
    expected = sorted(worst, key=lambda f: (worst[f], f))[:20]
    assert [s.frame for s in sug] == expected
    assert all(s.video == 0 for s in sug)


def test_low_scores_skip_user_frames(predictions: Labels) -> None:
    labels = predictions.copy()
    first = suggest_low_scores(labels, 0, 1)[0].frame
    labels.promote_prediction(int(labels.rows(video=0, frame=first)[0]))
    assert first not in [s.frame for s in suggest_low_scores(labels, 0, 20)]


def test_motion_outliers_find_inserted_jump(gt: Labels) -> None:
    labels = gt.copy()
    before = motion_outlier_scores(labels, 0)
    t = labels.instances
    row = int(np.flatnonzero((t.frame == 700) & (t.track == 1))[0])
    pts = t.points[row].copy()
    pts[0] += 300.0  # the head jumps 424 px on one frame, then comes back
    labels.update(row, points=pts)
    scores = motion_outlier_scores(labels, 0)
    assert scores[700] > before.max() and scores[701] > before.max()
    changed = np.flatnonzero(~np.isclose(scores, before))
    assert set(changed) == {700, 701}  # nothing else moves
    frames = [s.frame for s in suggest_motion_outliers(labels, 0, 2)]
    assert frames == sorted([700, 701], key=lambda f: -scores[f])
    # a threshold above every score suggests nothing
    assert suggest_motion_outliers(labels, 0, 5, z=float(scores.max()) + 1) == []


def test_kmeans_suggestions_distinct_unlabelled_in_range(flies) -> None:
    video = Video(str(flies / "centered_pair_low_quality.mp4"), n_frames=1100)
    labels = Labels(Skeleton(["a", "b"]), [video])
    labels.add_instances(0, 0, np.array([[10.0, 10.0], [20.0, 20.0]]), kind=USER)
    sug = suggest_kmeans(labels, 0, 6, sample=60, size=16, seed=0)
    frames = [s.frame for s in sug]
    assert len(frames) == 6 and len(set(frames)) == 6
    assert 0 not in frames and all(0 <= f < 1100 for f in frames)
    assert sug == suggest_kmeans(labels, 0, 6, sample=60, size=16, seed=0)  # deterministic for a seed


def test_add_suggestions_without_duplicates(predictions: Labels) -> None:
    labels = predictions.copy()
    labels.suggestions.clear()
    first = suggest_uniform(labels, 0, 10)
    assert add_suggestions(labels, first, group=1) == 10
    more = suggest_low_scores(labels, 0, 10) + first[:3]
    added = add_suggestions(labels, more, group=2)
    keys = [(s.video, s.frame) for s in labels.suggestions]
    assert len(keys) == len(set(keys)) == 10 + added
    assert all(s.group == 1 for s in labels.suggestions[:10])
    assert all(s.group == 2 for s in labels.suggestions[10:])
    assert Suggestion(0, first[0].frame, 1) in labels.suggestions
