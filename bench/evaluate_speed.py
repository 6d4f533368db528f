"""Speed of pose evaluation on a whole-video scale: ``evaluate_poses`` on N predicted instances.

Usage::

    python bench/evaluate_speed.py [--instances 1000000] [--nodes 24] [--seed 0]

Ground truth: frames with 1 to 4 animals (N instances in all, 24 nodes, a few nodes missing);
predictions: every animal predicted with pixel noise, some nodes dropped, 5% of animals missed and
5% extra detections, random scores. Prints the time of ``evaluate_poses`` (OKS matching, distances,
PCK, visibility, COCO mAP) and the peak memory growth. Target: 1,000,000 x 24 in under 30 s.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from napari_posetrack.core.evaluation import evaluate_poses
from napari_posetrack.core.labels import PREDICTED, USER, Labels, Skeleton, Video


def synthetic_pair(n_instances: int, n_nodes: int, seed: int) -> tuple[Labels, Labels]:
    """Ground truth and predictions of ``n_instances`` animals on frames of 1 to 4 animals each."""
    rng = np.random.default_rng(seed)
    per_frame = rng.integers(1, 5, size=n_instances)  # more frames than needed; cut at n_instances
    frame_of = np.repeat(np.arange(len(per_frame)), per_frame)[:n_instances]
    centres = rng.uniform(50, 950, size=(n_instances, 1, 2))
    gt_points = centres + rng.normal(0, 20, size=(n_instances, n_nodes, 2))
    gt_points[rng.random((n_instances, n_nodes)) < 0.02] = np.nan
    skeleton = Skeleton(nodes=[f"n{i}" for i in range(n_nodes)], edges=[])
    gt = Labels(skeleton=skeleton)
    gt.add_video(Video("synthetic.mp4"))
    gt.add_instances(video=0, frame=frame_of, points=gt_points, kind=USER)
    kept = rng.random(n_instances) >= 0.05
    pred_points = gt_points[kept] + rng.normal(0, 3, size=(int(kept.sum()), n_nodes, 2))
    pred_points[rng.random(pred_points.shape[:2]) < 0.03] = np.nan
    n_extra = n_instances // 20
    extra_frames = rng.choice(frame_of, n_extra)
    extra = rng.uniform(0, 1000, size=(n_extra, 1, 2)) + rng.normal(0, 20, size=(n_extra, n_nodes, 2))
    pred = Labels(skeleton=skeleton)
    pred.add_video(Video("synthetic.mp4"))
    frames = np.concatenate([frame_of[kept], extra_frames])
    points = np.concatenate([pred_points, extra])
    scores = rng.uniform(0.1, 1.0, size=len(frames)).astype(np.float32)
    pred.add_instances(video=0, frame=frames, points=points, kind=PREDICTED, score=scores)
    return gt, pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gt, pred = synthetic_pair(args.instances, args.nodes, args.seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = evaluate_poses(gt, pred)
    elapsed = time.perf_counter() - t0
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{gt.n_instances:,} ground-truth and {pred.n_instances:,} predicted instances x {args.nodes} nodes "
          f"on {result['n_gt_frames']:,} frames: evaluate_poses {elapsed:.1f} s, peak memory growth {peak:.0f} MiB; "
          f"matched {result['n_matched']:,}, OKS mAP {result['oks']['mAP']:.4f}, median error "
          f"{result['distance']['all']['median']:.3f} px")


if __name__ == "__main__":
    main()
