"""Every instance on a track, or rejected with a reason, once the number of animals is known.

The online pass and the stitcher are conservative: they leave out instances whose association
is unsure (short fragments that fit two identities, parts of two animals joined, frames with a
missed animal). With ``n`` identities, :func:`complete_identities` then applies two rules per frame:

* at most ``n`` instances: every instance gets an identity and no two share one;
* more than ``n``: the ``n`` that fit the identities best keep (or get) one, the others are
  rejected with a reason (:data:`~napari_posetrack.core.labels.REJECTION_REASONS`).

Where a frame leaves one free identity for one unplaced instance, the choice is forced and made
for all such frames at once. The other frames are solved in time order, each by an assignment
(Hungarian) of its unplaced instances to its free identities, so a run of such frames follows on
from the choices before it. The cost of placing an instance on identity ``k`` at frame ``f`` is the
negative log-likelihood of its pose under ``k``'s expected pose there: a Brownian bridge between
``k``'s nearest observations before and after ``f`` (linear interpolation, variance
``sigma^2 + step^2 (f - a)(b - f) / (b - a)``), or a random walk from the one side seen within
``max_gap`` frames (variance ``sigma^2 + step^2 |gap|``); these are the units of the stitcher's link
costs. The cost is the mean over the nodes both poses have, each node's distance term capped at
4 standard deviations, so a detection far from every animal costs the same on every identity and
cannot push the other instances of its frame around. (The nodes that make a shape outlier
implausible are already left out by the caller, see :mod:`.shape`.)

On a crowded frame the instances not kept are rejected as ``shape`` (implausible limb lengths),
``duplicate`` (its centroid within ``position_sigma`` of a kept instance), ``surplus`` (the others),
or ``empty`` (no visible node: those go first).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import (
    REJECT_DUPLICATE,
    REJECT_EMPTY,
    REJECT_FEW_POINTS,
    REJECT_SHAPE,
    REJECT_SURPLUS,
)
from .similarity import centroids, squared_norm

MAX_NODE_COST = 8.0
"""Cap on a node's squared distance term ``d^2 / (2 var)`` (4 standard deviations)."""
OUTLIER_PENALTY = 4.0
"""Extra cost of keeping a shape outlier on a crowded frame: as if it sat about 3 sigma further off."""


@dataclass
class Choice:
    """A decision of the gap filling: ``row`` went to ``identity``; the best alternative cost ``margin`` more.

    ``alternative`` is where ``row`` goes in that alternative (``-1``: rejected, on a crowded frame).
    """

    frame: int
    row: int
    identity: int
    alternative: int
    margin: float


@dataclass
class Completion:
    """What :func:`complete_identities` decided, row by row (rows of the input arrays)."""

    identity: np.ndarray  # (n,) final identity, -1 = rejected
    reason: np.ndarray  # (n,) int8 rejection code, 0 where an identity was given
    filled: np.ndarray  # (n,) bool: identity given here (the input had -1)
    forced: np.ndarray  # (n,) bool: filled, and the only free identity on its frame
    fit: np.ndarray  # (n,) float32 in [0, 1]: how well a filled row fits its identity (0 elsewhere)
    choices: list[Choice] = field(default_factory=list)


