"""Training throughput per pipeline at the baseline profile sizes: samples/s and time waiting for data.

Usage::

    python bench/train_throughput.py [--data ../shared/data] [--steps 6] [--device auto|cpu|cuda]
                                     [--workers 0] [--frames 64] [--pipelines single_instance,...]

For each pipeline it builds the baseline profile for the fly clip (1024 x 1024: input scaling 0.5 for
whole-frame models, full resolution crops for the centered-instance model), caches the labelled frames,
and times ``Trainer.train_step`` on real batches. "data wait" is the share of a step spent getting the
next batch from the loader (host batch assembly, not overlapped with the device when workers = 0).
"feed/s" is what the data path alone delivers (batch assembly, transfer, augmentation and target
rendering, no network): the most samples/s it can give a fast GPU.
Frame decoding happens once before the timed steps and is reported separately.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from napari_posetrack.core.config import baseline_profile
from napari_posetrack.core.io.slp import load_slp
from napari_posetrack.core.models import build_model
from napari_posetrack.core.training import data as tdata
from napari_posetrack.core.training.pipelines import make_pipeline
from napari_posetrack.core.training.run import resolve_automatic, trainer_settings
from napari_posetrack.core.training.trainer import Trainer, resolve_device

ROOT = Path(__file__).resolve().parents[1]


def measure(pipeline: str, labels, frames, args, run_dir: Path) -> dict:
    cfg = baseline_profile(pipeline, frame_size=(1024, 1024))
    cfg.optimization.batch_size = args.batch_size
    cfg.optimization.batches_per_epoch = args.steps + 1
    cfg.optimization.mixed_precision = args.device != "cpu"
    t0 = time.perf_counter()
    cache = tdata.build_frame_cache(
        labels, frames, input_scaling=cfg.data.input_scaling, stride=cfg.model.unet.max_stride
    )
    decode_s = time.perf_counter() - t0
    cfg = resolve_automatic(cfg, frames, labels.skeleton, cache.image_shape[2])
    pipe = make_pipeline(cfg, labels.skeleton)
    ds = tdata.FrameBatchDataset(cache, np.arange(len(cache)), per_instance=pipe.per_instance)
    settings = trainer_settings(cfg, len(ds), device=args.device, workers=args.workers)
    model = build_model(cfg, labels.skeleton, in_channels=cache.image_shape[2])
    trainer = Trainer(model, pipe, ds, ds, run_dir / pipeline, settings)
    trainer.train_sampler.set_epoch(0)
    it = iter(trainer.train_loader)
    trainer.train_step(next(it))  # warm-up: allocations, cudnn autotuning
    wait = step = 0.0
    n = 0
    for _ in range(args.steps):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        trainer.train_step(batch)  # returns a Python float: the device is synchronised
        t2 = time.perf_counter()
        wait += t1 - t0
        step += t2 - t0
        n += len(batch["index"])
    # what the host side alone can deliver (batch assembly + transfer + augmentation and targets on
    # the device), i.e. the ceiling the data path puts on a fast GPU
    from napari_posetrack.core.training.data import to_device

    t0 = time.perf_counter()
    fed = 0
    trainer.train_sampler.set_epoch(1)
    for i, batch in enumerate(trainer.train_loader):
        dev = to_device(batch, trainer.device)
        pipe.prepare(dev, training=True, generator=trainer.generator)
        fed += len(batch["index"])
        if i + 1 >= args.steps:
            break
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    feed = fed / (time.perf_counter() - t0)
    image = tuple(cache.image_shape)
    if pipe.per_instance:
        image = (cfg.data.crop_size, cfg.data.crop_size, image[2])
    return {
        "pipeline": pipeline,
        "input": "x".join(str(s) for s in image),
        "filters": cfg.model.unet.filters,
        "max_stride": cfg.model.unet.max_stride,
        "batch": args.batch_size,
        "samples_per_s": n / step,
        "data_wait": wait / step,
        "decode_s": decode_s,
        "feed_samples_per_s": feed,
        "device": str(trainer.device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--pipelines", default="single_instance,centroid,centered_instance,bottomup")
    parser.add_argument("--out", default="/tmp/posetrack_bench_runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    labels = load_slp(Path(args.data) / "sleap-flies" / "clip.slp")
    frames = tdata.labelled_frames(labels)
    frames = frames.take(np.linspace(0, len(frames) - 1, args.frames).astype(int))
    print(
        f"device {resolve_device(args.device)}, torch threads {torch.get_num_threads()}, "
        f"{args.frames} frames of clip.slp (13 nodes, 2 flies), {args.steps} timed steps, workers {args.workers}"
    )
    print(
        f"{'pipeline':<18} {'input':>12} {'filters':>7} {'stride':>6} {'batch':>5} {'samples/s':>10} "
        f"{'data wait':>9} {'feed/s':>8} {'decode s':>8}"
    )
    for name in args.pipelines.split(","):
        r = measure(name, labels, frames, args, Path(args.out))
        print(
            f"{r['pipeline']:<18} {r['input']:>12} {r['filters']:>7} {r['max_stride']:>6} {r['batch']:>5} "
            f"{r['samples_per_s']:>10.2f} {r['data_wait']:>9.1%} {r['feed_samples_per_s']:>8.1f} "
              f"{r['decode_s']:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
