"""Tracker throughput: instances per second for each candidates x similarity x matching x stitching.

Non-flow methods run on a long synthetic stream (random-walking animals, no video needed); flow
methods on the generated sample clip (they also decode frames and run Lucas-Kanade).
Run: ``.venv/bin/python bench/tracker_speed.py [--frames 20000 --animals 5] [--baseline REV]``.

Each configuration prints instances per wall-clock second and per CPU second of this process
(the latter is what one free core gives when the machine is shared). With ``--baseline REV`` the
tracking package as it was at git revision ``REV`` (loaded beside the current one, on the current
labels and I/O code) runs on the same input in the same process, interleaved with the current
one, so the ratios compare like with like on a noisy machine; the ``same`` column says whether
both gave identical track ids and tracking scores, ``untracked`` how many instances each left with
neither a track nor a rejection reason (before issue #12, one walker's random body shape made the
outlier filter leave all its instances untracked). Before timing, every implementation runs once
on a small stream so one-time imports (scipy's assignment solver) land in no configuration.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from napari_posetrack.core.labels import PREDICTED, Labels, Skeleton, Video
from napari_posetrack.core.tracking import tracker as current

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "src/napari_posetrack/core/tracking"


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


def load_baseline(rev: str, workdir: Path) -> ModuleType:
    """The ``tracker`` module of the tracking package at git revision ``rev``, as ``baseline_tracking``.

    Its relative imports of the rest of the package (``from ..labels import ...``) are pointed at
    the installed ``napari_posetrack.core``.
    """
    git = ["git", "-C", str(ROOT)]
    listing = subprocess.run(
        git + ["ls-tree", "--name-only", f"{rev}:{PACKAGE}"], check=False, capture_output=True, text=True
    )
    if listing.returncode:
        sys.exit(f"--baseline {rev}: {listing.stderr.strip()}")
    pkg = workdir / "baseline_tracking"
    pkg.mkdir()
    for name in listing.stdout.split():
        if name.endswith(".py"):
            text = subprocess.run(
                git + ["show", f"{rev}:{PACKAGE}/{name}"], capture_output=True, text=True, check=True
            ).stdout
            text = re.sub(
                r"from \.\.(\w*)", lambda m: "from napari_posetrack.core" + (f".{m[1]}" if m[1] else ""), text
            )
            (pkg / name).write_text(text)
    sys.path.insert(0, str(workdir))
    return importlib.import_module("baseline_tracking.tracker")


def timed(module: ModuleType, labels: Labels, cfg: dict, video=None) -> tuple[float, float, Labels]:
    """Wall and CPU seconds of one ``track_labels`` call, and its result."""
    config = module.TrackerConfig(**cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    out = module.track_labels(labels, config, video=video)
    return time.perf_counter() - t0, time.process_time() - c0, out


def same_output(a: Labels, b: Labels) -> bool:
    ta, tb = a.instances, b.instances
    return np.array_equal(ta.track, tb.track) and ta.tracking_score.tobytes() == tb.tracking_score.tobytes()


def untracked(out: Labels) -> int:
    """Instances left without a track and without a rejection reason (trackers before issue #12 left many)."""
    t = out.instances
    return int(((t.track < 0) & (t.rejected == 0)).sum())


def compare(
    impls: dict[str, ModuleType], labels: Labels, cfg: dict, repeat: int, video=None
) -> tuple[dict[str, tuple[float, float]], bool, dict[str, int]]:
    """Best wall and CPU seconds per implementation, runs interleaved (order alternating per repeat);
    whether all gave the same output; each one's untracked instances."""
    best: dict[str, list[float]] = {name: [np.inf, np.inf] for name in impls}
    outputs = {}
    names = list(impls)
    for r in range(repeat):
        for name in names if r % 2 == 0 else names[::-1]:
            wall, cpu, outputs[name] = timed(impls[name], labels, cfg, video)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    same = all(same_output(outputs[names[0]], outputs[n]) for n in names[1:])
    return {n: (w, c) for n, (w, c) in best.items()}, same, {n: untracked(o) for n, o in outputs.items()}


def report(
    label: str, n: int, times: dict[str, tuple[float, float]], same: bool, left: dict[str, int]
) -> None:
    wall, cpu = times["current"]
    line = f"{label}{n / wall:>11.0f}{n / cpu:>11.0f}{left['current']:>10}"
    if "baseline" in times:
        b_wall, b_cpu = times["baseline"]
        line += f"{n / b_wall:>11.0f}{n / b_cpu:>11.0f}{left['baseline']:>10}"
        line += f"{b_wall / wall:>8.1f}x{b_cpu / cpu:>7.1f}x{'yes' if same else 'NO':>6}"
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--animals", type=int, default=5)
    ap.add_argument("--flow-frames", type=int, default=300)
    ap.add_argument("--baseline", metavar="REV", help="git revision whose tracker runs alongside for ratios")
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per configuration and implementation (best kept)"
    )
    ap.add_argument("--no-flow", action="store_true", help="skip flow candidates")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        impls = {"current": current}
        if args.baseline:
            impls["baseline"] = load_baseline(args.baseline, Path(tmp))
        warm = random_walk_stream(200, args.animals, seed=1)
        for module in impls.values():
            for matching in ("greedy", "hungarian"):
                timed(module, warm, {"matching": matching, "max_tracks": args.animals})

        stream = random_walk_stream(args.frames, args.animals)
        n = stream.n_instances
        print(f"simple candidates: {n} instances ({args.frames} frames x {args.animals} animals)")
        header = f"{'similarity':<11}{'matching':<11}{'stitch':<8}{'inst/s wall':>11}{'inst/CPU-s':>11}{'untracked':>10}"
        if args.baseline:
            header += f"{'base wall':>11}{'base CPU':>11}{'base untr':>10}{'wall':>9}{'CPU':>8}{'same':>6}"
            print(f"(base = {args.baseline}; wall, CPU = current speed / base speed)")
        print(header)
        for sim, match, stitch in itertools.product(
            ("instance", "centroid", "iou", "oks"), ("greedy", "hungarian"), (False, True)
        ):
            cfg = {"similarity": sim, "matching": match, "stitch": stitch, "max_tracks": args.animals}
            report(f"{sim:<11}{match:<11}{stitch!s:<8}", n, *compare(impls, stream, cfg, args.repeat))
        if args.no_flow:
            return

        from napari_posetrack.core.sample import generate_sample, write_video

        frames, gt = generate_sample(n_animals=4, n_frames=args.flow_frames, crossing_rate=0.05, seed=0)
        pred = gt.copy()
        pred.remove_tracks()
        pred.instances.kind[:] = PREDICTED
        path = Path(tmp) / "sample.mp4"
        write_video(frames, path)
        print(f"flow candidates: {pred.n_instances} instances on a {frames.shape[1]}x{frames.shape[2]} clip")
        for sim, stitch in itertools.product(("instance", "oks"), (False, True)):
            cfg = {"candidates": "flow", "similarity": sim, "stitch": stitch, "max_tracks": 4}
            report(
                f"{sim:<11}{'hungarian':<11}{stitch!s:<8}",
                pred.n_instances,
                *compare(impls, pred, cfg, args.repeat, video=path),
            )


if __name__ == "__main__":
    main()
