"""Assignment of candidates (rows) to detections (columns) from a similarity matrix."""

from __future__ import annotations

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
