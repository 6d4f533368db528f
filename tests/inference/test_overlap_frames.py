"""Overlap suppression and frame selection."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.inference.frames import parse_frame_spec, select_frames
from napari_posetrack.core.inference.overlap import pairwise_oks, suppress_overlaps
from napari_posetrack.core.labels import Labels, Skeleton, Suggestion, Video


def test_duplicate_detection_is_suppressed_but_neighbour_kept():
    a = np.array([[10.0, 10.0], [30.0, 10.0], [50.0, 12.0]])
    dup = a + 0.5
    other = a + [0.0, 40.0]
    pts = np.stack([dup, a, other])
    scores = np.array([0.7, 0.9, 0.8])
    for method in ("oks", "iou"):
        kept = suppress_overlaps(pts, scores, method=method, threshold=0.5)
        assert kept.tolist() == [1, 2]
    assert suppress_overlaps(pts, scores, method="none").tolist() == [1, 2, 0]


def test_oks_of_identical_instances_is_one_and_ignores_missing_nodes():
    a = np.array([[10.0, 10.0], [30.0, 10.0], [np.nan, np.nan]])
    sim = pairwise_oks(np.stack([a, a]))
    assert np.allclose(sim, 1.0)


def test_frame_specs():
    assert parse_frame_spec("all", 5).tolist() == [0, 1, 2, 3, 4]
    assert parse_frame_spec("2-4", 10).tolist() == [2, 3, 4]
    assert parse_frame_spec("::3", 10).tolist() == [0, 3, 6, 9]
    assert parse_frame_spec("1, 7, 2-3", 10).tolist() == [1, 2, 3, 7]
    with pytest.raises(ValueError, match="outside the video"):
        parse_frame_spec("12", 10)
    with pytest.raises(ValueError, match="cannot read frame selection 'x'"):
        parse_frame_spec("x", 10)


def test_select_labelled_unlabelled_suggested():
    lab = Labels(Skeleton(["a"]), videos=[Video("v.mp4", n_frames=6)])
    lab.add_instances(0, [1, 4], np.zeros((2, 1, 2)))
    lab.add_instances(0, 2, np.zeros((1, 2)), kind="predicted")
    lab.suggestions = [Suggestion(0, 5), Suggestion(0, 3)]
    assert select_frames(lab, 0, "labelled", 6).tolist() == [1, 4]
    assert select_frames(lab, 0, "unlabelled", 6).tolist() == [0, 2, 3, 5]
    assert select_frames(lab, 0, "suggested", 6).tolist() == [3, 5]
    assert select_frames(lab, 0, "0-1", 6).tolist() == [0, 1]
