"""DeepPoseKit's posture graph: which extra maps a skeleton adds to a confidence-map head.

Besides one map per body part, a posture-graph head is trained on (in this channel order):

1. one map per skeleton edge;
2. one map per limb: each chain of edges that starts at the root or at a branching node and runs
   through nodes with a single child until a leaf or the next branching node;
3. one map of the whole graph (every edge);
4. one map of the whole graph plus every body-part peak.

The maps themselves are drawn in :func:`napari_posetrack.core.training.targets.posture_graph_maps`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def skeleton_limbs(edges: Any, n_nodes: int) -> list[list[int]]:
    """Limbs of a skeleton as node chains (each chain's consecutive nodes are joined by an edge).

    Parameters
    ----------
    edges
        ``(E, 2)`` source/destination node indices.
    n_nodes
        Number of nodes.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    children: list[list[int]] = [[] for _ in range(int(n_nodes))]
    has_parent = np.zeros(int(n_nodes), dtype=bool)
    for src, dst in edges:
        children[int(src)].append(int(dst))
        has_parent[int(dst)] = True
    starts = [n for n in range(int(n_nodes)) if children[n] and (not has_parent[n] or len(children[n]) > 1)]
    limbs: list[list[int]] = []
    used_edges: set[tuple[int, int]] = set()
    for start in starts:
        for child in children[start]:
            chain, node = [start, child], child
            used_edges.add((start, child))
            while len(children[node]) == 1 and (node, children[node][0]) not in used_edges:
                nxt = children[node][0]
                used_edges.add((node, nxt))
                chain.append(nxt)
                node = nxt
            limbs.append(chain)
    # edges on a cycle with no root or branching node still form one limb each
    for src, dst in edges:
        if (int(src), int(dst)) not in used_edges:
            limbs.append([int(src), int(dst)])
            used_edges.add((int(src), int(dst)))
    return limbs


def posture_graph_channels(skeleton: Any) -> int:
    """How many maps the posture graph adds for ``skeleton``: edges + limbs + 2 (graph, graph + peaks)."""
    edges = skeleton.edge_array()
    return len(edges) + len(skeleton_limbs(edges, len(skeleton.nodes))) + 2
