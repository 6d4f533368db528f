"""The reader interface every backend shares, its frame cache, and the lazy dask array."""

from __future__ import annotations

import abc
import collections
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FileFormatError

if TYPE_CHECKING:  # typing.Self needs Python 3.11
    from typing_extensions import Self

TRANSCODE_HINT = (
    "transcode it to a constant-frame-rate H.264 file with short keyframe intervals, e.g. "
    "`ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p -crf 18 -g 25 OUT.mp4`, and open the copy"
)
N_GRAYSCALE_SAMPLES = 3


class _FrameCache:
    """A thread-safe LRU cache of decoded frames, keyed by frame index."""

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max(0, int(max_frames))
        self._frames: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, index: int) -> np.ndarray | None:
        with self._lock:
            frame = self._frames.get(index)
            if frame is None:
                self.misses += 1
                return None
            self._frames.move_to_end(index)
            self.hits += 1
            return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        if self.max_frames == 0:
            return
        with self._lock:
            self._frames[index] = frame
            self._frames.move_to_end(index)
            while len(self._frames) > self.max_frames:
                self._frames.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, index: int) -> bool:
        return index in self._frames


def reader_metadata(reader: Any) -> dict[str, Any]:
    """What a napari layer wants to know about a video reader of any backend."""
    return {
        "path": reader.path,
        "fps": reader.fps,
        "n_frames": reader.n_frames,
        "shape": reader.shape,
        "backend": reader.backend,
        "grayscale": reader.grayscale,
    }


