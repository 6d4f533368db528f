"""Identity switches, IDF1, untracked and rejected instances of tracker configurations, on real and synthetic data.

* Real: ``clip.predictions.slp`` (a weak SLEAP model's 2-node predictions on ``clip.mp4``) with its
  tracks removed, re-tracked with max tracks 2 and scored against the proofread identities of
  ``clip.2node.slp`` (thorax within 50 px, as ``tests/tracking/test_tracking_real.py``). Two
  reference rows: SLEAP's stored tracks (its identity model) and an oracle that gives every
  detection the identity of the nearest ground-truth thorax.
* Synthetic: each clip of :func:`napari_posetrack.core.sample.generate_sample` (animals steer into
  each other and walk through) as untracked predictions with 1.5 px Gaussian noise, scored against
  the generator's identities (thorax within 20 px); switches per 1000 frames over all clips.

Every configuration is the defaults plus what its row names: each similarity x matching, with and
without stitching, then stitching settings (``min`` = ``stitch_min_length``, ``hor`` =
``stitch_motion_horizon``, ``out`` = ``shape_outlier``) on the default similarity and matching.
With ``--baseline REV`` the tracker at git revision ``REV`` runs the same rows (its own defaults).

Run: ``.venv/bin/python bench/tracker_switches.py [--seeds 3 --frames 300 --animals 4] [--no-flow]
[--no-real] [--baseline REV]``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np

from napari_posetrack.core.evaluation import evaluate_tracking
from napari_posetrack.core.labels import PREDICTED, Labels
from napari_posetrack.core.sample import generate_sample, write_video
from napari_posetrack.core.tracking import tracker as current

FLIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "sleap-flies"

STITCH_SETTINGS = [
    {"stitch_min_length": 0, "stitch_motion_horizon": 3, "shape_outlier": 6.0},  # defaults before issue #12
    {"stitch_min_length": 0, "stitch_motion_horizon": 3},
    {"stitch_min_length": 0, "stitch_motion_horizon": 30},
    {"stitch_min_length": 5, "stitch_motion_horizon": 30},
    {"stitch_min_length": 7, "stitch_motion_horizon": 3},
    {"stitch_min_length": 7, "stitch_motion_horizon": 30, "shape_outlier": 6.0},
    {"stitch_min_length": 10, "stitch_motion_horizon": 30},
    {"stitch_min_length": 20, "stitch_motion_horizon": 30},
    {"stitch_reward": 5.0},
    {"stitch_insert_margin": 5.0},
]


def configurations(flow: bool) -> list[dict]:
    grid = [
        {"candidates": c, "similarity": s, "matching": m, "stitch": st}
        for c, s, m, st in itertools.product(
            ("simple", "flow"), ("instance", "centroid", "iou", "oks"), ("greedy", "hungarian"), (False, True)
        )
        if flow or c == "simple"
    ]
    return grid + STITCH_SETTINGS


def label(cfg: dict) -> str:
    short = {"stitch_min_length": "min", "stitch_motion_horizon": "hor", "shape_outlier": "out"}
    if "similarity" in cfg:
        return f"{cfg['candidates']}/{cfg['similarity']}/{cfg['matching']}/{'stitch' if cfg['stitch'] else 'no stitch'}"
    return "stitch " + " ".join(f"{short.get(k, k)}={v}" for k, v in cfg.items())


def real_clip() -> tuple[Labels, Labels, Labels]:
    from napari_posetrack.core.io.slp import load_slp

    gt = load_slp(FLIES / "clip.2node.slp")
    stored = load_slp(FLIES / "clip.predictions.slp")
    pred = stored.copy()
    pred.remove_tracks()
    return gt, stored, pred


def oracle(gt: Labels, pred: Labels) -> Labels:
    """``pred`` with each detection on the ground-truth identity of the nearest thorax (per frame, Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    out = pred.copy()
    out.tracks = list(gt.tracks)
    g, p = gt.instances, out.instances
    node_g, node_p = gt.skeleton.node_index("thorax"), pred.skeleton.node_index("thorax")
    for f in np.unique(p.frame).tolist():
        pr, gr = np.flatnonzero(p.frame == f), np.flatnonzero(g.frame == f)
        d = np.linalg.norm(p.points[pr, node_p][:, None] - g.points[gr, node_g][None], axis=-1)
        r, c = linear_sum_assignment(np.nan_to_num(d, nan=1e6))
        p.track[pr[r]] = g.track[gr[c]]
    return out


def synthetic(
    seeds: int, frames: int, animals: int, tmp: Path, flow: bool
) -> list[tuple[Labels, Labels, Path]]:
    clips = []
    for seed in range(seeds):
        pixels, gt = generate_sample(n_animals=animals, n_frames=frames, crossing_rate=0.05, seed=seed)
        pred = gt.copy()
        pred.remove_tracks()
        pred.instances.kind[:] = PREDICTED
        pred.instances.score[:] = 1.0
        pred.instances.points[:] += np.random.default_rng(seed).normal(0, 1.5, pred.instances.points.shape)
        video = tmp / f"clip{seed}.mp4"
        if flow:
            write_video(pixels, video)
        clips.append((gt, pred, video))
    return clips


def counts(out: Labels) -> tuple[int, int]:
    """(untracked and not rejected, rejected) instances of a tracked store."""
    t = out.instances
    return int(((t.track < 0) & (t.rejected == 0)).sum()), int((t.rejected > 0).sum())


def row(module: ModuleType, cfg: dict, real, clips, animals: int) -> str:
    cells = ""
    if real is not None and cfg.get("candidates", "simple") != "flow":
        gt, pred = real
        out = module.track_labels(pred, module.TrackerConfig(max_tracks=2, **cfg))
        r = evaluate_tracking(gt, out, node="thorax", max_dist=50)
        untracked, rejected = counts(out)
        cells += f"{r['id_switches']:>9}{r['idf1']:>8.4f}{untracked:>10}{rejected:>9}"
    elif real is not None:
        cells += f"{'-':>9}{'-':>8}{'-':>10}{'-':>9}"
    sw = nf = 0
    idf1 = []
    for gt, pred, video in clips:
        out = module.track_labels(pred, module.TrackerConfig(max_tracks=animals, **cfg), video=video)
        r = evaluate_tracking(gt, out, node="thorax", max_dist=20)
        sw, nf = sw + r["id_switches"], nf + r["n_frames"]
        idf1.append(r["idf1"])
    return cells + f"{1000 * sw / nf:>12.1f}{np.mean(idf1):>8.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--animals", type=int, default=4)
    ap.add_argument("--no-flow", action="store_true", help="skip flow candidates (they decode the video)")
    ap.add_argument("--no-real", action="store_true", help="skip the real fly clip")
    ap.add_argument("--baseline", metavar="REV", help="also run the tracker of this git revision")
    args = ap.parse_args()
    impls = {"current": current}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from tracker_speed import load_baseline

            impls[args.baseline] = load_baseline(args.baseline, Path(tmp))
        real = None
        header = f"{'configuration':<58}"
        if not args.no_real and FLIES.is_dir():
            gt, stored, pred = real_clip()
            real = (gt, pred)
            header += f"{'switches':>9}{'IDF1':>8}{'untracked':>10}{'rejected':>9}"
        header += f"{'sw/1000 fr':>12}{'IDF1':>8}"
        clips = synthetic(args.seeds, args.frames, args.animals, Path(tmp), not args.no_flow)
        print(
            f"real: clip.predictions.slp, max tracks 2, thorax within 50 px | synthetic: {args.seeds} clips x "
            f"{args.frames} frames x {args.animals} animals, thorax within 20 px"
        )
        print(header)
        if real is not None:
            for name, lab in (("SLEAP stored tracks (identity model)", stored), ("oracle", oracle(gt, pred))):
                r = evaluate_tracking(gt, lab, node="thorax", max_dist=50)
                untracked = int((lab.instances.track < 0).sum())
                print(f"{name:<58}{r['id_switches']:>9}{r['idf1']:>8.4f}{untracked:>10}{'-':>9}")
        for impl, module in impls.items():
            for cfg in configurations(not args.no_flow):
                name = label(cfg) + ("" if impl == "current" else f" [{impl}]")
                print(f"{name:<58}{row(module, cfg, real, clips, args.animals)}", flush=True)


if __name__ == "__main__":
    main()
