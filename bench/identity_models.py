"""Identity models on clip.slp: train on frames 0-999, predict 1000-1499, score identities.

``clip.slp`` labels two flies on every frame with tracks ``female``/``male`` (identity ground truth).
This trains a ``topdown-id`` job (centroid model + centered-instance model with an identity head) on
the labelled frames 0-999 (every ``--label-step``-th), predicts frames 1000-1499 (every
``--predict-step``-th) with the full top-down pipeline, pairs predictions with the true flies by
centroid distance and reports:

- ID accuracy and identity switches after the per-frame Hungarian assignment, with and without the
  tracklet smoothing (``core/tracking/identity.py``);
- the classifier alone on known centres (true thorax points): argmax accuracy of its probabilities,
  and accuracy after assignment, so detection misses do not blur the identity figure.

With ``--model bottomup-id`` it trains a bottom-up identity model (body-part maps + one class map per
identity, SLEAP's multi-class bottom-up) instead and predicts with the bottom-up pipeline (peaks
grouped by class, then the same tracklet smoothing). Its known-position figures read the class maps
at the true body parts: the argmax per body part, and per animal the normalised mean class-map
values assigned with and without smoothing.

Usage::

    python bench/identity_models.py [--centroid-steps 200] [--centered-steps 300] [--device cpu]
    python bench/identity_models.py --model bottomup-id [--bottomup-steps 300] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "sleap-flies" / "clip.slp"


def known_centre_probabilities(run: Path, truth, frames: np.ndarray, device: str) -> tuple:
    """Class probabilities of the centered-instance run on crops around the true thorax points."""
    import torch

    from napari_posetrack.core.inference.pipelines import InferenceOptions, LoadedModel, TopDownPipeline
    from napari_posetrack.core.video import open_video

    model = LoadedModel.from_run(run, torch.device(device))
    pipe = TopDownPipeline(None, model, InferenceOptions(device=device))
    t = truth.instances
    thorax = truth.skeleton.node_index("thorax")
    out_f, out_p, out_pts, names = [], [], [], []
    with open_video(truth.videos[0]) as reader:
        for start in range(0, len(frames), 16):
            chunk = frames[start : start + 16]
            images = np.stack(reader.frames(chunk))
            rows = np.flatnonzero(np.isin(t.frame, chunk) & (t.kind == 0))
            rows = rows[np.argsort(t.frame[rows], kind="stable")]
            sample = torch.as_tensor(np.searchsorted(chunk, t.frame[rows]))
            centres = torch.as_tensor(t.points[rows, thorax], dtype=torch.float32)
            raw = pipe.run_at_centres(images, chunk, sample, centres)
            out_p.append(raw["class_probs"].cpu().numpy())
            out_f.append(t.frame[rows])
            out_pts.append(t.points[rows])
            names += [truth.tracks[i].name for i in t.track[rows]]
    return np.concatenate(out_f), np.concatenate(out_pts), np.concatenate(out_p), names, pipe.class_names


def known_part_class_values(run: Path, truth, frames: np.ndarray, device: str) -> tuple:
    """Class-map values of a bottom-up identity run at the true body parts of ``frames``.

    Returns ``(frame, points, class probabilities, true names, class names, body-part argmax accuracy)``
    per true animal: the probabilities are its class-map values averaged over its visible body parts
    and normalised, as the bottom-up pipeline makes them for a predicted animal.
    """
    import torch

    from napari_posetrack.core.inference.pipelines import BottomUpPipeline, InferenceOptions, LoadedModel
    from napari_posetrack.core.video import open_video

    model = LoadedModel.from_run(run, torch.device(device))
    pipe = BottomUpPipeline(model, InferenceOptions(device=device))
    stride = int(model.config.model.heads.class_maps.output_stride)
    t = truth.instances
    out_f, out_p, out_pts, names = [], [], [], []
    right = counted = 0
    with open_video(truth.videos[0]) as reader:
        for start in range(0, len(frames), 8):
            chunk = frames[start : start + 8]
            images = np.stack(reader.frames(chunk))
            maps = model(model.prepare(images))["class_maps"].cpu().numpy()
            rows = np.flatnonzero(np.isin(t.frame, chunk) & (t.kind == 0))
            geometry = model.geometry(images.shape[1], images.shape[2])
            xy = np.asarray(geometry.to_input(torch.as_tensor(t.points[rows], dtype=torch.float32)))
            inst, node = np.nonzero(np.isfinite(xy).all(axis=-1))
            cell = np.round(xy[inst, node] / stride).astype(int)
            cell[:, 0] = cell[:, 0].clip(0, maps.shape[-1] - 1)
            cell[:, 1] = cell[:, 1].clip(0, maps.shape[-2] - 1)
            values = maps[np.searchsorted(chunk, t.frame[rows][inst]), :, cell[:, 1], cell[:, 0]]
            true_class = np.array([pipe.class_names.index(truth.tracks[i].name) for i in t.track[rows]])
            right += int((values.argmax(axis=1) == true_class[inst]).sum())
            counted += len(inst)
            sums = np.zeros((len(rows), values.shape[1]))
            np.add.at(sums, inst, np.clip(values, 0, None))
            total = sums.sum(axis=1, keepdims=True)
            out_p.append(np.where(total > 0, sums / np.where(total > 0, total, 1), 1 / values.shape[1]))
            out_f.append(t.frame[rows])
            out_pts.append(t.points[rows])
            names += [truth.tracks[i].name for i in t.track[rows]]
    return (np.concatenate(out_f), np.concatenate(out_pts), np.concatenate(out_p), names, pipe.class_names,
            right / max(counted, 1))


def bottomup_main(args: argparse.Namespace) -> None:
    """The ``--model bottomup-id`` run (see the module docstring)."""
    from napari_posetrack.core.config import baseline_profile
    from napari_posetrack.core.inference.api import predict_labels
    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.labels import PREDICTED
    from napari_posetrack.core.tracking.identity import assign_identities, identity_accuracy, score_identities
    from napari_posetrack.core.training.run import train

    truth = load_labels(args.labels)
    labels = load_labels(args.labels)
    f = labels.instances.frame
    labels.delete(np.flatnonzero((f >= 1000) | (f % args.label_step != 0)))
    runs = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="posetrack-id-bench-"))
    cfg = baseline_profile("bottomup-id", receptive_field="small", frame_size=(1024, 1024))
    cfg.data.input_scaling = args.scale
    cfg.model.unet.filters = 8
    cfg.model.unet.max_stride = 16
    cfg.model.heads.confmaps.output_stride = 4
    cfg.model.heads.confmaps.sigma = 5.0  # at sigma 2.5 (under one cell) no body part rose above 0.1 in 150 steps
    cfg.model.heads.class_maps.output_stride = 8
    cfg.model.heads.class_maps.sigma = 8.0
    cfg.model.heads.class_maps.loss_weight = 5.0
    # the flies stand still on frames 0-999 and move on 1000-1499: shifts (besides the profile's
    # rotations, which keep the distance to the frame's centre) stop the class maps learning places
    aug = cfg.optimization.augmentation
    aug.translate_probability, aug.translate_min, aug.translate_max = 1.0, -96.0, 96.0
    cfg.optimization.batch_size = args.batch_size
    cfg.optimization.initial_learning_rate = args.learning_rate
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = args.bottomup_steps
    cfg.outputs.runs_folder = str(runs)

    records: list[dict] = []
    t0 = time.perf_counter()
    run = train(cfg, labels, device=args.device, progress=records.append)
    t1 = time.perf_counter()
    val = [r.get("val_class_accuracy") for r in records if r["event"] == "epoch"][-1]
    frames = np.arange(1000, 1500, args.predict_step)
    pipeline = load_pipeline([run], InferenceOptions(device=args.device, peak_threshold=0.1))
    predict_labels(labels, pipeline, target=f"1000:1500:{args.predict_step}")
    t2 = time.perf_counter()
    smoothed = score_identities(labels, truth, frames=frames)
    n_predicted = int((labels.instances.kind == PREDICTED).sum())
    kf, kpts, kp, knames, classes, argmax = known_part_class_values(Path(run), truth, frames, args.device)
    known = {}
    for smoothing in ("none", "tracklets"):
        got, _ = assign_identities(kf, kpts, kp, smoothing=smoothing)
        known[smoothing] = identity_accuracy(kf, [classes[i] if i >= 0 else None for i in got], knames)
    print(json.dumps({
        "model": "bottomup-id",
        "labels": args.labels,
        "train_frames": len(np.unique(labels.instances.frame[labels.instances.kind == 0])),
        "predicted_frames": len(frames),
        "predicted_instances": n_predicted,
        "steps": args.bottomup_steps,
        "batch_size": args.batch_size,
        "input_scaling": args.scale,
        "device": args.device,
        "train_s": round(t1 - t0, 1),
        "predict_s": round(t2 - t1, 1),
        "val_class_accuracy": val,
        "bottomup_tracklets": smoothed,
        "known_parts_argmax_accuracy": argmax,
        "known_parts_assigned": known,
    }, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", default=str(CLIP))
    parser.add_argument("--label-step", type=int, default=5, help="train on every n-th labelled frame of 0-999")
    parser.add_argument("--predict-step", type=int, default=2, help="predict every n-th frame of 1000-1499")
    parser.add_argument("--centroid-steps", type=int, default=200)
    parser.add_argument("--centered-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", default=None, help="runs folder (default: a temporary one)")
    parser.add_argument("--model", default="topdown-id", choices=["topdown-id", "bottomup-id"])
    parser.add_argument("--bottomup-steps", type=int, default=300)
    parser.add_argument("--scale", type=float, default=0.25, help="input scaling of the bottom-up model")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="of the bottom-up model")
    args = parser.parse_args()
    if args.model == "bottomup-id":
        bottomup_main(args)
        return

    from napari_posetrack.core.config import baseline_profile, topdown_configs
    from napari_posetrack.core.inference.api import predict_labels
    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.labels import PREDICTED
    from napari_posetrack.core.tracking.identity import (
        assign_identities,
        identity_accuracy,
        score_identities,
    )
    from napari_posetrack.core.training.run import train

    truth = load_labels(args.labels)
    labels = load_labels(args.labels)
    f = labels.instances.frame
    labels.delete(np.flatnonzero((f >= 1000) | (f % args.label_step != 0)))
    runs = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="posetrack-id-bench-"))

    base = baseline_profile("topdown-id", receptive_field="small", frame_size=(1024, 1024))
    base.data.anchor_part = "thorax"
    base.data.input_scaling = 0.5
    base.data.centroid_input_scaling = 0.25
    base.optimization.batch_size = args.batch_size
    base.optimization.initial_learning_rate = 1e-3
    base.optimization.epochs = 1
    base.outputs.runs_folder = str(runs)
    centroid_cfg, centered_cfg = topdown_configs(base)
    centroid_cfg.optimization.batches_per_epoch = args.centroid_steps
    centered_cfg.optimization.batches_per_epoch = args.centered_steps

    records: list[dict] = []
    t0 = time.perf_counter()
    centroid = train(centroid_cfg, labels, device=args.device, progress=records.append)
    t1 = time.perf_counter()
    centered = train(centered_cfg, labels, device=args.device, progress=records.append)
    t2 = time.perf_counter()
    val = [r.get("val_class_accuracy") for r in records if r["event"] == "epoch"][-1]

    frames = np.arange(1000, 1500, args.predict_step)
    pipeline = load_pipeline([centroid, centered], InferenceOptions(device=args.device, max_instances=2,
                                                                     peak_threshold=0.1))
    predict_labels(labels, pipeline, target=f"1000:1500:{args.predict_step}")
    t3 = time.perf_counter()
    smoothed = score_identities(labels, truth, frames=frames)
    n_predicted = int((labels.instances.kind == PREDICTED).sum())
    # the known-centre figures compare assignment with and without smoothing on the classifier's own
    # probabilities (labels keep only the tracks the smoothed assignment gave)
    kf, kpts, kp, knames, classes = known_centre_probabilities(Path(centered), truth, frames, args.device)
    argmax = float(np.mean(np.array(classes)[kp.argmax(axis=1)] == np.array(knames)))
    known = {}
    for smoothing in ("none", "tracklets"):
        got, _ = assign_identities(kf, kpts, kp, smoothing=smoothing)
        known[smoothing] = identity_accuracy(kf, [classes[i] if i >= 0 else None for i in got], knames)

    report = {
        "labels": args.labels,
        "train_frames": len(np.unique(labels.instances.frame[labels.instances.kind == 0])),
        "predicted_frames": len(frames),
        "predicted_instances": n_predicted,
        "centroid_steps": args.centroid_steps,
        "centered_steps": args.centered_steps,
        "batch_size": args.batch_size,
        "device": args.device,
        "train_centroid_s": round(t1 - t0, 1),
        "train_centered_s": round(t2 - t1, 1),
        "predict_s": round(t3 - t2, 1),
        "val_class_accuracy": val,
        "topdown_tracklets": smoothed,
        "known_centres_argmax_accuracy": argmax,
        "known_centres_assigned": known,
        "mean_max_probability": float(kp.max(axis=1).mean()),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
