"""``posetrack demo``: the whole loop on the built-in sample, for new users and as a smoke test.

Label set -> train -> predict every frame -> track -> evaluate against ground truth -> export.
The labelled set is the sample's ground truth on every ``label_every``-th frame, standing in for a
user's clicks; everything after that is exactly what a user's project goes through.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.errors import atomic_write


@dataclass
class DemoSettings:
    """Sizes of the demo run (defaults finish in a few minutes on a laptop CPU)."""

    n_animals: int = 2
    n_frames: int = 200
    size: tuple[int, int] = (160, 160)
    label_every: int = 4
    pipeline: str = "topdown"
    epochs: int = 12
    batches_per_epoch: int = 20
    filters: int = 8
    seed: int = 0
    device: str = "auto"


def _labelled_subset(labels, every: int):
    """The ground truth of every ``every``-th frame as the user's labelled frames."""
    return labels.subset(np.flatnonzero(labels.instances.frame % every == 0))


def _training_config(settings: DemoSettings, runs_folder: Path):
    from napari_posetrack.core.config import baseline_profile

    cfg = baseline_profile(settings.pipeline, receptive_field="medium", frame_size=settings.size)
    cfg.model.unet.filters = settings.filters
    # the centroid model only needs to find animals: half resolution is plenty and 4x cheaper
    cfg.data.centroid_input_scaling = 0.5
    # wide peaks give a briefly trained network a usable gradient from the first steps
    cfg.model.heads.confmaps.sigma = 5.0
    cfg.optimization.epochs = settings.epochs
    cfg.optimization.batches_per_epoch = settings.batches_per_epoch
    cfg.optimization.min_batches_per_epoch = 1
    cfg.optimization.initial_learning_rate = 1e-3
    cfg.optimization.early_stopping.enabled = False
    cfg.data.seed = settings.seed
    cfg.outputs.runs_folder = str(runs_folder)
    cfg.outputs.run_name_prefix = "demo."
    return cfg


