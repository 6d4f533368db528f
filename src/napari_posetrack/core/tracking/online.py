"""The tracker's online pass: associate each frame's detections with the live units.

:meth:`OnlinePass.step` handles one frame: expire, candidates, similarity, matching, then (with
stitching) cut ambiguous continuations and start tracklets, or (without) start and refill tracks.
It is the reference for every frame, and the only path for ``flow`` candidates.

Most frames of a long video are *steady*: the same units, each matched to one detection, every
match unambiguous, no track started. :meth:`OnlinePass.window` processes a run of such frames with
a few numpy calls per window instead of per frame, by speculating and checking:

1. guess every unit's detection on each frame of the window by chaining nearest detection
   centroids from frame to frame;
2. compute, for the whole window at once, the unit states the guess implies
   (:func:`~napari_posetrack.core.tracking.candidates.observe_sequence`), the candidate poses,
   the similarity matrices, the assignments, runner-up ratios and node jumps, with the same
   arithmetic as the per-frame step;
3. accept the frames up to the first one where the computed assignment differs from the guess or
   the frame is not steady. Frame by frame, the states of the accepted frames follow only from
   accepted matches, so they are the states the per-frame step would have built; the first
   rejected frame then goes through :meth:`OnlinePass.step`.

Guesses only decide how much work is thrown away, never the result: the output is the per-frame
step's, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .candidates import UnitState, observe_sequence
from .matching import hungarian_match, match, match_batch, runner_up_ratio, runner_up_ratio_batch
from .similarity import PoseSimilarity, centroids, squared_norm

if TYPE_CHECKING:
    from .tracker import TrackerConfig

# Window lengths in frames: a window is sized from the steady run before it (see run()),
# doubled after each fully accepted window.
MIN_WINDOW = 8
MAX_WINDOW = 256
_MAX_WINDOW_ELEMENTS = 1 << 18  # cap on W x C x D x K, the largest array a window builds


class OnlinePass:
    """Online association over the instances of one video (rows sorted by frame).

    Parameters
    ----------
    config
        The :class:`~napari_posetrack.core.tracking.tracker.TrackerConfig`.
    points
        ``(n, K, 2)`` detections, NaN = missing node (outlier instances all NaN).
    n_present
        ``(n,)`` present nodes per detection (0 for outliers).
    scores
        ``(n,)`` detection scores (which unmatched detection starts a track first, no stitching).
    frames
        ``(n,)`` frame of each row, non-decreasing.
    similarity
        The similarity at the video's distance scale.
    scale
        The video's distance scale (node-jump gate, refilling tracks).
    centroid
        ``centroids(points)`` if the caller has it (guesses the chains of detections).

    ``unit`` (``-1`` = none) and ``match_score`` hold the results, row by row.
    """

    def __init__(
        self,
        config: TrackerConfig,
        points: np.ndarray,
        n_present: np.ndarray,
        scores: np.ndarray,
        frames: np.ndarray,
        similarity: PoseSimilarity,
        scale: float,
        centroid: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.points = points
        self.n_present = n_present
        self.scores = scores
        self.similarity = similarity
        self.scale = scale
        n = len(points)
        self.frame_ids, self.starts, self.counts = np.unique(frames, return_index=True, return_counts=True)
        self.stops = self.starts + self.counts
        # end of the run of frames with as many detections as frame k: a window keeps one shape
        change = np.append(np.flatnonzero(np.diff(self.counts)) + 1, len(self.counts))
        self.run_end = change[np.searchsorted(change, np.arange(len(self.counts)), side="right")]
        self.unit = np.full(n, -1, dtype=np.int64)
        self.match_score = np.zeros(n, dtype=np.float32)
        self.state = UnitState(points.shape[1], track_flow=config.candidates == "flow")
        self.min_start = max(config.min_points, 1)  # present nodes needed to start a unit
        # per-detection features of the whole video, computed once: windows and steps slice them
        centroid = centroids(points) if centroid is None else centroid
        self.det_features = similarity.detection_features(points, centroid)
        # for guesses only: detections without a centroid sit far from everything (no NaN to mask)
        self.det_centroid = np.where(np.isnan(centroid), 1e100, centroid)

    @property
    def n_frames(self) -> int:
        return len(self.frame_ids)

    # ------------------------------------------------------------------ one frame
    def step(self, k: int, flow_shift: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Associate the detections of the ``k``-th frame (the reference for every frame).

        ``flow_shift`` (flow candidates) carries the live units' flow poses onto this frame.
        """
        cfg, state = self.config, self.state
        f = int(self.frame_ids[k])
        lo, hi = int(self.starts[k]), int(self.stops[k])
        state.expire(f, cfg.window)
        if flow_shift is not None and len(state.active):
            act = state.active
            state.shifted[act] = flow_shift(state.shifted[act])
        det = self.points[lo:hi]
        ids, cand = state.candidates(f, cfg.candidates, cfg.motion_prior)
        det_features = tuple(x[lo:hi] for x in self.det_features)
        sim = self.similarity.pairs(self.similarity.candidate_features(cand), det_features)
        r, c = match(sim, cfg.matching, cfg.min_similarity)
        det_unit = self.unit[lo:hi]  # views: writes land in the outputs
        det_sim = self.match_score[lo:hi]
        n_present = self.n_present[lo:hi]
        if cfg.stitch:
            ratio = runner_up_ratio(sim, r, c)
            sure = ratio < cfg.ambiguity_ratio
            if cfg.max_node_jump is not None and len(r):
                # a continuation where any node jumps far is not trusted (parts swapped between animals)
                jump = np.sqrt(squared_norm(cand[r] - det[c]))
                sure &= ~(jump > cfg.max_node_jump * self.scale).any(axis=1)  # NaN compares False
            if not sure.all():
                state.close(ids[r[~sure]])  # an ambiguous continuation ends the tracklet
                r, c = r[sure], c[sure]
            state.observe(ids[r], det[c], f)
            det_unit[c] = ids[r]
            det_sim[c] = sim[r, c]
            if len(r) < hi - lo:
                free = np.flatnonzero(det_unit < 0)
                free = free[n_present[free] >= self.min_start]
                det_unit[free] = state.spawn(det[free], f)
            return
        state.observe(ids[r], det[c], f)
        det_unit[c] = ids[r]
        det_sim[c] = sim[r, c]
        free = np.flatnonzero(det_unit < 0) if len(r) < hi - lo else ()
        if len(free):
            free = free[np.argsort(-np.nan_to_num(self.scores[lo + free], nan=-np.inf), kind="stable")]
            startable = free[n_present[free] >= self.min_start]
            cap = cfg.max_tracks
            room = len(startable) if cap is None else max(cap - state.n, 0)
            new = startable[:room]
            det_unit[new] = state.spawn(det[new], f)
            rest = np.setdiff1d(free, new)
            rest = rest[n_present[rest] >= 1]
            if len(rest) and cap is not None and state.n >= cap:
                _fill_free_tracks(state, det, det_unit, rest, f, self.scale)

    # ------------------------------------------------------------------ a window of frames
    def window(self, k0: int, width: int) -> tuple[int, int]:
        """Try frames ``k0 .. k0 + width - 1`` as steady frames; returns ``(accepted, tried)``.

        The ``accepted`` first frames are done (outputs and unit states written, exactly as
        :meth:`step` would); frame ``k0 + accepted`` is not, and needs :meth:`step` when
        ``accepted < tried``. ``tried`` is 0 when frame ``k0`` cannot be steady (no live unit, or
        more units than detections); it falls short of ``width`` where the number of detections
        per frame changes, a gap would expire the units, or a frame is found not steady.
        """
        cfg, state = self.config, self.state
        frame_ids = self.frame_ids
        f0 = int(frame_ids[k0])
        state.expire(f0, cfg.window)  # idempotent: step() repeats it on the same frame
        units = state.active
        n_c, n_d = len(units), int(self.counts[k0])
        if n_c == 0 or n_c > n_d:
            return 0, 0
        n_k = self.points.shape[1]
        width = min(width, max(1, _MAX_WINDOW_ELEMENTS // (n_c * n_d * max(n_k, 1))))
        k1 = min(k0 + width, int(self.run_end[k0]))
        frames = frame_ids[k0:k1]
        gaps = np.diff(frames)
        if len(gaps) and gaps.max() > cfg.window:  # every unit would expire after that gap
            frames = frames[: 1 + int(np.argmax(gaps > cfg.window))]
        lo = int(self.starts[k0])
        guess = self._guess(units, frames, self.det_centroid[lo : lo + len(frames) * n_d].reshape(-1, n_d, 2))

        # checks that need no similarity: the guess takes one detection per unit, and what it leaves
        # unmatched would start (or, without stitching, refill) nothing. Frames after the first
        # failing one cannot be accepted, so the window ends there.
        unmatched = np.ones((len(frames), n_d), dtype=bool)
        unmatched[np.arange(len(frames))[:, None], guess] = False
        n_present = self.n_present[lo : lo + len(frames) * n_d].reshape(-1, n_d)
        would_start = n_present >= self.min_start if cfg.stitch else n_present > 0
        ok = (unmatched.sum(axis=1) == n_d - n_c) & ~(unmatched & would_start).any(axis=1)
        n_w = _through_first_false(ok)
        frames, guess, ok = frames[:n_w], guess[:n_w], ok[:n_w]
        rows = slice(lo, lo + n_w * n_d)  # constant detections per frame: the rows are one block
        det = self.points[rows].reshape(n_w, n_d, *self.points.shape[1:])
        w_idx = np.arange(n_w)[:, None]
        observed = det[w_idx, guess]  # (W, C, K, 2)
        merged, cent, vel = observe_sequence(
            state.points[units], state.centroid[units], state.velocity[units], state.frame[units],
            observed, frames,
        )  # fmt: skip
        cand = merged[:-1]
        if cfg.motion_prior:
            dt = np.empty((n_w, n_c))
            dt[0] = f0 - state.frame[units]
            dt[1:] = gaps[: n_w - 1, None]
            cand = cand + (vel[:-1] * dt[..., None])[..., None, :]
        det_features = tuple(x[rows].reshape(n_w, n_d, *x.shape[1:]) for x in self.det_features)
        sim = self.similarity.pairs(self.similarity.candidate_features(cand), det_features)
        if cfg.stitch:
            sure = runner_up_ratio_batch(sim, guess) < cfg.ambiguity_ratio
            if cfg.max_node_jump is not None:
                jump = np.sqrt(squared_norm(cand - observed))
                sure &= ~(jump > cfg.max_node_jump * self.scale).any(axis=-1)
            ok &= sure.all(axis=1)
        # the assignment only where it can still matter (solving frames that fail anyway can
        # cost a scipy call each when their guess is far off)
        n_m = _through_first_false(ok)
        ok = ok[:n_m] & (match_batch(sim[:n_m], cfg.matching, cfg.min_similarity) == guess[:n_m]).all(axis=1)
        accepted = n_m if ok.all() else int(np.argmin(ok))
        if accepted:
            a = accepted
            out_rows = lo + np.arange(a)[:, None] * n_d + guess[:a]
            self.unit[out_rows] = units
            self.match_score[out_rows] = sim[w_idx[:a], np.arange(n_c), guess[:a]]
            state.points[units] = merged[a]
            state.centroid[units] = cent[a]
            state.velocity[units] = vel[a]
            state.frame[units] = frames[a - 1]
        return accepted, n_m

    def _guess(self, units: np.ndarray, frames: np.ndarray, det_centroid: np.ndarray) -> np.ndarray:
        """``(W, C)`` guessed detection of each unit on each window frame (nearest-centroid chains)."""
        state = self.state
        dt0 = (frames[0] - state.frame[units]).astype(np.float64)
        expected = state.centroid[units] + state.velocity[units] * dt0[:, None]
        d2 = squared_norm(expected[:, None] - det_centroid[0][None])
        first = np.argmin(np.nan_to_num(d2, nan=np.inf), axis=1)  # (C,)
        n_w, n_d = det_centroid.shape[:2]
        if n_w == 1:
            return first[None]
        # chain[j, p]: the detection on frame j nearest to detection p of frame j - 1
        d2 = squared_norm(det_centroid[:-1, :, None] - det_centroid[1:, None, :])
        chain = np.empty((n_w, n_d), dtype=np.int64)
        chain[0] = np.arange(n_d)
        chain[1:] = np.argmin(d2, axis=2)
        # prefix composition by doubling: chain[j] becomes the map from frame 0's detections to frame j's
        span = 1
        while span < n_w:
            chain[span:] = chain[np.arange(span, n_w)[:, None], chain[:-span]]
            span *= 2
        return chain[:, first]

    # ------------------------------------------------------------------ the whole video
    def run(self, progress: Callable[[int], None]) -> None:
        """Associate every frame (simple candidates): windows where frames are steady, else steps.

        ``progress(n)`` is told every 256 frames (and the remainder at the end).
        """
        k, n_frames, width = 0, self.n_frames, MIN_WINDOW
        while k < n_frames:
            accepted, tried = self.window(k, width)
            done = k + accepted
            if accepted < tried or tried == 0:
                self.step(done)  # the frame the window could not take
                done += 1
                # the next window about as long as the steady run just seen: short in crowded
                # stretches (little work thrown away), long where rejections are rare
                width = min(max(MIN_WINDOW, 2 * accepted), MAX_WINDOW)
            else:
                width = min(2 * width, MAX_WINDOW)
            for _ in range(done // 256 - k // 256):
                progress(256)
            k = done
        progress(n_frames % 256)


def _through_first_false(ok: np.ndarray) -> int:
    """How many leading entries of ``ok`` to keep: up to and including the first False."""
    return len(ok) if ok.all() else int(np.argmin(ok)) + 1


def _fill_free_tracks(
    state: UnitState, det: np.ndarray, det_unit: np.ndarray, rest: np.ndarray, frame: int, scale: float
) -> None:
    """Give leftover detections to tracks not used on this frame (all tracks exist already)."""
    used = det_unit[det_unit >= 0]
    free_units = np.setdiff1d(np.arange(state.n), used)
    if len(free_units) == 0:
        return
    dt = (frame - state.frame[free_units]).astype(np.float64)
    expected = centroids(state.points[free_units]) + state.velocity[free_units] * dt[:, None]
    d2 = squared_norm(expected[:, None] - centroids(det[rest])[None])
    sim = 1.0 / (1.0 + np.nan_to_num(d2, nan=np.inf) / scale**2)
    r, c = hungarian_match(sim, 0.0)
    state.observe(free_units[r], det[rest[c]], frame)
    state.active = np.union1d(state.active, free_units[r])
    det_unit[rest[c]] = free_units[r]