class VideoReader(abc.ABC):
    """Interface shared by every backend; subclasses implement :meth:`_read_rgb`.

    Attributes
    ----------
    path : str
        The file (or folder / first image for image lists).
    n_frames : int
    shape : tuple[int, int, int]
        ``(H, W, C)`` of the frames this reader returns.
    fps : float or None
    grayscale : bool
        Whether the content is grayscale (``C == 1`` unless ``rgb=True``).

    Frames returned by :meth:`frame` are shared with the cache and therefore read-only; copy
    one before modifying it. :meth:`iter_frames` and :meth:`frames` return fresh, writable
    arrays (``iter_frames`` ones may be views with padded rows, as PyAV's ``to_ndarray`` gives).
    """

    backend = "none"
    path: str
    n_frames: int
    fps: float | None
    grayscale: bool
    rgb: bool
    _height: int
    _width: int

    def __init__(self, cache_size: int = 16) -> None:
        self._cache = _FrameCache(cache_size)

    def __getstate__(self) -> dict[str, Any]:
        # The cache (and its lock) stays behind when a reader is pickled for a dask worker.
        state = dict(self.__dict__)
        state["_cache"] = state["_cache"].max_frames
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache = _FrameCache(state["_cache"])

    # ----------------------------------------------------------------- public interface
    @property
    def shape(self) -> tuple[int, int, int]:
        return (self._height, self._width, 1 if self.grayscale and not self.rgb else 3)

    @property
    def metadata(self) -> dict[str, Any]:
        """What a napari layer wants to know about this video."""
        return reader_metadata(self)

    @property
    def timestamps(self) -> np.ndarray | None:
        """Presentation time of every frame in seconds from the first frame (``i / fps`` here;
        video files with timestamps give their own), or None when the rate is unknown."""
        if not self.fps:
            return None
        return np.arange(self.n_frames, dtype=np.float64) / float(self.fps)

    def __len__(self) -> int:
        return self.n_frames

    def check_index(self, index: int) -> int:
        """Validate a frame index (negative counts from the end); raise ``IndexError``."""
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise TypeError(f"{self.path}: frame index must be an integer, got {index!r}") from None
        if i < 0:
            i += self.n_frames
        if not 0 <= i < self.n_frames:
            raise IndexError(
                f"{self.path}: frame {index} is out of range (the video has {self.n_frames} frames)"
            )
        return i

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an ``(H, W, C)`` uint8 array (read-only, may come from the cache)."""
        i = self.check_index(index)
        cached = self._cache.get(i)
        if cached is not None:
            return cached
        frame = self._read_frame(i)
        frame.flags.writeable = False
        self._cache.put(i, frame)
        return frame

    def frames(self, indices: Iterable[int]) -> np.ndarray:
        """Frames at ``indices`` as an ``(n, H, W, C)`` array; sorted reads keep the fast path."""
        wanted = [self.check_index(i) for i in indices]
        out = np.empty((len(wanted), *self.shape), dtype=np.uint8)
        # Reading in ascending order lets the decoder run forward instead of seeking back.
        for pos in np.argsort(wanted, kind="stable"):
            out[pos] = self.frame(wanted[pos])
        return out

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for ``range(start, stop, step)`` in order (fresh arrays)."""
        for i in self._range(start, stop, step):
            yield i, np.array(self.frame(i))

    def close(self) -> None:
        """Release files and the cache (a later read reopens what it needs)."""
        self._cache.clear()

    def to_dask(self) -> Any:
        """A lazy ``dask.array`` of all frames: ``(T, H, W)`` or ``(T, H, W, 3)``, 1-frame chunks."""
        return reader_to_dask(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, n_frames={self.n_frames}, shape={self.shape}, fps={self.fps})"

    # ----------------------------------------------------------------- helpers for subclasses
    def _read_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` in the output layout (``shape``), not cached."""
        return self._finish(self._read_rgb(index))

    @abc.abstractmethod
    def _read_rgb(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``(H, W, 3)`` or ``(H, W, 1)`` uint8 (before grayscale handling)."""

    def _finish(self, image: np.ndarray) -> np.ndarray:
        """Apply the channel policy: one channel for grayscale content, else three."""
        if image.shape[:2] != (self._height, self._width):
            raise FileFormatError(
                self.path,
                f"a frame is {image.shape[1]}x{image.shape[0]}, expected {self._width}x{self._height}",
            )
        if self.grayscale and not self.rgb:
            return np.ascontiguousarray(image[:, :, :1])
        if image.shape[2] == 1:
            return np.repeat(image, 3, axis=2)
        return image

    def _detect_grayscale(self, sample_indices: Sequence[int]) -> bool:
        """Whether the sampled frames all have three identical channels (or one channel)."""
        for i in sample_indices:
            image = self._read_rgb(int(i))
            if image.shape[2] == 3 and not (
                np.array_equal(image[:, :, 0], image[:, :, 1])
                and np.array_equal(image[:, :, 0], image[:, :, 2])
            ):
                return False
        return True

    def _range(self, start: int, stop: int | None, step: int) -> range:
        if step < 1:
            raise ValueError(f"{self.path}: step must be >= 1, got {step}")
        return range(*slice(start, stop, step).indices(self.n_frames))


def reader_to_dask(reader: Any) -> Any:
    """Wrap any reader with ``frame``, ``n_frames``, ``shape`` and ``path`` as a lazy dask array.

    The graph holds one task per frame but is built without materialising them, so a
    100,000-frame video gives its array instantly.
    """
    import dask.array as da
    from dask.base import tokenize

    source = _DaskFrameSource(reader)
    # Same name only for the same frames: image lists in one folder differ by their paths,
    # and a file rewritten on disk by its modification time.
    files = getattr(reader, "paths", None) or [str(reader.path)]
    stamp = os.path.getmtime(files[0]) if os.path.exists(files[0]) else None
    name = "video-" + tokenize(
        type(reader).__name__, files, stamp, getattr(reader, "rgb", False), source.shape
    )
    chunks = (1, *source.shape[1:])
    # inline_array keeps slicing one frame of a 100k-frame graph in milliseconds.
    return da.from_array(source, chunks=chunks, name=name, asarray=False, fancy=False, inline_array=True)


class _DaskFrameSource:
    """The array-like that ``dask.array.from_array`` slices: one frame per chunk."""

    def __init__(self, reader: VideoReader) -> None:
        self.reader = reader
        h, w, c = reader.shape
        self.shape = (reader.n_frames, h, w) if c == 1 else (reader.n_frames, h, w, c)
        self.dtype = np.dtype(np.uint8)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            return self._frame(int(first))[rest]
        indices = (
            range(self.reader.n_frames)[first] if isinstance(first, slice) else np.asarray(first).tolist()
        )
        stack = np.empty((len(indices), *self.shape[1:]), dtype=np.uint8)
        for pos, i in enumerate(indices):
            stack[pos] = self._frame(int(i))
        return stack[(slice(None), *rest)]

    def _frame(self, i: int) -> np.ndarray:
        frame = self.reader.frame(i)
        return frame[:, :, 0] if len(self.shape) == 3 else frame
