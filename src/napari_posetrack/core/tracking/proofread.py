"""Proofreading identities: a review queue of doubtful frames and the edits that fix identities.

The edits work in place on a :class:`~napari_posetrack.core.labels.Labels` store, on its
``track`` column as a whole (a mask over the rows, never a Python loop per instance), and only
ever touch ``track``, ``rejected`` and the track list: instances are never added, moved or
deleted. :meth:`~napari_posetrack.core.session.LabelsSession.edit_identities` wraps any of them
into one undoable step.

- :func:`swap_tracks`: two identities exchange their instances over a frame range (from a frame
  onwards by default): what fixes an identity switch.
- :func:`set_track`: put one instance on a track, on its frame only (the instance that held that
  track there takes the old one) or from its frame onwards (the two tracks swap from there).
- :func:`merge_tracks`, :func:`split_track`, :func:`rename_track`, :func:`recolour_track`.

The review queue (:func:`review_queue`) ranks the frames where the identities are least sure:

- ``by="motion"`` (default): for every pair of tracks present on a frame and on their last
  frames before it (at most ``max_gap`` frames back), the *assignment margin* is how much longer
  the swapped continuation would be than the chosen one, ``(|a'-b| + |b'-a| - |a'-a| - |b'-b|)``
  over centroids (``a'`` the last position of track ``a``, ``a`` its position now), in units of the
  animals' typical radius. A negative margin means the swapped identities continue the motion
  better: most likely a switch. The tracker keeps its own margins only for its few least certain
  decisions (:class:`~napari_posetrack.core.tracking.summary.TrackingSummary`); this margin is
  computed from the poses, so a file tracked elsewhere (SLEAP's identity models, say) or re-opened
  later has its queue, and the queue follows every fix.
- ``by="tracking_score"``: the lowest tracking score of a tracked instance on the frame (an
  identity model's class probability, or a tracker's match similarity: lower = less sure).

Neighbouring frames of one doubtful event are reported once: a frame is kept only when its value
is the smallest within ``spacing`` frames around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import PoseTrackError
from ..labels import NO_TRACK, NOT_REJECTED, USER, Labels
from .similarity import centroids
from .tracker import instance_radius

REVIEW_BY = ("motion", "tracking_score")
"""What :func:`review_queue` can rank frames by."""


class ProofreadError(PoseTrackError, ValueError):
    """An identity edit that cannot be made as asked (no such track, a name in use, overlapping tracks)."""


# --------------------------------------------------------------------------- helpers


def track_index(labels: Labels, track: int | str, *, create: bool = False) -> int:
    """Index of ``track`` given as an index or a name; with ``create``, an unknown name adds a track.

    Raises
    ------
    ProofreadError
        The index is out of range, or the name is unknown and ``create`` is false.
    """
    if isinstance(track, (int, np.integer)):
        index = int(track)
        if not 0 <= index < len(labels.tracks):
            raise ProofreadError(f"no track {index}: the labels hold {len(labels.tracks)} tracks")
        return index
    name = str(track).strip()
    names = [t.name for t in labels.tracks]
    if name in names:
        return names.index(name)
    if not create:
        raise ProofreadError(f"no track named {name!r} (tracks: {', '.join(names) or 'none'})")
    if not name:
        raise ProofreadError("a track needs a name")
    return labels.add_track(name)


def _in_range(labels: Labels, video: int | None, start: int | None, stop: int | None) -> np.ndarray:
    """Rows of ``video`` (all videos when ``None``) on frames ``start <= frame < stop`` (``None``: open)."""
    t = labels.instances
    mask = np.ones(len(t), dtype=bool)
    if video is not None:
        mask &= t.video == int(video)
    if start is not None:
        mask &= t.frame >= int(start)
    if stop is not None:
        mask &= t.frame < int(stop)
    return mask


def _set_tracks(labels: Labels, rows: np.ndarray, tracks: np.ndarray) -> None:
    """Write the track column of ``rows``; rows put on a track are no longer rejected."""
    t = labels.instances
    t.track[rows] = tracks
    t.rejected[rows[np.asarray(tracks) >= 0]] = NOT_REJECTED


def _shown(labels: Labels) -> np.ndarray:
    """Rows a viewer shows: user instances and predictions no user instance replaced."""
    return ~labels.shadowed_predictions()


def _drop_track(labels: Labels, index: int) -> None:
    """Remove track ``index`` (no instance may be on it); later tracks move down one index."""
    t = labels.instances
    if (t.track == index).any():
        raise ProofreadError(f"track {labels.tracks[index].name!r} still has instances")
    later = t.track > index
    t.track[later] -= 1
    del labels.tracks[index]


# --------------------------------------------------------------------------- edits


def swap_tracks(
    labels: Labels,
    a: int | str,
    b: int | str,
    start: int | None = None,
    stop: int | None = None,
    *,
    video: int | None = None,
) -> np.ndarray:
    """Exchange tracks ``a`` and ``b`` on frames ``start <= frame < stop`` (from ``start`` onwards when
    ``stop`` is ``None``; every frame when both are ``None``).

    Parameters
    ----------
    labels
        The store, edited in place.
    a, b
        Track indices or names.
    start, stop
        The frame range (``stop`` excluded).
    video
        Only this video (every video when ``None``).

    Returns
    -------
    rows
        The rows whose track changed.
    """
    ia, ib = track_index(labels, a), track_index(labels, b)
    if ia == ib:
        raise ProofreadError(f"cannot swap track {labels.tracks[ia].name!r} with itself")
    if start is not None and stop is not None and stop <= start:
        raise ProofreadError(f"empty frame range {start}..{stop}: the end must come after the start")
    t = labels.instances
    rows = np.flatnonzero(_in_range(labels, video, start, stop) & ((t.track == ia) | (t.track == ib)))
    _set_tracks(labels, rows, np.where(t.track[rows] == ia, ib, ia).astype(np.int32))
    return rows


def set_track(
    labels: Labels, instance_id: int, track: int | str, *, from_here_on: bool = False
) -> np.ndarray:
    """Put instance ``instance_id`` on ``track`` (an index, a name, or a new name: a new track).

    On its frame only (default): an instance that held ``track`` on that frame takes the instance's
    old track (or none), so no track is used twice there. ``from_here_on``: the instance's old
    track and ``track`` swap on its frame and every later frame of its video (an untracked
    instance has no old track to swap: only its frame changes).

    Returns
    -------
    rows
        The rows whose track changed.
    """
    row = int(labels.row_of_id(np.array([instance_id]))[0])
    if row < 0:
        raise ProofreadError(f"no instance with id {instance_id}")
    t = labels.instances
    new = track_index(labels, track, create=True)
    old = int(t.track[row])
    video, frame = int(t.video[row]), int(t.frame[row])
    if old == new:
        if t.rejected[row] != NOT_REJECTED:
            _set_tracks(labels, np.array([row]), np.array([new], dtype=np.int32))
            return np.array([row])
        return np.zeros(0, dtype=np.int64)
    if from_here_on and old >= 0:
        return swap_tracks(labels, old, new, frame, None, video=video)
    holders = labels.rows(video=video, frame=frame, track=new)
    holders = holders[(holders != row) & _shown(labels)[holders]]
    # a user instance that replaced the instance's prediction stands for it: it keeps its track
    _set_tracks(labels, holders, np.full(len(holders), old, dtype=np.int32))
    _set_tracks(labels, np.array([row]), np.array([new], dtype=np.int32))
    return np.union1d(holders, [row]).astype(np.int64)


def merge_tracks(labels: Labels, keep: int | str, other: int | str) -> np.ndarray:
    """Put every instance of track ``other`` on track ``keep`` and remove ``other``.

    Raises
    ------
    ProofreadError
        Both tracks have a shown instance on one frame (naming the first frames): one animal cannot
        be in two places; swap or re-assign those first.

    Returns
    -------
    rows
        The rows that moved to ``keep`` (indices after the edit; no row is added or removed).
    """
    ik, io = track_index(labels, keep), track_index(labels, other)
    if ik == io:
        raise ProofreadError(f"cannot merge track {labels.tracks[ik].name!r} with itself")
    t = labels.instances
    shown = _shown(labels)
    key = t.video.astype(np.int64) << 40 | t.frame
    both = np.intersect1d(key[shown & (t.track == ik)], key[shown & (t.track == io)])
    if len(both):
        frames = ", ".join(str(int(k & ((1 << 40) - 1))) for k in both[:5])
        more = f" and {len(both) - 5} more" if len(both) > 5 else ""
        raise ProofreadError(
            f"tracks {labels.tracks[ik].name!r} and {labels.tracks[io].name!r} both have an instance on "
            f"frame{'s' * (len(both) > 1)} {frames}{more}: swap or re-assign those first"
        )
    rows = np.flatnonzero(t.track == io)
    _set_tracks(labels, rows, np.full(len(rows), ik, dtype=np.int32))
    _drop_track(labels, io)
    return rows


def split_track(
    labels: Labels, track: int | str, frame: int, *, name: str | None = None, video: int | None = None
) -> int:
    """Move the instances of ``track`` on ``frame`` and later frames to a new track; returns its index.

    ``name`` defaults to the first free ``track_<k>``; ``video`` limits the split to one video.
    """
    index = track_index(labels, track)
    names = {t.name for t in labels.tracks}
    if name is None:
        k = len(labels.tracks)
        while f"track_{k}" in names:
            k += 1
        name = f"track_{k}"
    elif name.strip() in names:
        raise ProofreadError(f"a track named {name.strip()!r} exists already")
    elif not name.strip():
        raise ProofreadError("a track needs a name")
    t = labels.instances
    rows = np.flatnonzero(_in_range(labels, video, frame, None) & (t.track == index))
    if len(rows) == 0:
        raise ProofreadError(f"track {labels.tracks[index].name!r} has no instance on frame {frame} or later")
    new = labels.add_track(name.strip(), spawned_on=int(frame))
    _set_tracks(labels, rows, np.full(len(rows), new, dtype=np.int32))
    return new


def rename_track(labels: Labels, track: int | str, name: str) -> None:
    """Give a track a new name (names stay unique: tracks are matched by name across files)."""
    index = track_index(labels, track)
    name = str(name).strip()
    if not name:
        raise ProofreadError("a track needs a name")
    if any(t.name == name for i, t in enumerate(labels.tracks) if i != index):
        raise ProofreadError(f"a track named {name!r} exists already")
    labels.tracks[index].name = name


def recolour_track(labels: Labels, track: int | str, color: Sequence[float] | None) -> None:
    """Set a track's colour (RGB in 0..1; ``None`` gives it back its palette colour)."""
    index = track_index(labels, track)
    if color is None:
        labels.tracks[index].color = None
        return
    rgb = tuple(float(c) for c in color)[:3]
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ProofreadError(f"a colour is three numbers in 0..1, got {tuple(color)!r}")
    labels.tracks[index].color = rgb


