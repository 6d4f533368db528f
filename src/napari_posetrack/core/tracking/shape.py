"""Implausible body shapes: find instances that join parts of several animals, and the parts to distrust.

A detector that confuses two animals close together returns instances whose limbs are far longer
or shorter than that limb usually is in the video (the head of one animal with the thorax of the
other). Such an instance would drag a track onto the wrong animal if all its nodes were trusted,
yet most of its nodes usually sit on one animal. The tracker therefore keeps the instance (every
instance gets a track or a reason) but, for association, ignores the nodes that make its limbs
implausible: node by node, the one on most implausible limbs, and among those the one furthest from the
skeleton's root, until every limb left is plausible. The stored poses are never changed.
"""

from __future__ import annotations

import warnings

import numpy as np


def limb_z(lengths: np.ndarray) -> np.ndarray:
    """``(n, E)`` robust z-scores of limb lengths (1.4826 MAD around each limb's median; NaN = missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # limbs never seen
        median = np.nanmedian(lengths, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(lengths - median), axis=0)
    # a floor of 5% of the length: limbs of rigid skeletons (synthetic data) have almost no spread
    mad = np.where(np.isfinite(mad), np.maximum(mad, 0.05 * np.nan_to_num(median, nan=1.0) + 1e-6), np.inf)
    return np.abs(lengths - median) / mad


def distrusted_nodes(z: np.ndarray, edges: np.ndarray, threshold: float, doubt: np.ndarray) -> np.ndarray:
    """``(n, K)`` nodes to ignore so that no limb of ``z`` ``(n, E)`` exceeds ``threshold``.

    Greedy, all instances at once: each round drops, in every instance that still has an
    implausible limb, the node on most of them; ties go to the node with the most ``doubt``
    ``(n, K)`` (see :func:`node_doubt`).
    """
    n, n_nodes = doubt.shape
    bad = np.nan_to_num(z, nan=0.0) > threshold
    incidence = np.zeros((len(edges), n_nodes), dtype=np.int64)
    incidence[np.arange(len(edges)), edges[:, 0]] = 1
    incidence[np.arange(len(edges)), edges[:, 1]] = 1
    # a tie-break below 1: each node's rank of doubt within its instance, surest first
    tie = np.empty((n, n_nodes))
    np.put_along_axis(
        tie, np.argsort(doubt, axis=1, kind="stable"), np.arange(n_nodes) / (n_nodes + 1.0), axis=1
    )
    dropped = np.zeros((n, n_nodes), dtype=bool)
    live = np.flatnonzero(bad.any(axis=1))
    while len(live):
        count = bad[live].astype(np.int64) @ incidence  # (m, K) implausible limbs on each node
        pick = np.argmax(np.where(count > 0, count + tie[live], -1.0), axis=1)
        dropped[live, pick] = True
        bad[live] &= incidence[:, pick].T == 0  # limbs of the dropped node no longer count
        live = live[bad[live].any(axis=1)]
    return dropped


def node_doubt(edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """``(K,)`` how much to doubt each node of an implausible instance: its depth in the skeleton
    (edges point from parent to child; among nodes as deep, the later one).

    The root (a thorax, the anchor a top-down model centres its crop on) is where the instance was
    found; the further a part is from it, the likelier it was taken from a neighbour.
    """
    depth = np.full(n_nodes, -1, dtype=np.int64)
    children = np.zeros(n_nodes, dtype=bool)
    children[edges[:, 1]] = True
    frontier = np.flatnonzero(~children)
    level = 0
    while len(frontier):
        frontier = frontier[depth[frontier] < 0]
        depth[frontier] = level
        frontier = np.unique(edges[np.isin(edges[:, 0], frontier), 1])
        level += 1
    depth[depth < 0] = level  # nodes only on a cycle: as far as any node
    return depth + np.arange(n_nodes) / (n_nodes + 1.0)
