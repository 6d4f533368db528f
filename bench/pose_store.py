"""Benchmark: save and load a large SLEAP predictions file through the columnar pose store.

Generates ``--instances`` predicted instances (default 1,000,000) of a ``--nodes``-node skeleton
(default 24) with tracks and scores, writes it with ``save_slp``, reads it back with
``load_slp``, checks the round trip, and prints a markdown table row with the timings and the
peak resident memory above the starting point for each step.

    .venv/bin/python bench/pose_store.py [--instances 1000000] [--nodes 24] [--sleap-io]

``--sleap-io`` also times ``sleap_io.load_slp`` on the same file (one Python object per
instance and point array, so expect it to be far slower on large files).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from napari_posetrack.core.io.slp import load_slp, save_slp
from napari_posetrack.core.labels import PREDICTED, Labels, Skeleton, Video, assert_labels_equal


class PeakRSS:
    """Sample this process's resident memory in a thread; ``peak`` is the maximum seen (bytes)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.process.memory_info().rss
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def measure(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``step``; return (result, seconds, peak RSS growth in MiB)."""
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - t0
    return result, seconds, (mem.peak - mem.start) / 2**20


def make_predictions(n_instances: int, n_nodes: int, animals: int = 4, seed: int = 0) -> Labels:
    """Predicted instances, ``animals`` per frame, tracked, with instance and point scores."""
    rng = np.random.default_rng(seed)
    n_frames = -(-n_instances // animals)
    skeleton = Skeleton(
        [f"node{i}" for i in range(n_nodes)], [(0, i) for i in range(1, n_nodes)], name="bench"
    )
    labels = Labels(skeleton, videos=[Video("bench.mp4", n_frames=n_frames, shape=(1024, 1024, 1), fps=30.0)])
    for a in range(animals):
        labels.add_track(f"animal{a}")
    points = rng.uniform(0, 1024, size=(n_instances, n_nodes, 2))
    points[rng.random((n_instances, n_nodes)) < 0.02] = np.nan  # a few missing points
    labels.add_instances(
        np.zeros(n_instances, dtype=np.int64),
        np.arange(n_instances) // animals,
        points,
        kind=PREDICTED,
        track=np.arange(n_instances) % animals,
        score=rng.uniform(0, 1, n_instances).astype(np.float32),
        point_scores=rng.uniform(0, 1, (n_instances, n_nodes)).astype(np.float32),
        tracking_score=rng.uniform(0, 1, n_instances).astype(np.float32),
    )
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=24)
    parser.add_argument(
        "--sleap-io", action="store_true", help="also time sleap_io.load_slp on the same file"
    )
    args = parser.parse_args(argv)

    labels, t_make, _ = measure(lambda: make_predictions(args.instances, args.nodes))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.slp")
        _, t_save, m_save = measure(lambda: save_slp(labels, path))
        size_mib = os.path.getsize(path) / 2**20
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # bench.mp4 does not exist
            loaded, t_load, m_load = measure(lambda: load_slp(path))
        assert_labels_equal(labels, loaded)
        del loaded
        sio_cell = ""
        if args.sleap_io:
            import sleap_io

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, t_sio, m_sio = measure(lambda: sleap_io.load_slp(path, open_videos=False))
            sio_cell = f" {t_sio:.1f} s / {m_sio:.0f} MiB |"

    n_fmt = f"{args.instances:,}"
    print(f"# generated in {t_make:.1f} s; file {size_mib:.0f} MiB; CPU count {os.cpu_count()}")
    header = "| instances x nodes | save_slp | save peak RSS | load_slp | load peak RSS | file size |"
    if args.sleap_io:
        header += " sleap_io.load_slp (time / peak RSS) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    print(
        f"| {n_fmt} x {args.nodes} | {t_save:.2f} s | {m_save:.0f} MiB | {t_load:.2f} s | {m_load:.0f} MiB |"
        f" {size_mib:.0f} MiB |{sio_cell}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
