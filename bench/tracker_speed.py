"""Tracker throughput: instances per second for each candidates x similarity x matching x stitching.

Non-flow methods run on a long synthetic stream (random-walking animals, no video needed); flow
methods on the generated sample clip (they also decode frames and run Lucas-Kanade).
Run: ``.venv/bin/python bench/tracker_speed.py [--frames 20000 --animals 5]``. One CPU core is what
counts: the loop is one Python iteration per frame over numpy arrays.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_posetrack.core.labels import PREDICTED, Labels, Skeleton, Video
from napari_posetrack.core.tracking.tracker import TrackerConfig, track_labels


def random_walk_stream(n_frames: int, n_animals: int, n_nodes: int = 7, seed: int = 0) -> Labels:
    """Untracked predictions of ``n_animals`` random walkers with a rigid ``n_nodes`` body each."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(100, 900, (n_animals, 2))
    steps = rng.normal(0, 2.0, (n_frames, n_animals, 2))
    centres = start + np.cumsum(steps, axis=0)
    body = rng.normal(0, 10, (n_animals, n_nodes, 2))
    pts = centres[:, :, None, :] + body[None] + rng.normal(0, 0.5, (n_frames, n_animals, n_nodes, 2))
    lab = Labels(
        Skeleton([f"n{i}" for i in range(n_nodes)], [(0, i) for i in range(1, n_nodes)]), [Video("s.mp4")]
    )
    frames = np.repeat(np.arange(n_frames), n_animals)
    lab.add_instances(0, frames, pts.reshape(-1, n_nodes, 2), kind=PREDICTED, score=1.0)
    return lab


def rate(labels: Labels, config: TrackerConfig, video=None) -> tuple[float, float]:
    """Instances per wall-clock second and per CPU second of this process (the latter is what one
    free core would give when the machine is shared)."""
    t0, c0 = time.perf_counter(), time.process_time()
    track_labels(labels, config, video=video)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return labels.n_instances / wall, labels.n_instances / max(cpu, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--animals", type=int, default=5)
    ap.add_argument("--flow-frames", type=int, default=300)
    args = ap.parse_args()
    stream = random_walk_stream(args.frames, args.animals)
    print(
        f"simple candidates: {stream.n_instances} instances ({args.frames} frames x {args.animals} animals)"
    )
    print(f"{'similarity':<11}{'matching':<11}{'stitch':<8}{'inst/s wall':>12}{'inst/CPU-s':>12}")
    for sim, match, stitch in itertools.product(
        ("instance", "centroid", "iou", "oks"), ("greedy", "hungarian"), (False, True)
    ):
        cfg = TrackerConfig(similarity=sim, matching=match, stitch=stitch, max_tracks=args.animals)
        wall, cpu = rate(stream, cfg)
        print(f"{sim:<11}{match:<11}{stitch!s:<8}{wall:>12.0f}{cpu:>12.0f}")

    from napari_posetrack.core.sample import generate_sample, write_video

    frames, gt = generate_sample(n_animals=4, n_frames=args.flow_frames, crossing_rate=0.05, seed=0)
    pred = gt.copy()
    pred.remove_tracks()
    pred.instances.kind[:] = PREDICTED
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.mp4"
        write_video(frames, path)
        print(f"flow candidates: {pred.n_instances} instances on a {frames.shape[1]}x{frames.shape[2]} clip")
        for sim, stitch in itertools.product(("instance", "oks"), (False, True)):
            cfg = TrackerConfig(candidates="flow", similarity=sim, stitch=stitch, max_tracks=4)
            wall, cpu = rate(pred, cfg, video=path)
            print(f"{sim:<11}{'hungarian':<11}{stitch!s:<8}{wall:>12.0f}{cpu:>12.0f}")


if __name__ == "__main__":
    main()
