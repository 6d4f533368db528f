"""Offline stitching: assign short, conservative tracklets to a known number of identities.

The online pass (``tracker``) cuts a tracklet whenever an association is ambiguous, so each
tracklet very likely holds one animal. Here all tracklets of a video are joined into at most
``n_identities`` chains by a min-cost flow (successive shortest paths): a chain is a sequence of
tracklets, each ending before the next starts, so two tracklets that overlap in time can never
share an identity. Covering an instance earns a reward; linking tracklet ``i`` to ``j`` across a
gap costs the negative log-likelihood of ``j``'s start under a constant-velocity extrapolation of
``i`` (checked in both directions) plus optional body-shape (mean limb lengths), image-appearance
(grey-level histograms) and learnt-appearance (:mod:`.embedding`) terms. Because the optimum is
global, one bad frame cannot swap two animals for the rest of the video.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass

import numpy as np

from .similarity import centroids, squared_norm


@dataclass
class TrackletSummary:
    """Per-tracklet arrays (index = tracklet id) used by the link costs."""

    start: np.ndarray  # (m,) first frame
    end: np.ndarray  # (m,) last frame
    count: np.ndarray  # (m,) number of instances
    start_pos: np.ndarray  # (m, 2) centroid at start
    end_pos: np.ndarray  # (m, 2) centroid at end
    start_pose: np.ndarray  # (m, K, 2) first pose
    end_pose: np.ndarray  # (m, K, 2) last pose
    start_vel: np.ndarray  # (m, 2) px/frame near the start
    end_vel: np.ndarray  # (m, 2) px/frame near the end
    shape: np.ndarray  # (m, E) mean limb lengths (NaN when never seen)
    shape_sigma: np.ndarray  # (E,) within-tracklet spread of each limb length
    step_sigma: float  # typical centroid displacement per frame inside tracklets
    appearance: np.ndarray | None = None  # (m, B) mean normalised intensity histogram, or None
    appearance_spread: float = 1.0  # typical distance of a sample's histogram to its tracklet's mean
    embedding: np.ndarray | None = None  # (m, D) L2-normalised mean learnt embedding (.embedding), or None
    embedding_same: float = 0.0  # typical cosine distance of two halves of one tracklet (same animal)
    embedding_spread: float = 1.0  # typical distance of two animals' tracklets minus embedding_same


def limb_lengths(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(n, E)`` lengths of the skeleton edges (NaN where a node is missing).

    Skeletons without edges use every node's distance to the instance centroid instead.
    """
    if len(edges) == 0:
        c = centroids(points)
        return np.sqrt(squared_norm(points - c[:, None, :]))  # = np.linalg.norm(..., axis=-1), faster
    # np.take: the same selection as points[:, edges[:, 0]], an order of magnitude faster on long arrays
    return np.sqrt(squared_norm(np.take(points, edges[:, 0], axis=1) - np.take(points, edges[:, 1], axis=1)))


