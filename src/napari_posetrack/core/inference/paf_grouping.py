"""Bottom-up grouping: part-affinity-field line integrals, per-edge assignment, assembly into instances.

Input is one frame's local peaks (from :func:`~napari_posetrack.core.inference.peaks.find_local_peaks`)
and its part affinity fields; output is a set of instances. Scoring every candidate connection of
every edge is one vectorised sampling of the fields; only the small per-edge assignment problems
and the assembly walk over edges run in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GroupingOptions:
    """Knobs of bottom-up grouping.

    Parameters
    ----------
    n_line_points
        Samples taken along each candidate connection for the line integral.
    min_line_score
        A sample counts as "on the limb" when the field's projection onto the connection reaches it.
    min_fraction_on_limb
        Fraction of samples that must be on the limb for a connection to be kept.
    max_edge_length
        Connections longer than this (in the peaks' pixel units) are penalised; ``None`` means half the
        larger image side, as SLEAP does.
    distance_penalty_weight
        How strongly over-long connections are penalised.
    min_instance_nodes
        Instances with fewer located nodes are dropped.
    max_peaks_per_node
        Only the strongest peaks of each node take part. Candidate connections grow with the square
        of the peak count, so a weak model at a low threshold could otherwise exhaust memory.
    """

    n_line_points: int = 10
    min_line_score: float = 0.25
    min_fraction_on_limb: float = 0.8
    max_edge_length: float | None = None
    distance_penalty_weight: float = 1.0
    min_instance_nodes: int = 1
    max_peaks_per_node: int = 64


def line_integral_scores(
    pafs: np.ndarray,
    src_xy: np.ndarray,
    dst_xy: np.ndarray,
    edge_index: np.ndarray,
    paf_stride: float,
    options: GroupingOptions,
    image_size: tuple[int, int],
) -> np.ndarray:
    """Score candidate connections by the mean PAF projection along the segment.

    Parameters
    ----------
    pafs
        ``(2 * n_edges, h, w)`` fields, channels ``(2e, 2e + 1)`` holding ``(x, y)`` of edge ``e``.
    src_xy, dst_xy
        ``(P, 2)`` endpoints of ``P`` candidate connections in pixels.
    edge_index
        ``(P,)`` edge of each candidate.
    paf_stride
        Pixels per field cell.
    image_size
        ``(height, width)`` of the image in pixels (for the default maximum edge length).

    Returns
    -------
    ``(P,)`` scores; candidates failing the on-limb test score ``-inf``.
    """
    if len(src_xy) == 0:
        return np.zeros(0)
    _, h, w = pafs.shape
    vec = dst_xy - src_xy
    length = np.linalg.norm(vec, axis=1)
    unit = vec / np.maximum(length, 1e-6)[:, None]
    t = np.linspace(0.0, 1.0, options.n_line_points)
    samples = src_xy[:, None, :] + t[None, :, None] * vec[:, None, :]  # (P, S, 2) in pixels
    # field cell (i, j) holds the value at pixel (j * stride, i * stride)
    cols = np.clip(np.rint(samples[..., 0] / paf_stride), 0, w - 1).astype(np.int64)
    rows = np.clip(np.rint(samples[..., 1] / paf_stride), 0, h - 1).astype(np.int64)
    fx = pafs[2 * edge_index[:, None], rows, cols]
    fy = pafs[2 * edge_index[:, None] + 1, rows, cols]
    projection = fx * unit[:, 0, None] + fy * unit[:, 1, None]  # (P, S)
    max_len = options.max_edge_length if options.max_edge_length is not None else max(image_size) / 2
    penalty = np.minimum(0.0, max_len / np.maximum(length, 1e-6) - 1.0) * options.distance_penalty_weight
    score = projection.mean(axis=1) + penalty
    on_limb = (projection >= options.min_line_score).mean(axis=1) >= options.min_fraction_on_limb
    return np.where(on_limb, score, -np.inf)


def strongest_per_node(nodes: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Indices (ascending) of the ``k`` highest ``values`` of each node."""
    order = np.lexsort((-values, nodes))  # by node, strongest first within it
    sorted_nodes = nodes[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_nodes, sorted_nodes, side="left")
    return np.sort(order[rank < k])


def group_instances(
    peaks_xy: np.ndarray,
    peak_nodes: np.ndarray,
    peak_values: np.ndarray,
    pafs: np.ndarray,
    edges: np.ndarray,
    n_nodes: int,
    paf_stride: float,
    image_size: tuple[int, int],
    options: GroupingOptions | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assemble one frame's peaks into instances using part affinity fields.

    Parameters
    ----------
    peaks_xy
        ``(K, 2)`` peak coordinates in pixels.
    peak_nodes, peak_values
        ``(K,)`` node index and confidence of each peak.
    pafs
        ``(2 * n_edges, h, w)`` part affinity fields of the frame.
    edges
        ``(n_edges, 2)`` ``(source, destination)`` node indices (the skeleton's edges).

    Returns
    -------
    points, point_scores, instance_scores
        ``(n, n_nodes, 2)`` coordinates (NaN where a node was not found), ``(n, n_nodes)`` peak values,
        ``(n,)`` instance scores in ``[0, 1]``: the mean over nodes and edges of peak values and
        connection scores (missing ones count as 0), so a complete, confident instance scores near 1.
    """
    from scipy.optimize import linear_sum_assignment

    options = options or GroupingOptions()
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    peaks_xy = np.asarray(peaks_xy, dtype=np.float64).reshape(-1, 2)
    peak_nodes = np.asarray(peak_nodes, dtype=np.int64)
    peak_values = np.asarray(peak_values, dtype=np.float64)
    strongest = strongest_per_node(peak_nodes, peak_values, options.max_peaks_per_node)
    peaks_xy, peak_nodes, peak_values = peaks_xy[strongest], peak_nodes[strongest], peak_values[strongest]

    # every (source peak, destination peak) pair of every edge, built at once
    src_list, dst_list, edge_list = [], [], []
    peaks_of_node = [np.flatnonzero(peak_nodes == n) for n in range(n_nodes)]
    for e, (s, d) in enumerate(edges):
        ps, pd = peaks_of_node[s], peaks_of_node[d]
        if len(ps) == 0 or len(pd) == 0:
            continue
        grid_s, grid_d = np.meshgrid(ps, pd, indexing="ij")
        src_list.append(grid_s.ravel())
        dst_list.append(grid_d.ravel())
        edge_list.append(np.full(grid_s.size, e))
    if src_list:
        cand_src = np.concatenate(src_list)
        cand_dst = np.concatenate(dst_list)
        cand_edge = np.concatenate(edge_list)
        scores = line_integral_scores(
            pafs, peaks_xy[cand_src], peaks_xy[cand_dst], cand_edge, paf_stride, options, image_size
        )
    else:
        cand_src = cand_dst = cand_edge = np.zeros(0, dtype=np.int64)
        scores = np.zeros(0)

    # per-edge one-to-one assignment maximising the connection scores
    connections: list[tuple[int, int, int, float]] = []  # (edge, src peak, dst peak, score)
    for e in range(len(edges)):
        sel = np.flatnonzero((cand_edge == e) & np.isfinite(scores))
        if len(sel) == 0:
            continue
        src_ids, src_inv = np.unique(cand_src[sel], return_inverse=True)
        dst_ids, dst_inv = np.unique(cand_dst[sel], return_inverse=True)
        cost = np.full((len(src_ids), len(dst_ids)), 1e6)
        cost[src_inv, dst_inv] = -scores[sel]
        r, c = linear_sum_assignment(cost)
        keep = cost[r, c] < 1e6
        for ri, ci in zip(r[keep], c[keep]):
            connections.append((e, int(src_ids[ri]), int(dst_ids[ci]), float(-cost[ri, ci])))

    # assembly: walk connections in edge order, growing instances; peaks belong to one instance
    instance_of_peak = np.full(len(peaks_xy), -1, dtype=np.int64)
    members: list[np.ndarray] = []  # per instance: (n_nodes,) peak index or -1
    edge_scores: list[dict[int, float]] = []
    for e, ps, pd, sc in connections:
        a, b = instance_of_peak[ps], instance_of_peak[pd]
        s_node, d_node = edges[e]
        if a < 0 and b < 0:
            slot = np.full(n_nodes, -1, dtype=np.int64)
            slot[s_node], slot[d_node] = ps, pd
            members.append(slot)
            edge_scores.append({e: sc})
            instance_of_peak[[ps, pd]] = len(members) - 1
        elif a >= 0 and b < 0:
            if members[a][d_node] < 0:
                members[a][d_node] = pd
                instance_of_peak[pd] = a
                edge_scores[a][e] = sc
        elif b >= 0 and a < 0:
            if members[b][s_node] < 0:
                members[b][s_node] = ps
                instance_of_peak[ps] = b
                edge_scores[b][e] = sc
        elif a != b:
            # two partial instances joined by this edge: merge when they share no node
            if np.all((members[a] < 0) | (members[b] < 0)):
                merged = np.where(members[a] >= 0, members[a], members[b])
                members[a] = merged
                members[b] = np.full(n_nodes, -1, dtype=np.int64)
                instance_of_peak[merged[merged >= 0]] = a
                edge_scores[a].update(edge_scores[b])
                edge_scores[a][e] = sc
                edge_scores[b] = {}

    # peaks that joined no connection become single-node instances (skeletons without edges, lone parts)
    for p in np.flatnonzero(instance_of_peak < 0):
        slot = np.full(n_nodes, -1, dtype=np.int64)
        slot[peak_nodes[p]] = p
        members.append(slot)
        edge_scores.append({})
        instance_of_peak[p] = len(members) - 1

    slots = np.array([m for m in members if (m >= 0).any()], dtype=np.int64).reshape(-1, n_nodes)
    scores_kept = [s for m, s in zip(members, edge_scores) if (m >= 0).any()]
    found = slots >= 0
    points = np.where(found[..., None], peaks_xy[np.maximum(slots, 0)], np.nan)
    point_scores = np.where(found, peak_values[np.maximum(slots, 0)], np.nan)
    n_terms = n_nodes + len(edges)
    line_sum = np.array([sum(np.clip(list(s.values()), 0, 1)) for s in scores_kept]) if scores_kept else np.zeros(0)
    instance_scores = (np.nansum(np.clip(point_scores, 0, 1), axis=1) + line_sum) / max(n_terms, 1)
    keep = found.sum(axis=1) >= options.min_instance_nodes
    order = np.argsort(-instance_scores[keep], kind="stable")
    return points[keep][order], point_scores[keep][order], instance_scores[keep][order]
