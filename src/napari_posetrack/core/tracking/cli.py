"""``posetrack track IN.slp -o OUT.slp [options]``: re-track an existing predictions file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .candidates import CANDIDATES
from .matching import MATCHINGS
from .similarity import SIMILARITIES


def add_track_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``track`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "track",
        help="assign track identities to the predictions of a labels file",
        description="Re-track the predicted instances of a labels file (existing tracks are replaced). "
        "With a known number of animals every instance ends on a track, or is rejected with a reason on "
        "a frame with more instances than animals; a summary says what was done.",
    )
    p.add_argument("input", help="labels file with predictions (.slp, or any format posetrack reads)")
    p.add_argument("-o", "--output", required=True, help="where to write the tracked labels")
    p.add_argument(
        "--video",
        dest="videos",
        action="append",
        metavar="NAME",
        help="track only this video of the file: its file name, path or index (repeat for several; "
        "default: every video)",
    )
    add_tracker_options(p)
    p.add_argument(
        "--video-file",
        default=None,
        metavar="PATH",
        help="read frames for --candidates flow, --appearance-weight or --embedding-weight from this file "
        "instead of the labels' video (single-video files)",
    )
    p.add_argument("--quiet", action="store_true", help="print no summary")
    p.set_defaults(func=run_track)
    return p


def add_tracker_options(p: argparse.ArgumentParser) -> None:
    """The tracker's options, shared by ``posetrack track`` and ``posetrack predict --track``."""
    p.add_argument(
        "--candidates", choices=CANDIDATES, default="simple", help="candidate poses (default simple)"
    )
    p.add_argument("--similarity", choices=SIMILARITIES, default="instance", help="default instance")
    p.add_argument(
        "--match", dest="matching", choices=MATCHINGS, default="hungarian", help="default hungarian"
    )
    p.add_argument(
        "--window", type=int, default=5, help="frames a track stays a candidate unseen (default 5)"
    )
    p.add_argument(
        "--max-tracks",
        type=int,
        default=None,
        help="number of animals: never more tracks; on frames with more instances the extra ones are "
        "rejected",
    )
    p.add_argument(
        "--kind",
        choices=("predicted", "user", "all"),
        default="predicted",
        help="which instances to track (default predicted)",
    )
    p.add_argument("--min-points", type=int, default=1, help="present nodes needed to start a track")
    p.add_argument("--min-similarity", type=float, default=0.05, help="matches less similar are not forced")
    p.add_argument(
        "--stitch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="conservative tracklets joined globally into --max-tracks identities (default on)",
    )
    p.add_argument(
        "--no-motion", dest="motion_prior", action="store_false", help="no constant-velocity prior"
    )
    p.add_argument(
        "--ambiguity-ratio",
        type=float,
        default=0.5,
        help="cut a tracklet when runner-up/best >= this (default 0.5)",
    )
    p.add_argument(
        "--stitch-min-length",
        type=int,
        default=7,
        help="hierarchical stitching: join tracklets this long first, insert shorter ones after "
        "(default 7; 0 = off)",
    )
    p.add_argument(
        "--stitch-motion-horizon",
        type=int,
        default=30,
        help="frames of velocity extrapolation over gaps (default 30)",
    )
    p.add_argument(
        "--shape-outlier",
        type=float,
        default=4.0,
        help="limb-length deviations (robust sigmas) beyond which an instance's parts are distrusted "
        "(default 4)",
    )
    p.add_argument(
        "--shape-weight", type=float, default=0.0, help="limb-length term in stitching (default 0)"
    )
    p.add_argument(
        "--appearance-weight",
        type=float,
        default=0.0,
        help="image-appearance term in stitching: grey-level histograms of a patch around each "
        "tracklet's animal (needs the video; default 0 = off)",
    )
    p.add_argument(
        "--embedding-weight",
        type=float,
        default=0.0,
        help="learnt-appearance term in stitching: a small CNN trained on this video's own confident "
        "tracklets (same tracklet = same animal, tracklets on the same frames = different animals); "
        "adds the cosine distance of tracklets' mean embeddings. Needs the video; combines with "
        "--appearance-weight; about 10-60 s of CPU per video (default 0 = off)",
    )
    p.add_argument(
        "--embedding-seed",
        type=int,
        default=0,
        help="seed of the embedding's training: the same seed gives the same tracks (default 0)",
    )


def tracker_config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~napari_posetrack.core.tracking.tracker.TrackerConfig` the options describe."""
    from .tracker import TrackerConfig

    return TrackerConfig(
        candidates=args.candidates,
        similarity=args.similarity,
        matching=args.matching,
        window=args.window,
        max_tracks=args.max_tracks,
        min_points=args.min_points,
        min_similarity=args.min_similarity,
        stitch=args.stitch,
        motion_prior=args.motion_prior,
        ambiguity_ratio=args.ambiguity_ratio,
        stitch_min_length=args.stitch_min_length,
        stitch_motion_horizon=args.stitch_motion_horizon,
        shape_outlier=args.shape_outlier,
        kind=args.kind,
        shape_weight=args.shape_weight,
        appearance_weight=args.appearance_weight,
        embedding_weight=args.embedding_weight,
        embedding_seed=args.embedding_seed,
    )


def run_track(args: argparse.Namespace) -> int:
    """Load, track, save; print what the tracker did. Returns the exit status.

    Bad input (no predictions, an unknown video, too few tracks for a labelled frame) raises
    before anything is written.
    """
    from ..io import load_labels, save_labels
    from .tracker import track

    config = tracker_config_from_args(args)
    labels = load_labels(args.input)
    result = track(labels, config, video=args.video_file, videos=args.videos)
    save_labels(result.labels, args.output)
    if not args.quiet:
        print(f"{args.output}: {result.summary}", file=sys.stdout)
    return 0
