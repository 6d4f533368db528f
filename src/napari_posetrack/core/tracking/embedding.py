"""A per-video appearance embedding learnt from the tracker's own confident tracklets.

No labels are needed: the online pass cuts a tracklet whenever an association is ambiguous, so
the instances of one long tracklet are very likely one animal (**positives**), and two tracklets
that hold instances on the same frames are certainly different animals (**negatives**). A small
CNN (:class:`EmbeddingNet`: four 3x3 convolutions, global average pooling, a linear layer, an
L2-normalised output of ``dim`` numbers) is trained on fixed-size grey patches of these instances
with a supervised-contrastive (InfoNCE) loss in which a pair of different tracklets counts as a
negative only when they were seen together; pairs of tracklets never seen together are left out of
the loss (they may well be one animal).

Patches (:func:`crop_patches`) are centred on each instance's centroid, cover ``2 * radius``
pixels and are **rotated so the instance's body axis points up**: the principal axis of its
present nodes, pointing toward the skeleton's first node (the head in SLEAP's and our skeletons).
One present node leaves the patch unrotated. Training adds small random rotations and shifts.
Scale is the same for every instance of a video (the tracker's distance scale), so body size stays
a cue; so does brightness (patches are standardised by one mean and spread for the whole video).

:func:`tracklet_embeddings` gives each tracklet the normalised mean of its samples' embeddings and
two calibration distances: ``same``, the median cosine distance between the means of the two
halves (alternate samples) of one confident tracklet, and ``spread``, the median distance between
the means of two confident tracklets seen together, minus ``same``. Stitching adds
``embedding_weight * max(1 - cos - same, 0) / spread`` to the cost of joining two tracklets
(:func:`~napari_posetrack.core.tracking.stitching.link_costs`): 0 for tracklets as alike as one
animal's, about ``embedding_weight`` for tracklets as unlike as two animals'. (The histogram term's
scale, the spread of single samples around their tracklet's mean, does not carry over: a trained
embedding is nearly constant along a tracklet, and the term would swamp motion.)

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PoseTrackError

__all__ = [
    "EmbeddingInputError",
    "EmbeddingModel",
    "add_embedding",
    "body_axes",
    "crop_patches",
    "embed_patches",
    "known_different",
    "train_embedding",
    "tracklet_embeddings",
]

PATCH = 32
"""Side (pixels) of the patches the network sees."""
_STORE = 40
"""Side of the stored patches: a margin around ``PATCH`` for the training-time rotations and shifts."""


class EmbeddingInputError(PoseTrackError, ValueError):
    """The embedding cannot be learnt from this input (no frames, too few confident tracklets)."""


# --------------------------------------------------------------------------- patches


def body_axes(points: np.ndarray) -> np.ndarray:
    """Unit body axis ``(n, 2)`` (x, y) of each instance: the principal axis of its present nodes,
    pointing toward its first node (or, when that node is missing, its first present node).

    Instances with fewer than two present nodes (or all nodes on one point) get ``(0, -1)``: "up",
    i.e. no rotation.
    """
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    present = ~np.isnan(pts[..., 0])
    count = present.sum(axis=1)
    filled = np.where(present[..., None], pts, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = filled.sum(axis=1) / count[:, None]
    d = np.where(present[..., None], pts - centre[:, None, :], 0.0)
    # 2x2 scatter matrices, their major eigenvector in closed form
    sxx = (d[..., 0] ** 2).sum(axis=1)
    syy = (d[..., 1] ** 2).sum(axis=1)
    sxy = (d[..., 0] * d[..., 1]).sum(axis=1)
    angle = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    axis = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    first = np.argmax(present, axis=1)  # the first present node
    toward = d[np.arange(n), first]
    flip = (axis * toward).sum(axis=1) < 0
    axis[flip] *= -1.0
    degenerate = (count < 2) | (sxx + syy < 1e-9)
    axis[degenerate] = (0.0, -1.0)
    return axis


def crop_patches(
    reader: Any,
    frames: np.ndarray,
    points: np.ndarray,
    radius: float,
    *,
    size: int = _STORE,
    rotate: bool = True,
    chunk: int = 64,
) -> np.ndarray:
    """Grey patches ``(n, size, size)`` uint8 around each instance, body axis up (see module docs).

    Parameters
    ----------
    reader
        Anything with ``frame(i) -> (H, W[, C]) uint8`` (a ``VideoReader``; with ``iter_frames`` the
        frames are decoded sequentially).
    frames, points
        Frame index ``(n,)`` and keypoints ``(n, K, 2)`` (x, y; NaN = missing) of each instance.
    radius
        Half the patch side in video pixels.
    size
        Output side in pixels; the patch is resampled bilinearly from a 2x finer grid averaged
        2x2 (a cheap anti-aliasing filter when ``2 * radius > size``).
    rotate
        Rotate by the body axis (:func:`body_axes`); ``False`` keeps the image axes.
    chunk
        Frames held in memory at once.

    Pixels outside the image repeat the border. Instances with no present node give a patch of
    zeros.
    """
    frames = np.asarray(frames, dtype=np.int64)
    pts = np.asarray(points, dtype=np.float64)
    n = len(frames)
    out = np.zeros((n, size, size), dtype=np.uint8)
    if n == 0:
        return out
    present = ~np.isnan(pts[..., 0])
    ok = present.any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(present[..., None], pts, 0.0).sum(axis=1) / present.sum(axis=1)[:, None]
    axis = body_axes(pts) if rotate else np.tile([0.0, -1.0], (n, 1))
    # output pixel (row r, col c) on a 2x grid -> offsets (u across, v along the axis); "up" = +axis
    fine = 2 * size
    step = 2.0 * radius / fine
    g = (np.arange(fine) - (fine - 1) / 2.0) * step
    across = np.stack([-axis[:, 1], axis[:, 0]], axis=1)  # the axis turned 90 degrees (x to the right)

    def sample_grid(sel: np.ndarray, k: int) -> np.ndarray:
        """Image x (``k=0``) or y (``k=1``) of every sample of instances ``sel``: centre + c * across
        - r * axis (rows go down = away from the head). Per batch of frames, so memory stays small."""
        return (
            centre[sel, None, None, k]
            + g[None, None, :] * across[sel, None, None, k]
            - g[None, :, None] * axis[sel, None, None, k]
        )

    rows = np.flatnonzero(ok)
    order = rows[np.argsort(frames[rows], kind="stable")]
    uniq, starts = np.unique(frames[order], return_index=True)
    stops = np.append(starts[1:], len(order))
    where = {int(f): (int(a), int(b)) for f, a, b in zip(uniq, starts, stops)}
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not batch:
            return
        stack = np.stack([img for _, img in batch]).astype(np.float32)  # (c, H, W)
        h, w = stack.shape[1:]
        sel = np.concatenate([order[slice(*where[f])] for f, _ in batch])
        slot = np.concatenate([np.full(where[f][1] - where[f][0], k) for k, (f, _) in enumerate(batch)])
        x = np.clip(sample_grid(sel, 0), 0.0, w - 1.0)
        y = np.clip(sample_grid(sel, 1), 0.0, h - 1.0)
        x0 = np.minimum(np.floor(x).astype(np.int64), w - 2)
        y0 = np.minimum(np.floor(y).astype(np.int64), h - 2)
        fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
        s = slot[:, None, None]
        val = (
            stack[s, y0, x0] * (1 - fx) * (1 - fy)
            + stack[s, y0, x0 + 1] * fx * (1 - fy)
            + stack[s, y0 + 1, x0] * (1 - fx) * fy
            + stack[s, y0 + 1, x0 + 1] * fx * fy
        )
        pooled = val.reshape(len(sel), size, 2, size, 2).mean(axis=(2, 4))
        out[sel] = np.clip(np.rint(pooled), 0, 255).astype(np.uint8)
        batch.clear()

    from .flow import read_gray_frames

    for f, img in read_gray_frames(reader, uniq):
        if int(f) not in where:
            continue
        batch.append((int(f), img))
        if len(batch) >= chunk:
            flush()
    flush()
    return out


# --------------------------------------------------------------------------- the network


def _build_net(dim: int) -> Any:
    """The embedding network (torch module): 32x32 grey patch -> ``dim`` numbers (not normalised)."""
    import torch.nn as nn

    def block(cin: int, cout: int, stride: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(1, 16, 2),  # 16x16
        *block(16, 16, 1),
        *block(16, 32, 2),  # 8x8
        *block(32, 64, 2),  # 4x4
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, dim),
    )


@dataclass
class EmbeddingModel:
    """A trained per-video embedding: the network and the patch standardisation it expects."""

    net: Any  # torch.nn.Module, in eval mode
    mean: float
    std: float
    dim: int
    seconds: float = 0.0  # training time
    n_tracklets: int = 0  # confident tracklets it learnt from
    n_patches: int = 0
    final_loss: float = float("nan")


def _center_crop(x: Any) -> Any:
    m = (x.shape[-1] - PATCH) // 2
    return x[..., m : m + PATCH, m : m + PATCH]


def embed_patches(model: EmbeddingModel, patches: np.ndarray, batch: int = 512) -> np.ndarray:
    """L2-normalised embeddings ``(n, dim)`` float32 of stored patches ``(n, S, S)`` (centre ``PATCH`` px)."""
    import torch
    import torch.nn.functional as F

    out = np.zeros((len(patches), model.dim), dtype=np.float32)
    with torch.no_grad():
        for a in range(0, len(patches), batch):
            x = torch.from_numpy(np.ascontiguousarray(patches[a : a + batch], dtype=np.float32))[:, None]
            x = _center_crop((x - model.mean) / model.std)
            out[a : a + batch] = F.normalize(model.net(x), dim=1).numpy()
    return out


def known_different(
    unit: np.ndarray, frames: np.ndarray, tracklets: np.ndarray, min_overlap: int = 3
) -> np.ndarray:
    """``(m, m)`` bool: tracklets ``tracklets[i]`` and ``tracklets[j]`` both hold instances on at least
    ``min_overlap`` frames (so they are different animals)."""
    import scipy.sparse as sp

    tracklets = np.asarray(tracklets)
    m = len(tracklets)
    if m == 0:
        return np.zeros((0, 0), dtype=bool)
    col = np.full(int(max(unit.max(initial=-1), tracklets.max())) + 2, -1, dtype=np.int64)
    col[tracklets] = np.arange(m)
    c = np.where(unit >= 0, col[np.maximum(unit, 0)], -1)
    keep = c >= 0
    fr, inv = np.unique(frames[keep], return_inverse=True)
    inc = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int32), (inv, c[keep])), shape=(len(fr), m)
    )
    inc.data[:] = 1  # an instance twice on one frame (duplicate rows) counts once
    co = (inc.T @ inc).toarray()
    np.fill_diagonal(co, 0)
    return co >= min_overlap


def _sample_rows(unit: np.ndarray, frames: np.ndarray, per_tracklet: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_tracklet`` evenly spaced rows of each tracklet: ``(rows, tracklet index 0..m-1)``,
    tracklets in sorted-id order (as :func:`~.stitching.summarise_tracklets`)."""
    keep = np.flatnonzero(unit >= 0)
    order = keep[np.lexsort((frames[keep], unit[keep]))]
    _, first, count = np.unique(unit[order], return_index=True, return_counts=True)
    k = np.minimum(count, per_tracklet)
    rep = np.repeat(np.arange(len(first)), k)
    # evenly spaced positions inside each tracklet, vectorised: i-th of k samples -> round(i * (c-1)/(k-1))
    start = np.repeat(np.cumsum(k) - k, k)
    i = np.arange(len(rep)) - start
    denom = np.maximum(k[rep] - 1, 1)
    within = np.rint(i * (count[rep] - 1) / denom).astype(np.int64)
    return order[first[rep] + within], rep


