"""The model zoo side by side: size, CPU speed, and accuracy after the same training budget.

Usage::

    python bench/model_zoo.py speed [--threads 2] [--repeats 3] [--size 512] [--archs unet,resnet18,...]
    python bench/model_zoo.py accuracy [--data ../shared/data] [--steps 200] [--batch 4] [--archs ...]

``speed``: for each architecture, a 13-node single-animal confidence-map model (one grey channel,
maps at stride 4) is built; it reports the parameter count, the forward time per frame at
``size`` x ``size`` with batch 4 and batch 1 (eval mode, ``torch.inference_mode``, best of
``repeats``), and training samples/s (forward + backward + Adam step, batch 4, same size).

``accuracy``: centered-instance models (192 x 192 crops around each fly, full resolution) are
trained with the same number of steps, batch size, learning rate and augmentation on
``sleap-flies/clip.slp`` frames 0-999, then evaluated on frames 1200-1499: crops around the ground
truth centres (so only the pose network is compared, not a centroid model), peaks found with the
matched-filter refinement, errors in pixels over every labelled node: median, 95th percentile and
PCK@5px (share of nodes within 5 px).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_posetrack.core.config import TrainingConfig, baseline_profile
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import build_model

ROOT = Path(__file__).resolve().parents[1]

FPN = {"model.neck.type": "fpn", "model.neck.levels": [2, 3, 4, 5], "model.neck.channels": 128}
ARCHITECTURES: dict[str, dict[str, object]] = {
    "unet": {},
    "resnet18": {"model.backbone": "resnet18"},
    "resnet18+fpn": {"model.backbone": "resnet18", **FPN},
    "resnet50": {"model.backbone": "resnet50"},
    "resnet50+fpn": {"model.backbone": "resnet50", **FPN},
    "efficientnet_b0+bifpn": {
        "model.backbone": "efficientnet_b0",
        "model.neck.type": "bifpn",
        "model.neck.levels": [2, 3, 4, 5],
        "model.neck.channels": 64,
        "model.neck.layers": 2,
    },
    "mobilenet_v3_small": {"model.backbone": "mobilenet_v3_small"},
    "mobilenet_v3_large+fpn": {"model.backbone": "mobilenet_v3_large", **FPN},
    "stacked_densenet": {"model.backbone": "stacked_densenet"},
    "stacked_hourglass": {"model.backbone": "stacked_hourglass"},
}
"""Name -> config fields set on top of the single-instance baseline profile (UNet, medium receptive field)."""

ACCURACY_SET = ["unet", "resnet18+fpn", "mobilenet_v3_large+fpn", "stacked_densenet", "stacked_densenet+posture_graph"]


def fly_skeleton() -> Skeleton:
    nodes = ["head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4", "midlegL4", "midlegR4",
             "hindlegL4", "hindlegR4", "eyeL", "eyeR"]
    edges = [("thorax", n) for n in nodes if n not in ("thorax", "eyeL", "eyeR")] + [("head", "eyeL"), ("head", "eyeR")]
    return Skeleton(nodes=nodes, edges=edges)


def architecture_config(name: str, pipeline: str = "single_instance") -> TrainingConfig:
    """The baseline profile of ``pipeline`` with the architecture ``name`` (``+posture_graph`` allowed)."""
    base, _, extra = name.partition("+posture_graph")
    cfg = baseline_profile("single" if pipeline == "single_instance" else pipeline)
    cfg.model.heads.confmaps.output_stride = 4
    for key, value in ARCHITECTURES[base].items():
        cfg.set(key, json.dumps(value) if isinstance(value, list) else str(value))
    if name.endswith("+posture_graph"):
        cfg.model.heads.confmaps.posture_graph = True
    return cfg


def measure_speed(name: str, size: int, repeats: int) -> dict[str, float]:
    skeleton = fly_skeleton()
    cfg = architecture_config(name)
    model = build_model(cfg, skeleton, in_channels=1)
    n_params = sum(p.numel() for p in model.parameters())
    model.eval()
    per_frame = {}
    for batch in (4, 1):
        images = torch.rand(batch, 1, size, size)
        with torch.inference_mode():
            model(images)  # warm-up: allocations, oneDNN primitive caches
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(images)
                times.append(time.perf_counter() - t0)
        per_frame[batch] = min(times) / batch
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.rand(4, 1, size, size)
    with torch.no_grad():
        targets = {k: torch.rand_like(v) for k, v in model(images).items()}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(images)
        loss = sum(((out[k] - targets[k]) ** 2).mean() for k in out)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    t0 = time.perf_counter()
    steps = max(1, repeats - 1)
    for _ in range(steps):
        step()
    train_sps = 4 * steps / (time.perf_counter() - t0)
    return {"params_M": n_params / 1e6, "ms_per_frame_b4": 1000 * per_frame[4],
            "ms_per_frame_b1": 1000 * per_frame[1], "train_samples_s": train_sps}


def run_speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.size}x{args.size}, grey, 13 nodes, maps at stride 4")
    print("| architecture | parameters | forward ms/frame, batch 4 | forward ms/frame, batch 1 | training samples/s (batch 4) |")
    print("|---|---|---|---|---|")
    for name in args.archs:
        r = measure_speed(name, args.size, args.repeats)
        print(f"| {name} | {r['params_M']:.2f} M | {r['ms_per_frame_b4']:.0f} | {r['ms_per_frame_b1']:.0f} | "
              f"{r['train_samples_s']:.2f} |", flush=True)


def evaluate_crops(run_dir: Path, labels, crop: int) -> dict[str, float]:
    """Pixel errors of a centered-instance run on crops around the ground-truth centres of ``labels``."""
    from napari_posetrack.core.inference.peaks import find_global_peaks
    from napari_posetrack.core.training import data as tdata
    from napari_posetrack.core.training.run import load_run
    from napari_posetrack.core.training.targets import crop_instances, instance_centroids

    config, _, model = load_run(run_dir)
    anchor = labels.skeleton.node_index(config.data.anchor_part) if config.data.anchor_part else None
    frames = tdata.labelled_frames(labels)
    cache = tdata.build_frame_cache(labels, frames, input_scaling=1.0, channels=1, stride=32)
    head = config.model.heads.confmaps
    errors = []
    with torch.inference_mode():
        for start in range(0, len(cache), 16):
            images = torch.from_numpy(np.ascontiguousarray(cache.images[start:start + 16])).permute(0, 3, 1, 2).float() / 255
            points = torch.from_numpy(cache.points[start:start + 16]).float()
            crops = crop_instances(images, points, instance_centroids(points, anchor), crop)
            maps = model(crops.images)["confmaps"]
            xy, _ = find_global_peaks(maps, threshold=float("-inf"), sigma=head.sigma / head.output_stride)
            d = torch.linalg.vector_norm(xy * head.output_stride - crops.points, dim=-1)
            errors.append(d[torch.isfinite(crops.points).all(dim=-1)].numpy())
    e = np.concatenate(errors)
    return {"median_px": float(np.median(e)), "p95_px": float(np.percentile(e, 95)), "pck5": float((e < 5).mean()),
            "n_points": int(e.size)}


def run_accuracy(args: argparse.Namespace) -> None:
    from napari_posetrack.core.io.slp import load_slp
    from napari_posetrack.core.training.run import train

    torch.set_num_threads(args.threads)
    labels = load_slp(Path(args.data) / "sleap-flies" / "clip.slp")
    labels.replace_video(0, str(Path(args.data) / "sleap-flies" / "clip.mp4"))
    frame = labels.instances.frame
    train_labels = labels.subset(labels.rows()[frame < 1000])
    test_labels = labels.subset(labels.rows()[(frame >= 1200) & (frame < 1500)])
    print(f"centered instance, crops {args.crop}, {args.steps} steps of batch {args.batch}, Adam lr {args.lr}, "
          f"{torch.get_num_threads()} threads; train frames 0-999, test frames 1200-1499")
    print("| architecture | parameters | training time | median error (px) | 95th percentile (px) | PCK@5px |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.archs:
            cfg = architecture_config(name, "centered_instance")
            cfg.data.crop_size = args.crop
            cfg.data.validation_fraction = 0.02
            cfg.optimization.batch_size = args.batch
            cfg.optimization.epochs = 1
            cfg.optimization.batches_per_epoch = cfg.optimization.min_batches_per_epoch = args.steps
            cfg.optimization.initial_learning_rate = args.lr
            cfg.optimization.early_stopping.enabled = False
            cfg.outputs.runs_folder = tmp
            cfg.outputs.run_name = name.replace("+", "_")
            t0 = time.perf_counter()
            run = train(cfg, train_labels, device="cpu")
            elapsed = time.perf_counter() - t0
            params = sum(p.numel() for p in build_model(cfg, labels.skeleton, in_channels=1).parameters())
            r = evaluate_crops(run, test_labels, args.crop)
            print(f"| {name} | {params / 1e6:.2f} M | {elapsed / 60:.1f} min | {r['median_px']:.2f} | {r['p95_px']:.1f} | "
                  f"{r['pck5']:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["speed", "accuracy"])
    parser.add_argument("--archs", type=lambda s: s.split(","), default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    if args.archs is None:
        args.archs = list(ARCHITECTURES) if args.mode == "speed" else ACCURACY_SET
    (run_speed if args.mode == "speed" else run_accuracy)(args)


if __name__ == "__main__":
    main()
