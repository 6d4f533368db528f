"""Compare our Labels with a sleap-io Labels (sleap-io is a test-only oracle)."""

from __future__ import annotations

import numpy as np

from napari_posetrack.core.labels import PREDICTED, USER, Labels


def sleap_io_columns(sl) -> dict[str, np.ndarray]:
    """Flatten a sleap-io Labels into columns like ours (one row per instance, file order)."""
    import sleap_io as sio

    video_index = {id(v): i for i, v in enumerate(sl.videos)}
    track_index = {id(t): i for i, t in enumerate(sl.tracks)}
    cols: dict[str, list] = {
        k: []
        for k in (
            "video",
            "frame",
            "kind",
            "track",
            "score",
            "tracking_score",
            "points",
            "visible",
            "complete",
            "point_scores",
            "link",
        )
    }
    flat = [inst for lf in sl.labeled_frames for inst in lf.instances]
    flat_index = {id(inst): k for k, inst in enumerate(flat)}
    for lf in sl.labeled_frames:
        for inst in lf.instances:
            predicted = isinstance(inst, sio.PredictedInstance)
            pts = inst.points
            cols["video"].append(video_index[id(lf.video)])
            cols["frame"].append(lf.frame_idx)
            cols["kind"].append(PREDICTED if predicted else USER)
            cols["track"].append(track_index[id(inst.track)] if inst.track is not None else -1)
            cols["score"].append(inst.score if predicted else np.nan)
            cols["tracking_score"].append(inst.tracking_score or 0.0)
            cols["points"].append(np.array(pts["xy"], dtype=float))
            cols["visible"].append(np.array(pts["visible"], dtype=bool))
            cols["complete"].append(np.array(pts["complete"], dtype=bool))
            cols["point_scores"].append(
                np.array(pts["score"], dtype=float) if predicted else np.full(len(pts), np.nan)
            )
            link = getattr(inst, "from_predicted", None)
            cols["link"].append(flat_index.get(id(link), -1) if link is not None else -1)
    n_nodes = len(sl.skeletons[0].nodes) if sl.skeletons else 0
    out = {k: np.asarray(v) for k, v in cols.items()}
    for k in ("points",):
        out[k] = out[k].reshape(-1, n_nodes, 2)
    for k in ("visible", "complete", "point_scores"):
        out[k] = out[k].reshape(-1, n_nodes)
    return out


def our_columns(lab: Labels) -> dict[str, np.ndarray]:
    t = lab.instances
    rows = np.arange(len(t))
    row_of = lab.row_of_id(t.from_predicted[t.from_predicted >= 0])
    link = np.full(len(t), -1)
    link[t.from_predicted >= 0] = row_of
    return {
        "video": t.video[rows],
        "frame": t.frame[rows],
        "kind": t.kind[rows],
        "track": t.track[rows],
        "score": t.score[rows],
        "tracking_score": t.tracking_score[rows],
        "points": t.points[rows],
        "visible": t.visible[rows],
        "complete": t.complete[rows],
        "point_scores": t.point_scores[rows],
        "link": link,
    }


def canonical(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows sorted by (video, frame, kind, track, coordinates); links renumbered to sorted positions."""
    pts = np.nan_to_num(cols["points"].reshape(len(cols["frame"]), -1), nan=-1e9)
    keys = [pts[:, j] for j in reversed(range(pts.shape[1]))] + [
        cols["track"],
        cols["kind"],
        cols["frame"],
        cols["video"],
    ]
    order = np.lexsort(keys) if len(cols["frame"]) else np.zeros(0, int)
    new_pos = np.empty(len(order), int)
    new_pos[order] = np.arange(len(order))
    out = {k: v[order] for k, v in cols.items()}
    out["link"] = np.where(out["link"] >= 0, new_pos[np.maximum(out["link"], 0)], -1)
    return out


def assert_same_as_sleap_io(lab: Labels, sl) -> None:
    """Our labels and sleap-io's hold the same skeleton, videos, tracks, suggestions and instances."""
    sk = sl.skeletons[0]
    assert lab.skeleton.nodes == sk.node_names
    assert set(lab.skeleton.edge_names) == {(e.source.name, e.destination.name) for e in sk.edges}
    assert {frozenset(s) for s in lab.skeleton.symmetry_names} == {
        frozenset(n.name for n in s.nodes) for s in sk.symmetries
    }
    assert [t.name for t in lab.tracks] == [t.name for t in sl.tracks]
    assert len(lab.videos) == len(sl.videos)
    assert [(s.video, s.frame) for s in lab.suggestions] == [
        ([id(v) for v in sl.videos].index(id(s.video)), s.frame_idx) for s in sl.suggestions
    ]
    a, b = canonical(our_columns(lab)), canonical(sleap_io_columns(sl))
    assert len(a["frame"]) == len(b["frame"]), (len(a["frame"]), len(b["frame"]))
    for name in ("video", "frame", "kind", "track", "visible", "complete", "link"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    for name in ("points", "score", "tracking_score", "point_scores"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)