def summarise_tracklets(
    unit: np.ndarray,
    frames: np.ndarray,
    points: np.ndarray,
    edges: np.ndarray,
    fit_span: int = 5,
    *,
    centroid: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> tuple[TrackletSummary, np.ndarray]:
    """Summaries of the tracklets named by ``unit`` (``-1`` rows ignored); returns (summary, unit ids).

    Tracklet ids are compacted to ``0..m-1``; the second return value maps them back to ``unit``.
    ``centroid`` and ``lengths`` are ``centroids(points)`` and ``limb_lengths(points, edges)``
    when the caller has them (both are per row, so taking rows of them gives the same values).
    """
    keep = np.flatnonzero(unit >= 0)
    rows = keep[np.lexsort((frames[keep], unit[keep]))]
    u, f, p = unit[rows], frames[rows], points[rows]
    ids, first, count = np.unique(u, return_index=True, return_counts=True)
    last = first + count - 1
    c = centroids(p) if centroid is None else centroid[rows]
    # fill frames whose centroid is missing with the tracklet's nearest known value is overkill:
    # instances reaching here have at least one node, so centroids are finite
    span = np.minimum(fit_span, count - 1)
    a, b = last - span, last
    dt_end = np.maximum(f[b] - f[a], 1)[:, None]
    end_vel = np.where(span[:, None] > 0, (c[b] - c[a]) / dt_end, 0.0)
    a2, b2 = first, first + span
    dt_start = np.maximum(f[b2] - f[a2], 1)[:, None]
    start_vel = np.where(span[:, None] > 0, (c[b2] - c[a2]) / dt_start, 0.0)

    lengths = limb_lengths(p, edges) if lengths is None else lengths[rows]  # (n, E)
    seen = ~np.isnan(lengths)
    sums = np.add.reduceat(np.where(seen, lengths, 0.0), first, axis=0)
    nseen = np.add.reduceat(seen.astype(np.int64), first, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shape = sums / nseen
    resid = lengths - np.repeat(shape, count, axis=0)
    with np.errstate(invalid="ignore"):
        spread = (
            np.sqrt(np.nanmean(resid**2, axis=0)) if resid.size and seen.any() else np.zeros(lengths.shape[1])
        )
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)

    same = u[1:] == u[:-1]
    steps = np.sqrt(squared_norm(c[1:] - c[:-1]))[same] / np.maximum(f[1:] - f[:-1], 1)[same]
    # a high percentile: animals that mostly sit still still run now and then
    step_sigma = float(np.percentile(steps, 90)) if len(steps) else 1.0
    summary = TrackletSummary(
        start=f[first],
        end=f[last],
        count=count,
        start_pos=c[first],
        end_pos=c[last],
        start_pose=p[first],
        end_pose=p[last],
        start_vel=start_vel,
        end_vel=end_vel,
        shape=shape,
        shape_sigma=spread,
        step_sigma=max(step_sigma, 0.5),
    )
    return summary, ids


def link_costs(
    s: TrackletSummary,
    src: np.ndarray,
    dst: int | np.ndarray,
    position_sigma: float,
    motion_horizon: int,
    shape_weight: float,
    appearance_weight: float = 0.0,
    embedding_weight: float = 0.0,
) -> np.ndarray:
    """Cost of continuing each tracklet in ``src`` with tracklet ``dst``.

    ``dst`` is one tracklet for all of ``src``, or an array as long as ``src`` (one pair per
    element); either way every pair's cost has the same bits, so all links of a video can be
    costed in one call.
    """
    src = np.asarray(src)
    dst = np.broadcast_to(np.asarray(dst), src.shape)
    gap = (s.start[dst] - s.end[src]).astype(np.float64)
    horizon = np.minimum(gap, motion_horizon)[:, None]
    # whole poses, not centroids: the heading tells apart two animals that cross at one point
    fwd = s.end_pose[src] + (s.end_vel[src] * horizon)[:, None, :]
    bwd = s.start_pose[dst] - (s.start_vel[dst] * horizon)[:, None, :]
    e_f = squared_norm(fwd - s.start_pose[dst])  # (n, K)
    e_b = squared_norm(bwd - s.end_pose[src])
    both = ~np.isnan(e_f)
    n_common = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d2_pose = (
            0.5 * (np.where(both, e_f, 0.0).sum(axis=1) + np.where(both, e_b, 0.0).sum(axis=1)) / n_common
        )
    cfwd = s.end_pos[src] + s.end_vel[src] * horizon
    d2_centroid = squared_norm(cfwd - s.start_pos[dst])
    d2 = np.where(n_common > 0, d2_pose, d2_centroid)
    # random-walk spread: animals that sit still for long gaps stay put, runners spread with sqrt(gap)
    var = position_sigma**2 + s.step_sigma**2 * gap
    cost = d2 / (2.0 * var) + np.log(var)
    if shape_weight > 0 and s.shape.shape[1]:
        diff = s.shape[src] - s.shape[dst]
        n_factor = (1.0 / s.count[src] + 1.0 / s.count[dst])[:, None]
        z2 = diff**2 / (2.0 * s.shape_sigma**2 * n_factor)
        cost = cost + shape_weight * np.where(np.isnan(z2), 0.0, z2).sum(axis=1)
    if s.appearance is not None and appearance_weight > 0:
        # Hellinger distance squared (1 - Bhattacharyya coefficient), in units of the within-tracklet spread
        bc = np.sqrt(s.appearance[src] * s.appearance[dst]).sum(axis=1)
        cost = cost + appearance_weight * np.clip(1.0 - bc, 0.0, None) / s.appearance_spread
    if s.embedding is not None and embedding_weight > 0:
        # cosine distance of the tracklets' mean learnt embeddings: 0 up to what two halves of one
        # tracklet typically show, 1 at what two animals seen together typically show
        d = 1.0 - (s.embedding[src] * s.embedding[dst]).sum(axis=1)
        cost = cost + embedding_weight * np.clip(d - s.embedding_same, 0.0, None) / s.embedding_spread
    return cost


def appearance_histograms(
    reader, frames: np.ndarray, positions: np.ndarray, radius: float, bins: int = 16
) -> np.ndarray:
    """Normalised grey-level histograms ``(n, bins)`` of square patches around ``positions`` on ``frames``.

    Frames are read once each, in order; patches are clipped to the image.
    """
    from .flow import to_gray

    out = np.zeros((len(frames), bins))
    order = np.argsort(frames, kind="stable")
    r = max(round(radius), 2)
    uniq, starts = np.unique(frames[order], return_index=True)
    stops = np.append(starts[1:], len(order))
    for f, a, b in zip(uniq.tolist(), starts.tolist(), stops.tolist()):
        img = to_gray(reader.frame(int(f)))
        h, w = img.shape
        for i in order[a:b].tolist():
            x, y = positions[i]
            if not np.isfinite(x) or not np.isfinite(y):
                continue
            x0, x1 = int(np.clip(x - r, 0, w)), int(np.clip(x + r + 1, 0, w))
            y0, y1 = int(np.clip(y - r, 0, h)), int(np.clip(y + r + 1, 0, h))
            patch = img[y0:y1, x0:x1]
            if patch.size:
                out[i] = (
                    np.bincount((patch.ravel().astype(np.int64) * bins) >> 8, minlength=bins)[:bins]
                    / patch.size
                )
    return out


def add_appearance(
    s: TrackletSummary,
    unit: np.ndarray,
    frames: np.ndarray,
    points: np.ndarray,
    reader,
    radius: float,
    samples: int = 5,
) -> None:
    """Fill ``s.appearance`` with each tracklet's mean patch histogram over up to ``samples`` instances.

    ``unit``/``frames``/``points`` are the arrays ``s`` was summarised from (tracklets in the same
    sorted-id order as :func:`summarise_tracklets`).
    """
    keep = np.flatnonzero(unit >= 0)
    order = keep[np.lexsort((frames[keep], unit[keep]))]
    u = unit[order]
    _, first, count = np.unique(u, return_index=True, return_counts=True)
    # evenly spaced samples inside each tracklet
    k = np.minimum(count, samples)
    rep = np.repeat(np.arange(len(first)), k)
    within = np.concatenate([np.linspace(0, c - 1, n).round().astype(np.int64) for c, n in zip(count, k)])
    rows = order[first[rep] + within]
    hist = appearance_histograms(reader, frames[rows], centroids(points[rows]), radius)
    sums = np.zeros((len(first), hist.shape[1]))
    np.add.at(sums, rep, hist)
    mean = sums / k[:, None]
    mean /= np.maximum(mean.sum(axis=1, keepdims=True), 1e-12)
    bc = np.sqrt(hist * mean[rep]).sum(axis=1)
    spread = float(np.median(1.0 - bc)) if len(bc) else 1.0
    s.appearance = mean
    s.appearance_spread = max(spread, 1e-3)


_LINK_CHUNK = 1 << 15  # links costed per call: bounds the (links, K, 2) temporaries


class _FlowGraph:
    """A residual graph for min-cost flow with unit capacities on tracklet nodes."""

    def __init__(self, n_nodes: int) -> None:
        self.adj: list[list[int]] = [[] for _ in range(n_nodes)]
        self.to: list[int] = []
        self.cap: list[int] = []
        self.cost: list[float] = []

    def add(self, u: int, v: int, cap: int, cost: float) -> None:
        self.adj[u].append(len(self.to))
        self.to.append(v)
        self.cap.append(cap)
        self.cost.append(cost)
        self.adj[v].append(len(self.to))
        self.to.append(u)
        self.cap.append(0)
        self.cost.append(-cost)


def _min_cost_paths(graph: _FlowGraph, topo: list[int], source: int, sink: int, max_paths: int) -> None:
    """Push up to ``max_paths`` units from source to sink while each path lowers the total cost.

    Potentials start from a shortest-path pass over the DAG in ``topo`` order (costs may be
    negative there), then every augmentation runs Dijkstra on reduced costs.
    """
    n = len(graph.adj)
    inf = float("inf")
    pot = [inf] * n
    pot[source] = 0.0
    for u in topo:
        pu = pot[u]
        if pu == inf:
            continue
        for e in graph.adj[u]:
            if graph.cap[e] > 0:
                v = graph.to[e]
                nd = pu + graph.cost[e]
                pot[v] = min(pot[v], nd)
    pot = [p if p < inf else 0.0 for p in pot]
    to, cap, cost, adj = graph.to, graph.cap, graph.cost, graph.adj
    for _ in range(max_paths):
        dist = [inf] * n
        prev_edge = [-1] * n
        dist[source] = 0.0
        heap = [(0.0, source)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            pu = pot[u]
            for e in adj[u]:
                if cap[e] <= 0:
                    continue
                v = to[e]
                nd = d + cost[e] + pu - pot[v]
                if nd < dist[v] - 1e-12:
                    dist[v] = nd
                    prev_edge[v] = e
                    heapq.heappush(heap, (nd, v))
        if dist[sink] == inf:
            return
        path_cost = dist[sink] + pot[sink] - pot[source]
        if path_cost >= 0:
            return
        reach = max(d for d in dist if d < inf)
        for v in range(n):
            pot[v] += dist[v] if dist[v] < inf else reach
        v = sink
        while v != source:
            e = prev_edge[v]
            cap[e] -= 1
            cap[e ^ 1] += 1
            v = to[e ^ 1]


def subset_summary(s: TrackletSummary, idx: np.ndarray) -> TrackletSummary:
    """The summary of the tracklets ``idx`` only (shared scales kept)."""
    out = TrackletSummary(**{k: v for k, v in vars(s).items()})
    for name in (
        "start",
        "end",
        "count",
        "start_pos",
        "end_pos",
        "start_pose",
        "end_pose",
        "start_vel",
        "end_vel",
        "shape",
    ):
        setattr(out, name, getattr(s, name)[idx])
    if s.appearance is not None:
        out.appearance = s.appearance[idx]
    if s.embedding is not None:
        out.embedding = s.embedding[idx]
    return out


def stitch_tracklets(
    s: TrackletSummary,
    n_identities: int,
    *,
    position_sigma: float,
    reward: float = 20.0,
    max_gap: int = 250,
    max_predecessors: int = 10,
    motion_horizon: int = 30,
    shape_weight: float = 1.0,
    appearance_weight: float = 0.0,
    min_length: int = 0,
    insert_margin: float = 2.0,
    embedding_weight: float = 0.0,
) -> np.ndarray:
    """Identity (``0..n_identities-1``, or ``-1`` = left out) of each tracklet in ``s``.

    With ``min_length > 0`` stitching is hierarchical: the tracklets of at least ``min_length``
    instances are joined first by the global min-cost flow, so short fragments from bad frames
    cannot steer which long stretch continues which identity; each shorter tracklet is then
    inserted, longest first, into the identity whose chain it fits best (cost of the links into
    and out of it minus the link it replaces), provided that beats leaving it out and the
    runner-up identity is at least ``insert_margin`` worse; otherwise it stays untracked.
    Identities are numbered by the first frame of their chain.
    """
    costs = {
        "position_sigma": position_sigma,
        "motion_horizon": motion_horizon,
        "shape_weight": shape_weight,
        "appearance_weight": appearance_weight,
        "embedding_weight": embedding_weight,
    }
    m = len(s.start)
    long_ = np.flatnonzero(s.count >= min_length) if min_length > 0 else np.arange(m)
    if s.count[long_].sum() < 0.5 * s.count.sum():
        long_ = np.arange(m)  # mostly short fragments: no long stretches to anchor on, one global pass
    identity = np.full(m, -1, dtype=np.int64)
    identity[long_] = _flow_stitch(
        subset_summary(s, long_),
        n_identities,
        reward=reward,
        max_gap=max_gap,
        max_predecessors=max_predecessors,
        **costs,
    )
    short = np.setdiff1d(np.arange(m), long_)
    if len(short) == 0:
        return identity
    members: list[list[int]] = [
        sorted(np.flatnonzero(identity == k).tolist(), key=lambda i: s.start[i]) for k in range(n_identities)
    ]
    # start frames of each chain, kept sorted beside it so each lookup is a bisection
    member_starts: list[list[int]] = [[int(s.start[i]) for i in chain] for chain in members]

    for j in short[np.argsort(-s.count[short], kind="stable")].tolist():
        # where j could go: each identity it does not overlap (one empty identity stands for all)
        places = []
        for k in range(n_identities):
            chain = members[k]
            pos = bisect.bisect_left(member_starts[k], int(s.start[j]))
            prev = chain[pos - 1] if pos > 0 else -1
            nxt = chain[pos] if pos < len(chain) else -1
            if (prev >= 0 and s.end[prev] >= s.start[j]) or (nxt >= 0 and s.start[nxt] <= s.end[j]):
                continue  # overlaps this identity in time
            if not chain and any(not members[o[0]] for o in places):
                continue  # empty identities are interchangeable: one option for all of them
            places.append((k, pos, prev, nxt))
        # the links into, out of and across j of every place, costed in one call (same bits as one
        # call per link)
        src, dst = [], []
        for _, _, prev, nxt in places:
            if prev >= 0 and s.start[j] - s.end[prev] <= max_gap:
                src.append(prev), dst.append(j)
            if nxt >= 0 and s.start[nxt] - s.end[j] <= max_gap:
                src.append(j), dst.append(nxt)
            if prev >= 0 and nxt >= 0 and s.start[nxt] - s.end[prev] <= max_gap:
                src.append(prev), dst.append(nxt)
        costed = iter(
            link_costs(
                s, np.asarray(src, np.int64), np.asarray(dst, np.int64), position_sigma, motion_horizon,
                shape_weight, appearance_weight, embedding_weight,
            ).tolist()
            if src
            else ()
        )  # fmt: skip
        options = []
        for k, pos, prev, nxt in places:
            cost = 0.0
            if prev >= 0 and s.start[j] - s.end[prev] <= max_gap:
                cost += next(costed)
            if nxt >= 0 and s.start[nxt] - s.end[j] <= max_gap:
                cost += next(costed)
            if prev >= 0 and nxt >= 0 and s.start[nxt] - s.end[prev] <= max_gap:
                cost -= next(costed)
            options.append((cost, k, pos))
        if not options:
            continue
        options.sort()
        best_cost, k, pos = options[0]
        if best_cost - reward * float(s.count[j]) >= 0:
            continue
        if len(options) > 1 and options[1][0] - best_cost < insert_margin:
            continue  # fits two identities about equally: not worth risking a switch
        members[k].insert(pos, j)
        member_starts[k].insert(pos, int(s.start[j]))
        identity[j] = k
    return identity


def _flow_stitch(
    s: TrackletSummary,
    n_identities: int,
    *,
    position_sigma: float,
    reward: float = 20.0,
    max_gap: int = 250,
    max_predecessors: int = 10,
    motion_horizon: int = 30,
    shape_weight: float = 1.0,
    appearance_weight: float = 0.0,
    embedding_weight: float = 0.0,
) -> np.ndarray:
    """Identities of all tracklets in ``s`` from one min-cost flow (see module docs)."""
    m = len(s.start)
    if m == 0 or n_identities <= 0:
        return np.full(m, -1, dtype=np.int64)
    source, sink = 0, 1
    graph = _FlowGraph(2 + 2 * m)
    by_start = np.argsort(s.start, kind="stable")
    for i in range(m):
        graph.add(source, 2 + 2 * i, 1, 0.0)
        graph.add(2 + 2 * i, 3 + 2 * i, 1, -reward * float(s.count[i]))
        graph.add(3 + 2 * i, sink, 1, 0.0)
    end_order = np.argsort(s.end, kind="stable")
    ends_sorted = s.end[end_order]
    # every tracklet ending in the max_gap frames before j starts may precede j: cost all those
    # links in one call, then keep each j's cheapest and most recent as before
    lo = np.searchsorted(ends_sorted, s.start - max_gap, "left")
    hi = np.maximum(np.searchsorted(ends_sorted, s.start, "left"), lo)
    n_pred = hi - lo
    offsets = np.concatenate([[0], np.cumsum(n_pred)])
    pred = end_order[np.arange(offsets[-1]) - np.repeat(offsets[:-1] - lo, n_pred)]
    succ = np.repeat(np.arange(m), n_pred)
    costs_kw = {
        "position_sigma": position_sigma,
        "motion_horizon": motion_horizon,
        "shape_weight": shape_weight,
        "appearance_weight": appearance_weight,
        "embedding_weight": embedding_weight,
    }
    all_costs = np.concatenate(
        [
            link_costs(s, pred[a : a + _LINK_CHUNK], succ[a : a + _LINK_CHUNK], **costs_kw)
            for a in range(0, len(pred), _LINK_CHUNK)
        ]
        or [np.zeros(0)]
    )
    for j in np.flatnonzero(n_pred).tolist():
        src, costs = pred[offsets[j] : offsets[j + 1]], all_costs[offsets[j] : offsets[j + 1]]
        if len(src) > max_predecessors:
            # keep the cheapest links and always the most recent endings (the likely continuations)
            best = np.argpartition(costs, max_predecessors)[:max_predecessors]
            recent = np.arange(max(len(src) - max_predecessors, 0), len(src))
            best = np.union1d(best, recent)
            src, costs = src[best], costs[best]
        for i, c in zip(src.tolist(), costs.tolist()):
            graph.add(3 + 2 * i, 2 + 2 * j, 1, c)
    topo = [source]
    for i in by_start.tolist():
        topo.extend((2 + 2 * i, 3 + 2 * i))
    topo.append(sink)
    _min_cost_paths(graph, topo, source, sink, n_identities)

    # read the chains back: used edges have their residual reverse capacity set
    successor = np.full(m, -1, dtype=np.int64)
    heads: list[int] = []
    for e in graph.adj[source]:
        if e % 2 == 0 and graph.cap[e] == 0:
            heads.append((graph.to[e] - 2) // 2)
    for i in range(m):
        for e in graph.adj[3 + 2 * i]:
            v = graph.to[e]
            if e % 2 == 0 and graph.cap[e] == 0 and v >= 2 and v % 2 == 0:
                successor[i] = (v - 2) // 2
    identity = np.full(m, -1, dtype=np.int64)
    heads.sort(key=lambda h: (int(s.start[h]), h))
    for k, h in enumerate(heads):
        i = h
        while i >= 0 and identity[i] < 0:
            identity[i] = k
            i = int(successor[i])
    return identity


@dataclass
class Junction:
    """Where identity ``identity`` continues from tracklet ``src`` (ending on ``end``) to ``dst``
    (starting on ``start``); swapping what follows with identity ``other`` would cost ``margin`` more."""

    identity: int
    other: int
    end: int
    start: int
    margin: float


def junction_margins(
    s: TrackletSummary,
    identity: np.ndarray,
    *,
    position_sigma: float,
    max_gap: int,
    motion_horizon: int,
    shape_weight: float = 0.0,
    appearance_weight: float = 0.0,
    embedding_weight: float = 0.0,
) -> list[Junction]:
    """How close the stitcher came to swapping two identities at each join of a chain.

    For a join ``i -> j`` of identity ``k`` and each other identity ``l`` whose chain has a gap
    around it (``l``'s last tracklet ``i2`` ending before ``j`` starts, its next ``j2`` starting after
    ``i`` ends), the alternative is ``k: i -> j2`` and ``l: i2 -> j``; the margin is that pair of
    links' cost minus the chosen pair's (a chain that ends or starts there costs nothing there,
    a link longer than ``max_gap`` cannot be made). Joins with no such alternative are left out;
    a swap seen from both identities' joins is listed once. The margin is negative where the
    links alone prefer the swap (hierarchical stitching inserts short tracklets one by one, and
    covering instances earns a reward the links do not show).
    """
    kw = {
        "position_sigma": position_sigma,
        "motion_horizon": motion_horizon,
        "shape_weight": shape_weight,
        "appearance_weight": appearance_weight,
        "embedding_weight": embedding_weight,
    }
    ids = np.unique(identity[identity >= 0])
    chains = {
        int(k): np.flatnonzero(identity == k)[np.argsort(s.start[identity == k], kind="stable")] for k in ids
    }
    quads: list[tuple[int, int, int, int, int, int]] = []  # (k, l, i, j, i2, j2), -1 = none
    seen: set[tuple[int, int, int, int]] = set()
    for k, chain in chains.items():
        for i, j in zip(chain[:-1].tolist(), chain[1:].tolist()):
            for l_id, other in chains.items():
                if l_id == k:
                    continue
                # l's first tracklet starting after i ends, and the one before it
                pos = int(np.searchsorted(s.start[other], s.end[i], side="right"))
                j2 = int(other[pos]) if pos < len(other) else -1
                i2 = int(other[pos - 1]) if pos > 0 else -1
                if i2 >= 0 and s.end[i2] >= s.start[j]:
                    continue  # l is busy across the whole gap: no swap there
                key = (min(i, i2), max(i, i2), min(j, j2), max(j, j2))
                if key in seen:
                    continue  # the same swap, seen from l's join
                seen.add(key)
                quads.append((k, l_id, i, j, i2, j2))
    if not quads:
        return []
    q = np.asarray(quads, dtype=np.int64)
    k, l_id, i, j, i2, j2 = q.T

    def cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Link costs ``a -> b`` (0 where either is -1; inf beyond ``max_gap``)."""
        out = np.zeros(len(a))
        ok = (a >= 0) & (b >= 0)
        if ok.any():
            out[ok] = link_costs(s, a[ok], b[ok], **kw)
            out[ok] = np.where(s.start[b[ok]] - s.end[a[ok]] > max_gap, np.inf, out[ok])
        return out

    chosen = cost(i, j) + cost(i2, j2)
    swapped = cost(i, j2) + cost(i2, j)
    margin = swapped - chosen
    keep = np.isfinite(margin)
    return [
        Junction(int(a), int(b), int(s.end[c]), int(s.start[d]), float(m))
        for a, b, c, d, m in zip(k[keep], l_id[keep], i[keep], j[keep], margin[keep])
    ]
