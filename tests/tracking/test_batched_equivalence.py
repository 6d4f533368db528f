"""The windowed online pass is exact only if each batched building block gives, bit for bit, what
the per-frame one gives: checked here on random inputs with missing nodes, ties and gated pairs."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.tracking.candidates import UnitState, observe_sequence
from napari_posetrack.core.tracking.matching import (
    greedy_match,
    hungarian_match,
    match_batch,
    runner_up_ratio,
    runner_up_ratio_batch,
)
from napari_posetrack.core.tracking.similarity import (
    SIMILARITIES,
    PoseSimilarity,
    bounding_boxes,
    centroids,
    squared_norm,
)
from napari_posetrack.core.tracking.stitching import TrackletSummary, link_costs


def _poses(rng: np.random.Generator, shape: tuple[int, ...], missing: float = 0.15) -> np.ndarray:
    pts = rng.normal(0, 40, (*shape, 2)) + rng.uniform(0, 500, (*shape[:-1], 1, 2))
    pts[rng.random(shape) < missing] = np.nan
    pts[rng.random(shape[:-1]) < 0.05] = np.nan  # whole instances without a node
    return pts


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_reductions_match_the_numpy_expressions_they_replace() -> None:
    rng = np.random.default_rng(0)
    for n_nodes in (1, 2, 7, 13, 24):
        pts = _poses(rng, (300, n_nodes))
        pts[rng.random(pts.shape) < 0.05] = -0.0  # signed zeros must come out as numpy's do
        present = ~np.isnan(pts[..., 0])
        total = np.where(present[..., None], pts, 0.0).sum(axis=-2)
        expected = total / np.maximum(present.sum(axis=-1), 1)[:, None]
        expected[present.sum(axis=-1) == 0] = np.nan
        assert _same_bits(centroids(pts), expected)
        boxes = np.concatenate(
            [np.fmin.reduce(pts, axis=-2) - 1.5, np.fmax.reduce(pts, axis=-2) + 1.5], axis=-1
        )
        assert _same_bits(bounding_boxes(pts, 1.5), boxes)
        assert _same_bits(squared_norm(pts), (pts**2).sum(axis=-1))
        assert _same_bits(np.sqrt(squared_norm(pts)), np.linalg.norm(pts, axis=-1))
        assert _same_bits(squared_norm(pts), np.einsum("...x,...x->...", pts, pts))


@pytest.mark.parametrize("name", SIMILARITIES)
def test_similarity_of_a_window_equals_one_call_per_frame(name: str) -> None:
    rng = np.random.default_rng(1)
    for n_nodes, n_c, n_d in ((2, 2, 2), (7, 4, 5), (13, 5, 3), (24, 1, 6)):
        n_w = 17
        cands, dets = _poses(rng, (n_w, n_c, n_nodes)), _poses(rng, (n_w, n_d, n_nodes))
        dets[:, : min(n_c, n_d)] = cands[:, : min(n_c, n_d)] + rng.normal(
            0, 2, (n_w, min(n_c, n_d), n_nodes, 2)
        )
        sim = PoseSimilarity(name, 12.5, rng.uniform(0.02, 0.1, n_nodes) if name == "oks" else None)
        # detection features of the whole stream at once, cut into frames afterwards, as the tracker does
        features = tuple(
            x.reshape(n_w, n_d, *x.shape[1:]) for x in sim.detection_features(dets.reshape(-1, n_nodes, 2))
        )
        batch = sim.pairs(sim.candidate_features(cands), features)
        assert batch.shape == (n_w, n_c, n_d)
        assert ((batch >= 0) & (batch <= 1)).all()
        for w in range(n_w):
            assert _same_bits(batch[w], sim(cands[w], dets[w]))


def _matrices(rng: np.random.Generator, n_w: int, n_c: int, n_d: int, kind: int) -> np.ndarray:
    if kind == 0:
        return rng.random((n_w, n_c, n_d))
    if kind == 1:
        return rng.integers(0, 4, (n_w, n_c, n_d)) / 4.0  # many exact ties
    return rng.random((n_w, n_c, n_d)) * (rng.random((n_w, n_c, n_d)) < 0.4)  # many gated pairs


@pytest.mark.parametrize("method", ["greedy", "hungarian"])
def test_batched_matching_equals_one_matrix_at_a_time(method: str) -> None:
    rng = np.random.default_rng(2)
    single = greedy_match if method == "greedy" else hungarian_match
    for trial in range(300):
        n_c, n_d = int(rng.integers(0, 7)), int(rng.integers(0, 7))
        if trial % 50 == 0:
            n_c, n_d = 9, 8  # too many assignments to try: scipy for every frame
        sim = _matrices(rng, int(rng.integers(1, 12)), n_c, n_d, trial % 3)
        gate = float(rng.choice([0.0, 0.05, 0.3]))
        cols = match_batch(sim, method, gate)
        for w in range(len(sim)):
            r, c = single(sim[w], gate)
            expected = np.full(n_c, -1)
            expected[r] = c
            assert np.array_equal(cols[w], expected), (trial, w)
        full = (cols >= 0).all(axis=1) & (n_c > 0)
        if full.any():
            ratio = runner_up_ratio_batch(sim[full], cols[full])
            for i, w in enumerate(np.flatnonzero(full)):
                assert _same_bits(ratio[i], runner_up_ratio(sim[w], np.arange(n_c), cols[w]))


@pytest.mark.parametrize("tiny_velocity", [False, True])
def test_observe_sequence_equals_repeated_observe(tiny_velocity: bool) -> None:
    rng = np.random.default_rng(3)
    for trial in range(40):
        n_nodes, n_units, n_w = (
            int(rng.choice([1, 2, 7, 13])),
            int(rng.integers(1, 6)),
            int(rng.integers(1, 300)),
        )
        state = UnitState(n_nodes, track_flow=False)
        ids = state.spawn(_poses(rng, (n_units, n_nodes), missing=0.0), 0)
        state.observe(ids, _poses(rng, (n_units, n_nodes)), 2)
        if tiny_velocity:  # halving near the subnormal range is not exact: the plain recursion runs
            state.velocity[ids] *= 1e-300
        frames = 2 + np.cumsum(rng.integers(1, 4, n_w))
        poses = _poses(rng, (n_w, n_units, n_nodes), missing=0.2)
        if trial % 4 == 0:
            poses[:] = poses[:1]  # standing still: the velocity halves frame after frame
        start = (state.points[ids], state.centroid[ids], state.velocity[ids], state.frame[ids])
        merged, cent, vel = observe_sequence(*(x.copy() for x in start), poses, frames)
        for j in range(n_w):
            state.observe(ids, poses[j], int(frames[j]))
            assert _same_bits(merged[j + 1], state.points[ids])
            assert _same_bits(cent[j + 1], state.centroid[ids])
            assert _same_bits(vel[j + 1], state.velocity[ids])


def test_link_costs_of_many_pairs_equal_one_successor_at_a_time() -> None:
    rng = np.random.default_rng(4)
    m, k = 12, 5
    start = rng.integers(0, 200, m)
    count = rng.integers(1, 30, m)
    s = TrackletSummary(
        start=start,
        end=start + count - 1,
        count=count,
        start_pos=rng.uniform(0, 300, (m, 2)),
        end_pos=rng.uniform(0, 300, (m, 2)),
        start_pose=_poses(rng, (m, k)),
        end_pose=_poses(rng, (m, k)),
        start_vel=rng.normal(0, 2, (m, 2)),
        end_vel=rng.normal(0, 2, (m, 2)),
        shape=rng.uniform(5, 15, (m, k - 1)),
        shape_sigma=rng.uniform(0.5, 2, k - 1),
        step_sigma=2.0,
        appearance=rng.dirichlet(np.ones(8), m),
        appearance_spread=0.1,
    )
    kw = {"position_sigma": 6.0, "motion_horizon": 3, "shape_weight": 0.5, "appearance_weight": 0.3}
    src, dst = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    pairs = link_costs(s, src.ravel(), dst.ravel(), **kw)
    for j in range(m):
        assert _same_bits(pairs.reshape(m, m)[:, j], link_costs(s, np.arange(m), j, **kw))
