"""Identity switches per 1000 frames of every tracker configuration on generated clips with crossings.

Each clip of :func:`napari_posetrack.core.sample.generate_sample` (animals steer into each other
and walk through) becomes untracked predictions with 1.5 px Gaussian noise; every configuration
re-tracks them and is scored against the generator's identities (thorax within 20 px).
Run: ``.venv/bin/python bench/tracker_switches.py [--seeds 3 --frames 300 --animals 4]``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np

from napari_posetrack.core.evaluation import evaluate_tracking
from napari_posetrack.core.labels import PREDICTED
from napari_posetrack.core.sample import generate_sample, write_video
from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--animals", type=int, default=4)
    ap.add_argument("--no-flow", action="store_true", help="skip flow candidates (they decode the video)")
    args = ap.parse_args()
    configs = [
        {"candidates": c, "similarity": s, "matching": m, "stitch": st}
        for c, s, m, st in itertools.product(
            ("simple", "flow"), ("instance", "centroid", "iou", "oks"), ("greedy", "hungarian"), (False, True)
        )
        if not (c == "flow" and args.no_flow)
    ]
    totals = {i: [0, 0, []] for i in range(len(configs))}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            frames, gt = generate_sample(
                n_animals=args.animals, n_frames=args.frames, crossing_rate=0.05, seed=seed
            )
            pred = gt.copy()
            pred.remove_tracks()
            pred.instances.kind[:] = PREDICTED
            pred.instances.score[:] = 1.0
            pred.instances.points[:] += np.random.default_rng(seed).normal(
                0, 1.5, pred.instances.points.shape
            )
            video = Path(tmp) / f"clip{seed}.mp4"
            if not args.no_flow:
                write_video(frames, video)
            for i, cfg in enumerate(configs):
                out = track_labels(pred, TrackerConfig(max_tracks=args.animals, **cfg), video=video)
                r = evaluate_tracking(gt, out, node="thorax", max_dist=20)
                totals[i][0] += r["id_switches"]
                totals[i][1] += r["n_frames"]
                totals[i][2].append(r["idf1"])
    print(f"{args.seeds} clips x {args.frames} frames x {args.animals} animals")
    print(
        f"{'candidates':<11}{'similarity':<11}{'matching':<10}{'stitch':<8}{'switches/1000 fr':>17}{'mean IDF1':>10}"
    )
    for i, cfg in enumerate(configs):
        sw, nf, idf1 = totals[i]
        print(
            f"{cfg['candidates']:<11}{cfg['similarity']:<11}{cfg['matching']:<10}{cfg['stitch']!s:<8}"
            f"{1000 * sw / nf:>17.1f}{np.mean(idf1):>10.3f}"
        )


if __name__ == "__main__":
    main()
