"""End-to-end prediction speed next to model-forward-only speed on the same batches.

For each pipeline (single instance, top-down, bottom-up) at baseline-profile sizes:

* forward-only frames/s: the network alone on pre-decoded, pre-processed batches already on the device;
* end-to-end frames/s: :func:`predict_frames` over the video (decode thread, preprocessing, network,
  peaks, grouping, journal writes), and the ratio of the two (target on CUDA: >= 0.85);
* batch-1 latency (one decoded frame in, instances out);
* resident memory sampled while streaming the whole video (should stay flat).

Weights are freshly initialised (speed does not depend on training), so thresholds are set to make
every frame produce instances and the post-processing does real work.

    python bench/inference_throughput.py [--video PATH] [--frames N] [--device cpu|cuda] [--batch-size B]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from napari_posetrack.core.config import baseline_profile, topdown_configs
from napari_posetrack.core.inference.paf_grouping import GroupingOptions
from napari_posetrack.core.inference.pipelines import (
    BottomUpPipeline,
    InferenceOptions,
    LoadedModel,
    SingleInstancePipeline,
    TopDownPipeline,
)
from napari_posetrack.core.inference.predictor import predict_frames
from napari_posetrack.core.io.slp import load_slp
from napari_posetrack.core.models.model import build_model
from napari_posetrack.core.video import open_video

DATA = Path(os.environ.get("POSETRACK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def loaded(cfg, skeleton, device: torch.device) -> LoadedModel:
    cfg.data.channels = "grayscale"
    model = build_model(cfg, skeleton, in_channels=1).to(device).eval()
    return LoadedModel(cfg, skeleton, model, device, run_dir=f"<fresh {cfg.model.pipeline}>")


def make_pipelines(skeleton, frame_size, device, options):
    single = baseline_profile("single", frame_size=frame_size)
    bottomup = baseline_profile("bottomup", frame_size=frame_size)
    topdown = baseline_profile("topdown", frame_size=frame_size)
    centroid_cfg, centered_cfg = topdown_configs(topdown)
    centered_cfg.data.crop_size = 192
    return {
        "single_instance": SingleInstancePipeline(loaded(single, skeleton, device), options),
        "topdown": TopDownPipeline(
            loaded(centroid_cfg, skeleton, device), loaded(centered_cfg, skeleton, device), options
        ),
        "bottomup": BottomUpPipeline(loaded(bottomup, skeleton, device), options),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_only_fps(pipeline, frames: np.ndarray, batch_size: int, device: torch.device) -> float:
    """Network calls alone, on inputs prepared and moved to the device beforehand."""
    models = (
        [pipeline.centroid, pipeline.centered] if isinstance(pipeline, TopDownPipeline) else [pipeline.model]
    )
    batches = [frames[i : i + batch_size] for i in range(0, len(frames), batch_size)]
    prepared = [[m.prepare(b) for b in batches] for m in models]
    if isinstance(pipeline, TopDownPipeline):
        # the centered model sees one crop per animal: time it on crops of the expected count
        n_animals = 2
        crop = pipeline.crop_size
        prepared[1] = [torch.zeros((len(b) * n_animals, 1, crop, crop), device=device) for b in batches]
    for m, inputs in zip(models, prepared):
        m(inputs[0])  # warm-up
    sync(device)
    start = time.perf_counter()
    for m, inputs in zip(models, prepared):
        for x in inputs:
            m(x)
    sync(device)
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", default=str(DATA / "sleap-flies" / "clip.mp4"))
    parser.add_argument("--labels", default=str(DATA / "sleap-flies" / "clip.slp"))
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pipelines", default="single_instance,topdown,bottomup")
    parser.add_argument("--stream-frames", type=int, default=0, help="also stream a generated video this long (memory)")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    skeleton = load_slp(args.labels).skeleton
    with open_video(args.video) as reader:
        frame_size = reader.shape[:2]
        frames_idx = np.arange(min(args.frames, len(reader)))
        frames = reader.frames(frames_idx)
    options = InferenceOptions(
        peak_threshold=float("-inf"), device=args.device, batch_size=args.batch_size, max_instances=2
    )
    pipelines = make_pipelines(skeleton, frame_size, device, options)
    if "bottomup" in pipelines:
        # with no threshold every pixel of fresh maps would be a peak: pick the threshold that leaves a few
        # peaks per map, as a trained model's maps would
        bu = pipelines["bottomup"]
        maps = bu.model(bu.model.prepare(frames[: args.batch_size]))["confmaps"]
        top = torch.quantile(maps.flatten(2)[..., ::7].float(), 0.999, dim=-1).min().item()
        # a trained model on this two-fly clip finds two peaks per node and a stray one or two
        bu.options = InferenceOptions(
            peak_threshold=top, device=args.device, batch_size=args.batch_size,
            grouping=GroupingOptions(max_peaks_per_node=4),
        )

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, device {device}, "
        f"torch {torch.__version__}; video {Path(args.video).name} {frame_size[1]}x{frame_size[0]}, "
        f"{len(frames_idx)} frames, batch {args.batch_size}"
    )
    print()
    print(
        "| pipeline | forward-only frames/s | end-to-end frames/s | ratio | batch-1 latency median (ms) | RSS start -> end (MiB) |"
    )
    print("|---|---|---|---|---|---|")
    proc = psutil.Process()
    for name in args.pipelines.split(","):
        pipeline = pipelines[name]
        fwd = forward_only_fps(pipeline, frames, args.batch_size, device)
        rss = []
        predict_frames(pipeline, args.video, frames_idx[: args.batch_size])  # warm-up
        start = time.perf_counter()
        predict_frames(
            pipeline, args.video, frames_idx, progress=lambda d, t: rss.append(proc.memory_info().rss)
        )
        sync(device)
        e2e = len(frames_idx) / (time.perf_counter() - start)
        lat = []
        for i in range(5):
            t0 = time.perf_counter()
            pipeline.predict(frames[i : i + 1], [i])
            sync(device)
            lat.append((time.perf_counter() - t0) * 1000)
        print(
            f"| {name} | {fwd:.1f} | {e2e:.1f} | {e2e / fwd:.2f} | {statistics.median(lat):.0f} | "
            f"{rss[0] / 2**20:.0f} -> {rss[-1] / 2**20:.0f} |"
        )


    if args.stream_frames:
        long_stream_memory(args.stream_frames, device, args.batch_size)


def long_stream_memory(n_frames: int, device: torch.device, batch_size: int) -> None:
    """Resident memory while predicting every frame of a long generated video (should stay flat)."""
    import tempfile

    from napari_posetrack.core.sample import write_sample

    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        sample = write_sample(tmp, n_animals=2, n_frames=n_frames, size=(128, 128), seed=1)
        skeleton = load_slp(sample["labels"]).skeleton
        options = InferenceOptions(peak_threshold=float("-inf"), device=str(device), batch_size=batch_size)
        cfg = baseline_profile("single", frame_size=(128, 128))
        pipeline = SingleInstancePipeline(loaded(cfg, skeleton, device), options)
        rss: list[int] = []
        start = time.perf_counter()
        predict_frames(pipeline, sample["video"], progress=lambda d, t: rss.append(proc.memory_info().rss))
        elapsed = time.perf_counter() - start
    mib = np.asarray(rss) / 2**20
    tenth = max(1, len(mib) // 10)
    print()
    print(f"long stream: {n_frames} frames 128x128 single instance in {elapsed:.0f} s; RSS after the first 10% "
          f"{mib[tenth]:.0f} MiB, at the end {mib[-1]:.0f} MiB, max {mib.max():.0f} MiB")


if __name__ == "__main__":
    main()
