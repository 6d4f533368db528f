"""Assign track identities to the instances of a ``Labels`` store.

Three steps per video:

1. **Online association** (:mod:`~napari_posetrack.core.tracking.online`): candidates (``simple``
   or ``flow``, plus a constant-velocity motion prior) are matched to each frame's detections
   (``greedy`` or ``hungarian``), pairs below ``min_similarity`` are never forced together. With
   ``simple`` candidates, runs of steady frames are processed a window at a time (similarities,
   assignments and unit states for up to 256 frames in a few numpy calls), with exactly the
   result of the frame-by-frame step, which handles the other frames.
2. **Stitching** (``stitch=True``, the default): the online pass only builds conservative tracklets,
   cut whenever the best and runner-up similarities of an association are close
   (``ambiguity_ratio``) or a node jumps far (``max_node_jump``);
   :func:`~napari_posetrack.core.tracking.stitching.stitch_tracklets` then joins them into at most
   ``max_tracks`` identities by a global min-cost flow (hierarchical by default:
   ``stitch_min_length``), with motion continuity across gaps and optional limb-length
   (``shape_weight``), image-appearance (``appearance_weight``: grey-level histograms) and
   learnt-appearance (``embedding_weight``: a small CNN trained per video on the confident
   tracklets, :mod:`~napari_posetrack.core.tracking.embedding`) terms. Without stitching the
   online pass assigns tracks directly, SLEAP style: a new track starts for an unmatched detection
   while fewer than ``max_tracks`` exist; once all exist, unmatched detections go to the tracks
   not used on that frame (nearest last position).
3. **Completion** (:mod:`~napari_posetrack.core.tracking.completion`), with a known number of
   animals (``max_tracks``, or with stitching the most instances on one frame): on a frame with at
   most that many instances every instance gets a track and no two share one; on a frame with
   more, those that fit the tracks best are kept and the others are **rejected** with a reason
   (the ``rejected`` column, :data:`~napari_posetrack.core.labels.REJECTION_REASONS`). Without a
   limit and without stitching, instances no track took are rejected with their reason.

Before association, instances whose limb lengths are implausible for the video
(``shape_outlier``: parts of two animals joined into one instance) have the nodes that make them
implausible ignored (:mod:`~napari_posetrack.core.tracking.shape`); their stored poses are kept.

Tracking never deletes or moves predictions: rejected instances stay in the store with
``track = -1``. :func:`track` also returns a :class:`~napari_posetrack.core.tracking.summary.TrackingSummary`
of what it did; :func:`track_labels` returns the labels only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Any

import numpy as np

from ..errors import ConfigError, FileFormatError, PoseTrackError
from ..labels import NO_TRACK, PREDICTED, USER, Labels, Track
from .candidates import CANDIDATES
from .completion import complete_identities, reject_untracked, step_spread
from .flow import FlowParams, gray_frames, shift_points
from .matching import MATCHINGS
from .online import OnlinePass
from .shape import distrusted_nodes, limb_z, node_doubt
from .similarity import SIMILARITIES, PoseSimilarity, centroids
from .stitching import add_appearance, junction_margins, limb_lengths, stitch_tracklets, summarise_tracklets
from .summary import N_UNCERTAIN, Decision, TrackingSummary

ProgressCallback = Callable[[int, int], Any]


@dataclass
class TrackerConfig:
    """Tracker options (names follow SLEAP's where SLEAP has the option).

    Parameters
    ----------
    candidates
        ``"simple"`` (last pose of each track) or ``"flow"`` (last pose carried by optical flow;
        needs the video).
    similarity
        ``"instance"`` (mean per-node distance kernel), ``"centroid"``, ``"iou"`` (padded point
        bounding boxes) or ``"oks"`` (COCO OKS with the skeleton's node sigmas).
    matching
        ``"greedy"`` or ``"hungarian"``.
    window
        A track stays a candidate while at most this many frames have elapsed since it was seen.
    max_tracks
        The number of animals: never more tracks than this. ``None`` = unlimited without stitching;
        with stitching, the largest number of instances on one frame.
    min_points
        A detection needs at least this many present nodes to start a new track or tracklet.
    min_similarity
        Gate: a candidate and a detection less similar than this are never matched.
    motion_prior
        Predict each track's position with a constant centroid velocity (``simple`` candidates).
    stitch
        Build conservative tracklets, then join them globally (see module docs).
    ambiguity_ratio
        When stitching, cut a tracklet where runner-up similarity / best similarity >= this.
    max_node_jump
        When stitching, cut a tracklet where any node moves more than this many ``distance_scale``
        from its expected position (``None`` = never).
    shape_outlier
        An instance with a limb length more than this many robust standard deviations (1.4826 MAD)
        from that limb's median in the video joins parts of several animals: association ignores
        the nodes that make it implausible (``None`` = trust every node).
    distance_scale
        Pixel scale of the distance kernels; ``None`` = the median instance radius of the video.
    stitch_max_gap
        Longest gap (frames) the stitcher bridges between two tracklets of one identity.
    stitch_reward
        Reward per covered instance in the stitcher (higher = leave fewer instances untracked).
    stitch_min_length
        Hierarchical stitching: tracklets with at least this many instances are stitched globally
        first, shorter ones are then inserted where they fit (0 = one global pass over all
        tracklets). The default 7 (with ``stitch_motion_horizon=30``) keeps every similarity and
        matching on the fly clip from a long identity swap (0 lets iou and oks swap the two flies
        for hundreds of frames there) and every configuration but iou from switches on the
        synthetic crossings; 10 does as well on the clip and worse on the crossings, 5 the
        reverse (``bench/tracker_switches.py``).
    stitch_motion_horizon
        Largest number of frames a tracklet's end velocity is extrapolated over a gap.
    stitch_insert_margin
        A short tracklet that fits two identities within this cost margin stays untracked.
    shape_weight
        Weight of the limb-length term in stitching costs (0 = motion only).
    appearance_weight
        Weight of the image-appearance term in stitching costs (grey-level histogram of a patch
        around each tracklet's animal on a few frames; needs the video). 0 = off.
    embedding_weight
        Weight of the learnt-appearance term in stitching costs: a small CNN is trained on this video's
        confident tracklets (instances of one tracklet alike, of tracklets seen on the same frames
        unlike; :mod:`~napari_posetrack.core.tracking.embedding`); joining two tracklets costs about
        this much more when their mean embeddings are as unlike as two animals' seen together, 0 when
        as alike as two halves of one tracklet. Needs the video;
        goes with or without ``appearance_weight``. 0 = off. When the video has no two confident
        tracklets seen together (one animal, only short tracklets) the term is left out with a
        warning.
    embedding_seed
        Seed of the embedding's training (same seed, same result).
    kind
        Which instances to track: ``"predicted"``, ``"user"`` or ``"all"``.
    flow_window, flow_levels
        Lucas-Kanade window side (px) and pyramid levels.
    """

    candidates: str = "simple"
    similarity: str = "instance"
    matching: str = "hungarian"
    window: int = 5
    max_tracks: int | None = None
    min_points: int = 1
    min_similarity: float = 0.05
    motion_prior: bool = True
    stitch: bool = True
    ambiguity_ratio: float = 0.5
    max_node_jump: float | None = 3.0
    shape_outlier: float | None = 4.0
    distance_scale: float | None = None
    stitch_max_gap: int = 250
    stitch_reward: float = 20.0
    stitch_min_length: int = 7
    stitch_motion_horizon: int = 30
    stitch_insert_margin: float = 2.0
    shape_weight: float = 0.0
    appearance_weight: float = 0.0
    embedding_weight: float = 0.0
    embedding_seed: int = 0
    kind: str = "predicted"
    flow_window: int = 21
    flow_levels: int = 3

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        choices = {
            "candidates": CANDIDATES,
            "similarity": SIMILARITIES,
            "matching": MATCHINGS,
            "kind": ("predicted", "user", "all"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"tracker {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if self.window < 1:
            raise ConfigError(f"tracker window must be >= 1 frame, got {self.window}")
        if self.max_tracks is not None and self.max_tracks < 1:
            raise ConfigError(
                f"tracker max_tracks (the number of animals) must be at least 1, or None for no limit; "
                f"got {self.max_tracks}"
            )
        if self.min_points < 0:
            raise ConfigError(f"tracker min_points must be >= 0, got {self.min_points}")
        if not 0.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f"tracker min_similarity must be in [0, 1], got {self.min_similarity}")
        if not 0.0 < self.ambiguity_ratio <= 1.0:
            raise ConfigError(f"tracker ambiguity_ratio must be in (0, 1], got {self.ambiguity_ratio}")
        if self.max_node_jump is not None and self.max_node_jump <= 0:
            raise ConfigError(f"tracker max_node_jump must be > 0 or None, got {self.max_node_jump}")
        if self.distance_scale is not None and self.distance_scale <= 0:
            raise ConfigError(f"tracker distance_scale must be > 0, got {self.distance_scale}")
        if self.stitch_motion_horizon < 0:
            raise ConfigError(f"tracker stitch_motion_horizon must be >= 0, got {self.stitch_motion_horizon}")
        if self.stitch_min_length < 0:
            raise ConfigError(f"tracker stitch_min_length must be >= 0, got {self.stitch_min_length}")
        if self.appearance_weight < 0 or self.embedding_weight < 0:
            raise ConfigError(
                "tracker appearance_weight and embedding_weight must be >= 0, got "
                f"{self.appearance_weight} and {self.embedding_weight}"
            )
        if self.stitch_max_gap < 1:
            raise ConfigError(f"tracker stitch_max_gap must be >= 1, got {self.stitch_max_gap}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrackerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown tracker options: {', '.join(unknown)}")
        return cls(**values)


def instance_radius(points: np.ndarray, centroid: np.ndarray | None = None) -> float:
    """Median over instances of the RMS distance of present nodes to their centroid (at least 1 px).

    ``centroid`` is ``centroids(points)`` when the caller has it already.
    """
    if len(points) == 0:
        return 1.0
    c = centroids(points) if centroid is None else centroid
    # x and y apart: the same bits as squared_norm(points - c[:, None]) without broadcasting
    # over a length-2 axis (numpy would loop once per node)
    dx, dy = points[..., 0] - c[:, None, 0], points[..., 1] - c[:, None, 1]
    d2 = dx * dx + dy * dy
    present = ~np.isnan(d2)
    n = present.sum(axis=1)
    ok = n >= 2
    if not ok.any():
        return 1.0
    rms = np.sqrt(np.where(present, d2, 0.0).sum(axis=1)[ok] / n[ok])
    return float(max(np.median(rms), 1.0))


def shape_outliers(
    points: np.ndarray, edges: np.ndarray, threshold: float, lengths: np.ndarray | None = None
) -> np.ndarray:
    """Instances with a limb length more than ``threshold`` robust deviations from that limb's median.

    ``lengths`` is ``limb_lengths(points, edges)`` when the caller has it already.
    """
    if len(points) == 0 or len(edges) == 0:
        return np.zeros(len(points), dtype=bool)
    if lengths is None:
        lengths = limb_lengths(points, edges)
    return (np.nan_to_num(limb_z(lengths), nan=0.0) > threshold).any(axis=1)


class TrackingInputError(PoseTrackError, ValueError):
    """The labels cannot be tracked as asked (nothing to track, no such video, too few tracks)."""


@dataclass
class TrackingResult:
    """What :func:`track` returns: the tracked copy of the labels and what was done."""

    labels: Labels
    summary: TrackingSummary


def _kind_mask(labels: Labels, kind: str) -> np.ndarray:
    t = labels.instances
    if kind == "predicted":
        return t.kind == PREDICTED
    if kind == "user":
        return t.kind == USER
    return np.ones(len(t), dtype=bool)


def select_videos(labels: Labels, videos: Iterable[int | str] | None) -> list[int]:
    """Indices of the videos named in ``videos`` (``None`` = all), in store order.

    Each entry is a video index, a file name (``clip.mp4``; the folder name for image folders),
    or a path as stored. Raises :class:`TrackingInputError` naming an entry that matches no video,
    or a file name two videos share (then give the path).
    """
    if videos is None:
        return list(range(len(labels.videos)))
    chosen: set[int] = set()
    listing = ", ".join(f"{i}: {v.name}" for i, v in enumerate(labels.videos)) or "none"
    for entry in [videos] if isinstance(videos, (int, str)) else videos:
        if isinstance(entry, (int, np.integer)) or (isinstance(entry, str) and entry.isdigit()):
            index = int(entry)
            if not 0 <= index < len(labels.videos):
                raise TrackingInputError(
                    f"no video {index}: the labels hold {len(labels.videos)} ({listing})"
                )
            chosen.add(index)
            continue
        named = [i for i, v in enumerate(labels.videos) if v.name == entry]
        if not named:
            named = [i for i, v in enumerate(labels.videos) if v.matches_path(entry)]
        if not named:
            raise TrackingInputError(f"no video named {entry!r} in the labels (videos: {listing})")
        if len(named) > 1:
            raise TrackingInputError(
                f"{len(named)} videos are named {entry!r}; give the path or the index instead ({listing})"
            )
        chosen.add(named[0])
    return sorted(chosen)


def check_input(labels: Labels, config: TrackerConfig, videos: Iterable[int | str] | None = None) -> None:
    """Raise :class:`TrackingInputError` saying what to do when :func:`track` would refuse this input.

    Callers that track after a long step (prediction) can check before it.
    """
    video_ids = select_videos(labels, videos)
    _check_input(
        labels,
        config,
        video_ids,
        _kind_mask(labels, config.kind) & np.isin(labels.instances.video, video_ids),
    )


def _check_input(labels: Labels, config: TrackerConfig, video_ids: list[int], selected: np.ndarray) -> None:
    """Refuse, with a message saying what to do, input that cannot be tracked as asked."""
    t = labels.instances
    names = ", ".join(labels.videos[v].name for v in video_ids) or "no video"
    if not selected.any():
        what = "" if config.kind == "all" else f"{config.kind} "
        here = np.isin(t.video, video_ids)
        present = [
            (int((t.kind[here] == code).sum()), name)
            for code, name in ((PREDICTED, "predicted"), (USER, "user"))
        ]
        hint = "; ".join(
            f"{count} {name} instances are there (track them with kind '{name}', --kind {name})"
            for count, name in present
            if count
        )
        raise TrackingInputError(f"no {what}instances to track in {names}" + (f"; {hint}" if hint else ""))
    check_max_tracks(labels, config, video_ids)


def check_max_tracks(labels: Labels, config: TrackerConfig, video_ids: Iterable[int] | None = None) -> None:
    """Refuse a max tracks below the number of animals labelled on one frame (checkable before predicting)."""
    if config.max_tracks is None:
        return
    t = labels.instances
    video_ids = list(range(len(labels.videos))) if video_ids is None else list(video_ids)
    user = np.flatnonzero((t.kind == USER) & np.isin(t.video, video_ids))
    if len(user) == 0:
        return
    key = t.video[user].astype(np.int64) * (int(t.frame[user].max()) + 1) + t.frame[user]
    uniq, count = np.unique(key, return_counts=True)
    worst = int(np.argmax(count))
    if count[worst] > config.max_tracks:
        row = user[np.flatnonzero(key == uniq[worst])[0]]
        raise TrackingInputError(
            f"max tracks is {config.max_tracks}, but frame {int(t.frame[row])} of "
            f"{labels.videos[int(t.video[row])].name} has {int(count[worst])} labelled animals (user "
            f"instances): set max tracks to at least {int(count[worst])}"
        )


def track(
    labels: Labels,
    config: TrackerConfig | None = None,
    video: Any = None,
    progress: ProgressCallback | None = None,
    *,
    videos: Iterable[int | str] | None = None,
) -> TrackingResult:
    """Track a copy of ``labels``: its instances of ``config.kind`` in ``videos`` get new identities.

    Parameters
    ----------
    labels
        The store; it is not modified.
    config
        Tracker options (defaults: :class:`TrackerConfig`).
    video
        For ``flow`` candidates and appearance: an open ``VideoReader`` or a path used instead of
        the store's video files (meant for single-video stores); ``None`` opens ``labels.videos[v]``.
    progress
        Called as ``progress(frames_done, frames_total)`` during the online pass.
    videos
        Which videos to track (indices, file names or paths; see :func:`select_videos`);
        ``None`` = all. Instances of other videos keep their tracks.

    New identities are named ``track_0 ... track_{n-1}`` and shared by all videos (an old track of
    that name that instances of other videos still use is the same track); tracks no instance uses
    any more are removed. Every tracked instance ends on a track or with a ``rejected`` reason.

    Raises
    ------
    TrackingInputError
        No instance of ``config.kind`` in the chosen videos, a name that matches no video, or a
        labelled frame with more user instances than ``config.max_tracks``. Nothing is tracked.
    ConfigError
        An invalid option.
    """
    config = config or TrackerConfig()
    config.validate()
    video_ids = select_videos(labels, videos)
    t_in = labels.instances
    selected = _kind_mask(labels, config.kind) & np.isin(t_in.video, video_ids)
    _check_input(labels, config, video_ids, selected)
    out = labels.copy()
    t = out.instances
    old_tracks = list(out.tracks)
    new_track = np.full(len(t), NO_TRACK, dtype=np.int64)
    score = np.zeros(len(t), dtype=np.float32)
    rejected = np.zeros(len(t), dtype=np.int8)
    tracked_videos = np.unique(t.video[selected])
    total_frames = int(sum(len(np.unique(t.frame[selected & (t.video == v)])) for v in tracked_videos))
    done = [0]

    def step_progress(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total_frames)

    summary = TrackingSummary(
        videos=[out.videos[v].name for v in tracked_videos.tolist()], kind=config.kind, stitch=config.stitch
    )
    n_identities = 0
    for v in tracked_videos.tolist():
        rows = np.flatnonzero(selected & (t.video == v))
        rows = rows[np.argsort(t.frame[rows], kind="stable")]
        pts = t.points[rows].copy()
        pts[~t.visible[rows]] = np.nan
        result = _track_video(
            out,
            v,
            rows,
            pts,
            t.frame[rows],
            t.score[rows],
            config,
            video,
            step_progress,
        )
        new_track[rows] = result.identity
        score[rows] = result.score
        rejected[rows] = result.reason
        n_identities = max(n_identities, int(result.identity.max(initial=-1)) + 1)
        summary.n_tracklets += result.n_tracklets
        summary.n_stitched += result.n_stitched
        summary.n_filled += result.n_filled
        summary.n_forced += result.n_forced
        summary.add_decisions(result.decisions)

    # rows we did not track keep their old track (merged by name with the new ones); unused ones go
    names = [f"track_{k}" for k in range(n_identities)]
    old_track = t.track.copy()
    used_old = np.unique(old_track[~selected & (old_track >= 0)])
    remap = np.full(len(old_tracks) + 1, NO_TRACK, dtype=np.int64)
    extra: list[Track] = []
    for i in used_old.tolist():
        if old_tracks[i].name in names:
            remap[i] = names.index(old_tracks[i].name)
        else:
            remap[i] = n_identities + len(extra)
            extra.append(old_tracks[i].copy())
    out.tracks = [Track(name) for name in names] + extra
    t.track[:] = np.where(selected, new_track, remap[old_track])
    t.tracking_score[selected] = score[selected]
    t.rejected[selected] = rejected[selected]
    out.provenance["tracker"] = config.to_dict()
    summary.tracks = names
    summary.n_instances = int(selected.sum())
    summary.n_assigned = int((new_track[selected] >= 0).sum())
    codes, counts = np.unique(rejected[selected & (new_track < 0)], return_counts=True)
    summary.rejected = {int(c): int(n) for c, n in zip(codes, counts)}
    return TrackingResult(out, summary)


def track_labels(
    labels: Labels,
    config: TrackerConfig | None = None,
    video: Any = None,
    progress: ProgressCallback | None = None,
    *,
    videos: Iterable[int | str] | None = None,
) -> Labels:
    """:func:`track`'s labels only (same parameters)."""
    return track(labels, config, video, progress, videos=videos).labels


def _open_frames(labels: Labels, v: int, video: Any, why: str | None = None):
    from ..errors import MissingFileError
    from ..video import open_video  # heavy (PyAV); only flow and appearance need it

    source = video if video is not None else labels.videos[v]
    if hasattr(source, "iter_frames"):
        return source, False
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
    try:
        return open_video(source), True
    except MissingFileError as exc:
        if why is None:
            raise
        raise MissingFileError(
            exc.path,
            f"{exc.problem}: {why} read the video's frames; give the video (--video-file) or set "
            "those weights to 0",
        ) from exc


# the embedding learns from tracklets of at least this many instances
EMBEDDING_MIN_LENGTH = 10


def _add_embedding(
    summary: Any,
    unit: np.ndarray,
    frames: np.ndarray,
    pts: np.ndarray,
    reader: Any,
    scale: float,
    config: TrackerConfig,
    name: str,
) -> None:
    """Learn the video's appearance embedding into ``summary``; without enough to learn from, warn
    and leave the term out (``summary.embedding`` stays None)."""
    import warnings

    from .embedding import EmbeddingInputError, add_embedding

    try:
        add_embedding(
            summary,
            unit,
            frames,
            pts,
            reader,
            radius=3.0 * scale,
            min_length=EMBEDDING_MIN_LENGTH,
            seed=config.embedding_seed,
        )
    except EmbeddingInputError as exc:
        warnings.warn(f"{name}: {exc}; stitching without it", stacklevel=3)


def _track_video(
    labels: Labels,
    v: int,
    rows: np.ndarray,
    pts: np.ndarray,
    frames: np.ndarray,
    det_scores: np.ndarray,
    config: TrackerConfig,
    video: Any,
    step_progress: Callable[[int], None],
) -> _VideoResult:
    """Identities, tracking scores, rejection reasons and counts for the rows of one video (sorted by frame)."""
    n = len(rows)
    edges = labels.skeleton.edge_array()
    n_present = (~np.isnan(pts[..., 0])).sum(axis=1)
    outlier = np.zeros(n, dtype=bool)
    # per-instance features computed once for the video: outlier test, scale, online pass and
    # stitcher all read them
    need_lengths = config.stitch or (config.shape_outlier is not None and len(edges) > 0)
    lengths = limb_lengths(pts, edges) if need_lengths else None
    if config.shape_outlier is not None and len(edges) and n:
        # instances whose limbs are far longer or shorter than usual mix parts of several animals:
        # association ignores the nodes that make them implausible (see .shape)
        z = limb_z(lengths)
        outlier = (np.nan_to_num(z, nan=0.0) > config.shape_outlier).any(axis=1)
        if outlier.any():
            doubt = np.broadcast_to(node_doubt(edges, pts.shape[1]), (int(outlier.sum()), pts.shape[1]))
            drop = distrusted_nodes(z[outlier], edges, config.shape_outlier, doubt)
            pts = pts.copy()
            trusted = pts[outlier]
            trusted[drop] = np.nan
            pts[outlier] = trusted
            n_present[outlier] = (~np.isnan(trusted[..., 0])).sum(axis=1)
            # limbs of an ignored node are missing, as limb_lengths would give them
            limbs = lengths[outlier]
            limbs[drop[:, edges[:, 0]] | drop[:, edges[:, 1]]] = np.nan
            lengths[outlier] = limbs
    centroid = centroids(pts)
    scale = config.distance_scale or instance_radius(pts, centroid)
    sigmas = labels.skeleton.node_sigmas if config.similarity == "oks" else None
    similarity = PoseSimilarity(config.similarity, scale, sigmas)
    online = OnlinePass(config, pts, n_present, det_scores, frames, similarity, scale, centroid)
    if config.candidates == "flow":
        reader, owned = _open_frames(labels, v, video)
        try:
            params = FlowParams(window=config.flow_window, levels=config.flow_levels)
            _flow_pass(online, reader, params, step_progress)
        finally:
            if owned:
                reader.close()
    else:
        online.run(step_progress)
    unit, match_score = online.unit, online.match_score
    n_id = config.max_tracks
    if n_id is None and config.stitch:
        n_id = int(online.counts.max()) if n else 0
    name = labels.videos[v].name
    if not config.stitch:
        n_units = online.state.n
        if n_id is None:
            identity, reason = reject_untracked(unit, pts, outlier)
            return _VideoResult(identity, match_score, reason, n_units)
        return _complete(
            unit, match_score, frames, pts, outlier, det_scores, n_id, scale, config, centroid, name, n_units
        )
    summary, unit_ids = summarise_tracklets(unit, frames, pts, edges, centroid=centroid, lengths=lengths)
    if (config.appearance_weight > 0 or config.embedding_weight > 0) and len(unit_ids):
        reader, owned = _open_frames(labels, v, video, "appearance_weight / embedding_weight")
        try:
            if config.appearance_weight > 0:
                add_appearance(summary, unit, frames, pts, reader, radius=2.0 * scale)
            if config.embedding_weight > 0:
                _add_embedding(summary, unit, frames, pts, reader, scale, config, name)
        finally:
            if owned:
                reader.close()
    ident = stitch_tracklets(
        summary,
        n_id,
        position_sigma=scale,
        reward=config.stitch_reward,
        max_gap=config.stitch_max_gap,
        shape_weight=config.shape_weight,
        appearance_weight=config.appearance_weight,
        embedding_weight=config.embedding_weight,
        min_length=config.stitch_min_length,
        motion_horizon=config.stitch_motion_horizon,
        insert_margin=config.stitch_insert_margin,
    )
    lut = np.full(max(online.state.n, 1), -1, dtype=np.int64)
    lut[unit_ids] = ident
    identity = np.where(unit >= 0, lut[np.maximum(unit, 0)], -1)
    result = _complete(
        identity,
        match_score,
        frames,
        pts,
        outlier,
        det_scores,
        n_id,
        scale,
        config,
        centroid,
        name,
        len(unit_ids),
    )
    result.n_stitched = int((ident >= 0).sum())
    joins = junction_margins(
        summary,
        ident,
        position_sigma=scale,
        max_gap=config.stitch_max_gap,
        motion_horizon=config.stitch_motion_horizon,
        shape_weight=config.shape_weight,
        appearance_weight=config.appearance_weight,
        embedding_weight=config.embedding_weight,
    )
    joins.sort(key=lambda j: j.margin)
    result.decisions += [
        Decision(
            name,
            j.start,
            f"track_{j.identity} joined across frames {j.end}-{j.start}; handing what follows to "
            f"track_{j.other} instead",
            j.margin,
        )
        for j in joins[:N_UNCERTAIN]
    ]
    return result


@dataclass
class _VideoResult:
    """What tracking one video gave, row by row (rows sorted by frame), and its counts."""

    identity: np.ndarray
    score: np.ndarray
    reason: np.ndarray
    n_tracklets: int = 0
    n_stitched: int = 0
    n_filled: int = 0
    n_forced: int = 0
    decisions: list[Decision] = field(default_factory=list)


def _complete(
    identity: np.ndarray,
    match_score: np.ndarray,
    frames: np.ndarray,
    points: np.ndarray,
    outlier: np.ndarray,
    det_scores: np.ndarray,
    n_id: int,
    scale: float,
    config: TrackerConfig,
    centroid: np.ndarray,
    name: str,
    n_tracklets: int,
) -> _VideoResult:
    """Every row on one of ``n_id`` identities or rejected with a reason (see :mod:`.completion`)."""
    done = complete_identities(
        identity,
        frames,
        points,
        n_identities=n_id,
        position_sigma=scale,
        step_sigma=step_spread(identity, frames, centroid),
        max_gap=config.stitch_max_gap,
        outlier=outlier,
        scores=det_scores,
    )
    score = np.where(done.filled, done.fit, match_score).astype(np.float32)
    choices = sorted(done.choices, key=lambda c: c.margin)[:N_UNCERTAIN]
    decisions = [
        Decision(
            name,
            c.frame,
            f"instance at ({centroid[c.row, 0]:.0f}, {centroid[c.row, 1]:.0f}) put on track_{c.identity}, "
            + (f"not track_{c.alternative}" if c.alternative >= 0 else "not rejected"),
            c.margin,
        )
        for c in choices
    ]
    return _VideoResult(
        done.identity,
        score,
        done.reason,
        n_tracklets,
        n_filled=int(done.filled.sum()),
        n_forced=int(done.forced.sum()),
        decisions=decisions,
    )


def _flow_pass(
    online: OnlinePass, reader: Any, params: FlowParams, step_progress: Callable[[int], None]
) -> None:
    """Frame-by-frame association with flow candidates: each frame shifts the units' flow poses."""
    frame_ids = online.frame_ids
    frames_iter = gray_frames(reader, frame_ids)
    prev_gray = None
    for k, f in enumerate(frame_ids.tolist()):
        try:
            _, gray = next(frames_iter)
        except StopIteration:
            raise FileFormatError(
                getattr(reader, "path", "video"),
                f"has {len(reader)} frames but the labels have instances on frame {f}",
            ) from None
        shift = None if prev_gray is None else partial(shift_points, prev_gray, gray, params=params)
        online.step(k, shift)
        prev_gray = gray
        if k % 256 == 255:
            step_progress(256)
    step_progress(len(frame_ids) % 256)
