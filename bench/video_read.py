"""Benchmark the video reader against plain PyAV on the real videos.

For each video: sequential frames/s of ``VideoReader.iter_frames`` (numpy frames out) and of
``VideoReader.frame(i)`` in order (napari playback), both against plain PyAV decoding with
``to_ndarray(format="rgb24")`` of the same file in the same run, each with PyAV's default
decoder threading and with FFmpeg frame threading (the reader's default), so every ratio
compares like with like; then the latency of random access (uncached) over random indices.
Prints a markdown table; rates are wall-clock / CPU-time frames per second.

Both loops keep the latest frame array alive while the next one is made, as any consumer
does: dropping each array at once lets the allocator hand the same buffer back for the next
frame and makes a plain loop look faster than any real use of its frames.

Usage: ``python bench/video_read.py [--data DIR] [--repeats 2] [--random 100]``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from napari_posetrack.core.video import open_video
from napari_posetrack.core.video.pyav import _Decoder

VIDEOS = [
    "sleap-flies/clip.mp4",
    "sleap-flies/centered_pair_low_quality.mp4",
    "sleap-flies/centered_pair_small.mp4",
    "lp-mirror-mouse/videos/test_vid.mp4",
]


class Rate:
    """Frames per second of wall-clock time and of process CPU time (all threads)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, n_frames: int) -> tuple[float, float]:
        return n_frames / (time.perf_counter() - self.wall), n_frames / (time.process_time() - self.cpu)


def plain_pyav_fps(path: Path, thread_type: str | None = None) -> tuple[float, float]:
    """Frames/s of the plain PyAV loop a user would write (default decoder settings, or the
    frame threading our reader turns on when ``thread_type="AUTO"``)."""
    import av

    rate = Rate()
    n = 0
    with av.open(str(path)) as container:
        if thread_type:
            container.streams.video[0].thread_type = thread_type
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")  # held until the next frame, as in use
            n += 1
    del image
    return rate.stop(n)


def iter_frames_fps(path: Path, thread_type: str = "AUTO") -> tuple[float, float]:
    _Decoder.thread_type = thread_type
    try:
        with open_video(path) as reader:
            rate = Rate()
            n = 0
            for _index, image in reader.iter_frames():  # held until the next frame, as in use
                n += 1
            del image
            return rate.stop(n)
    finally:
        _Decoder.thread_type = "AUTO"


def frame_loop_fps(path: Path) -> tuple[float, float]:
    with open_video(path, cache_size=0) as reader:
        rate = Rate()
        for i in range(reader.n_frames):
            reader.frame(i)
        return rate.stop(reader.n_frames)


def random_latencies_ms(path: Path, n: int, seed: int = 0) -> np.ndarray:
    with open_video(path, cache_size=0) as reader:
        indices = np.random.default_rng(seed).integers(0, reader.n_frames, size=n)
        reader.frame(0)  # open this thread's decoder outside the timing
        times = []
        for i in indices:
            start = time.perf_counter()
            reader.frame(int(i))
            times.append(time.perf_counter() - start)
    return np.asarray(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_data = os.environ.get(
        "POSETRACK_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    parser.add_argument("--data", default=default_data)
    parser.add_argument(
        "--repeats", type=int, default=3, help="sequential passes per method; the best counts"
    )
    parser.add_argument("--random", type=int, default=100, help="random indices per video")
    args = parser.parse_args()

    rows = []
    for relative in VIDEOS:
        path = Path(args.data) / relative
        if not path.exists():
            print(f"skipping {path}: not found")
            continue
        with open_video(path) as reader:
            desc = f"{reader.shape[1]}x{reader.shape[0]}x{reader.shape[2]}, {reader.n_frames} fr, keyframes {len(reader.keyframes)}"
        plain, ours_slice, plain_auto, ours, loop = [], [], [], [], []
        for _ in range(args.repeats):  # interleaved, so a busy machine slows all methods alike
            plain.append(plain_pyav_fps(path))
            ours_slice.append(iter_frames_fps(path, "SLICE"))
            plain_auto.append(plain_pyav_fps(path, "AUTO"))
            ours.append(iter_frames_fps(path))
            loop.append(frame_loop_fps(path))
        lat = random_latencies_ms(path, args.random)
        # Best of the repeats, for wall-clock and for CPU-time rates separately.
        best = [np.max(np.asarray(r), axis=0) for r in (plain, ours_slice, plain_auto, ours, loop)]
        (p_w, p_c), (s_w, s_c), (a_w, a_c), (o_w, o_c), (l_w, l_c) = best
        rows.append(
            f"| {relative} | {desc} | {p_w:.0f} / {p_c:.0f} | {s_w:.0f} / {s_c:.0f} | "
            f"**{s_w / p_w:.2f}x** / {s_c / p_c:.2f}x | {a_w:.0f} / {a_c:.0f} | {o_w:.0f} / {o_c:.0f} | "
            f"**{o_w / a_w:.2f}x** / {o_c / a_c:.2f}x | {o_w / p_w:.2f}x | {l_w:.0f} / {l_c:.0f} | "
            f"{np.median(lat):.1f} | {np.percentile(lat, 90):.1f} | {lat.max():.1f} |"
        )
        print(rows[-1], flush=True)

    print()
    print("Sequential rates are wall-clock / CPU-time frames per second (best of the repeats).\n")
    print(
        "| video | frames | plain PyAV (default threads) | iter_frames (same threads) | ratio | "
        "plain PyAV (frame threads) | iter_frames (frame threads, our default) | ratio | "
        "ours default / plain default | frame(i) in order (frame threads) | "
        f"random access median ms | p90 ms | max ms ({args.random} indices, uncached) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
