"""Frame-exact random and sequential access to video files through PyAV (FFmpeg).

When a file is opened, its packets are read once without decoding. Sorting the packet
timestamps gives every frame's presentation timestamp; the keyframe flags give, for every
frame, the keyframe to seek to. A read seeks to that keyframe and decodes forward until the
frame with the exact timestamp comes out, so B-frame reordering cannot shift frames. A read
that follows the previous one in the same thread decodes on without seeking. Each thread gets
its own demuxer and decoder, so napari's asynchronous slicing may read from several threads.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FileFormatError, MissingFileError
from .base import N_GRAYSCALE_SAMPLES, TRANSCODE_HINT, VideoReader


@dataclass
class _FrameIndex:
    """Where every frame of a video file lies, from one pass over its packets.

    ``pts[i]`` is the presentation timestamp of frame ``i``; ``seek_frame[i]`` the frame index
    of the keyframe to seek to before decoding forward to frame ``i``. ``exact_timestamps`` is
    False when packets lack unique timestamps: then frames are counted from the start.
    """

    pts: np.ndarray
    seek_frame: np.ndarray
    exact_timestamps: bool
    time_base: float
    declared_frames: int
    truncated: bool


def _build_frame_index(container: Any, path: str) -> _FrameIndex:
    """Demux every packet once (no decoding) and derive the frame order and seek points."""
    import av

    stream = container.streams.video[0]
    pts_list: list[int | None] = []
    keyframes: list[bool] = []
    truncated = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue  # flush packets; frames an edit list removes from the presentation
            if packet.is_corrupt:
                truncated = True  # a packet cut short by the end of the file
                break
            pts_list.append(packet.pts)
            keyframes.append(bool(packet.is_keyframe))
    except av.error.FFmpegError:
        truncated = True  # the demuxer gave up part-way: keep what came before
    if not pts_list:
        raise FileFormatError(path, "the video stream has no readable frames")

    # Without a unique presentation timestamp per packet, a decoded frame cannot be matched to
    # its index (decode timestamps are not presentation order when B-frames reorder).
    exact = all(p is not None for p in pts_list) and len(set(pts_list)) == len(pts_list)
    is_key = np.asarray(keyframes, dtype=bool)
    if not is_key.any():
        is_key[0] = True
    if not exact:
        pts = np.arange(len(pts_list), dtype=np.int64)
        seek_frame = np.zeros(len(pts_list), dtype=np.int64)
    else:
        decode_pts = np.asarray(pts_list, dtype=np.int64)
        order = np.argsort(decode_pts, kind="stable")  # decode position of each presented frame
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        key_pos = np.flatnonzero(is_key)
        # The keyframe to start from: the last one before the packet in decode order whose own
        # timestamp is not later (open-GOP leading frames need the keyframe before).
        k = np.searchsorted(key_pos, np.arange(len(decode_pts)), side="right") - 1
        while True:
            late = (k >= 0) & (decode_pts[key_pos[np.maximum(k, 0)]] > decode_pts)
            if not late.any():
                break
            k[late] -= 1
        start_frame = np.where(k >= 0, rank[key_pos[np.maximum(k, 0)]], 0)
        pts = decode_pts[order]
        seek_frame = start_frame[order]
        if truncated:
            keep = _complete_prefix(pts, decode_pts, key_pos)
            pts, seek_frame = pts[:keep], seek_frame[:keep]
    time_base = float(stream.time_base) if stream.time_base else 0.0
    return _FrameIndex(pts, seek_frame, exact, time_base, int(stream.frames or 0), truncated)


def _complete_prefix(pts: np.ndarray, decode_pts: np.ndarray, key_pos: np.ndarray) -> int:
    """How many leading frames of a truncated file are certainly present and in place.

    With a constant frame duration, a missing frame shows as a gap in the sorted timestamps:
    keep frames up to the first gap. Otherwise keep only complete groups of pictures (frames
    before the last keyframe reached).
    """
    if len(pts) < 2:
        return len(pts)
    steps = np.diff(pts)
    step = int(np.median(steps))
    gaps = np.flatnonzero(steps != step)
    if step > 0 and (len(gaps) == 0 or np.all(steps[gaps] % step == 0)):
        return int(gaps[0]) + 1 if len(gaps) else len(pts)
    last_key_pts = decode_pts[key_pos[-1]]
    return int(np.searchsorted(pts, last_key_pts, side="left")) or 1


def _red_plane(frame: Any, copy: bool = True) -> np.ndarray:
    """The red plane of a frame converted to planar RGB, as an ``(H, W, 1)`` array.

    With ``copy=False`` the array is a view of the converted frame's own buffer (nothing else
    refers to it), as ``to_ndarray`` returns; it keeps the three planes alive meanwhile.
    """
    plane = frame.reformat(format="gbrp").planes[2]  # planes are G, B, R
    height, width, stride = frame.height, frame.width, plane.line_size
    rows = np.frombuffer(plane, dtype=np.uint8, count=height * stride).reshape(height, stride)
    if not copy:
        return rows[:, :width, None]
    out = np.empty((height, width, 1), dtype=np.uint8)
    out[:, :, 0] = rows[:, :width]
    return out


class _Decoder:
    """One demuxer + decoder (one thread's) and its position in the video."""

    skip_nonref = True  # skip non-reference frames before the target (False: decode all)
    # FFmpeg's frame threading decodes several frames at once (frames stay bit-identical): a
    # large speed-up for playback and seeking where cores are free, some overhead where not.
    # "SLICE" is PyAV's default.
    thread_type = "AUTO"

    def __init__(self, path: str, index: _FrameIndex) -> None:
        import av

        self.path = path
        self.index = index
        try:
            self.container = av.open(path)
        except av.error.FFmpegError as err:
            raise FileFormatError(path, f"cannot open the video: {err}") from err
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = self.thread_type
        self._frames: Iterator[Any] | None = None
        self.last = -1  # index of the last frame this decoder returned (-1: none since a seek)
        self.n_seeks = 0
        self._counted = -1
        self._just_seeked = False
        self._target_pts = -(2**62)  # packets shown before this one may skip non-reference frames
        self.thread = threading.current_thread()

    def close(self) -> None:
        self._frames = None
        self.container.close()

    def read(self, i: int) -> Any:
        """The ``av.VideoFrame`` at index ``i``: decode on from here, or seek first."""
        start = int(self.index.seek_frame[i])
        if self._frames is None or not (self.last < i and start <= self.last + 1):
            self._seek(start)
        try:
            return self._decode_until(i, start)
        except FileFormatError:
            raise
        except Exception as err:  # av errors while decoding: corrupt or truncated data
            self._frames = None
            raise FileFormatError(self.path, f"decoding frame {i} failed ({err}); {TRANSCODE_HINT}") from err

    def _seek(self, start: int) -> None:
        import av

        self.n_seeks += 1
        if self.index.exact_timestamps:
            self.container.seek(
                int(self.index.pts[start]), stream=self.stream, backward=True, any_frame=False
            )
            self.last = start - 1
        else:
            # Without usable timestamps the only known position is the start of the file.
            self.container.close()
            self.container = av.open(self.path)
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = self.thread_type
            self.last = -1
        self._frames = self._decoded_frames()
        self._counted = self.last  # frames counted so far when timestamps are not usable
        self._just_seeked = True

    def _decoded_frames(self) -> Iterator[Any]:
        """Frames in presentation order from the demuxer's position to the end of the stream.

        Packets of non-reference frames shown before the frame being sought are not decoded
        (no other frame depends on them), which shortens random access within a long GOP.
        """
        import av

        context = self.stream.codec_context
        # Only the generator being iterated changes skip_frame; an abandoned one may have left
        # it set, so start from the known state.
        context.skip_frame = "DEFAULT"
        skipping = False
        try:
            for packet in self.container.demux(self.stream):
                if packet.is_corrupt:
                    continue  # cut short by the end of a truncated file: decoding it would fail
                skip = (
                    self.skip_nonref
                    and self.index.exact_timestamps
                    and packet.pts is not None
                    and packet.pts < self._target_pts
                )
                if skip != skipping:
                    context.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                yield from packet.decode()  # the last, empty packet flushes the decoder
        except av.error.EOFError:
            return
        except av.error.FFmpegError:
            # The demuxer failed part-way (damaged file): still hand out the frames the
            # decoder holds back for reordering.
            with contextlib.suppress(av.error.FFmpegError):
                yield from context.decode(None)

    def _decode_until(self, i: int, start: int) -> Any:
        target = int(self.index.pts[i])
        self._target_pts = target
        for frame in self._frames:  # type: ignore[union-attr]
            just_seeked, self._just_seeked = self._just_seeked, False
            if not self.index.exact_timestamps:
                self._counted += 1
                ts = self._counted
            else:
                ts = frame.pts
                if ts is None:
                    raise FileFormatError(self.path, f"a decoded frame has no timestamp; {TRANSCODE_HINT}")
            if ts == target:
                self.last = i
                return frame
            if ts > target:
                if just_seeked and start > 0 and self.index.exact_timestamps:
                    # The demuxer landed after the keyframe: start again from an earlier one.
                    earlier = int(self.index.seek_frame[start - 1])
                    self._seek(earlier)
                    return self._decode_until(i, earlier)
                self._frames = None
                raise FileFormatError(
                    self.path, f"frame {i} (timestamp {target}) is missing from the stream; {TRANSCODE_HINT}"
                )
        self._frames = None
        raise FileFormatError(
            self.path,
            f"the stream ended before frame {i} (timestamp {target}): the file is truncated or corrupt",
        )


class PyAVReader(VideoReader):
    """Frame-exact random and sequential access to a video file through PyAV (FFmpeg).

    Parameters
    ----------
    path
        A video file FFmpeg can demux (mp4, avi, mov, mkv, ...).
    rgb
        Return three channels even for grayscale content.
    cache_size
        Decoded frames kept in the LRU cache.
    """

    backend = "pyav"

    def __init__(self, path: str | os.PathLike[str], *, rgb: bool = False, cache_size: int = 16) -> None:
        import av

        super().__init__(cache_size)
        self.path = os.fspath(path)
        self.rgb = bool(rgb)
        if not os.path.isfile(self.path):
            raise MissingFileError(self.path, "no such video file")
        try:
            container = av.open(self.path)
        except av.error.FFmpegError as err:
            raise FileFormatError(self.path, f"not a readable video file ({err})") from err
        try:
            if not container.streams.video:
                raise FileFormatError(self.path, "the file has no video stream")
            stream = container.streams.video[0]
            self._height, self._width = int(stream.codec_context.height), int(stream.codec_context.width)
            if self._height <= 0 or self._width <= 0:
                raise FileFormatError(self.path, "the video stream has no frame size")
            self._index = _build_frame_index(container, self.path)
            rate = stream.average_rate or stream.guessed_rate
        finally:
            container.close()
        self.n_frames = len(self._index.pts)
        self.fps = float(rate) if rate else self._fps_from_timestamps()
        self._warn_about_index()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._decoders: list[_Decoder] = []
        self._red_plane = False  # set below when the fast grayscale conversion is exact here
        self.grayscale = self._detect_grayscale(self._grayscale_samples())

    # ----------------------------------------------------------------- state
    def __getstate__(self) -> dict[str, Any]:
        # Containers and locks stay behind; a reader sent to another process reopens the file.
        state = super().__getstate__()
        for key in ("_lock", "_local", "_decoders"):
            state.pop(key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._decoders = []

    @property
    def n_seeks(self) -> int:
        """Seeks made by the decoders alive now (for tests and benchmarks)."""
        with self._lock:
            return sum(d.n_seeks for d in self._decoders)

    @property
    def keyframes(self) -> np.ndarray:
        """Frame indices of the keyframes (the seek points)."""
        return np.unique(self._index.seek_frame)

    def close(self) -> None:
        with self._lock:
            decoders, self._decoders = self._decoders, []
        for decoder in decoders:
            decoder.close()
        self._local = threading.local()
        super().close()

    # ----------------------------------------------------------------- reading
    def _decoder(self) -> _Decoder:
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            decoder = _Decoder(self.path, self._index)
            with self._lock:
                # Decoders of threads that ended are closed here rather than kept open.
                dead = [d for d in self._decoders if not d.thread.is_alive()]
                self._decoders = [d for d in self._decoders if d.thread.is_alive()] + [decoder]
            for d in dead:
                d.close()
            self._local.decoder = decoder
        return decoder

    def _read_rgb(self, index: int) -> np.ndarray:
        return self._decoder().read(index).to_ndarray(format="rgb24")

    def _read_frame(self, index: int) -> np.ndarray:
        return self._to_array(self._decoder().read(index))

    def _to_array(self, frame: Any, copy: bool = True) -> np.ndarray:
        """An ``av.VideoFrame`` in the output layout.

        Grayscale frames are the red channel of the RGB conversion. Taking the red plane of
        a planar RGB conversion skips the strided copy out of packed RGB (about a third of
        the conversion time of a 1024x1024 frame); it is used only where it gave the same
        bytes as packed RGB on the sampled frames (see ``_detect_grayscale``).
        """
        if self._red_plane and self.grayscale and not self.rgb:
            if (frame.height, frame.width) != (self._height, self._width):
                raise FileFormatError(
                    self.path,
                    f"a frame is {frame.width}x{frame.height}, expected {self._width}x{self._height} "
                    f"(the frame size changes within the stream); {TRANSCODE_HINT}",
                )
            return _red_plane(frame, copy)
        return self._finish(frame.to_ndarray(format="rgb24"))

    def _detect_grayscale(self, sample_indices: Any) -> bool:
        decoder = _Decoder(self.path, self._index)
        try:
            frames = [decoder.read(int(i)) for i in sample_indices]
            rgb = [frame.to_ndarray(format="rgb24") for frame in frames]
            gray = all(
                np.array_equal(a[:, :, 0], a[:, :, 1]) and np.array_equal(a[:, :, 0], a[:, :, 2]) for a in rgb
            )
            self._red_plane = gray and all(
                np.array_equal(_red_plane(frame), a[:, :, :1]) for frame, a in zip(frames, rgb)
            )
        finally:
            decoder.close()
        return gray

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Decode straight through ``range(start, stop, step)`` with a decoder of its own."""
        wanted = self._range(start, stop, step)
        if len(wanted) == 0:
            return
        decoder = _Decoder(self.path, self._index)
        try:
            for i in wanted:
                # Streamed frames are views of their own decoded buffers, as to_ndarray gives;
                # cached frames (``frame``) are compact copies.
                yield i, self._to_array(decoder.read(i), copy=False)
        finally:
            decoder.close()

    # ----------------------------------------------------------------- metadata checks
    def _grayscale_samples(self) -> list[int]:
        # Keyframes decode without their neighbours: sampling them costs one frame each.
        keys = self.keyframes
        picks = np.linspace(0, len(keys) - 1, num=min(N_GRAYSCALE_SAMPLES, len(keys))).round().astype(int)
        return [int(keys[p]) for p in np.unique(picks)]

    def _fps_from_timestamps(self) -> float | None:
        pts = self._index.pts
        if not self._index.exact_timestamps or len(pts) < 2 or self._index.time_base <= 0:
            return None
        return float((len(pts) - 1) / ((pts[-1] - pts[0]) * self._index.time_base))

    def _warn_about_index(self) -> None:
        index, name = self._index, self.path
        if index.truncated:
            warnings.warn(
                f"{name}: the file is truncated or damaged; only its first {self.n_frames} frames "
                f"(of {index.declared_frames or 'an unknown number'}) are readable. To recover the rest, {TRANSCODE_HINT}.",
                UserWarning,
                stacklevel=3,
            )
        elif index.declared_frames and index.declared_frames != self.n_frames:
            warnings.warn(
                f"{name}: the stream header declares {index.declared_frames} frames but the file holds "
                f"{self.n_frames}; frame indices follow the file's packets. If frames look shifted, {TRANSCODE_HINT}.",
                UserWarning,
                stacklevel=3,
            )
        if not index.exact_timestamps:
            warnings.warn(
                f"{name}: frames lack unique timestamps, so random access decodes from the start of "
                f"the file (slow). For fast, exact access, {TRANSCODE_HINT}.",
                UserWarning,
                stacklevel=3,
            )
