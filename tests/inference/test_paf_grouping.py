"""Bottom-up grouping on analytically drawn part affinity fields."""

from __future__ import annotations

import numpy as np

from napari_posetrack.core.inference.paf_grouping import GroupingOptions, group_instances


def draw_pafs(
    instances: np.ndarray, edges: np.ndarray, shape: tuple[int, int], stride: float, width: float = 3.0
):
    """Fields of unit vectors within ``width`` px of each limb segment (instances: (n, nodes, 2) px)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) * stride
    pafs = np.zeros((2 * len(edges), h, w))
    for inst in instances:
        for e, (s, d) in enumerate(edges):
            p, q = inst[s], inst[d]
            v = q - p
            length = np.linalg.norm(v)
            u = v / length
            rel_x, rel_y = xx - p[0], yy - p[1]
            along = rel_x * u[0] + rel_y * u[1]
            across = np.abs(-rel_x * u[1] + rel_y * u[0])
            on = (along >= 0) & (along <= length) & (across <= width)
            pafs[2 * e][on] = u[0]
            pafs[2 * e + 1][on] = u[1]
    return pafs


def test_two_animals_are_assembled_from_their_own_parts():
    edges = np.array([[0, 1], [1, 2]])
    truth = np.array(
        [
            [[20.0, 20.0], [40.0, 24.0], [60.0, 30.0]],
            [[30.0, 60.0], [50.0, 56.0], [70.0, 50.0]],
        ]
    )
    pafs = draw_pafs(truth, edges, (50, 50), stride=2.0)
    # peaks listed in a scrambled order, with a little jitter
    peaks = truth.reshape(-1, 2) + np.random.default_rng(0).normal(0, 0.3, (6, 2))
    nodes = np.tile(np.arange(3), 2)
    perm = np.array([4, 0, 2, 5, 1, 3])
    points, point_scores, scores = group_instances(
        peaks[perm], nodes[perm], np.full(6, 0.9), pafs, edges, 3, 2.0, (100, 100)
    )
    assert points.shape == (2, 3, 2)
    # each recovered instance equals one true instance, node for node
    d = np.linalg.norm(points[:, None] - truth[None], axis=-1).max(axis=-1)
    assert sorted(d.argmin(axis=1).tolist()) == [0, 1]
    assert d.min(axis=1).max() < 1.5
    assert np.all((scores > 0.8) & (scores <= 1.0))
    assert np.allclose(point_scores, 0.9)


def test_missing_node_leaves_nan_and_lowers_score():
    edges = np.array([[0, 1], [1, 2]])
    truth = np.array([[[20.0, 20.0], [40.0, 20.0], [60.0, 20.0]]])
    pafs = draw_pafs(truth, edges, (40, 40), stride=2.0)
    points, _, scores_two = group_instances(
        truth[0, :2], np.array([0, 1]), np.ones(2), pafs, edges, 3, 2.0, (80, 80)
    )
    _, _, scores_all = group_instances(truth[0], np.arange(3), np.ones(3), pafs, edges, 3, 2.0, (80, 80))
    assert np.isnan(points[0, 2]).all() and not np.isnan(points[0, :2]).any()
    assert scores_two[0] < scores_all[0] <= 1.0


def test_connections_against_the_field_are_rejected():
    edges = np.array([[0, 1]])
    truth = np.array([[[20.0, 20.0], [40.0, 20.0]]])
    pafs = -draw_pafs(truth, edges, (40, 40), stride=2.0)  # field points the wrong way
    points, _, _ = group_instances(truth[0], np.array([0, 1]), np.ones(2), pafs, edges, 2, 2.0, (80, 80))
    assert len(points) == 2  # two single-node fragments, not one instance
    opts = GroupingOptions(min_instance_nodes=2)
    points, _, _ = group_instances(
        truth[0], np.array([0, 1]), np.ones(2), pafs, edges, 2, 2.0, (80, 80), opts
    )
    assert len(points) == 0


def test_peak_count_per_node_is_capped_to_the_strongest():
    from napari_posetrack.core.inference.paf_grouping import strongest_per_node

    nodes = np.array([0, 1, 0, 0, 1])
    values = np.array([0.2, 0.5, 0.9, 0.4, 0.1])
    assert strongest_per_node(nodes, values, 2).tolist() == [1, 2, 3, 4]
    assert strongest_per_node(nodes, values, 1).tolist() == [1, 2]
    # thousands of weak peaks per node stay cheap: only the strongest are paired
    rng = np.random.default_rng(0)
    k = 3000
    peaks = rng.uniform(0, 100, (2 * k, 2))
    pafs = np.zeros((2, 50, 50))
    points, _, _ = group_instances(
        peaks, np.repeat([0, 1], k), rng.uniform(0, 1, 2 * k), pafs, np.array([[0, 1]]), 2, 2.0, (100, 100),
        GroupingOptions(max_peaks_per_node=10),
    )
    assert len(points) == 20  # unconnected, so one single-node fragment per kept peak