def train_embedding(
    patches: np.ndarray,
    label: np.ndarray,
    different: np.ndarray,
    *,
    dim: int = 32,
    steps: int = 150,
    groups: int = 6,
    per_group: int = 8,
    temperature: float = 0.1,
    lr: float = 3e-3,
    max_rotation: float = 15.0,
    max_shift: float = 2.0,
    seed: int = 0,
) -> EmbeddingModel:
    """Train an :class:`EmbeddingModel` on stored patches of confident tracklets.

    Parameters
    ----------
    patches
        ``(n, S, S)`` uint8 patches (:func:`crop_patches`, ``S >= PATCH``).
    label
        ``(n,)`` tracklet index ``0..m-1`` of each patch.
    different
        ``(m, m)`` bool, :func:`known_different`: pairs of tracklets that are certainly two animals.
    dim
        Embedding size.
    steps
        Optimiser steps (Adam).
    groups, per_group
        Each batch holds ``groups`` pairs of known-different tracklets, ``per_group`` patches of each.
    temperature
        Of the supervised-contrastive (InfoNCE) loss.
    max_rotation, max_shift
        Training augmentation: uniform random rotation (degrees) and shift (pixels of the patch).
    seed
        Same seed, same input, same thread count: the same model.

    Raises
    ------
    EmbeddingInputError
        No pair of tracklets known to be different animals (nothing to contrast).
    """
    import torch
    import torch.nn.functional as F

    patches = np.asarray(patches)
    label = np.asarray(label, dtype=np.int64)
    different = np.asarray(different, dtype=bool)
    m = different.shape[0]
    seen = np.bincount(label, minlength=m) > 0
    different = different & seen[None, :] & seen[:, None]
    has_partner = np.flatnonzero(different.any(axis=1))
    if len(has_partner) < 2:
        raise EmbeddingInputError(
            "cannot learn an appearance embedding: no two confident tracklets were seen on the same "
            "frames (one animal, or tracklets too short); track without the embedding term "
            "(embedding_weight 0)"
        )
    if patches.shape[-1] < PATCH:
        raise EmbeddingInputError(f"patches must be at least {PATCH} px, got {patches.shape[-1]}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(label == i) for i in range(m)]
    partners = [np.flatnonzero(different[i]) for i in range(m)]
    flat = patches.astype(np.float32)
    mean, std = float(flat.mean()), float(max(flat.std(), 1.0))
    data = torch.from_numpy((flat - mean) / std)[:, None]  # (n, 1, S, S)
    diff_t = torch.from_numpy(different)
    side = patches.shape[-1]
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _build_net(dim)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
        net.train()
        for _ in range(steps):
            anchors = rng.choice(has_partner, size=groups)
            idx, lab = [], []
            for a in anchors.tolist():
                for t in (a, int(rng.choice(partners[a]))):
                    pool = members[t]
                    idx.append(pool[rng.integers(0, len(pool), per_group)])
                    lab.append(np.full(per_group, t))
            idx_a, lab_a = np.concatenate(idx), torch.from_numpy(np.concatenate(lab))
            x = data[torch.from_numpy(idx_a)]
            # random rotation + shift, then the centre PATCH pixels: one affine_grid call per batch
            b = len(idx_a)
            ang = torch.from_numpy(rng.uniform(-1, 1, b) * np.deg2rad(max_rotation)).float()
            shift = torch.from_numpy(rng.uniform(-1, 1, (b, 2)) * max_shift * 2.0 / side).float()
            z = PATCH / side
            theta = torch.zeros(b, 2, 3)
            theta[:, 0, 0], theta[:, 0, 1] = z * torch.cos(ang), -z * torch.sin(ang)
            theta[:, 1, 0], theta[:, 1, 1] = z * torch.sin(ang), z * torch.cos(ang)
            theta[:, :, 2] = shift
            grid = F.affine_grid(theta, (b, 1, PATCH, PATCH), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
            e = F.normalize(net(x), dim=1)
            sim = e @ e.T / temperature
            pos = (lab_a[:, None] == lab_a[None, :]) & ~torch.eye(b, dtype=torch.bool)
            neg = diff_t[lab_a][:, lab_a]
            # InfoNCE over each anchor's positives, against its positives and known negatives only
            logits = sim.masked_fill(~(pos | neg), float("-inf"))
            log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
            loss = -(log_prob.masked_fill(~pos, 0.0).sum(1) / pos.sum(1).clamp(min=1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    net.eval()
    return EmbeddingModel(
        net,
        mean,
        std,
        dim,
        seconds=time.perf_counter() - t0,
        n_tracklets=len(has_partner),
        n_patches=int(sum(len(members[i]) for i in has_partner)),
        final_loss=float(np.mean(losses[-20:])),
    )


# --------------------------------------------------------------------------- per tracklet


@dataclass
class TrackletEmbeddings:
    """Each tracklet's mean embedding and what learning it took."""

    mean: np.ndarray  # (m, dim) L2-normalised mean of the tracklet's sample embeddings
    same: float  # median cosine distance between the means of two halves of one confident tracklet
    spread: float  # median cosine distance of two known-different tracklets' means, minus ``same``
    model: EmbeddingModel


def tracklet_embeddings(
    unit: np.ndarray,
    frames: np.ndarray,
    points: np.ndarray,
    reader: Any,
    radius: float,
    *,
    min_length: int = 10,
    samples: int = 64,
    rotate: bool = True,
    seed: int = 0,
    **train_kw: Any,
) -> TrackletEmbeddings:
    """Learn an embedding from the confident tracklets of ``unit`` and embed every tracklet.

    Parameters
    ----------
    unit, frames, points
        Tracklet id (``-1`` = none), frame and keypoints ``(n, K, 2)`` of each instance; tracklets
        come out in sorted-id order (as :func:`~.stitching.summarise_tracklets`).
    reader
        The video (see :func:`crop_patches`).
    radius
        Patch half-side in video pixels.
    min_length
        Tracklets with at least this many instances are **confident**: the embedding learns from them.
    samples
        Instances cropped per tracklet (evenly spaced), for training and for the tracklet's mean.
    rotate
        Body-axis-up patches (see module docs).
    seed, train_kw
        Passed to :func:`train_embedding`.

    Raises
    ------
    EmbeddingInputError
        No two confident tracklets seen on the same frames.
    """
    unit = np.asarray(unit)
    frames = np.asarray(frames, dtype=np.int64)
    rows, rep = _sample_rows(unit, frames, samples)
    ids, count = np.unique(unit[unit >= 0], return_counts=True)
    confident = np.flatnonzero(count >= min_length)
    if len(confident) < 2:
        raise EmbeddingInputError(
            f"cannot learn an appearance embedding: {len(confident)} tracklet(s) of at least {min_length} "
            f"instances (need two seen on the same frames); track without the embedding term "
            f"(embedding_weight 0)"
        )
    different = known_different(unit, frames, ids[confident])
    patches = crop_patches(reader, frames[rows], points[rows], radius, rotate=rotate)
    pos_in_conf = np.full(len(ids), -1, dtype=np.int64)
    pos_in_conf[confident] = np.arange(len(confident))
    train = pos_in_conf[rep] >= 0
    model = train_embedding(patches[train], pos_in_conf[rep][train], different, seed=seed, **train_kw)
    emb = embed_patches(model, patches)
    mean = _normalised_sums(emb, rep, len(ids))
    # calibration: the distance of two halves of one confident tracklet (alternate samples), and of
    # two confident tracklets seen together; a learnt embedding is far tighter inside a tracklet than
    # a histogram, so its spread around the mean would make any difference look huge
    half = (np.arange(len(rep)) - np.searchsorted(rep, rep)) % 2
    conf_rows = train & (np.bincount(rep, minlength=len(ids))[rep] >= 4)
    a = _normalised_sums(emb[conf_rows & (half == 0)], rep[conf_rows & (half == 0)], len(ids))
    b = _normalised_sums(emb[conf_rows & (half == 1)], rep[conf_rows & (half == 1)], len(ids))
    both = np.linalg.norm(a, axis=1) > 0
    same = float(np.median(1.0 - (a[both] * b[both]).sum(axis=1))) if both.any() else 0.0
    i, j = np.nonzero(np.triu(different, 1))
    gap = 1.0 - (mean[confident[i]] * mean[confident[j]]).sum(axis=1)
    spread = float(np.median(gap)) - same if len(gap) else 1.0
    return TrackletEmbeddings(mean.astype(np.float32), same, max(spread, 1e-3), model)


def _normalised_sums(emb: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """``(n, dim)`` L2-normalised sums of ``emb`` rows per ``group`` (zeros for empty groups)."""
    sums = np.zeros((n, emb.shape[1]))
    np.add.at(sums, group, emb)
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


def add_embedding(
    s: Any,
    unit: np.ndarray,
    frames: np.ndarray,
    points: np.ndarray,
    reader: Any,
    radius: float,
    **kw: Any,
) -> TrackletEmbeddings:
    """Fill ``s.embedding`` / ``s.embedding_spread`` of a :class:`~.stitching.TrackletSummary`
    (see :func:`tracklet_embeddings`, which takes ``kw``); returns what was learnt."""
    out = tracklet_embeddings(unit, frames, points, reader, radius, **kw)
    s.embedding = out.mean
    s.embedding_same = out.same
    s.embedding_spread = out.spread
    return out
