"""Training data: labelled frames decoded once, scaled once, split by frame, served in batches.

The pipeline is deliberately thin on the host: frames are decoded a single time (through
:func:`napari_posetrack.core.video.open_video`), resized by the input scaling (or letterboxed into
``data.input_size``), padded to a common size and kept as ``uint8`` (in memory, or in a ``.npy``
memmap inside the run folder for projects too large for memory). A batch is one fancy index into that array plus the matching keypoints;
augmentation and target rendering happen afterwards on the training device
(:mod:`napari_posetrack.core.training.augmentation`, :mod:`napari_posetrack.core.training.targets`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_posetrack.core.errors import FileFormatError, MissingFileError, atomic_write
from napari_posetrack.core.labels import USER, Labels

if TYPE_CHECKING:
    from napari_posetrack.core.config import TrainingConfig

SPLIT_FILE = "split.json"
FRAME_CACHE_FILE = "frames.npy"
DEFAULT_MEMORY_LIMIT = 2 * 1024**3
"""Frame caches larger than this (bytes) go to a memmap on disk instead of memory."""


# --------------------------------------------------------------------------- labelled frames


@dataclass
class LabelledFrames:
    """The user-labelled frames of a project as dense arrays.

    Attributes
    ----------
    pairs
        ``(n_frames, 2)`` int64 ``(video, frame)`` pairs, sorted.
    points
        ``(n_frames, max_instances, n_nodes, 2)`` float32 ``x, y`` in original pixels; NaN where a
        node is missing or not visible, and for padding instances.
    n_instances
        ``(n_frames,)`` number of real instances per frame.
    tracks
        ``(n_frames, max_instances)`` int64 index into ``labels.tracks`` of each instance slot; ``-1``
        for an instance without a track and for padding (``None``: all ``-1``).
    """

    pairs: np.ndarray
    points: np.ndarray
    n_instances: np.ndarray
    tracks: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.tracks is None:
            self.tracks = np.full(self.points.shape[:2], -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pairs)

    def take(self, index: np.ndarray) -> LabelledFrames:
        index = np.asarray(index, dtype=np.int64)
        return LabelledFrames(self.pairs[index], self.points[index], self.n_instances[index], self.tracks[index])

    def classes(self, track_names: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
        """``(n_frames, max_instances)`` int64 class of each instance slot: the position of its track's
        name in ``class_names``; ``-1`` for no track, a track not among the classes, and padding.

        ``track_names`` are the names of ``labels.tracks`` (what :attr:`tracks` indexes).
        """
        lookup = {name: i for i, name in enumerate(class_names)}
        of_track = np.array([lookup.get(str(name), -1) for name in track_names] + [-1], dtype=np.int64)
        # -1 (no track) picks the trailing -1 of the table
        return of_track[self.tracks]


def labelled_frames(labels: Labels) -> LabelledFrames:
    """Collect the frames holding USER instances (predictions are never trained on).

    Instances with no visible labelled node are dropped; invisible (occluded) points count as missing.
    """
    t = labels.instances
    rows = np.flatnonzero(t.kind == USER)
    pts = t.points[rows].astype(np.float32)
    pts[~t.visible[rows]] = np.nan
    has_point = np.isfinite(pts).all(axis=-1).any(axis=-1)
    rows, pts = rows[has_point], pts[has_point]
    if len(rows) == 0:
        empty = np.zeros((0, 2), dtype=np.int64)
        return LabelledFrames(empty, np.zeros((0, 1, labels.n_nodes, 2), np.float32), np.zeros(0, np.int64),
                              np.zeros((0, 1), np.int64))
    keys = np.stack([t.video[rows].astype(np.int64), t.frame[rows].astype(np.int64)], axis=1)
    pairs, frame_of_row = np.unique(keys, axis=0, return_inverse=True)
    frame_of_row = frame_of_row.reshape(-1)
    n_instances = np.bincount(frame_of_row, minlength=len(pairs))
    # slot of each instance within its frame: rank among rows of the same frame (rows are stable-sorted)
    order = np.argsort(frame_of_row, kind="stable")
    starts = np.concatenate([[0], np.cumsum(n_instances)[:-1]])
    slot = np.empty(len(rows), dtype=np.int64)
    slot[order] = np.arange(len(rows)) - starts[frame_of_row[order]]
    points = np.full((len(pairs), int(n_instances.max()), labels.n_nodes, 2), np.nan, dtype=np.float32)
    points[frame_of_row, slot] = pts
    tracks = np.full(points.shape[:2], -1, dtype=np.int64)
    tracks[frame_of_row, slot] = t.track[rows].astype(np.int64)
    return LabelledFrames(pairs.astype(np.int64), points, n_instances.astype(np.int64), tracks)


# --------------------------------------------------------------------------- split


@dataclass
class Split:
    """Indices into :class:`LabelledFrames` for training and validation."""

    train: np.ndarray
    validation: np.ndarray
    seed: int
    validation_fraction: float


def split_frames(n_frames: int, validation_fraction: float, seed: int = 0) -> Split:
    """Split frame indices with a fixed seed; at least one frame each side when there are two or more.

    With a single labelled frame it serves as both training and validation frame.
    """
    if n_frames <= 0:
        raise ValueError("no labelled frames to train on")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {validation_fraction}")
    perm = np.random.default_rng(seed).permutation(n_frames)
    if n_frames == 1:
        return Split(perm, perm.copy(), seed, validation_fraction)
    n_val = int(round(n_frames * validation_fraction))
    n_val = min(max(n_val, 1 if validation_fraction > 0 else 0), n_frames - 1)
    if n_val == 0:
        # no held-out frames asked for: validate on the training frames
        return Split(np.sort(perm), np.sort(perm), seed, validation_fraction)
    return Split(np.sort(perm[n_val:]), np.sort(perm[:n_val]), seed, validation_fraction)


def save_split(path: str | os.PathLike[str], frames: LabelledFrames, split: Split, labels: Labels) -> None:
    """Write ``split.json``: the ``[video, frame]`` pairs of each side plus the video paths."""
    doc = {
        "seed": int(split.seed),
        "validation_fraction": float(split.validation_fraction),
        "videos": [v.path for v in labels.videos],
        "train": frames.pairs[split.train].tolist(),
        "validation": frames.pairs[split.validation].tolist(),
    }
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))


def load_split(path: str | os.PathLike[str], frames: LabelledFrames) -> Split:
    """Read a ``split.json`` back as indices into ``frames`` (pairs no longer labelled are dropped)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "no split file in the run folder")
    try:
        doc = json.loads(path.read_text())
        train_pairs = np.asarray(doc["train"], dtype=np.int64).reshape(-1, 2)
        val_pairs = np.asarray(doc["validation"], dtype=np.int64).reshape(-1, 2)
    except (ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(path, f"not a valid split file ({exc})") from exc
    lookup = {(int(v), int(f)): i for i, (v, f) in enumerate(frames.pairs)}

    def indices(pairs: np.ndarray) -> np.ndarray:
        return np.asarray([lookup[(int(v), int(f))] for v, f in pairs if (int(v), int(f)) in lookup], np.int64)

    return Split(indices(train_pairs), indices(val_pairs), int(doc.get("seed", 0)),
                 float(doc.get("validation_fraction", 0.0)))


# --------------------------------------------------------------------------- input geometry


@dataclass(frozen=True)
class FrameGeometry:
    """Where a frame of one size lands in the network input, and the exact way back.

    A frame is resized to ``size`` and placed in a ``canvas`` (black elsewhere) with its top-left
    pixel at ``pad``; a point moves as ``input = original * scale + offset`` (per axis ``x, y``), so
    ``original = (input - offset) / scale`` recovers it exactly. The canvas is later padded at the
    bottom and right to the model's stride, which moves no point.

    Attributes
    ----------
    size
        ``(h, w)`` of the resized frame.
    canvas
        ``(H, W)`` of the network input before stride padding.
    pad
        ``(top, left)`` of the resized frame in the canvas.
    scale, offset
        ``(2,)`` float64 ``x, y`` factors and shifts from original to input pixels.
    """

    size: tuple[int, int]
    canvas: tuple[int, int]
    pad: tuple[int, int]
    scale: np.ndarray
    offset: np.ndarray

    def _like(self, points: Any) -> tuple[Any, Any]:
        if isinstance(points, np.ndarray):
            return self.scale, self.offset
        import torch

        return (torch.as_tensor(self.scale, dtype=points.dtype, device=points.device),
                torch.as_tensor(self.offset, dtype=points.dtype, device=points.device))

    def to_input(self, points: Any) -> Any:
        """``(..., 2)`` ``x, y`` in original-frame pixels -> network-input pixels (numpy or torch)."""
        scale, offset = self._like(points)
        return points * scale + offset

    def to_original(self, points: Any) -> Any:
        """``(..., 2)`` ``x, y`` in network-input pixels -> original-frame pixels (numpy or torch)."""
        scale, offset = self._like(points)
        return (points - offset) / scale

    def place(self, frames: np.ndarray) -> np.ndarray:
        """``(B, size, C)`` resized frames -> ``(B, canvas, C)`` with black around them."""
        if self.canvas == self.size:
            return frames
        out = np.zeros((len(frames), *self.canvas, frames.shape[-1]), dtype=frames.dtype)
        top, left = self.pad
        out[:, top : top + self.size[0], left : left + self.size[1]] = frames
        return out


def frame_geometry(
    height: int, width: int, *, input_scaling: float = 1.0, input_size: Sequence[int] | None = None
) -> FrameGeometry:
    """The :class:`FrameGeometry` of a ``height`` x ``width`` frame.

    Parameters
    ----------
    height, width
        The original frame size.
    input_scaling
        Without ``input_size``: the frame is resized by this factor and keypoints are multiplied by
        it (the long-standing convention, kept so existing models predict as they were trained).
    input_size
        ``(H, W)`` letterbox: the frame is scaled by the largest factor that fits it inside, keeping
        its aspect ratio, and centred (the black border is split evenly, the odd pixel going to the
        bottom or right). ``input_scaling`` is not used. The per-axis factors are the exact ratios of
        the rounded resized size to the original, and points map pixel centre to pixel centre as the
        resize samples them, so keypoints stay on the pixels they label at every image size.
    """
    if input_size is None:
        h, w = scaled_size(height, width, input_scaling)
        factor = float(input_scaling)
        return FrameGeometry((h, w), (h, w), (0, 0), np.array([factor, factor]), np.zeros(2))
    canvas_h, canvas_w = int(input_size[0]), int(input_size[1])
    if canvas_h < 1 or canvas_w < 1:
        raise ValueError(f"input size must be positive, got {list(input_size)}")
    factor = min(canvas_h / height, canvas_w / width)
    h = min(max(1, round(height * factor)), canvas_h)
    w = min(max(1, round(width * factor)), canvas_w)
    top, left = (canvas_h - h) // 2, (canvas_w - w) // 2
    scale = np.array([w / width, h / height], dtype=np.float64)
    # pixel centres: input pixel i covers original [i / s, (i + 1) / s) in edge coordinates
    offset = 0.5 * scale - 0.5 + np.array([left, top], dtype=np.float64)
    return FrameGeometry((h, w), (canvas_h, canvas_w), (top, left), scale, offset)


def letterbox_size(config: TrainingConfig) -> tuple[int, int] | None:
    """``data.input_size`` when this model letterboxes its frames, else ``None``.

    Whole-frame models (single instance, bottom-up, centroid) letterbox; a centered-instance model
    does not: its crops are cut from frames scaled by ``data.input_scaling``, so an animal has the
    same size in pixels in every crop whatever the size of the image it came from.
    """
    size = config.data.input_size
    if size is None or config.model.pipeline == "centered_instance":
        return None
    return int(size[0]), int(size[1])


def frame_scaling(config: TrainingConfig) -> tuple[float, tuple[int, int] | None]:
    """``(input_scaling, input_size)`` to build a model's frames with (:func:`build_frame_cache`).

    A letterboxing model (:func:`letterbox_size`) gets ``(1.0, input_size)``: the letterbox picks each
    image's scale, so ``data.input_scaling`` is not used. A single-instance or bottom-up model given
    both warns, naming the field; a centroid model does not, because in a top-down job its input
    scaling is the one the centered-instance crops use.
    """
    import warnings

    size = letterbox_size(config)
    if size is None:
        return float(config.data.input_scaling), None
    if config.data.input_scaling != 1.0 and config.model.pipeline in ("single_instance", "bottomup"):
        warnings.warn(
            f"data.input_scaling ({config.data.input_scaling}) is not used: data.input_size {list(size)} "
            "letterboxes every frame, which sets its scale; set data.input_scaling to 1.0 (or clear "
            "data.input_size to scale frames by it instead)",
            UserWarning, stacklevel=2,
        )
    return 1.0, size


def scaled_size(height: int, width: int, input_scaling: float) -> tuple[int, int]:
    """Frame size after input scaling (at least one pixel each side)."""
    return max(1, int(round(height * input_scaling))), max(1, int(round(width * input_scaling)))


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` (H, W, C) resized to ``size`` (h, w); training and inference both prepare frames with it."""
    import cv2

    h, w = size
    if frame.shape[:2] == (h, w):
        return frame
    # area averaging avoids aliasing when shrinking; linear when enlarging
    interp = cv2.INTER_AREA if h < frame.shape[0] else cv2.INTER_LINEAR
    out = cv2.resize(frame, (w, h), interpolation=interp)
    return out.reshape(h, w, -1)


# --------------------------------------------------------------------------- frame cache


@dataclass
class FrameCache:
    """Decoded, scaled, padded frames ``(n, H, W, C)`` uint8 with keypoints in the same pixel frame.

    ``images`` is an ``ndarray`` or a read-only ``np.memmap``; ``points`` are already in input pixels:
    ``original * scale[i] + offset[i]`` for frame row ``i`` (see :class:`FrameGeometry`). ``scale`` and
    ``offset`` are ``(n, 2)`` ``x, y`` per row, because letterboxed images of different sizes are
    scaled differently. ``path`` is the ``.npy`` file when the cache lives on disk. ``classes`` is
    ``(n, max_instances)`` int64, the identity class of each instance slot (``-1`` = none), for
    identity models; ``None`` otherwise.
    """

    images: np.ndarray
    points: np.ndarray
    n_instances: np.ndarray
    scale: np.ndarray
    offset: np.ndarray
    path: Path | None = None
    classes: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.images)

    def to_original(self, rows: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``points`` ``(len(rows), ..., 2)`` in input pixels of those frame rows -> original pixels."""
        rows = np.asarray(rows, dtype=np.int64)
        shape = (len(rows),) + (1,) * (np.ndim(points) - 2) + (2,)
        return (points - self.offset[rows].reshape(shape)) / self.scale[rows].reshape(shape)


def convert_channels(frames: np.ndarray, channels: int | None) -> np.ndarray:
    """Frames ``(..., C)`` as 1 (BT.601 luminance) or 3 (repeated grey) channels; ``None`` keeps them."""
    if channels is None or frames.shape[-1] == channels:
        return frames
    if channels == 1:
        # luminance weights of ITU-R BT.601, as OpenCV uses
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.round(frames.astype(np.float32) @ weights), 0, 255).astype(np.uint8)[..., None]
    if channels == 3:
        return np.repeat(frames, 3, axis=-1)
    raise ValueError(f"images can have 1 or 3 channels, not {channels}")


def build_frame_cache(
    labels: Labels,
    frames: LabelledFrames,
    *,
    input_scaling: float = 1.0,
    input_size: Sequence[int] | None = None,
    channels: int | None = None,
    stride: int = 1,
    cache_dir: str | os.PathLike[str] | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    cache_name: str = FRAME_CACHE_FILE,
    progress: Any = None,
) -> FrameCache:
    """Decode every labelled frame once, scale (or letterbox) it, pad it to a common size divisible by ``stride``.

    Parameters
    ----------
    labels
        The project; its videos are opened with :func:`napari_posetrack.core.video.open_video`.
    frames
        The labelled frames to cache (their order is the cache order).
    input_scaling
        Factor applied to frames and keypoints once, here (without ``input_size``).
    input_size
        ``(H, W)``: letterbox every frame into it instead (:func:`frame_geometry`), so videos of
        different sizes share one resolution; each row's ``scale`` and ``offset`` record how its
        keypoints moved.
    channels
        1 or 3 to force grayscale or RGB; ``None`` keeps what the reader returns (1 for grayscale
        content). Videos of one project with differing channel counts are converted to 3.
    stride
        The padded height and width are multiples of this (the model's largest stride).
    cache_dir
        Where the ``cache_name`` (``frames.npy``) memmap goes when the cache exceeds ``memory_limit`` bytes.
    progress
        Optional ``callable(done, total)``.

    Raises
    ------
    MissingFileError, FileFormatError
        When a video is absent or cannot be decoded (the message names the file).
    """
    from napari_posetrack.core.video import open_video

    if input_scaling <= 0:
        raise ValueError(f"input scaling must be positive, got {input_scaling}")
    video_ids = np.unique(frames.pairs[:, 0]) if len(frames) else np.zeros(0, np.int64)
    readers: dict[int, Any] = {}
    try:
        for v in video_ids:
            video = labels.videos[int(v)]
            if video.backend != "embedded" and not video.exists:
                raise MissingFileError(video.filename, "video of the training labels is not on disk")
            try:
                readers[int(v)] = open_video(video, rgb=channels == 3)
            except (OSError, ValueError) as exc:
                if isinstance(exc, (FileFormatError, MissingFileError)):
                    raise
                raise FileFormatError(video.filename, f"cannot open video for training ({exc})") from exc
        geometry = {
            v: frame_geometry(*r.shape[:2], input_scaling=input_scaling, input_size=input_size)
            for v, r in readers.items()
        }
        chans = {r.shape[2] for r in readers.values()}
        if channels is None:
            channels = chans.pop() if len(chans) == 1 else 3
        if input_size is not None:
            height, width = int(input_size[0]), int(input_size[1])
        else:
            height = max((g.canvas[0] for g in geometry.values()), default=1)
            width = max((g.canvas[1] for g in geometry.values()), default=1)
        stride = max(int(stride), 1)
        height, width = -(-height // stride) * stride, -(-width // stride) * stride
        shape = (len(frames), height, width, channels)
        nbytes = int(np.prod(shape))
        path: Path | None = None
        if nbytes > memory_limit and cache_dir is not None:
            path = Path(cache_dir) / cache_name
            path.parent.mkdir(parents=True, exist_ok=True)
            images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
            images[:] = 0
        else:
            images = np.zeros(shape, dtype=np.uint8)
        done = 0
        for v, reader in readers.items():
            idx = np.flatnonzero(frames.pairs[:, 0] == v)
            order = idx[np.argsort(frames.pairs[idx, 1], kind="stable")]
            g = geometry[v]
            (h, w), (top, left) = g.size, g.pad
            # decode in sorted order, in chunks, so seeking stays forward and memory stays bounded
            for start in range(0, len(order), 64):
                chunk = order[start : start + 64]
                wanted = frames.pairs[chunk, 1]
                n_video = len(reader)
                bad = wanted[(wanted < 0) | (wanted >= n_video)]
                if len(bad):
                    raise FileFormatError(
                        reader.path, f"labelled frame {int(bad[0])} is beyond the video's {n_video} frames"
                    )
                try:
                    decoded = reader.frames(wanted)
                except (OSError, ValueError, RuntimeError) as exc:
                    if isinstance(exc, (FileFormatError, MissingFileError)):
                        raise
                    raise FileFormatError(reader.path, f"cannot decode frames for training ({exc})") from exc
                for row, frame in zip(chunk, decoded):
                    scaled = convert_channels(resize_frame(np.asarray(frame), (h, w)), channels)
                    images[row, top : top + h, left : left + w] = scaled
                done += len(chunk)
                if progress is not None:
                    progress(done, len(frames))
        if path is not None:
            images.flush()
            del images
            images = np.load(path, mmap_mode="r")
    finally:
        for r in readers.values():
            r.close()
    scale = np.ones((len(frames), 2), dtype=np.float64)
    offset = np.zeros((len(frames), 2), dtype=np.float64)
    for v, g in geometry.items():
        rows = frames.pairs[:, 0] == v
        scale[rows], offset[rows] = g.scale, g.offset
    # in float32, as the keypoints are: plain scaling stays exactly ``points * input_scaling``
    points = frames.points * scale[:, None, None].astype(np.float32) + offset[:, None, None].astype(np.float32)
    return FrameCache(images, points, frames.n_instances.copy(), scale, offset, path)


# --------------------------------------------------------------------------- batches


class FrameBatchDataset:
    """A map-style dataset whose items are whole batches: ``dataset[[i, j, ...]]`` -> dict of tensors.

    Use it with a batch sampler (``DataLoader(ds, sampler=batch_sampler, batch_size=None)``) so a
    batch costs one fancy index into the frame array instead of a Python call per sample.

    Items of the dict:
    ``image`` (B, H, W, C) uint8, ``points`` (B, M, N, 2) float32 (NaN = missing),
    ``n_instances`` (B,) int64, ``index`` (B,) int64 (frame row), ``scale`` (B, 2) float32 (``x, y``
    input pixels per original pixel, for errors in original pixels), and for instance-level
    sampling ``instance`` (B,) int64 (which instance of the frame the sample is about). When the cache
    has ``classes`` (identity models): ``class`` (B,) int64 of the sampled instance (per-instance
    sampling) or ``classes`` (B, M) int64 per slot; ``-1`` = no class.

    Parameters
    ----------
    cache
        The frames.
    rows
        Frame rows (indices into the cache) this dataset serves.
    per_instance
        When true a sample is one (frame, instance) pair: top-down centered-instance training.
    """

    def __init__(self, cache: FrameCache, rows: np.ndarray, *, per_instance: bool = False) -> None:
        self.cache = cache
        self.rows = np.asarray(rows, dtype=np.int64)
        self.per_instance = per_instance
        if per_instance:
            counts = cache.n_instances[self.rows]
            self.frame_of_sample = np.repeat(self.rows, counts)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            self.instance_of_sample = np.arange(int(counts.sum())) - np.repeat(starts, counts)
        else:
            self.frame_of_sample = self.rows
            self.instance_of_sample = None
        self._images: np.ndarray | None = cache.images
        self._path = cache.path

    def __len__(self) -> int:
        return len(self.frame_of_sample)

    # a memmap pickles as a full copy: workers started by spawn reopen the file instead
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._path is not None:
            state["_images"] = None
            state["cache"] = FrameCache(np.zeros((0,) + self.cache.image_shape, np.uint8), self.cache.points,
                                        self.cache.n_instances, self.cache.scale, self.cache.offset, self._path,
                                        self.cache.classes)
        return state

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self._path, mmap_mode="r")
        return self._images

    def __getitem__(self, samples: Sequence[int] | np.ndarray) -> dict[str, Any]:
        import torch

        samples = np.asarray(samples, dtype=np.int64)
        rows = self.frame_of_sample[samples]
        # sorted reads are friendlier to a memmap; restore the sampler's order afterwards
        order = np.argsort(rows, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        images = np.ascontiguousarray(self.images[rows[order]][inverse])
        batch = {
            "image": torch.from_numpy(images),
            "points": torch.from_numpy(np.ascontiguousarray(self.cache.points[rows])),
            "n_instances": torch.from_numpy(self.cache.n_instances[rows].astype(np.int64)),
            "index": torch.from_numpy(rows.copy()),
            "scale": torch.from_numpy(self.cache.scale[rows].astype(np.float32)),
        }
        if self.instance_of_sample is not None:
            instance = self.instance_of_sample[samples]
            batch["instance"] = torch.from_numpy(instance.copy())
            if self.cache.classes is not None:
                batch["class"] = torch.from_numpy(self.cache.classes[rows, instance].astype(np.int64))
        elif self.cache.classes is not None:
            batch["classes"] = torch.from_numpy(self.cache.classes[rows].astype(np.int64))
        return batch


class EpochBatchSampler:
    """Shuffled batches whose order depends only on ``(seed, epoch)``, so a resumed run can skip
    exactly the batches it already trained on; shards the samples across DDP ranks.

    Parameters
    ----------
    n_samples
        Dataset length.
    batch_size
        Samples per batch (per rank).
    shuffle
        Shuffle per epoch; otherwise samples come in order.
    seed
        Base seed.
    drop_last
        Drop a final incomplete batch (only when at least one full batch remains).
    rank, world_size
        DDP position: each rank takes every ``world_size``-th sample of the epoch's permutation
        (padded by wrapping so all ranks take the same number of batches).
    batches_per_epoch
        Fixed number of batches per epoch; when it needs more than one pass over the samples,
        further passes use fresh permutations (small datasets train enough between validations).
    """

    def __init__(
        self,
        n_samples: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        batches_per_epoch: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        if n_samples < 1:
            raise ValueError("no samples to draw batches from")
        self.n_samples = int(n_samples)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.batches_per_epoch = batches_per_epoch
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's order; the first ``skip_batches`` batches are left out (resume)."""
        self.epoch = int(epoch)
        self.skip = int(skip_batches)

    def _per_rank(self) -> int:
        return -(-self.n_samples // self.world_size)

    def n_batches(self) -> int:
        """Batches per epoch on each rank (before skipping)."""
        if self.batches_per_epoch is not None:
            return int(self.batches_per_epoch)
        n = self._per_rank()
        if self.drop_last and n >= self.batch_size:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def _rank_samples(self, n_needed: int) -> np.ndarray:
        passes = []
        total = 0
        k = 0
        while total < n_needed or k == 0:
            if self.shuffle:
                order = np.random.default_rng([self.seed, self.epoch, k]).permutation(self.n_samples)
            else:
                order = np.arange(self.n_samples)
            if self.world_size > 1:
                order = np.resize(order, self._per_rank() * self.world_size)[self.rank :: self.world_size]
            passes.append(order)
            total += len(order)
            k += 1
        return np.concatenate(passes)

    def __len__(self) -> int:
        return max(self.n_batches() - self.skip, 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        n_batches = self.n_batches()
        fixed = self.batches_per_epoch is not None
        order = self._rank_samples(n_batches * self.batch_size if fixed else 1)
        for b in range(self.skip, n_batches):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            if len(batch):
                yield batch


def make_loader(
    dataset: FrameBatchDataset,
    sampler: EpochBatchSampler,
    *,
    device: Any = "cpu",
    workers: int = 0,
    prefetch_factor: int = 4,
) -> Any:
    """A ``torch.utils.data.DataLoader`` over whole batches; pinned memory when feeding a CUDA device.

    With ``workers > 0`` batches are assembled in worker processes (kept alive across epochs) and
    ``prefetch_factor`` batches per worker are kept ready, so the device does not wait on the host.
    """
    import torch

    pin = torch.device(device).type == "cuda"
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=prefetch_factor)
    return torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=workers, pin_memory=pin, **kwargs
    )


def to_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """Move a batch to ``device`` (asynchronously from pinned memory) and turn images into float
    ``(B, C, H, W)`` in [0, 1]."""
    import torch

    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    out["image"] = out["image"].permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    return out