# --------------------------------------------------------------------------- review queue


@dataclass(frozen=True)
class ReviewItem:
    """A frame to review: ``value`` is the assignment margin (``by="motion"``, in animal radii) or the
    lowest tracking score (``by="tracking_score"``); ``tracks`` the two tracks that came closest to
    swapping (motion) or the least sure instance's track and ``-1`` (tracking score)."""

    video: int
    frame: int
    value: float
    tracks: tuple[int, int]
    by: str = "motion"

    def describe(self, labels: Labels) -> str:
        """One line for a list: frame, tracks and the value."""
        names = [labels.tracks[k].name if 0 <= k < len(labels.tracks) else "" for k in self.tracks]
        if self.by == "motion":
            return f"frame {self.frame}: {names[0]} / {names[1]} (margin {self.value:+.2f})"
        return f"frame {self.frame}: {names[0]} (tracking score {self.value:.3f})"


def _best_rows(labels: Labels, video: int) -> np.ndarray:
    """One row per (frame, track) of ``video``, sorted by (frame, track): the shown, tracked instance a
    viewer prefers (user first, then the highest score), with at least one present point."""
    t = labels.instances
    rows = np.flatnonzero((t.video == video) & (t.track >= 0) & _shown(labels))
    rows = rows[~np.isnan(t.points[rows, :, 0]).all(axis=1)]
    if len(rows) == 0:
        return rows
    key = t.frame[rows] * (len(labels.tracks) + 1) + t.track[rows]
    order = np.argsort(key, kind="stable")  # one integer key: far faster than a lexsort of three
    rows, key = rows[order], key[order]
    dup = np.zeros(len(rows), dtype=bool)
    dup[1:] = key[1:] == key[:-1]
    if not dup.any():
        return rows
    # several instances of one track on a frame (a user instance and predictions): keep the preferred
    dup[:-1] |= dup[1:]
    group = rows[dup]
    priority = np.where(t.kind[group] == USER, np.inf, np.nan_to_num(t.score[group], nan=-np.inf))
    best = group[np.lexsort((-priority, key[dup]))]
    first = np.ones(len(best), dtype=bool)
    best_key = t.frame[best] * (len(labels.tracks) + 1) + t.track[best]
    first[1:] = best_key[1:] != best_key[:-1]
    out = np.concatenate([rows[~dup], best[first]])
    out_key = t.frame[out] * (len(labels.tracks) + 1) + t.track[out]
    return out[np.argsort(out_key, kind="stable")]


