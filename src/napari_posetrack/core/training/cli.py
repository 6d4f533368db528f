"""``posetrack train``: train from a config file or a baseline profile, or resume a run.

Usage::

    posetrack train CONFIG LABELS [--set key=value ...]
    posetrack train --profile single|topdown|topdown-id|bottomup|bottomup-id LABELS [--set key=value ...]
    posetrack train --resume RUN_DIR [LABELS]

The run folder(s) are printed on stdout (one per line); progress goes to stderr. Under ``torchrun``
every rank runs this command and rank 0 writes the run folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from napari_posetrack.core.errors import ConfigError


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "train",
        help="train a pose model (single, top-down or bottom-up) from labelled frames",
        description="Train a pose model. Give CONFIG and LABELS, or --profile NAME and LABELS, "
        "or --resume RUN_DIR to continue an interrupted run.",
    )
    p.add_argument("paths", nargs="*", metavar="CONFIG LABELS",
                   help="training config (YAML/JSON, or SLEAP training_config.json) and labels file")
    p.add_argument("--profile",
                   choices=["single", "topdown", "topdown-id", "bottomup", "bottomup-id", "centroid",
                            "centered_instance"],
                   help="start from a baseline profile instead of a config file (topdown-id: top-down with "
                   "an identity head learnt from the labelled animals' track names; bottomup-id: bottom-up "
                   "with one map per identity instead of part affinity fields)")
    p.add_argument("--receptive-field", default="medium", choices=["small", "medium", "large"],
                   help="receptive field of the baseline profile (default medium)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set optimization.batch_size=8 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last.ckpt")
    p.add_argument("--runs-folder", help="where run folders go (overrides outputs.runs_folder)")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes (default 0)")
    p.add_argument("--quiet", action="store_true", help="print no progress")
    p.set_defaults(func=run_train_command)
    return p


def _parse_overrides(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out.append((key.strip(), value.strip()))
    return out


def _progress_printer(quiet: bool) -> Any:
    if quiet:
        return None

    def show(record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == "epoch":
            print(
                f"epoch {record['epoch']}: train loss {record['train_loss']:.5g}, val loss "
                f"{record['val_loss']:.5g}, val error {record['val_mean_pixel_error']:.2f} px, "
                f"lr {record['lr']:.3g}, {record['elapsed']:.0f} s"
                + (f", val identity {record['val_class_accuracy']:.1%}" if "val_class_accuracy" in record else "")
                + (" *" if record.get("best") else ""),
                file=sys.stderr, flush=True,
            )
        elif event == "start":
            print(f"training {record.get('pipeline')} on {record.get('device')} "
                  f"({record.get('steps_per_epoch')} steps per epoch) in {record.get('run_dir')}",
                  file=sys.stderr, flush=True)
            init = record.get("initialization")
            if init:
                print(f"initialised from {init['source']}: {init['loaded']} of {init['total']} tensors loaded"
                      + (f"; left random: {', '.join(init['not_loaded'])}" if init["not_loaded"] else "")
                      + (f"; partly loaded: {', '.join(init['partly_loaded'])}" if init["partly_loaded"] else ""),
                      file=sys.stderr, flush=True)
        elif event == "end":
            print(f"stopped: {record.get('reason')} after {record.get('step')} steps", file=sys.stderr, flush=True)
        elif event == "error":
            print(record.get("message"), file=sys.stderr, flush=True)

    return show


def _labels_size(labels_path: str) -> tuple[int, int] | None:
    """The first video's frame size, for the baseline profile's input scaling (None if unknown)."""
    try:
        from napari_posetrack.core.training.run import _load_labels

        labels, _ = _load_labels(labels_path)
        for v in labels.videos:
            if v.shape is not None:
                return int(v.shape[0]), int(v.shape[1])
            from napari_posetrack.core.video import probe_video

            probed = probe_video(v)
            if probed.shape is not None:
                return int(probed.shape[0]), int(probed.shape[1])
    except (OSError, ValueError):
        return None
    return None


def run_train_command(args: argparse.Namespace) -> int:
    """Carry out ``posetrack train``; returns the exit code (errors propagate as PoseTrackError)."""
    try:
        return _train_command(args)
    finally:
        _end_distributed()


def _train_command(args: argparse.Namespace) -> int:
    from napari_posetrack.core.config import TrainingConfig, baseline_profile
    from napari_posetrack.core.training.run import resume, train, train_topdown

    progress = _progress_printer(args.quiet)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if args.resume:
        if args.profile or args.overrides or len(args.paths) > 1:
            raise ConfigError("--resume continues a run with its own saved config: give only RUN_DIR [LABELS]")
        labels = args.paths[0] if args.paths else None
        run_dirs = [resume(args.resume, labels, progress=progress, device=args.device, workers=args.workers)]
    else:
        if args.profile:
            if len(args.paths) != 1:
                raise ConfigError("with --profile give exactly one LABELS file")
            labels = args.paths[0]
            config = baseline_profile(args.profile, receptive_field=args.receptive_field,
                                      frame_size=_labels_size(labels))
        else:
            if len(args.paths) != 2:
                raise ConfigError("give CONFIG and LABELS (or --profile NAME LABELS, or --resume RUN_DIR)")
            config = TrainingConfig.from_file(args.paths[0])
            labels = args.paths[1]
        for key, value in _parse_overrides(args.overrides):
            config.set(key, value)
        if args.runs_folder:
            config.outputs.runs_folder = args.runs_folder
        config.validate()
        if config.model.pipeline == "topdown":
            run_dirs = list(train_topdown(config, labels, progress=progress, device=args.device,
                                          workers=args.workers))
        else:
            run_dirs = [train(config, labels, progress=progress, device=args.device, workers=args.workers)]
    if main_rank:
        for d in run_dirs:
            print(d, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m napari_posetrack.core.training.cli train ...``), used by
    ``torchrun`` and by tests; the ``posetrack`` command wires :func:`add_train_parser` the same way."""
    from napari_posetrack.core.errors import PoseTrackError

    parser = argparse.ArgumentParser(prog="posetrack")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PoseTrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _end_distributed() -> None:
    """Leave the torchrun process group cleanly (no-op outside torchrun)."""
    if "torch" not in sys.modules:
        return
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