def reject_untracked(
    identity: np.ndarray, points: np.ndarray, outlier: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reasons for the rows left without identity when the number of animals is not known.

    Returns ``(identity, reason)``: identities unchanged; reasons for the ``-1`` rows (no points,
    implausible shape, else too few points to start a track).
    """
    n_present = (~np.isnan(points[..., 0])).sum(axis=1)
    left = identity < 0
    reason = np.zeros(len(identity), dtype=np.int8)
    reason[left] = np.where(
        n_present[left] == 0, REJECT_EMPTY, np.where(outlier[left], REJECT_SHAPE, REJECT_FEW_POINTS)
    )
    return identity.copy(), reason


class _Observations:
    """Where each identity was seen: rows sorted by (identity, frame), searched for any frame."""

    def __init__(self, identity: np.ndarray, frames: np.ndarray) -> None:
        self.origin = int(frames.min()) if len(frames) else 0
        self.span = int(frames.max()) - self.origin + 1 if len(frames) else 1
        rows = np.flatnonzero(identity >= 0)
        key = identity[rows] * self.span + (frames[rows] - self.origin)
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        self.rows = rows[order]

    def around(self, ident: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of each ``ident`` seen last before and first after ``frame`` (``-1`` = none)."""
        n = len(self.key)
        if n == 0:
            return np.full(len(ident), -1, np.int64), np.full(len(ident), -1, np.int64)
        q = ident * self.span + (frame - self.origin)
        lo = np.searchsorted(self.key, q, "left") - 1
        hi = np.searchsorted(self.key, q, "right")
        lo_c, hi_c = np.clip(lo, 0, n - 1), np.clip(hi, 0, n - 1)
        before = np.where((lo >= 0) & (self.key[lo_c] // self.span == ident), self.rows[lo_c], -1)
        after = np.where((hi < n) & (self.key[hi_c] // self.span == ident), self.rows[hi_c], -1)
        return before, after


@dataclass
class _Model:
    """The expected-pose model shared by every cost.

    ``sigma2`` is the spread of a pose around its expected place (px^2), ``step2`` the spread of
    the motion per frame (px^2), as in the stitcher's link costs.
    """

    frames: np.ndarray
    points: np.ndarray
    sigma2: float
    step2: float
    max_gap: int

    def none_cost(self) -> float:
        """Cost of a pair the model knows nothing about (no pose, or no observation within reach):
        as if 2 standard deviations off after the longest gap bridged."""
        return 2.0 + float(np.log(self.sigma2 + self.step2 * self.max_gap))

    def expected(
        self, frame: np.ndarray, before: np.ndarray, after: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected poses ``(q, K, 2)`` (NaN where unknown) and the motion part of their variance
        ``(q,)`` (NaN when no observation is within reach)."""
        fb = np.where(before >= 0, self.frames[np.maximum(before, 0)], frame)
        fa = np.where(after >= 0, self.frames[np.maximum(after, 0)], frame)
        has_b = (before >= 0) & (frame - fb <= self.max_gap)
        has_a = (after >= 0) & (fa - frame <= self.max_gap)
        pb = np.where(has_b[:, None, None], self.points[np.maximum(before, 0)], np.nan)
        pa = np.where(has_a[:, None, None], self.points[np.maximum(after, 0)], np.nan)
        both = has_b & has_a
        span = np.where(both, fa - fb, 1).astype(np.float64)
        w = np.where(both, (frame - fb) / span, 0.0)[:, None, None]
        bridge = pb + w * (pa - pb)
        # a node seen on one side only is expected where it was seen
        exp = np.where(np.isnan(bridge), np.where(np.isnan(pb), pa, pb), bridge)
        motion = self.step2 * np.where(
            both, (frame - fb) * (fa - frame) / span, np.where(has_b, frame - fb, fa - frame)
        )
        return exp, np.where(has_b | has_a, motion, np.nan)

    def costs(self, pose: np.ndarray, exp: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Costs of poses ``(..., K, 2)`` against expectations (broadcast); also the fit in [0, 1].

        Per node, the negative log-likelihood ``d^2 / (2 var) + log var`` with ``var`` =
        ``sigma2 + motion``; the cost is its mean over the better-fitting half of the nodes both
        poses have (at least one).
        """
        var = (self.sigma2 + motion)[..., None]  # (..., 1)
        d2 = squared_norm(pose - exp)
        # capped: a node far from every identity (a detection off the animals) costs the same
        # for all of them, so it cannot push the other instances of its frame around
        quad = np.minimum(d2 / (2.0 * var), MAX_NODE_COST)
        nll = quad + np.log(var)
        n_common = (~np.isnan(nll)).sum(axis=-1)
        m = np.maximum(n_common, 1)
        mean_nll = np.nan_to_num(nll).sum(axis=-1) / m
        mean_quad = np.nan_to_num(quad).sum(axis=-1) / m
        informed = (n_common > 0) & ~np.isnan(motion)
        cost = np.where(informed, mean_nll, self.none_cost())
        fit = np.where(informed, np.exp(-mean_quad), 0.0)
        return cost, fit


def complete_identities(
    identity: np.ndarray,
    frames: np.ndarray,
    points: np.ndarray,
    *,
    n_identities: int,
    position_sigma: float,
    step_sigma: float,
    max_gap: int,
    outlier: np.ndarray,
    scores: np.ndarray,
) -> Completion:
    """Fill and reject per the rules of the module docs.

    Parameters
    ----------
    identity
        ``(n,)`` identities ``0..n_identities-1`` from stitching (``-1`` = none); rows sorted by
        frame, never two rows of one frame on one identity.
    frames, points
        ``(n,)`` frame and ``(n, K, 2)`` pose of each row (NaN = missing node); shape outliers
        keep their points here.
    position_sigma, step_sigma
        Spread of a pose around its expectation (px) and of the motion per frame (px).
    max_gap
        Observations further than this many frames away are not used.
    outlier
        ``(n,)`` rows with implausible limb lengths (kept last on crowded frames).
    scores
        ``(n,)`` detection scores (NaN = unknown): on a crowded frame a low score counts against
        keeping an instance, never for one identity over another.
    """
    n = len(identity)
    ident = identity.astype(np.int64, copy=True)
    reason = np.zeros(n, dtype=np.int8)
    filled = np.zeros(n, dtype=bool)
    forced = np.zeros(n, dtype=bool)
    fit = np.zeros(n, dtype=np.float32)
    out = Completion(ident, reason, filled, forced, fit)
    todo_rows = np.flatnonzero(ident < 0)
    if len(todo_rows) == 0 or n_identities <= 0:
        if n_identities <= 0:
            reason[todo_rows] = REJECT_SURPLUS
        return out
    n_id = int(n_identities)
    frame_ids, count = np.unique(frames, return_counts=True)
    fidx = np.repeat(np.arange(len(frame_ids)), count)
    n_present = (~np.isnan(points[..., 0])).sum(axis=1)

    # the identities used on each frame that has unplaced rows
    uf, u_inv = np.unique(fidx[todo_rows], return_inverse=True)
    occupied = np.zeros((len(uf), n_id), dtype=bool)
    placed = np.flatnonzero(ident >= 0)
    pos = np.clip(np.searchsorted(uf, fidx[placed]), 0, len(uf) - 1)
    hit = uf[pos] == fidx[placed]
    occupied[pos[hit], ident[placed[hit]]] = True
    n_free = n_id - occupied.sum(axis=1)
    n_todo = np.bincount(u_inv, minlength=len(uf))
    crowded = count[uf] > n_id

    # empty instances tell nothing: on a crowded frame they go first
    empty = n_present[todo_rows] == 0
    drop = empty & crowded[u_inv]
    reason[todo_rows[drop]] = REJECT_EMPTY
    n_todo -= np.bincount(u_inv[drop], minlength=len(uf))
    todo_rows, u_inv = todo_rows[~drop], u_inv[~drop]

    # one unplaced row, one free identity: nothing to choose
    only = ((n_todo == 1) & (n_free == 1))[u_inv]
    ident[todo_rows[only]] = np.argmin(occupied[u_inv[only]], axis=1)
    forced[todo_rows[only]] = True
    # crowded frames with no free identity: every unplaced row is rejected
    full = (n_free == 0)[u_inv]
    _reject(out, todo_rows[full], frames, points, outlier, position_sigma)
    rest = ~only & ~full
    todo_rows, u_inv = todo_rows[rest], u_inv[rest]

    model = _Model(frames, points, position_sigma**2, max(step_sigma, 1e-3) ** 2, max_gap)
    if len(todo_rows):
        _choose(out, model, todo_rows, occupied[u_inv], outlier, scores, position_sigma)

    filled[:] = (identity < 0) & (ident >= 0)
    rows = np.flatnonzero(filled)
    if len(rows):
        # how well each filled row fits its identity's other observations (its tracking score)
        full_obs = _Observations(ident, frames)
        before, after = full_obs.around(ident[rows], frames[rows])
        exp, motion = model.expected(frames[rows], before, after)
        fit[rows] = model.costs(points[rows], exp, motion)[1]
    return out


def _choose(
    out: Completion,
    model: _Model,
    rows: np.ndarray,
    occupied: np.ndarray,
    outlier: np.ndarray,
    scores: np.ndarray,
    position_sigma: float,
) -> None:
    """Frames with a real choice, in time order: an assignment of their unplaced ``rows`` (sorted
    by frame; ``occupied`` ``(rows, n)``: identities taken on each row's frame) to free identities.

    Expectations come from every row placed before this step plus the choices already made here,
    so a run of such frames follows on from its start.
    """
    from scipy.optimize import linear_sum_assignment  # kept out of start-up

    frames, points, ident = model.frames, model.points, out.identity
    n_id = occupied.shape[1]
    obs = _Observations(ident, frames)
    # the newest row each identity got in this loop: later than anything ``obs`` knows before it
    recent = np.full(n_id, -1, dtype=np.int64)
    score = np.where(np.isfinite(scores), scores, 1.0)
    keep_cost = -np.log(np.clip(score, 1e-3, 1.0)) + np.where(outlier, OUTLIER_PENALTY, 0.0)
    starts = np.flatnonzero(np.r_[True, frames[rows[1:]] != frames[rows[:-1]]])
    for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(rows)]):
        here = rows[a:b]
        f = int(frames[here[0]])
        free = np.flatnonzero(~occupied[a])
        at = np.full(len(free), f)
        before, after = obs.around(free, at)
        mine = recent[free]
        newer = (mine >= 0) & ((before < 0) | (frames[np.maximum(mine, 0)] > frames[np.maximum(before, 0)]))
        before = np.where(newer, mine, before)
        exp, motion = model.expected(at, before, after)
        cost = model.costs(points[here][:, None], exp[None], motion[None])[0]  # (unplaced, free)
        crowded = len(here) > len(free)
        if crowded:
            # a low score or an implausible shape counts against keeping an instance at all
            cost = cost + keep_cost[here][:, None]
        if len(here) == 1:
            # one instance, several free identities (the usual case): the cheapest, no solver needed
            order = np.argsort(cost[0], kind="stable")
            r, c = np.zeros(1, np.int64), order[:1]
            margin = float(cost[0, order[1]] - cost[0, order[0]])
            out.choices.append(Choice(f, int(here[0]), int(free[order[0]]), int(free[order[1]]), margin))
        else:
            r, c = linear_sum_assignment(cost)
            _record_margins(out, f, here, free, cost, r, c, linear_sum_assignment)
        ident[here[r]] = free[c]
        recent[free[c]] = here[r]
        if crowded:
            _reject(out, np.setdiff1d(here, here[r]), frames, points, outlier, position_sigma)


def _record_margins(
    out: Completion,
    frame: int,
    here: np.ndarray,
    free: np.ndarray,
    cost: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    solve,
) -> None:
    """The closest runner-up of the frame: how much more the best assignment without one of the
    chosen pairs costs, for the pair where that is least (one record per frame)."""
    total = float(cost[r, c].sum())
    big = 1e6 + 10.0 * float(np.abs(cost).max())
    best: Choice | None = None
    for i, k in zip(r.tolist(), c.tolist()):
        alt = cost.copy()
        alt[i, k] = big
        ar, ac = solve(alt)
        alt_total = float(alt[ar, ac].sum())
        if alt_total >= big:
            continue  # no other way to place the frame's rows
        if best is None or alt_total - total < best.margin:
            went = ac[ar == i]
            other = int(free[went[0]]) if len(went) else -1
            best = Choice(frame, int(here[i]), int(free[k]), other, alt_total - total)
    if best is not None:
        out.choices.append(best)


def _reject(
    out: Completion,
    rows: np.ndarray,
    frames: np.ndarray,
    points: np.ndarray,
    outlier: np.ndarray,
    position_sigma: float,
) -> None:
    """Reject ``rows`` of crowded frames: shape outliers, else duplicates of a kept instance, else surplus.

    ``frames`` is sorted, so each row's frame is one slice of rows.
    """
    if len(rows) == 0:
        return
    out.identity[rows] = -1
    # pairs (rejected row, any row of its frame), then those partners that are kept
    lo = np.searchsorted(frames, frames[rows], "left")
    n_pair = np.searchsorted(frames, frames[rows], "right") - lo
    which = np.repeat(np.arange(len(rows)), n_pair)
    offsets = np.concatenate([[0], np.cumsum(n_pair)])
    partner = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - lo, n_pair)
    kept = out.identity[partner] >= 0
    which, partner = which[kept], partner[kept]
    c_rej = centroids(points[rows])
    c_kept = centroids(points[partner])
    close = np.nan_to_num(squared_norm(c_rej[which] - c_kept), nan=np.inf) <= position_sigma**2
    dup = np.bincount(which[close], minlength=len(rows)) > 0
    out.reason[rows] = np.where(outlier[rows], REJECT_SHAPE, np.where(dup, REJECT_DUPLICATE, REJECT_SURPLUS))


def step_spread(identity: np.ndarray, frames: np.ndarray, centroid: np.ndarray) -> float:
    """Typical centroid displacement per frame along identities (90th percentile, at least 0.5 px).

    A high percentile, as in stitching: animals that mostly sit still still run now and then.
    """
    rows = np.flatnonzero((identity >= 0) & ~np.isnan(centroid[:, 0]))
    rows = rows[np.lexsort((frames[rows], identity[rows]))]
    same = identity[rows[1:]] == identity[rows[:-1]]
    dt = np.maximum(frames[rows[1:]] - frames[rows[:-1]], 1)
    steps = np.sqrt(squared_norm(centroid[rows[1:]] - centroid[rows[:-1]]))[same] / dt[same]
    return max(float(np.percentile(steps, 90)), 0.5) if len(steps) else 1.0


__all__ = ["Choice", "Completion", "complete_identities", "reject_untracked", "step_spread"]