def _keep_local_minima(frames: np.ndarray, values: np.ndarray, spacing: int) -> np.ndarray:
    """Mask of entries whose value is the smallest (first on ties) within ``spacing`` frames around."""
    n = len(frames)
    keep = np.ones(n, dtype=bool)
    if spacing <= 0 or n < 2:
        return keep
    # frames are sorted and unique: compare with every neighbour within reach, one offset at a time
    # (the reach in entries is at most 2 * spacing: a vector operation per offset, not per frame)
    for off in range(1, min(spacing, n - 1) + 1):
        near = frames[off:] - frames[:-off] <= spacing
        # the later entry loses to an earlier one that is as small; the earlier to a strictly smaller later one
        keep[off:] &= ~(near & (values[:-off] <= values[off:]))
        keep[:-off] &= ~(near & (values[off:] < values[:-off]))
    return keep


def review_queue(
    labels: Labels,
    video: int | None = None,
    *,
    by: str = "motion",
    max_gap: int = 10,
    spacing: int = 5,
    limit: int | None = None,
) -> list[ReviewItem]:
    """Frames to review, least sure first (see the module docs for what ``by`` ranks).

    Parameters
    ----------
    labels
        The store (read only).
    video
        Only this video (every video when ``None``).
    by
        ``"motion"`` or ``"tracking_score"``.
    max_gap
        Motion: a track's last position counts when it is at most this many frames old.
    spacing
        A frame is listed only when it is the least sure within this many frames around it.
    limit
        At most this many items (all by default).
    """
    if by not in REVIEW_BY:
        raise ProofreadError(f"review by one of {', '.join(REVIEW_BY)}, not {by!r}")
    videos = range(len(labels.videos)) if video is None else [int(video)]
    items: list[ReviewItem] = []
    for v in videos:
        rows = _best_rows(labels, v)
        if len(rows) == 0:
            continue
        if by == "motion":
            frames, values, pairs = _motion_margins(labels, rows, max_gap)
        else:
            frames, values, pairs = _lowest_scores(labels, rows)
        keep = np.flatnonzero(_keep_local_minima(frames, values, spacing))
        # only the least sure ones become items (a long video has tens of thousands of minima)
        keep = keep[np.lexsort((frames[keep], values[keep]))][: None if limit is None else int(limit)]
        items.extend(
            ReviewItem(v, int(f), float(x), (int(p[0]), int(p[1])), by)
            for f, x, p in zip(frames[keep].tolist(), values[keep].tolist(), pairs[keep].tolist())
        )
    items.sort(key=lambda it: (it.value, it.video, it.frame))
    return items if limit is None else items[: int(limit)]