def run_demo(
    out_dir: str | os.PathLike[str],
    settings: DemoSettings | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole loop headless and return what was written and measured.

    Returns a dict with the paths (``sample``, ``labels``, ``runs``, ``predictions``, ``metrics``,
    ``analysis``, ``csv``) and the headline metrics.
    """
    from napari_posetrack.core.evaluation import evaluate_poses, evaluate_tracking
    from napari_posetrack.core.inference.api import predict_to_file
    from napari_posetrack.core.inference.pipelines import InferenceOptions
    from napari_posetrack.core.io import load_labels, save_labels
    from napari_posetrack.core.io.analysis_h5 import save_analysis_h5, save_tidy_csv
    from napari_posetrack.core.sample import write_sample
    from napari_posetrack.core.tracking.tracker import TrackerConfig
    from napari_posetrack.core.training.run import train, train_topdown

    settings = settings or DemoSettings()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    log(f"[1/6] writing the sample ({settings.n_animals} animals, {settings.n_frames} frames) to {out / 'sample'}")
    sample = write_sample(
        out / "sample", n_animals=settings.n_animals, n_frames=settings.n_frames, size=settings.size, seed=settings.seed
    )
    truth = load_labels(sample["labels"])
    labelled = _labelled_subset(truth, settings.label_every)
    labels_path = out / "labels.slp"
    save_labels(labelled, labels_path)
    n_labelled = len(labelled.labeled_frames())
    log(f"[2/6] label set: {n_labelled} labelled frames, {labelled.n_instances} instances -> {labels_path}")

    log(f"[3/6] training a {settings.pipeline} model ({settings.epochs} epochs x {settings.batches_per_epoch} batches)")
    cfg = _training_config(settings, out / "models")

    def show(record: dict[str, Any]) -> None:
        if record.get("event") == "epoch":
            log(
                f"      epoch {record.get('epoch')}: train loss {record.get('train_loss', float('nan')):.5f}, "
                f"validation loss {record.get('val_loss', float('nan')):.5f}"
            )

    if settings.pipeline == "topdown":
        runs = list(train_topdown(cfg, labels_path, progress=show, device=settings.device))
    else:
        runs = [train(cfg, labels_path, progress=show, device=settings.device)]

    log("[4/6] predicting every frame and tracking identities")
    predictions = out / "predictions.slp"
    tracker = TrackerConfig(max_tracks=settings.n_animals)
    predict_to_file(
        sample["video"], runs, predictions,
        options=InferenceOptions(max_instances=settings.n_animals, device=settings.device), tracker=tracker,
    )

    log("[5/6] evaluating against the sample's ground truth")
    pred = load_labels(predictions)
    metrics = {
        "poses": evaluate_poses(truth, pred),
        "tracking": evaluate_tracking(truth, pred, node="thorax", max_dist=10.0),
    }
    metrics_path = out / "metrics.json"
    with atomic_write(metrics_path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, default=_json_default))

    log("[6/6] exporting trajectories")
    analysis = out / "predictions.analysis.h5"
    csv = out / "predictions.csv"
    save_analysis_h5(pred, analysis)
    save_tidy_csv(pred, csv)

    poses, tracking = metrics["poses"], metrics["tracking"]
    summary = {
        "sample": sample["video"],
        "labels": str(labels_path),
        "runs": [str(r) for r in runs],
        "predictions": str(predictions),
        "metrics": str(metrics_path),
        "analysis": str(analysis),
        "csv": str(csv),
        "median_error_px": poses["distance"]["all"]["median"],
        "oks_map": poses["oks"]["mAP"],
        "id_switches": tracking["id_switches"],
        "idf1": tracking["idf1"],
        "seconds": time.monotonic() - started,
    }
    log(
        f"done in {summary['seconds']:.0f} s: median error {summary['median_error_px']:.2f} px, "
        f"OKS mAP {summary['oks_map']:.3f}, ID switches {summary['id_switches']}, IDF1 {summary['idf1']:.3f}"
    )
    summary_path = out / "summary.json"
    with atomic_write(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
    for key in ("predictions", "metrics", "analysis", "csv"):
        log(f"  {key:12s} {summary[key]}")
    log(f"  {'summary':12s} {summary_path}")
    return summary


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def open_demo_in_napari(out_dir: str | os.PathLike[str]) -> int:
    """Open the result in napari with the widgets docked, in a separate process (core never imports napari).

    Blocks until the viewer is closed; returns the viewer process's exit code.
    """
    import subprocess
    import sys

    summary_path = Path(out_dir).resolve() / "summary.json"
    return subprocess.call([sys.executable, "-m", "napari_posetrack.demo_viewer", str(summary_path)])


def add_demo_parser(subparsers: Any) -> Any:
    """Register ``posetrack demo``."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole loop on the built-in sample (label set -> train -> predict -> track -> evaluate -> export)",
        description="Write the built-in sample, train briefly, predict and track every frame, evaluate against "
        "the sample's ground truth, export trajectories, then open the result in napari (unless --headless).",
    )
    p.add_argument("out_dir", nargs="?", default="posetrack-demo", help="where to write everything (default ./posetrack-demo)")
    p.add_argument("--headless", action="store_true", help="stay on the command line; do not open napari")
    p.add_argument("--pipeline", choices=["topdown", "bottomup"], default="topdown", help="model type (default topdown)")
    p.add_argument("--animals", type=int, default=DemoSettings.n_animals, help="animals in the sample")
    p.add_argument("--frames", type=int, default=DemoSettings.n_frames, help="frames in the sample")
    p.add_argument("--epochs", type=int, default=DemoSettings.epochs, help="training epochs")
    p.add_argument("--batches-per-epoch", type=int, default=DemoSettings.batches_per_epoch, help="batches per epoch")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.set_defaults(func=_run_demo_command)
    return p


def _run_demo_command(args: Any) -> int:
    settings = DemoSettings(
        n_animals=args.animals, n_frames=args.frames, pipeline=args.pipeline, epochs=args.epochs,
        batches_per_epoch=args.batches_per_epoch, device=args.device,
    )
    run_demo(args.out_dir, settings)
    if not args.headless:
        print("opening napari with the sample, its predictions and the PoseTrack widgets docked")
        return open_demo_in_napari(args.out_dir)
    return 0
