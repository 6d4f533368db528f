"""``posetrack predict``: trained runs + a video, labels file, folder or glob -> predictions file(s)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_predict_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict",
        help="predict poses on videos or labels files with trained models (optionally track them)",
        description=(
            "Predict with one single_instance or bottomup run, or a centroid run plus a centered_instance "
            "run (top-down). A folder or glob of videos runs one dask task per video."
        ),
    )
    p.add_argument("input", help="a video, a labels file, a folder of videos, or a glob pattern (quote it)")
    p.add_argument("-m", "--model", dest="models", action="append", required=True, help="run folder (repeat for top-down)")
    p.add_argument("-o", "--output", required=True, help="output .slp (a folder when predicting many videos)")
    p.add_argument(
        "--frames",
        default="all",
        help="all (default), labelled, unlabelled, suggested, a range 100-200, a slice ::10, or a list 1,5,9",
    )
    p.add_argument("--peak-threshold", type=float, default=0.2, help="ignore confidence peaks below this (default 0.2)")
    p.add_argument("--max-instances", type=int, default=None, help="at most this many instances per frame")
    p.add_argument("--min-visible-nodes", type=int, default=1, help="drop instances with fewer found nodes")
    p.add_argument("--overlap", choices=["oks", "iou", "none"], default="oks", help="duplicate suppression (default oks)")
    p.add_argument("--overlap-threshold", type=float, default=0.8, help="similarity above which duplicates drop")
    p.add_argument("--refinement", choices=["gaussian", "integral", "none"], default="gaussian", help="subpixel peaks")
    p.add_argument("--batch-size", type=int, default=4, help="frames per network call (default 4)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument(
        "--backend", choices=["auto", "torch", "onnxruntime", "openvino", "tensorrt"], default="torch",
        help="what runs the network: torch (default, always installed); onnxruntime or openvino, usually "
        "faster on a CPU (install napari-posetrack[onnx] or [openvino]); tensorrt on NVIDIA GPUs; auto "
        "picks the fastest one installed. onnxruntime, openvino and tensorrt first save an ONNX copy of "
        "the model in its run folder",
    )
    p.add_argument("--half", action="store_true", help="half precision (float16): faster on GPUs, refused on most CPUs")
    p.add_argument("--scheduler", default=None, help="dask scheduler address for many videos (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default 1)")
    p.add_argument("--track", action="store_true", help="track the predictions (tracker options as in 'posetrack track')")
    from napari_posetrack.core.tracking.cli import add_tracker_options

    add_tracker_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run_predict)
    return p


def run_predict(args: argparse.Namespace) -> int:
    """``posetrack predict``; a backend fallback is printed as one plain line on stderr."""
    import warnings

    from napari_posetrack.core.inference.backends import BackendFallbackWarning

    show = warnings.showwarning

    def note(message: Warning | str, category: type[Warning], *rest: object) -> None:
        if issubclass(category, BackendFallbackWarning):
            print(f"posetrack predict: {message}", file=sys.stderr, flush=True)
        else:
            show(message, category, *rest)

    with warnings.catch_warnings():
        warnings.showwarning = note
        return _predict(args)


def _predict(args: argparse.Namespace) -> int:
    from napari_posetrack.core.inference.api import expand_inputs, predict_many, predict_to_file
    from napari_posetrack.core.inference.pipelines import InferenceOptions
    from napari_posetrack.core.tracking.cli import tracker_config_from_args

    options = InferenceOptions(
        peak_threshold=args.peak_threshold,
        max_instances=args.max_instances,
        min_visible_nodes=args.min_visible_nodes,
        overlap=args.overlap,
        overlap_threshold=args.overlap_threshold,
        refinement=args.refinement,
        batch_size=args.batch_size,
        device=args.device,
        backend=args.backend,
        half=args.half,
    )
    tracker = tracker_config_from_args(args) if args.track else None
    inputs = expand_inputs(args.input)
    many = len(inputs) > 1 or Path(args.input).is_dir()
    if many:
        outputs = predict_many(
            inputs, args.models, args.output, target=args.frames, options=options, tracker=tracker,
            scheduler=args.scheduler, n_workers=args.workers,
            on_done=None if args.quiet else (lambda p: print(f"done: {p}", flush=True)),
        )
        if not args.quiet:
            print(f"predicted {len(outputs)} inputs into {args.output}")
        return 0

    def show(video: int, done: int, total: int) -> None:
        print(f"\rvideo {video}: {done}/{total} frames", end="", file=sys.stderr, flush=True)

    out = predict_to_file(
        inputs[0], args.models, args.output, target=args.frames, options=options, tracker=tracker,
        progress=None if args.quiet else show,
    )
    if not args.quiet:
        print(file=sys.stderr)
        print(f"predictions written to {out}")
    return 0