def _lowest_scores(labels: Labels, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the lowest tracking score of its tracked instances and that instance's track."""
    t = labels.instances
    frame, score = t.frame[rows], np.nan_to_num(t.tracking_score[rows].astype(np.float64), nan=np.inf)
    order = np.lexsort((score, frame))
    first = np.ones(len(order), dtype=bool)
    first[1:] = frame[order][1:] != frame[order][:-1]
    pick = order[first]
    pairs = np.column_stack([t.track[rows][pick], np.full(len(pick), NO_TRACK)])
    finite = np.isfinite(score[pick])
    return frame[pick][finite], score[pick][finite], pairs[finite]


def _motion_margins(
    labels: Labels, rows: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the smallest assignment margin over pairs of tracks (see the module docs)."""
    t = labels.instances
    pts = t.points[rows].copy()
    pts[~t.visible[rows]] = np.nan
    visible = ~np.isnan(pts[..., 0]).all(axis=1)
    pts, rows = pts[visible], rows[visible]
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 2), np.int64)
    cent = centroids(pts)
    scale = instance_radius(pts, cent)  # the unit of margins: the animals' typical radius
    frame_ids, f_idx = np.unique(t.frame[rows], return_inverse=True)
    used, k_idx = np.unique(t.track[rows], return_inverse=True)
    n_f, n_k = len(frame_ids), len(used)
    pos = np.full((n_f, n_k, 2), np.nan)
    pos[f_idx, k_idx] = cent
    present = ~np.isnan(pos[..., 0])
    # each track's last frame (entry index) before this one, and its position there
    last = np.where(present, np.arange(n_f)[:, None], -1)
    last = np.maximum.accumulate(last, axis=0)
    prev = np.full((n_f, n_k), -1, dtype=np.int64)
    prev[1:] = last[:-1]
    ok_prev = prev >= 0
    age = frame_ids[:, None] - frame_ids[np.maximum(prev, 0)]
    ok_prev &= age <= max_gap
    before = pos[np.maximum(prev, 0), np.arange(n_k)[None, :]]
    usable = present & ok_prev
    best = np.full(n_f, np.inf)
    pair = np.full((n_f, 2), NO_TRACK, dtype=np.int64)

    def dist(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.hypot(p[:, 0] - q[:, 0], p[:, 1] - q[:, 1])

    # one vector operation per pair of tracks over all frames (tracks are few; frames are many)
    for i in range(n_k):
        for j in range(i + 1, n_k):
            both = np.flatnonzero(usable[:, i] & usable[:, j])
            if len(both) == 0:
                continue
            ai, aj = pos[both, i], pos[both, j]
            bi, bj = before[both, i], before[both, j]
            margin = (dist(bi, aj) + dist(bj, ai) - dist(bi, ai) - dist(bj, aj)) / scale
            better = margin < best[both]
            hit = both[better]
            best[hit] = margin[better]
            pair[hit] = (used[i], used[j])
    finite = np.isfinite(best)
    return frame_ids[finite], best[finite], pair[finite]


__all__ = [
    "REVIEW_BY",
    "ProofreadError",
    "ReviewItem",
    "merge_tracks",
    "recolour_track",
    "rename_track",
    "review_queue",
    "set_track",
    "split_track",
    "swap_tracks",
    "track_index",
]
