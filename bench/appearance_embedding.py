"""Appearance terms in stitching: none, grey-level histograms, the learnt embedding, both (issue #12 item 3).

* Real: ``clip.predictions.slp`` with its tracks removed, re-tracked with max tracks 2 (frames from
  ``clip.mp4``), scored against ``clip.2node.slp`` (thorax within 50 px), as
  ``tests/tracking/test_tracking_real.py``.
* Synthetic: :func:`napari_posetrack.core.sample_encounters.generate_encounters` (two rendered
  animals that meet again and again, no detection while they touch, leave in new directions;
  192 x 192, ``--frames`` frames) for each look (``texture``, ``brightness``, ``pattern``, ``same``)
  and ``--seeds`` seeds, scored against the generator's identities (thorax within 20 px); switches
  summed and IDF1 averaged over the seeds.

Columns: ID switches, IDF1, untracked instances, and the seconds the embedding took to train
(``train s``: the optimiser steps only) and in all (``emb s``: cropping patches from the video,
training, embedding), summed over the clips of a row. Torch runs on one thread.

Run: ``.venv/bin/python bench/appearance_embedding.py [--seeds 2 --frames 300] [--no-real]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

FLIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sleap-flies"

CONFIGS = [
    ("none (motion only)", {}),
    ("histogram w=1", {"appearance_weight": 1.0}),
    ("histogram w=5", {"appearance_weight": 5.0}),
    ("embedding w=2", {"embedding_weight": 2.0}),
    ("embedding w=5", {"embedding_weight": 5.0}),
    ("embedding w=20", {"embedding_weight": 20.0}),
    ("histogram w=1 + embedding w=5", {"appearance_weight": 1.0, "embedding_weight": 5.0}),
]


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from napari_posetrack.core.evaluation import evaluate_tracking
    from napari_posetrack.core.sample_encounters import ArrayFrames, generate_encounters
    from napari_posetrack.core.tracking import embedding as emb
    from napari_posetrack.core.tracking.tracker import TrackerConfig, track

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args()

    timing = {"train": 0.0, "all": 0.0}
    real_fn = emb.tracklet_embeddings

    def timed(*a, **kw):
        t0 = time.perf_counter()
        out = real_fn(*a, **kw)
        timing["all"] += time.perf_counter() - t0
        timing["train"] += out.model.seconds
        return out

    emb.tracklet_embeddings = timed  # the tracker looks it up in the module at call time

    def run(pred, gt, cfg, video, max_dist):
        timing["train"] = timing["all"] = 0.0
        out = track(pred, cfg, video=video).labels
        r = evaluate_tracking(gt, out, node="thorax", max_dist=max_dist)
        return r["id_switches"], r["idf1"], int((out.instances.track < 0).sum()), timing["train"], timing["all"]

    head = f"{'configuration':<34}{'switches':>9}{'IDF1':>8}{'untracked':>10}{'train s':>9}{'emb s':>8}"
    if not args.no_real and FLIES.is_dir():
        from napari_posetrack.core.io.slp import load_slp

        gt = load_slp(FLIES / "clip.2node.slp")
        pred = load_slp(FLIES / "clip.predictions.slp")
        pred.remove_tracks()
        print("real: clip.predictions.slp re-tracked, max tracks 2, thorax within 50 px (clip.2node.slp)")
        print(head)
        for name, kw in CONFIGS:
            sw, idf1, untracked, tr, al = run(pred, gt, TrackerConfig(max_tracks=2, **kw), FLIES / "clip.mp4", 50)
            print(f"{name:<34}{sw:>9}{idf1:>8.4f}{untracked:>10}{tr:>9.1f}{al:>8.1f}", flush=True)
    for looks in ("texture", "brightness", "pattern", "same"):
        clips = [generate_encounters(args.frames, looks=looks, seed=s) for s in range(args.seeds)]
        print(
            f"\nsynthetic encounters, looks={looks}: {args.seeds} clips x {args.frames} frames, "
            f"{sum(p.n_instances for _, _, p in clips)} detections, thorax within 20 px"
        )
        print(head)
        for name, kw in CONFIGS:
            tot = np.zeros(5)
            for frames, gt, pred in clips:
                tot += run(pred, gt, TrackerConfig(max_tracks=2, **kw), ArrayFrames(frames), 20)
            n = len(clips)
            print(
                f"{name:<34}{int(tot[0]):>9}{tot[1] / n:>8.4f}{int(tot[2]):>10}{tot[3]:>9.1f}{tot[4]:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
