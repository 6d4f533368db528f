"""Summary statistics of a labels store (what is labelled, how complete, how many per frame)."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_posetrack.core.labels import NO_TRACK, PREDICTED, USER, Labels


def dataset_stats(labels: Labels) -> dict[str, Any]:
    """Counts and rates describing a labels store, as plain Python types (JSON-ready).

    Returns
    -------
    dict
        ``videos``: per video its name, frame count, labelled frames and instances (user and
        predicted); ``totals``: the same summed; ``nodes``: per node over user instances the count and
        rate of visible points, present-but-invisible points and missing (NaN) points;
        ``instances_per_frame``: histogram ``{count: frames}`` over labelled frames (shadowed
        predictions excluded); ``tracks``: per track name its instance count, plus untracked instances.
    """
    t = labels.instances
    shown = ~labels.shadowed_predictions()
    videos = []
    for v_idx, video in enumerate(labels.videos):
        in_video = t.video == v_idx
        user, pred = in_video & (t.kind == USER), in_video & (t.kind == PREDICTED)
        videos.append(
            {
                "name": video.name,
                "n_frames": None if video.n_frames is None else int(video.n_frames),
                "labeled_frames": len(np.unique(t.frame[in_video])),
                "user_frames": len(np.unique(t.frame[user])),
                "predicted_frames": len(np.unique(t.frame[pred])),
                "user_instances": int(user.sum()),
                "predicted_instances": int(pred.sum()),
            }
        )
    totals = {
        key: int(sum(v[key] for v in videos))
        for key in (
            "labeled_frames",
            "user_frames",
            "predicted_frames",
            "user_instances",
            "predicted_instances",
        )
    }

    user_rows = t.kind == USER
    finite = np.isfinite(t.points[user_rows]).all(axis=-1)  # (n_user, n_nodes)
    visible = finite & t.visible[user_rows]
    n_user = int(user_rows.sum())
    nodes = {}
    for j, name in enumerate(labels.skeleton.nodes):
        n_vis, n_fin = int(visible[:, j].sum()), int(finite[:, j].sum())
        counts = {"visible": n_vis, "present_not_visible": n_fin - n_vis, "missing": n_user - n_fin}
        rates = {f"{k}_rate": (c / n_user if n_user else None) for k, c in counts.items()}
        nodes[name] = {**counts, **rates}

    # instances per (video, frame), counting what a viewer shows
    keys = np.stack([t.video[shown].astype(np.int64), t.frame[shown]], axis=1)
    if len(keys):
        _, per_frame = np.unique(keys, axis=0, return_counts=True)
        sizes, freq = np.unique(per_frame, return_counts=True)
        histogram = {int(s): int(f) for s, f in zip(sizes, freq)}
    else:
        histogram = {}

    track_counts = np.bincount(t.track[t.track >= 0], minlength=len(labels.tracks))
    tracks = {
        "n_tracks": len(labels.tracks),
        "instances": {tr.name: int(c) for tr, c in zip(labels.tracks, track_counts)},
        "untracked_instances": int((t.track == NO_TRACK).sum()),
    }
    return {
        "skeleton": {"name": labels.skeleton.name, "n_nodes": labels.n_nodes},
        "videos": videos,
        "totals": totals,
        "nodes": nodes,
        "instances_per_frame": histogram,
        "tracks": tracks,
        "n_suggestions": len(labels.suggestions),
    }
