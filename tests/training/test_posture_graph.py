"""DeepPoseKit's posture graph: limbs of a skeleton and the edge / limb / graph maps drawn for them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import build_model
from napari_posetrack.core.models.posture_graph import posture_graph_channels, skeleton_limbs
from napari_posetrack.core.training.targets import confidence_maps, model_targets, posture_graph_maps

NAN = float("nan")
SIGMA = 1.5


@pytest.mark.parametrize(
    ("edges", "n_nodes", "limbs"),
    [
        # a chain is one limb from its root to its leaf
        ([(0, 1), (1, 2), (2, 3)], 4, [[0, 1, 2, 3]]),
        # a fly: the thorax (1) branches to head, abdomen, wings and legs; the head carries both eyes
        (
            [(1, 0), (1, 2), (1, 3), (1, 4), (1, 5), (0, 6), (0, 7)],
            8,
            [[0, 6], [0, 7], [1, 0], [1, 2], [1, 3], [1, 4], [1, 5]],
        ),
        # a branch mid-way: the chain from the root stops at the branching node, each branch is a limb
        ([(0, 1), (1, 2), (2, 3), (3, 4), (2, 5)], 6, [[0, 1, 2], [2, 3, 4], [2, 5]]),
        # a cycle has no root and no branching node: each edge is its own limb
        ([(0, 1), (1, 2), (2, 0)], 3, [[0, 1], [1, 2], [2, 0]]),
        # a loop hanging off a root is walked once around and stops where it closes
        ([(0, 1), (1, 2), (2, 3), (3, 1)], 4, [[0, 1, 2, 3, 1]]),
        # nodes without edges make no limb
        ([(2, 3)], 5, [[2, 3]]),
        ([], 3, []),
    ],
)
def test_skeleton_limbs(edges, n_nodes, limbs):
    found = skeleton_limbs(np.asarray(edges, dtype=np.int64).reshape(-1, 2), n_nodes)
    assert sorted(found) == sorted(limbs)
    # every edge lies on exactly one limb
    walked = [pair for limb in found for pair in itertools.pairwise(limb)]
    assert sorted(walked) == sorted(tuple(e) for e in edges)


# a horizontal chain 0 -> 1 -> 2 that forks at 2 up to 3 and down to 4; node 5 has no edge
GRAPH = Skeleton(["a", "b", "c", "up", "down", "alone"], [(0, 1), (1, 2), (2, 3), (2, 4)])
XY = [(2.0, 10.0), (8.0, 10.0), (14.0, 10.0), (14.0, 4.0), (14.0, 16.0), (4.0, 3.0)]
GRID = (20, 20)


def segment_map(a: tuple[float, float], b: tuple[float, float], stride: int = 1) -> np.ndarray:
    """exp(-d^2 / 2 sigma^2) of each grid cell's distance d to the segment a-b (x, y in input pixels)."""
    ys, xs = np.mgrid[0 : GRID[0], 0 : GRID[1]] * float(stride)
    p = np.stack([xs, ys], axis=-1)
    a_, b_ = np.asarray(a), np.asarray(b)
    t = np.clip(((p - a_) @ (b_ - a_)) / np.dot(b_ - a_, b_ - a_), 0.0, 1.0)
    d = np.linalg.norm(p - (a_ + t[..., None] * (b_ - a_)), axis=-1)
    return np.exp(-(d**2) / (2 * SIGMA**2))


def draw(xy=XY, visible=None) -> np.ndarray:
    points = torch.tensor([[xy]], dtype=torch.float32)
    vis = None if visible is None else torch.tensor([[visible]])
    return posture_graph_maps(points, GRAPH.edge_array(), GRID, 1, SIGMA, vis)[0].numpy()


