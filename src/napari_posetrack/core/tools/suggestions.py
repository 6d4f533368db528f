"""Frame suggestions for the active-learning loop: which frames should a user label next.

Every function returns a list of :class:`~napari_posetrack.core.labels.Suggestion` for one video.
The sampling methods skip frames that already hold a user instance; the motion check does not.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.core.labels import PREDICTED, Labels, Suggestion


def _n_frames(labels: Labels, video: int) -> int:
    """Frame count of a video: from its metadata, else from the file, else from its instances."""
    v = labels.videos[video]
    if v.n_frames:
        return int(v.n_frames)
    try:
        from napari_posetrack.core.video import open_video

        with open_video(v) as reader:
            return int(reader.n_frames)
    except (PoseTrackError, OSError):  # a missing or unreadable video: fall back on its instances
        frames = labels.instances.frame[labels.instances.video == video]
        return int(frames.max()) + 1 if len(frames) else 0


def _user_frame_set(labels: Labels, video: int) -> np.ndarray:
    """Sorted frame indices of ``video`` that hold at least one user instance."""
    return labels.user_frames(video=video)[:, 1]


def _as_suggestions(video: int, frames: Iterable[int], group: int = 0) -> list[Suggestion]:
    return [Suggestion(int(video), int(f), int(group)) for f in frames]


def suggest_uniform(labels: Labels, video: int, n: int, seed: int = 0) -> list[Suggestion]:
    """``n`` frames spread evenly over the video, skipping user-labelled frames.

    Parameters
    ----------
    labels, video
        The store and the index of the video to sample.
    n
        How many frames to suggest (fewer when the video has fewer unlabelled frames).
    seed
        Offsets the grid by a random fraction of its spacing so repeated rounds differ.
    """
    candidates = np.setdiff1d(np.arange(_n_frames(labels, video)), _user_frame_set(labels, video))
    if n <= 0 or len(candidates) == 0:
        return []
    if n >= len(candidates):
        return _as_suggestions(video, candidates)
    # evenly spaced positions in the list of unlabelled frames, shifted by a seeded offset
    spacing = len(candidates) / n
    offset = np.random.default_rng(seed).uniform(0, spacing)
    positions = np.floor(offset + spacing * np.arange(n)).astype(np.int64)
    return _as_suggestions(video, candidates[np.clip(positions, 0, len(candidates) - 1)])


def suggest_kmeans(
    labels: Labels, video: int, n: int, *, sample: int = 500, size: int = 32, seed: int = 0
) -> list[Suggestion]:
    """Frames that represent the variety of the footage: k-means on downscaled image features.

    A sample of about ``sample`` unlabelled frames is decoded sequentially, shrunk to ``size`` x
    ``size`` grayscale, projected on its first ~16 principal components, clustered into ``n`` groups
    with k-means; the sampled frame nearest each cluster centre is suggested.
    """
    import cv2
    from scipy.cluster.vq import kmeans2

    from napari_posetrack.core.video import open_video

    if n <= 0:
        return []
    labelled = set(_user_frame_set(labels, video).tolist())
    with open_video(labels.videos[video]) as reader:
        total = int(reader.n_frames)
        step = max(1, total // max(int(sample), 1))
        frames: list[int] = []
        features: list[np.ndarray] = []
        for i, img in reader.iter_frames(0, total, step):
            if i in labelled:
                continue
            gray = img[..., 0] if img.shape[-1] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            small = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
            frames.append(int(i))
            features.append(small.astype(np.float32).ravel())
    if not frames:
        return []
    frame_ids = np.asarray(frames, dtype=np.int64)
    if n >= len(frame_ids):
        return _as_suggestions(video, frame_ids)
    x = np.stack(features)
    x -= x.mean(axis=0)
    # PCA via SVD keeps the directions along which frames differ most; noise is dropped
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    dims = min(16, vt.shape[0])
    z = x @ vt[:dims].T
    z /= z.std(axis=0).max() + 1e-9
    centres, _ = kmeans2(z.astype(np.float64), n, minit="++", seed=seed)
    dist = np.linalg.norm(z[:, None, :] - centres[None, :, :], axis=-1)  # (frames, clusters)
    chosen: list[int] = []
    taken = np.zeros(len(frame_ids), dtype=bool)
    for c in range(len(centres)):  # n clusters, not a per-point loop
        d = np.where(taken, np.inf, dist[:, c])
        best = int(np.argmin(d))
        if np.isfinite(d[best]):
            taken[best] = True
            chosen.append(int(frame_ids[best]))
    return _as_suggestions(video, sorted(chosen))


def suggest_low_scores(labels: Labels, video: int, n: int) -> list[Suggestion]:
    """The ``n`` frames whose worst predicted instance has the lowest instance score.

    Frames with a user instance are skipped; predictions without a score are ignored.
    """
    t = labels.instances
    mask = (t.video == video) & (t.kind == PREDICTED) & np.isfinite(t.score)
    mask &= ~np.isin(t.frame, _user_frame_set(labels, video))
    if n <= 0 or not mask.any():
        return []
    frames, scores = t.frame[mask], t.score[mask].astype(np.float64)
    uniq, inverse = np.unique(frames, return_inverse=True)
    worst = np.full(len(uniq), np.inf)
    np.minimum.at(worst, inverse, scores)
    order = np.lexsort((uniq, worst))[:n]  # lowest score first, ties by frame
    return _as_suggestions(video, uniq[order])


def motion_outlier_scores(labels: Labels, video: int) -> np.ndarray:
    """Per frame, the largest robust z-score of a node's speed arriving at that frame.

    Speeds are per track and node between consecutive frames; each (track, node) series is scored
    as ``|v - median| / (1.4826 * MAD)``. Frames with no measurable motion score 0.
    """
    coords, _ = labels.dense(video)
    if coords.shape[0] < 2:
        return np.zeros(coords.shape[0])
    speed = np.linalg.norm(np.diff(coords, axis=0), axis=-1)  # (T-1, tracks, nodes)
    med = np.nanmedian(speed, axis=0)
    mad = np.nanmedian(np.abs(speed - med), axis=0)
    # a floor on the MAD stops perfectly still series (MAD 0) from giving infinite scores
    scale = 1.4826 * np.maximum(np.nan_to_num(mad, nan=0.0), 0.5)
    z = np.abs(speed - med) / scale
    z = np.where(np.isfinite(z), z, 0.0)
    per_frame = np.zeros(coords.shape[0])
    per_frame[1:] = z.reshape(z.shape[0], -1).max(axis=1) if z.size else 0.0
    return per_frame


def suggest_motion_outliers(labels: Labels, video: int, n: int, z: float = 4.0) -> list[Suggestion]:
    """Up to ``n`` frames with implausible motion (a node speed with robust z-score above ``z``).

    Frames are ranked by their largest z-score. User-labelled frames are kept on purpose: this is a
    proofreading check, and a jump in user labels (a mis-click, a swapped identity) is worth a look.
    """
    import warnings

    with warnings.catch_warnings():  # all-NaN series (absent tracks) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        scores = motion_outlier_scores(labels, video)
    candidates = np.flatnonzero(scores > z)
    if n <= 0 or len(candidates) == 0:
        return []
    order = candidates[np.lexsort((candidates, -scores[candidates]))][:n]
    return _as_suggestions(video, order)


def add_suggestions(labels: Labels, suggestions: Iterable[Suggestion], group: int | None = None) -> int:
    """Append suggestions to ``labels.suggestions`` without duplicating a (video, frame).

    ``group`` (when given) replaces the group of every new suggestion. Returns how many were added.
    """
    seen = {(s.video, s.frame) for s in labels.suggestions}
    added = 0
    for s in suggestions:
        key = (int(s.video), int(s.frame))
        if key in seen:
            continue
        labels.suggestions.append(Suggestion(key[0], key[1], int(s.group if group is None else group)))
        seen.add(key)
        added += 1
    return added
