"""Assign track identities to the instances of a ``Labels`` store.

Two passes per video:

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
   ``max_tracks`` identities by a global min-cost flow (optionally hierarchical:
   ``stitch_min_length``), with motion continuity across gaps and optional limb-length
   (``shape_weight``) and image-appearance (``appearance_weight``) terms.

Before association, instances whose limb lengths are implausible for the video
(``shape_outlier``: parts of two animals joined into one instance) are left untracked.

Without stitching the online pass assigns tracks directly, SLEAP style: a new track starts for an
unmatched detection while fewer than ``max_tracks`` exist; once all exist, unmatched detections go
to the tracks not used on that frame (nearest last position).

Instances that get no identity (more detections on a frame than ``max_tracks``, too few points to
start a track, stitching left them out) are **kept** with ``track = -1``: tracking never deletes
predictions. Use ``Labels.delete`` on rows with ``track == -1`` to drop them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any

import numpy as np

from ..errors import ConfigError, FileFormatError
from ..labels import NO_TRACK, PREDICTED, USER, Labels, Track
from .candidates import CANDIDATES
from .flow import FlowParams, gray_frames, shift_points
from .matching import MATCHINGS
from .online import OnlinePass
from .similarity import SIMILARITIES, PoseSimilarity, centroids
from .stitching import add_appearance, limb_lengths, stitch_tracklets, summarise_tracklets

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
        Leave untracked the instances with a limb length more than this many robust standard
        deviations (1.4826 MAD) from that limb's median in the video (``None`` = keep all).
    distance_scale
        Pixel scale of the distance kernels; ``None`` = the median instance radius of the video.
    stitch_max_gap
        Longest gap (frames) the stitcher bridges between two tracklets of one identity.
    stitch_reward
        Reward per covered instance in the stitcher (higher = leave fewer instances untracked).
    stitch_min_length
        Hierarchical stitching: tracklets with at least this many instances are stitched globally
        first, shorter ones are then inserted where they fit (0 = one global pass over all
        tracklets). On the fly clip with bad stretches of detections, 10 (with
        ``stitch_motion_horizon=30``) gives 4-6 switches for every similarity/matching instead of
        6-10, but on crowded crossings of the synthetic sample it does a little worse than 0.
    stitch_motion_horizon
        Largest number of frames a tracklet's end velocity is extrapolated over a gap.
    stitch_insert_margin
        A short tracklet that fits two identities within this cost margin stays untracked.
    shape_weight
        Weight of the limb-length term in stitching costs (0 = motion only).
    appearance_weight
        Weight of the image-appearance term in stitching costs (grey-level histogram of a patch
        around each tracklet's animal on a few frames; needs the video). 0 = off.
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
    shape_outlier: float | None = 6.0
    distance_scale: float | None = None
    stitch_max_gap: int = 250
    stitch_reward: float = 20.0
    stitch_min_length: int = 0
    stitch_motion_horizon: int = 3
    stitch_insert_margin: float = 2.0
    shape_weight: float = 0.0
    appearance_weight: float = 0.0
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
            raise ConfigError(f"tracker max_tracks must be >= 1 or None, got {self.max_tracks}")
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(lengths, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(lengths - median), axis=0)
    mad = np.where(np.isfinite(mad), np.maximum(mad, 0.05 * np.nan_to_num(median, nan=1.0) + 1e-6), np.inf)
    z = np.abs(lengths - median) / mad
    return (np.nan_to_num(z, nan=0.0) > threshold).any(axis=1)


def _kind_mask(labels: Labels, kind: str) -> np.ndarray:
    t = labels.instances
    if kind == "predicted":
        return t.kind == PREDICTED
    if kind == "user":
        return t.kind == USER
    return np.ones(len(t), dtype=bool)


def track_labels(
    labels: Labels,
    config: TrackerConfig | None = None,
    video: Any = None,
    progress: ProgressCallback | None = None,
) -> Labels:
    """Return a copy of ``labels`` whose instances (of ``config.kind``) carry new track identities.

    Parameters
    ----------
    labels
        The store; it is not modified.
    config
        Tracker options (defaults: :class:`TrackerConfig`).
    video
        For ``flow`` candidates: an open ``VideoReader`` or a path used instead of the store's
        video files (meant for single-video stores); ``None`` opens ``labels.videos[v]``.
    progress
        Called as ``progress(frames_done, frames_total)`` during the online pass.

    Existing tracks of re-tracked instances are replaced by ``track_0 ... track_{n-1}`` (shared by
    all videos); tracks no instance uses any more are removed. Untracked instances keep ``-1``.
    """
    config = config or TrackerConfig()
    config.validate()
    out = labels.copy()
    t = out.instances
    selected = _kind_mask(out, config.kind)
    old_tracks = list(out.tracks)
    new_track = np.full(len(t), NO_TRACK, dtype=np.int64)
    score = np.zeros(len(t), dtype=np.float32)
    video_ids = np.unique(t.video[selected]) if selected.any() else np.zeros(0, np.int64)
    total_frames = int(sum(len(np.unique(t.frame[selected & (t.video == v)])) for v in video_ids))
    done = [0]

    def step_progress(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total_frames)

    n_identities = 0
    for v in video_ids.tolist():
        rows = np.flatnonzero(selected & (t.video == v))
        rows = rows[np.argsort(t.frame[rows], kind="stable")]
        pts = t.points[rows].copy()
        pts[~t.visible[rows]] = np.nan
        identity, match_score = _track_video(
            out, v, rows, pts, t.frame[rows], t.score[rows], config, video, step_progress
        )
        new_track[rows] = identity
        score[rows] = match_score
        n_identities = max(n_identities, int(identity.max(initial=-1)) + 1)

    # rows we did not track keep their old track; old tracks follow the new ones, unused ones go
    base = n_identities
    old_track = t.track.copy()
    kept_old = ~selected & (old_track >= 0)
    used_old = np.unique(old_track[kept_old])
    remap = np.full(len(old_tracks) + 1, NO_TRACK, dtype=np.int64)
    remap[used_old] = base + np.arange(len(used_old))
    out.tracks = [Track(f"track_{k}") for k in range(n_identities)] + [
        Track(old_tracks[i].name, old_tracks[i].spawned_on) for i in used_old.tolist()
    ]
    final = np.where(selected, new_track, remap[old_track])
    t.track[:] = final
    t.tracking_score[selected] = score[selected]
    out.provenance["tracker"] = config.to_dict()
    return out


def _open_frames(labels: Labels, v: int, video: Any):
    from ..video import open_video  # heavy (PyAV); only flow needs it

    source = video if video is not None else labels.videos[v]
    if hasattr(source, "iter_frames"):
        return source, False
    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
    return open_video(source), True


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
) -> tuple[np.ndarray, np.ndarray]:
    """Identities (``-1`` = none) and match similarities for the rows of one video, sorted by frame."""
    n = len(rows)
    edges = labels.skeleton.edge_array()
    n_present = (~np.isnan(pts[..., 0])).sum(axis=1)
    # per-instance features computed once for the video: outlier test, scale, online pass and
    # stitcher all read them
    need_lengths = config.stitch or (config.shape_outlier is not None and len(edges) > 0)
    lengths = limb_lengths(pts, edges) if need_lengths else None
    if config.shape_outlier is not None:
        # instances whose limbs are far longer or shorter than usual mix parts of several animals:
        # they would drag a track onto the wrong animal, so they are left untracked
        n_present = np.where(shape_outliers(pts, edges, config.shape_outlier, lengths), 0, n_present)
        emptied = n_present == 0
        if emptied.any():
            pts = pts.copy()
            pts[emptied] = np.nan
        if lengths is not None:
            lengths[emptied] = np.nan  # what limb_lengths gives for the emptied instances
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
    if not config.stitch:
        return unit, match_score
    n_id = config.max_tracks
    if n_id is None:
        n_id = int(online.counts.max()) if n else 0
    summary, unit_ids = summarise_tracklets(unit, frames, pts, edges, centroid=centroid, lengths=lengths)
    if config.appearance_weight > 0 and len(unit_ids):
        reader, owned = _open_frames(labels, v, video)
        try:
            add_appearance(summary, unit, frames, pts, reader, radius=2.0 * scale)
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
        min_length=config.stitch_min_length,
        motion_horizon=config.stitch_motion_horizon,
        insert_margin=config.stitch_insert_margin,
    )
    lut = np.full(max(online.state.n, 1), -1, dtype=np.int64)
    lut[unit_ids] = ident
    identity = np.where(unit >= 0, lut[np.maximum(unit, 0)], -1)
    return identity, match_score


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
