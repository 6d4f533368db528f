"""Where new instances go and which frame comes next (pure engine, no viewer)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.labelling import (
    accelerated_step,
    nearest_labelled_frame,
    new_instance_points,
    next_labelled_frame,
    next_suggested_frame,
    next_unlabelled_frame,
    template_pose,
)
from napari_posetrack.core.labels import Labels, Skeleton, Suggestion, Video


@pytest.fixture
def labels() -> Labels:
    sk = Skeleton(["head", "thorax", "tail"], [(1, 0), (1, 2)])
    out = Labels(sk, videos=[Video("a.mp4", n_frames=20, shape=(64, 64, 1)), Video("b.mp4", n_frames=10)])
    pose = np.array([[10.0, 0.0], [0.0, 0.0], [-10.0, 0.0]])
    for frame, shift in ((2, 5.0), (8, 30.0)):
        p = pose + shift
        p[2] = np.nan if frame == 8 else p[2]  # tail missing once: its mean comes from frame 2 alone
        out.add_instances(0, frame, p)
    return out


def test_template_pose_is_the_centred_mean_of_user_instances(labels):
    pose = template_pose(labels)
    np.testing.assert_allclose(pose.mean(axis=0), 0.0, atol=1e-9)
    # head in front of thorax in front of tail, 10 px apart, as labelled
    assert pose[0, 0] > pose[1, 0] > pose[2, 0]
    np.testing.assert_allclose(pose[0] - pose[1], [10.0, 0.0], atol=3.0)


def test_template_pose_of_an_empty_project_spreads_nodes_on_a_circle():
    pose = template_pose(Labels(Skeleton(["a", "b", "c", "d"])))
    distances = np.linalg.norm(pose[:, None] - pose[None], axis=-1)
    assert np.all(distances[~np.eye(4, dtype=bool)] > 5)  # every node can be grabbed on its own


def test_new_instance_from_mean_pose_or_the_nearest_frame(labels):
    (mean,) = new_instance_points(labels, 0, 5, (32.0, 20.0), "mean")
    np.testing.assert_allclose(np.nanmean(mean, axis=0), [32.0, 20.0])
    assert nearest_labelled_frame(labels, 0, 7) == 8
    (copied,) = new_instance_points(labels, 0, 7, None, "nearest")
    np.testing.assert_array_equal(np.isnan(copied), np.isnan(labels.instances.points[1]))
    (moved,) = new_instance_points(labels, 0, 7, (50.0, 50.0), "nearest")
    np.testing.assert_allclose(np.nanmean(moved, axis=0), [50.0, 50.0])
    with pytest.raises(ValueError, match="unknown"):
        new_instance_points(labels, 0, 7, None, "random")


def test_next_and_previous_frames(labels):
    assert next_labelled_frame(labels, 0, 0) == 2 and next_labelled_frame(labels, 0, 2) == 8
    assert next_labelled_frame(labels, 0, 8) is None and next_labelled_frame(labels, 0, 8, -1) == 2
    assert next_unlabelled_frame(labels, 0, 1) == 3 and next_unlabelled_frame(labels, 0, 9, -1) == 7
    labels.suggestions = [Suggestion(0, 4), Suggestion(1, 3), Suggestion(0, 15)]
    assert next_suggested_frame(labels, 0, 5) == (0, 15)
    assert next_suggested_frame(labels, 0, 15) == (1, 3)  # on to the next video
    assert next_suggested_frame(labels, 1, 3, -1) == (0, 15)
    assert next_suggested_frame(labels, 0, 4, -1) is None


def test_held_key_steps_grow_and_are_capped():
    steps = [accelerated_step(k) for k in range(200)]
    assert steps[0] == 1 and steps == sorted(steps) and max(steps) == 64
