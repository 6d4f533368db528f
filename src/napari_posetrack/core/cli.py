"""The ``posetrack`` command line: a thin shell over the same API the napari widgets use.

Commands defined here: ``info`` (what a labels file or a video holds), ``convert`` (between
labels formats) and ``sample`` (write the generated sample project). Other modules add commands
with an ``add_<name>_parser(subparsers)`` function that registers a subcommand and sets
``func=<callable(args) -> int>``; list them in :data:`EXTERNAL_PARSERS` (one line each).

Errors from bad input (:class:`~napari_posetrack.core.errors.PoseTrackError`, ``OSError``,
``ValueError``) print one line on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_posetrack import __version__
from napari_posetrack.core.errors import PoseTrackError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")

EXTERNAL_PARSERS: list[str] = [
    # "module:function" of other modules' add_<name>_parser(subparsers); imported when the CLI starts,
    # so those modules must keep heavy imports (torch, av, cv2) inside their functions.
    "napari_posetrack.core.training.cli:add_train_parser",
    "napari_posetrack.core.inference.cli:add_predict_parser",
    "napari_posetrack.core.inference.export:add_export_parser",
    "napari_posetrack.core.tracking.cli:add_track_parser",
    "napari_posetrack.core.evaluation_cli:add_evaluate_parser",
    "napari_posetrack.core.demo:add_demo_parser",
    "napari_posetrack.core.tools.transcode:add_transcode_parser",
    "napari_posetrack.core.tools.merge:add_merge_parser",
]


# --------------------------------------------------------------------------- info


def _video_facts(path: str, check: bool = False) -> dict[str, Any]:
    """Frames, size, fps, codec and keyframe spacing of a video file or image folder.

    Video files add their timing (nominal and measured rate, largest gap) and the result of
    ``check_video``: run now when ``check``, else the cached one from an earlier check if any.
    """
    import numpy as np

    from napari_posetrack.core.video import cached_check, check_video, open_video

    with open_video(path) as reader:
        h, w, c = reader.shape
        facts: dict[str, Any] = {
            "type": "video",
            "path": str(path),
            "backend": reader.backend,
            "frames": int(reader.n_frames),
            "width": int(w),
            "height": int(h),
            "channels": int(c),
            "grayscale": bool(reader.grayscale),
            "fps": None if reader.fps is None else float(reader.fps),
            "codec": "images" if reader.backend == "images" else None,
            "keyframe_interval": None,
        }
        keyframes = getattr(reader, "keyframes", None)
        if keyframes is not None and len(keyframes):
            gaps = np.diff(np.append(np.asarray(keyframes), reader.n_frames))
            facts["keyframe_interval"] = int(gaps.max())
            facts["keyframes"] = len(keyframes)
        if reader.backend == "pyav":
            facts["timing"] = reader.timing.to_dict()
            facts["bad_seek_points"] = reader.bad_seek_points
    if reader.backend != "pyav":
        if check:
            raise ValueError(
                f"{path}: --check decodes video files; {reader.backend} frames have no stream to check"
            )
        return facts
    facts.update(_codec_facts(path))
    if check:
        result = check_video(path, progress=_progress_printer("checking") if sys.stderr.isatty() else None)
        facts["check"], facts["check_cached"] = result.to_dict(), False
        found = {m.keyframe for m in result.seek_mismatches}
        facts["bad_seek_points"] = sorted(found.union(facts["bad_seek_points"]))
    else:
        cached = cached_check(path)
        if cached is not None:
            facts["check"], facts["check_cached"] = cached.to_dict(), True
    return facts


def _progress_printer(what: str) -> Callable[[int, int], None]:
    """A progress callback writing ``what: NN%`` over itself on stderr (for terminals)."""

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{what}: {100 * done // max(total, 1)}%", end=end, file=sys.stderr, flush=True)

    return show


def _codec_facts(path: str) -> dict[str, Any]:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return {
            "codec": ctx.name,
            "profile": ctx.profile,
            "pixel_format": ctx.format.name if ctx.format is not None else None,
            "b_frames": bool(getattr(ctx, "has_b_frames", False)),
        }


def _labels_facts(path: str, search_paths: Sequence[str]) -> dict[str, Any]:
    """Videos, skeleton, instance and track counts of a labels file."""
    import numpy as np

    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.labels import PREDICTED, USER

    labels = load_labels(path, search_paths=search_paths)
    t = labels.instances
    missing = set(labels.missing_videos())
    videos = []
    for i, v in enumerate(labels.videos):
        rows = t.video == i
        videos.append(
            {
                "index": i,
                "path": v.filename
                if not isinstance(v.path, list)
                else f"{len(v.path)} images in {Path(v.filename).parent}",
                "backend": v.backend,
                "frames": v.n_frames,
                "shape": None if v.shape is None else list(v.shape),
                "fps": v.fps,
                "missing": i in missing,
                "labelled_frames": len(labels.labeled_frames(video=i)),
                "user_instances": int((rows & (t.kind == USER)).sum()),
                "predicted_instances": int((rows & (t.kind == PREDICTED)).sum()),
            }
        )
    track_counts = (
        np.bincount(t.track[t.track >= 0], minlength=len(labels.tracks))
        if len(t)
        else np.zeros(len(labels.tracks), int)
    )
    sk = labels.skeleton
    points = t.points
    present = ~np.isnan(points).any(axis=-1) if len(t) else np.zeros((0, sk.n_nodes), bool)
    return {
        "type": "labels",
        "path": str(path),
        "skeleton": {
            "name": sk.name,
            "nodes": list(sk.nodes),
            "edges": [list(e) for e in sk.edge_names],
            "symmetries": [list(s) for s in sk.symmetry_names],
        },
        "videos": videos,
        "instances": {
            "total": len(t),
            "user": int((t.kind == USER).sum()),
            "predicted": int((t.kind == PREDICTED).sum()),
            "points_present": int(present.sum()),
            "points_missing": int((~present).sum()),
            "points_occluded": int((present & ~t.visible).sum()),
        },
        "frames": {"labelled": len(labels), "with_user_instances": len(labels.user_frames())},
        "tracks": [{"name": tr.name, "instances": int(n)} for tr, n in zip(labels.tracks, track_counts)],
        "untracked_instances": int((t.track < 0).sum()),
        "suggestions": len(labels.suggestions),
    }


def _print_video_facts(f: dict[str, Any]) -> None:
    fps = "unknown" if f["fps"] is None else f"{f['fps']:g}"
    print(f"video: {f['path']}")
    print(f"  frames: {f['frames']}")
    print(
        f"  size: {f['width']}x{f['height']}, {f['channels']} channel(s){' (grayscale content)' if f['grayscale'] else ''}"
    )
    timing = f.get("timing")
    if timing:
        nominal = "unknown" if timing["nominal_fps"] is None else f"{timing['nominal_fps']:g}"
        measured = "unknown" if timing["measured_fps"] is None else f"{timing['measured_fps']:g}"
        line = f"  fps: {fps} (nominal {nominal}, measured {measured}"
        if timing["largest_gap_s"] is not None:
            line += f"; largest gap {timing['largest_gap_s'] * 1000:.1f} ms after frame {timing['largest_gap_after']}"
        print(line + ("; variable frame rate)" if timing["variable"] else ")"))
    else:
        print(f"  fps: {fps}")
    codec = f.get("codec") or "unknown"
    if f.get("profile"):
        codec += f" ({f['profile']})"
    print(f"  codec: {codec}")
    if f.get("keyframe_interval") is not None:
        print(f"  keyframe interval: {f['keyframe_interval']} frames ({f['keyframes']} keyframes)")
    if f.get("bad_seek_points"):
        points = ", ".join(str(k) for k in f["bad_seek_points"][:10])
        print(f"  keyframes that cannot stand alone (seeking is slow there): {points}")
    if "check" in f:
        from napari_posetrack.core.video import VideoCheck

        lines = VideoCheck.from_dict(f["check"]).summary()
        if f.get("check_cached"):
            lines[0] += " (cached; --check runs it again)"
        for line in lines:
            print(f"  {line}")


def _print_labels_facts(f: dict[str, Any]) -> None:
    sk = f["skeleton"]
    print(f"labels: {f['path']}")
    print(
        f"skeleton: {sk['name']!r}, {len(sk['nodes'])} nodes, {len(sk['edges'])} edges, {len(sk['symmetries'])} symmetries"
    )
    print(f"  nodes: {', '.join(sk['nodes'])}")
    if sk["edges"]:
        print(f"  edges: {', '.join(f'{a}->{b}' for a, b in sk['edges'])}")
    print(f"videos: {len(f['videos'])}")
    for v in f["videos"]:
        frames = "?" if v["frames"] is None else v["frames"]
        status = "MISSING" if v["missing"] else "found"
        print(
            f"  [{v['index']}] {v['path']} ({status}): {frames} frames, {v['labelled_frames']} labelled, "
            f"{v['user_instances']} user / {v['predicted_instances']} predicted instances"
        )
    n = f["instances"]
    print(f"instances: {n['total']} ({n['user']} user, {n['predicted']} predicted)")
    print(
        f"  points: {n['points_present']} present ({n['points_occluded']} occluded), {n['points_missing']} missing"
    )
    print(
        f"frames: {f['frames']['labelled']} labelled, {f['frames']['with_user_instances']} with user instances"
    )
    tracks = ", ".join(f"{t['name']} ({t['instances']})" for t in f["tracks"]) or "none"
    print(f"tracks: {len(f['tracks'])}: {tracks}; {f['untracked_instances']} untracked instances")
    print(f"suggestions: {f['suggestions']}")


def _is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES or os.path.isdir(path)


def run_info(args: argparse.Namespace) -> int:
    """``posetrack info FILE``."""
    path = args.file
    if not os.path.exists(path):
        from napari_posetrack.core.errors import MissingFileError

        raise MissingFileError(path)
    if args.check and not _is_video(path):
        raise ValueError(f"{path}: --check decodes video files, not labels files")
    facts = (
        _video_facts(path, check=args.check) if _is_video(path) else _labels_facts(path, args.video_search)
    )
    if args.json:
        print(json.dumps(facts, indent=2))
    elif facts["type"] == "video":
        _print_video_facts(facts)
    else:
        _print_labels_facts(facts)
    return 0


def add_info_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "info",
        help="what a labels file or a video holds",
        description="Describe a labels file (.slp, DeepLabCut CollectedData .csv/.h5 or config.yaml, "
        "SLEAP analysis .h5, skeleton .json) or a video (file or image folder).",
    )
    p.add_argument("file", help="labels file, video file or image folder")
    p.add_argument(
        "--video-search",
        action="append",
        default=[],
        metavar="DIR",
        help="folder to look for moved videos in (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.add_argument(
        "--check",
        action="store_true",
        help="decode the whole video once: report corrupt frames, decode errors, keyframes whose random "
        "access differs from sequential decoding, and timestamp irregularities (the result is cached)",
    )
    p.set_defaults(func=run_info)


# --------------------------------------------------------------------------- convert


def _export_selection(args: argparse.Namespace) -> Any:
    """The ``--video/--frames/--source/--tracked-only/--nodes`` choices, or ``None`` when none is given."""
    from napari_posetrack.core.tools.export import ExportSelection, parse_frame_range

    if not (args.video or args.frames or args.source != "both" or args.tracked_only or args.nodes):
        return None
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
    return ExportSelection(
        videos=args.video or None,
        frames=parse_frame_range(args.frames) if args.frames else None,
        source=args.source,
        tracked_only=args.tracked_only,
        nodes=nodes,
    )


def run_convert(args: argparse.Namespace) -> int:
    """``posetrack convert IN OUT [selection]``."""
    from napari_posetrack.core.io import detect_format, load_labels, save_labels
    from napari_posetrack.core.tools.export import export_labels, select_for_export

    if os.path.abspath(args.input) == os.path.abspath(args.output):
        raise ValueError(f"{args.output}: output is the input file; write to another path")
    labels = load_labels(args.input, search_paths=args.video_search)
    selection = _export_selection(args)
    if selection is not None:
        labels = select_for_export(labels, selection)
        if labels.n_instances == 0:
            raise ValueError(f"{args.input}: the selection (--video/--frames/--source/...) holds no instance")
    fmt = args.format or detect_format(args.output, for_writing=True)
    if fmt == "dlc_predictions":
        written = export_labels(labels, args.output, fmt)
        print(f"wrote {', '.join(map(str, written))} ({fmt}): {labels!r}")
        return 0
    kw: dict[str, Any] = {}
    if fmt == "analysis":
        if len(labels.videos) > 1:
            raise ValueError(
                f"{args.input} holds {len(labels.videos)} videos; a SLEAP analysis file holds one: pass --video"
            )
        kw["video"] = 0
    if fmt == "slp" and args.embed != "none":
        kw["embed"] = True if args.embed == "all" else args.embed
    elif args.embed != "none":
        raise ValueError("--embed only applies to .slp output")
    save_labels(labels, args.output, format=fmt, **kw)
    print(f"wrote {args.output} ({fmt}): {labels!r}")
    return 0


def add_convert_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert between labels formats",
        description="Convert a labels file. Formats by extension: .slp (SLEAP), CollectedData*.csv/.h5 "
        "(DeepLabCut), other .h5 (SLEAP analysis), other .csv (tidy export, write only), .json "
        "(skeleton only); config.yaml reads a whole DeepLabCut project.",
    )
    p.add_argument("input", help="labels file to read")
    p.add_argument("output", help="file to write")
    p.add_argument(
        "--format",
        choices=["slp", "dlc", "analysis", "tidy", "skeleton", "dlc_predictions"],
        help="output format (default: from OUT's name); dlc_predictions: DeepLabCut machine-label "
        "<video>DLC_<scorer>.h5 (x, y, likelihood), one file per video",
    )
    p.add_argument(
        "--video-search",
        action="append",
        default=[],
        metavar="DIR",
        help="folder to look for moved videos in (repeatable)",
    )
    p.add_argument(
        "--video",
        action="append",
        default=[],
        metavar="INDEX|NAME",
        help="export only this video, by index or file name (repeatable)",
    )
    p.add_argument("--frames", metavar="FIRST-LAST", help="export only frames FIRST to LAST (both included)")
    p.add_argument(
        "--source",
        choices=["both", "user", "predicted"],
        default="both",
        help="user labels, predictions or both (default)",
    )
    p.add_argument("--tracked-only", action="store_true", help="export only instances on a track")
    p.add_argument("--nodes", metavar="A,B,C", help="export only these body parts, in this order")
    p.add_argument(
        "--embed",
        choices=["none", "user", "all"],
        default="none",
        help="store frames in the .slp (user: labelled frames only)",
    )
    p.set_defaults(func=run_convert)


# --------------------------------------------------------------------------- sample


def run_sample(args: argparse.Namespace) -> int:
    """``posetrack sample OUT_DIR``."""
    from napari_posetrack.core.sample import write_sample

    paths = write_sample(args.out_dir, n_animals=args.animals, n_frames=args.frames, seed=args.seed)
    for key, value in paths.items():
        print(f"{key}: {value}")
    return 0


def add_sample_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample",
        help="write the generated sample project",
        description="Write a procedurally generated multi-animal video with its ground-truth labels.",
    )
    p.add_argument("out_dir", help="folder to write into (created if needed)")
    p.add_argument("--animals", type=int, default=3, help="number of animals (default 3)")
    p.add_argument("--frames", type=int, default=200, help="number of frames (default 200)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run_sample)


# --------------------------------------------------------------------------- main


BUILTIN_PARSERS: list[Callable[[Any], None]] = [add_info_parser, add_convert_parser, add_sample_parser]


def _load_external(spec: str) -> Callable[[Any], None]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser() -> argparse.ArgumentParser:
    """The ``posetrack`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="posetrack",
        description="Pose estimation and tracking for SLEAP and DeepLabCut users (napari-posetrack).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in BUILTIN_PARSERS:
        add(subparsers)
    for spec in EXTERNAL_PARSERS:
        _load_external(spec)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``posetrack``; returns the exit status (0 ok, 1 bad input, 2 bad command line)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except (PoseTrackError, OSError, ValueError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"posetrack {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"posetrack {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