def test_edge_limb_and_graph_maps_at_known_coordinates():
    maps = draw()
    limbs = skeleton_limbs(GRAPH.edge_array(), len(GRAPH.nodes))
    assert sorted(limbs) == [[0, 1, 2], [2, 3], [2, 4]]
    n_edges, n_limbs = len(GRAPH.edges), len(limbs)
    assert maps.shape == (posture_graph_channels(GRAPH), *GRID) == (n_edges + n_limbs + 2, *GRID)
    edges = maps[:n_edges]
    for e, (src, dst) in enumerate(GRAPH.edges):
        np.testing.assert_allclose(edges[e], segment_map(XY[src], XY[dst]), atol=1e-5)
    # 1 on the segment, a Gaussian of the distance beside it and past its ends
    assert np.all(edges[0][10, 2:9] == pytest.approx(1.0))
    assert edges[0][13, 5] == pytest.approx(math.exp(-9 / (2 * SIGMA**2)), rel=1e-5)
    assert edges[0][10, 0] == pytest.approx(math.exp(-4 / (2 * SIGMA**2)), rel=1e-5)
    limb_maps = maps[n_edges : n_edges + n_limbs]
    for limb, limb_map in zip(limbs, limb_maps):
        members = [GRAPH.edges.index(pair) for pair in itertools.pairwise(limb)]
        np.testing.assert_allclose(limb_map, edges[members].max(axis=0))
    graph, graph_peaks = maps[-2], maps[-1]
    np.testing.assert_allclose(graph, edges.max(axis=0))
    # the last map adds every keypoint's peak: the node without an edge shows only there
    peaks = confidence_maps(torch.tensor([[XY]]), GRID, 1, SIGMA)[0].numpy().max(axis=0)
    np.testing.assert_allclose(graph_peaks, np.maximum(graph, peaks), atol=1e-6)
    assert graph[3, 4] < 1e-4 and graph_peaks[3, 4] == pytest.approx(1.0)


def test_missing_and_hidden_nodes_draw_nothing():
    full = draw()
    missing = list(XY)
    missing[4] = (NAN, NAN)
    for maps in (draw(missing), draw(visible=[True, True, True, True, False, True])):
        np.testing.assert_array_equal(maps[3], 0.0)  # edge 2 -> 4
        limb_down = 4 + skeleton_limbs(GRAPH.edge_array(), 6).index([2, 4])
        np.testing.assert_array_equal(maps[limb_down], 0.0)
        np.testing.assert_allclose(maps[:3], full[:3])  # the other edges are untouched
        np.testing.assert_allclose(maps[-2], full[:3].max(axis=0))
    nothing = draw([(NAN, NAN)] * 6)
    np.testing.assert_array_equal(nothing, 0.0)


def test_instances_combine_by_their_maximum_at_any_stride():
    shifted = [(x + 1.0, y + 5.0) for x, y in XY]
    points = torch.tensor([[XY, shifted]], dtype=torch.float32)
    both = posture_graph_maps(points, GRAPH.edge_array(), GRID, 2, SIGMA)[0].numpy()
    first = posture_graph_maps(points[:, :1], GRAPH.edge_array(), GRID, 2, SIGMA)[0].numpy()
    second = posture_graph_maps(points[:, 1:], GRAPH.edge_array(), GRID, 2, SIGMA)[0].numpy()
    np.testing.assert_allclose(both, np.maximum(first, second))
    np.testing.assert_allclose(both[0], np.maximum(segment_map(XY[0], XY[1], 2), segment_map(shifted[0], shifted[1], 2)),
                               atol=1e-5)


@pytest.mark.parametrize("backbone", ["unet", "stacked_hourglass"])
def test_model_graph_output_matches_its_targets(backbone):
    cfg = TrainingConfig()
    cfg.model.backbone = backbone
    cfg.model.top_level = 4
    cfg.model.unet.filters, cfg.model.unet.max_stride = 8, 16
    cfg.model.stacked_hourglass.filters = 16
    cfg.model.heads.confmaps.posture_graph = True
    model = build_model(cfg, GRAPH).train()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    points = torch.tensor([[XY], [XY]], dtype=torch.float32) * 3
    targets = model_targets(cfg, points, (64, 64), GRAPH.edge_array())
    assert set(out) == set(targets)
    assert out["confmaps.graph"].shape == targets["confmaps.graph"].shape == (2, posture_graph_channels(GRAPH), 16, 16)
    for key in out:
        assert out[key].shape == targets[key].shape
    model.eval()
    with torch.no_grad():
        assert list(model(torch.rand(1, 1, 64, 64))) == ["confmaps"]
