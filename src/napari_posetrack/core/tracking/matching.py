"""Assignment of candidates (rows) to detections (columns) from a similarity matrix.

The ``*_batch`` functions take a stack of matrices ``(W, C, D)`` (one per frame of a window) and
return, for every frame, exactly the assignment the single-matrix function gives on that frame,
as ``(W, C)`` detection columns per candidate row (``-1`` = row left unmatched).
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

MATCHINGS = ("greedy", "hungarian")
_FORBIDDEN = 1e6


def greedy_match(sim: np.ndarray, min_similarity: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Repeatedly take the most similar free pair; pairs below ``min_similarity`` are never taken.

    Returns matched ``(rows, cols)``.
    """
    sim = np.array(sim, dtype=np.float64, copy=True)
    rows: list[int] = []
    cols: list[int] = []
    if sim.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sim[sim < min_similarity] = -np.inf
    for _ in range(min(sim.shape)):
        flat = int(np.argmax(sim))
        r, c = divmod(flat, sim.shape[1])
        if not np.isfinite(sim[r, c]):
            break
        rows.append(r)
        cols.append(c)
        sim[r, :] = -np.inf
        sim[:, c] = -np.inf
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def hungarian_match(sim: np.ndarray, min_similarity: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Assignment maximising total similarity among allowed pairs (``sim >= min_similarity``).

    Forbidden pairs get a prohibitive cost, so the solver first maximises the number of allowed
    matches and then their similarity; forbidden pairs it still had to use are dropped.
    """
    from scipy.optimize import linear_sum_assignment  # kept out of CLI start-up; cached after first call

    if sim.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    allowed = sim >= min_similarity
    cost = np.where(allowed, -sim, _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)


def match(sim: np.ndarray, method: str, min_similarity: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch to :func:`greedy_match` or :func:`hungarian_match` by name."""
    if method == "greedy":
        return greedy_match(sim, min_similarity)
    if method == "hungarian":
        return hungarian_match(sim, min_similarity)
    raise ValueError(f"unknown matching {method!r}; choose one of {', '.join(MATCHINGS)}")


def runner_up_ratio(sim: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For each matched pair, the best competing similarity divided by the pair's similarity.

    The competitor is the best other detection for the row or the best other candidate for the
    column. Values near 1 mean the association is ambiguous; 0 means no competitor.
    """
    if len(rows) == 0:
        return np.zeros(0)
    best = sim[rows, cols]
    row_other = sim[rows].copy()
    row_other[np.arange(len(rows)), cols] = -np.inf
    col_other = sim[:, cols].T.copy()
    col_other[np.arange(len(rows)), rows] = -np.inf
    second = np.maximum(row_other.max(axis=1, initial=-np.inf), col_other.max(axis=1, initial=-np.inf))
    second = np.maximum(second, 0.0)
    return np.where(best > 0, second / np.where(best > 0, best, 1.0), np.inf)


def greedy_match_batch(sim: np.ndarray, min_similarity: float = 0.0) -> np.ndarray:
    """:func:`greedy_match` on every matrix of ``sim`` ``(W, C, D)`` at once; ``(W, C)`` columns.

    Each round takes every frame's most similar free pair (first in row-major order on ties, as
    ``np.argmax`` does for one matrix); a frame whose best remaining pair is not finite stops there.
    """
    n_w, n_c, n_d = sim.shape
    out = np.full((n_w, n_c), -1, dtype=np.int64)
    if sim.size == 0:
        return out
    work = np.array(sim, dtype=np.float64, copy=True)
    work[work < min_similarity] = -np.inf
    flat = work.reshape(n_w, n_c * n_d)
    w = np.arange(n_w)
    live = np.ones(n_w, dtype=bool)
    for _ in range(min(n_c, n_d)):
        best = np.argmax(flat, axis=1)
        r, c = np.divmod(best, n_d)
        live &= np.isfinite(work[w, r, c])
        out[w[live], r[live]] = c[live]
        work[w, r, :] = -np.inf
        work[w, :, c] = -np.inf
    return out


_MAX_ENUMERATED = 720  # injections tried per frame before handing the frame to scipy
_TIE_TOLERANCE = 1e-6  # relative cost gap below which two assignments count as tied (scipy decides)


@lru_cache(maxsize=64)
def _injections(n_small: int, n_large: int) -> np.ndarray:
    """Every ordered choice of ``n_small`` distinct indices out of ``n_large``, ``(P, n_small)``."""
    return np.array(list(itertools.permutations(range(n_large), n_small)), dtype=np.int64).reshape(
        -1, n_small
    )


def _n_injections(n_small: int, n_large: int) -> int:
    count = 1
    for k in range(n_large - n_small + 1, n_large + 1):
        count *= k
    return count


def _dominant_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of ``cost`` ``(W, C, D)`` with ``C <= D``: each row's cheapest column, and
    whether those columns are distinct and each beats its row's runner-up by more than rounding.

    Then every other assignment costs more than this one, by at least the smallest of those
    margins, so it is the unique optimum.
    """
    best = np.argmin(cost, axis=2)
    lowest = cost.min(axis=2)  # cost holds no NaN (forbidden pairs carry a finite cost)
    runner_up = np.where(best[..., None] == np.arange(cost.shape[2]), np.inf, cost).min(axis=2)
    clear = (runner_up - lowest > _TIE_TOLERANCE * (1.0 + np.abs(lowest))).all(axis=1)
    ordered = np.sort(best, axis=1)
    distinct = (ordered[:, 1:] != ordered[:, :-1]).all(axis=1)
    return best, clear & distinct


def hungarian_match_batch(sim: np.ndarray, min_similarity: float = 0.0) -> np.ndarray:
    """:func:`hungarian_match` on every matrix of ``sim`` ``(W, C, D)``; ``(W, C)`` columns.

    A frame's assignment is settled without scipy when its optimum is unique by more than rounding
    could blur (then it is also what scipy's solver returns): first when every candidate's (or,
    with more candidates than detections, every detection's) best partner is distinct and clearly
    best, else, for small frames (at most 720 ways to place the smaller side), by trying every
    assignment at once. Frames with a tie, and larger frames, go to :func:`hungarian_match`.
    """
    n_w, n_c, n_d = sim.shape
    out = np.full((n_w, n_c), -1, dtype=np.int64)
    if sim.size == 0:
        return out
    allowed = sim >= min_similarity
    cost = np.where(allowed, -sim, _FORBIDDEN)
    w = np.arange(n_w)[:, None]
    if n_c <= n_d:
        best, decided = _dominant_assignment(cost)
        cols = np.where(allowed[w, np.arange(n_c), best], best, -1)
    else:
        best, decided = _dominant_assignment(cost.transpose(0, 2, 1))  # best row of each column
        cols = _columns_of_rows(best, allowed[w, best, np.arange(n_d)], n_c)
    out[decided] = cols[decided]
    todo = np.flatnonzero(~decided)
    n_small, n_large = min(n_c, n_d), max(n_c, n_d)
    if len(todo) and _n_injections(n_small, n_large) <= _MAX_ENUMERATED:
        sub, sub_allowed = cost[todo], allowed[todo]
        table = _injections(n_small, n_large)
        small = np.arange(n_small)
        # totals of every assignment (T, P): rows pick columns when C <= D, columns pick rows otherwise
        totals = (sub[:, small, table] if n_c <= n_d else sub[:, table, small]).sum(axis=-1)
        pick = np.argmin(totals, axis=1)
        t = np.arange(len(todo))[:, None]
        lowest = totals[t[:, 0], pick]
        totals[t[:, 0], pick] = np.inf
        decided = totals.min(axis=1) - lowest > _TIE_TOLERANCE * (1.0 + np.abs(lowest))
        choice = table[pick]  # (T, n_small)
        if n_c <= n_d:
            cols = np.where(sub_allowed[t, small, choice], choice, -1)
        else:
            cols = _columns_of_rows(choice, sub_allowed[t, choice, small], n_c)
        out[todo[decided]] = cols[decided]
        todo = todo[~decided]
    for i in todo.tolist():
        r, c = hungarian_match(sim[i], min_similarity)
        out[i, r] = c
    return out


def _columns_of_rows(rows: np.ndarray, keep: np.ndarray, n_rows: int) -> np.ndarray:
    """``(W, C)`` column per row from ``rows`` ``(W, D)`` (the row each column took); only ``keep`` pairs."""
    n_w, n_d = rows.shape
    cols = np.full((n_w, n_rows), -1, dtype=np.int64)
    w = np.broadcast_to(np.arange(n_w)[:, None], rows.shape)
    cols[w[keep], rows[keep]] = np.broadcast_to(np.arange(n_d), rows.shape)[keep]
    return cols


def match_batch(sim: np.ndarray, method: str, min_similarity: float = 0.0) -> np.ndarray:
    """Dispatch to :func:`greedy_match_batch` or :func:`hungarian_match_batch` by name."""
    if method == "greedy":
        return greedy_match_batch(sim, min_similarity)
    if method == "hungarian":
        return hungarian_match_batch(sim, min_similarity)
    raise ValueError(f"unknown matching {method!r}; choose one of {', '.join(MATCHINGS)}")


def runner_up_ratio_batch(sim: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """:func:`runner_up_ratio` for every row of every frame, given its column ``cols`` ``(W, C)``.

    Every ``cols`` entry must be a valid column (the tracker asks only about fully matched frames);
    returns ``(W, C)``.
    """
    n_w, n_c, n_d = sim.shape
    w = np.arange(n_w)[:, None]
    chosen = cols[..., None] == np.arange(n_d)
    row_other = np.where(chosen, -np.inf, sim).max(axis=-1, initial=-np.inf)
    # col_sim[w, r, s]: similarity of candidate r to the detection row s took
    col_sim = sim[w[..., None], np.arange(n_c)[:, None], cols[:, None, :]]
    col_sim[:, np.arange(n_c), np.arange(n_c)] = -np.inf
    col_other = col_sim.max(axis=1, initial=-np.inf)
    best = sim[w, np.arange(n_c), cols]
    second = np.maximum(np.maximum(row_other, col_other), 0.0)
    return np.where(best > 0, second / np.where(best > 0, best, 1.0), np.inf)
