"""Dataset statistics on real SLEAP fly labels."""

from __future__ import annotations

import json

import numpy as np

from napari_posetrack.core.io import load_labels
from napari_posetrack.core.tools.dataset_stats import dataset_stats


def test_stats_of_ground_truth(flies) -> None:
    labels = load_labels(flies / "clip.slp")
    stats = dataset_stats(labels)
    json.dumps(stats)  # JSON-ready
    (video,) = stats["videos"]
    assert video["name"] == "clip.mp4" and video["n_frames"] == 1500
    assert video["user_frames"] == 1500 and video["user_instances"] == 3000
    assert video["predicted_instances"] == 0 and stats["totals"]["user_instances"] == 3000
    assert stats["instances_per_frame"] == {2: 1500}
    assert stats["tracks"] == {
        "n_tracks": 2,
        "instances": {"female": 1500, "male": 1500},
        "untracked_instances": 0,
    }
    nodes = stats["nodes"]
    assert list(nodes) == labels.skeleton.nodes
    pts = labels.instances.points
    missing = int((~np.isfinite(pts).all(axis=-1)).sum())
    assert sum(n["missing"] for n in nodes.values()) == missing
    assert 0.01 < missing / (3000 * 13) < 0.03  # about 1.6% of points are missing (data README)
    for n in nodes.values():
        assert n["visible"] + n["present_not_visible"] + n["missing"] == 3000
        assert abs(n["visible_rate"] + n["present_not_visible_rate"] + n["missing_rate"] - 1.0) < 1e-9


def test_stats_of_predictions(flies) -> None:
    labels = load_labels(flies / "clip.predictions.slp")
    stats = dataset_stats(labels)
    json.dumps(stats)
    video = stats["videos"][0]
    assert video["predicted_instances"] == 2948 and video["user_instances"] == 0
    assert video["predicted_frames"] == 1500 and video["user_frames"] == 0
    # 52 frames hold one instance, the rest two (data README)
    assert stats["instances_per_frame"] == {1: 52, 2: 1448}
    assert all(n["visible_rate"] is None for n in stats["nodes"].values())  # no user instances
    assert sum(stats["tracks"]["instances"].values()) + stats["tracks"]["untracked_instances"] == 2948


def test_promoted_prediction_counts_once_per_frame(flies) -> None:
    labels = load_labels(flies / "clip.predictions.slp")
    row = int(labels.rows(video=0, frame=10)[0])
    labels.promote_prediction(row)
    stats = dataset_stats(labels)
    video = stats["videos"][0]
    assert video["user_instances"] == 1 and video["user_frames"] == 1
    assert video["predicted_instances"] == 2948  # the shadowed prediction stays in the store
    assert stats["instances_per_frame"] == {1: 52, 2: 1448}  # but is not shown twice
    assert sum(n["visible"] + n["present_not_visible"] + n["missing"] for n in stats["nodes"].values()) == 2
