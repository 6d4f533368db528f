"""Frame-exact random and sequential access to video files through PyAV (FFmpeg).

When a file is opened, its packets are read once without decoding. Sorting the packet
timestamps gives every frame's presentation timestamp; the keyframe flags give, for every
frame, the keyframe to seek to. A read seeks to that keyframe and decodes forward until the
frame with the exact timestamp comes out, so B-frame reordering cannot shift frames. A read
that follows the previous one in the same thread decodes on without seeking. Each thread gets
its own demuxer and decoder, so napari's asynchronous slicing may read from several threads.

Some files cannot be decoded from a later keyframe alone. FFmpeg learns stream-level facts
from the first packet (x264's build number in its SEI message, which switches on work-arounds
for old x264 bugs; in-band parameter sets), so every decoder decodes the first packet once
before its first seek. As a safety net, a frame that FFmpeg flags as corrupt after a seek is
checked against what decoding from an earlier keyframe gives: when the two differ, the keyframe
is remembered as a bad seek point (here and in the video cache) and reads go around it, and the
user is told once that seeking is slow in this file.

Frame threads are used while the stream decodes cleanly. FFmpeg's output is the same with any
threading for an intact stream, but not where it conceals errors: concealment differs between
single, slice and frame threading, and with the number of frame threads, so between machines.
Damaged files are therefore decoded single-threaded, which is this package's reference
"sequential decode": a file is switched over as soon as a decoder meets a flagged frame or a
decode error, and the switch is kept in the video cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FileFormatError, MissingFileError
from . import cache
from .base import N_GRAYSCALE_SAMPLES, TRANSCODE_HINT, VideoReader
from .timing import FrameTiming, frame_timing

SLOW_SEEK_HINT = "`posetrack transcode VIDEO OUT.mp4` writes a copy that seeks fast and exactly"
_X264_SEI = re.compile(rb"x264 - core (\d+)")
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_once(path: str, kind: str, message: str) -> None:
    """Warn about ``path`` once per process and kind of problem (a file opened by several
    readers, e.g. a labels layer and a training run, is reported once)."""
    key = (os.path.abspath(path), kind)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, UserWarning, stacklevel=4)


def x264_build(*blobs: bytes | None) -> int | None:
    """The x264 build number written in an SEI message of the given bytes, if any."""
    for blob in blobs:
        if blob:
            match = _X264_SEI.search(blob)
            if match:
                return int(match.group(1))
    return None


def frame_digest(frame: Any) -> bytes:
    """A 16-byte digest of a decoded frame's pixels (padding bytes excluded).

    Native planes are hashed where PyAV can lay them out as an array; other pixel formats
    (and sizes PyAV refuses natively) are hashed after conversion to packed RGB, which is what
    the readers return. Two frames compare equal only through digests made the same way,
    which holds for the decodes of one stream.
    """
    try:
        data = frame.to_ndarray()
    except (ValueError, AssertionError, NotImplementedError):
        data = frame.to_ndarray(format="rgb24")
    return hashlib.blake2b(np.ascontiguousarray(data), digest_size=16).digest()


@dataclass
class _FrameIndex:
    """Where every frame of a video file lies, from one pass over its packets.

    ``pts[i]`` is the presentation timestamp of frame ``i``; ``seek_frame[i]`` the frame index
    of the keyframe to seek to before decoding forward to frame ``i``. ``exact_timestamps`` is
    False when packets lack unique timestamps: then frames are counted from the start.

    What reading teaches is kept here for every decoder of the file: ``bad_seek_points``
    (keyframes whose decode after a seek differs from a sequential decode), ``known_digests``
    (the sequential decode's digest of frames FFmpeg flagged as corrupt somewhere) and
    ``decode_errors`` (frame index, or -1 when unknown, to FFmpeg's message), and whether the
    file must be decoded ``single_thread``. ``x264_build`` is the encoder build the first packet
    names (for reports).
    """

    pts: np.ndarray
    seek_frame: np.ndarray
    exact_timestamps: bool
    time_base: float
    declared_frames: int
    truncated: bool
    x264_build: int | None = None
    single_thread: bool = False
    bad_seek_points: set[int] = field(default_factory=set)
    known_digests: dict[int, bytes] = field(default_factory=dict)
    decode_errors: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keyframes = np.unique(self.seek_frame)
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()

    @property
    def thread_type(self) -> str:
        """How decoders of this file thread: frame threads, or none (see the module notes)."""
        return "NONE" if self.single_thread else _Decoder.thread_type

    def frame_at_pts(self, pts: int | None) -> int | None:
        """The frame index of a presentation timestamp (None when no frame has it)."""
        if pts is None or not self.exact_timestamps:
            return None
        j = int(np.searchsorted(self.pts, pts))
        return j if j < len(self.pts) and int(self.pts[j]) == pts else None

    def start_for(self, i: int, avoid: set[int] | frozenset[int] = frozenset()) -> int:
        """The seek point to decode frame ``i`` from: its keyframe, or the nearest earlier one
        that is neither a known bad seek point nor in ``avoid``."""
        s = int(self.seek_frame[i])
        while s > 0 and (s in self.bad_seek_points or s in avoid):
            pos = int(np.searchsorted(self.keyframes, s)) - 1
            s = int(self.keyframes[pos]) if pos >= 0 else 0
        return s


def remember_index(path: str, index: _FrameIndex) -> None:
    """Store what ``index`` learned about the file in the video cache (for later sessions)."""
    with index.lock:
        bad = sorted(index.bad_seek_points)
        single = index.single_thread
        known = {str(j): d.hex() for j, d in index.known_digests.items()} if single else {}
    cache.update_entry(path, bad_seek_points=bad, single_thread=single, known_digests=known)


def _build_frame_index(container: Any, path: str) -> _FrameIndex:
    """Demux every packet once (no decoding) and derive the frame order and seek points."""
    import av

    stream = container.streams.video[0]
    pts_list: list[int | None] = []
    keyframes: list[bool] = []
    first_packet: bytes | None = None
    truncated = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue  # flush packets; frames an edit list removes from the presentation
            if packet.is_corrupt:
                truncated = True  # a packet cut short by the end of the file
                break
            if first_packet is None:
                first_packet = bytes(packet)
            pts_list.append(packet.pts)
            keyframes.append(bool(packet.is_keyframe))
    except av.error.FFmpegError:
        truncated = True  # the demuxer gave up part-way: keep what came before
    if not pts_list:
        raise FileFormatError(path, "the video stream has no readable frames")
    build = x264_build(first_packet, stream.codec_context.extradata)

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
    return _FrameIndex(pts, seek_frame, exact, time_base, int(stream.frames or 0), truncated, build)


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


class _ThreadingChanged(Exception):
    """The file was switched to single-threaded decoding: the read starts over."""


class _SeekPointFailed(Exception):
    """Decoding after a seek to ``origin`` gave (or may have given) frames unlike a sequential
    decode; ``frame`` and ``digest`` name the suspect frame when it still needs a verdict."""

    def __init__(self, origin: int, frame: int | None = None, digest: bytes | None = None) -> None:
        super().__init__(origin, frame)
        self.origin, self.frame, self.digest = origin, frame, digest


class _Decoder:
    """One demuxer + decoder (one thread's) and its position in the video.

    ``origin`` is the seek point the current run of decoding started from; a run from frame 0
    is a sequential decode, the reference every other run is judged against. ``on_learn`` is
    told what the decoder learns about the file: ``("bad_seek_point", keyframe)``, and
    ``("damaged", frame)`` or ``("decode_error", -1)`` when it switched the file to
    single-threaded decoding.
    """

    skip_nonref = True  # skip non-reference frames before the target (False: decode all)
    # FFmpeg's frame threading decodes several frames at once (frames stay bit-identical): a
    # large speed-up for playback and seeking where cores are free, some overhead where not.
    # Damaged files decode with "NONE" (see the module notes).
    thread_type = "AUTO"

    def __init__(
        self, path: str, index: _FrameIndex, on_learn: Callable[[str, int], None] | None = None
    ) -> None:
        self.path = path
        self.index = index
        self.on_learn = on_learn
        self._open()
        self._frames: Iterator[Any] | None = None
        self.last = -1  # index of the last frame this decoder returned (-1: none since a seek)
        self.origin = 0
        self.n_seeks = 0
        self.primed = False
        self._counted = -1
        self._just_seeked = False
        self._decode_all = False  # decode non-reference frames too (a suspect frame needs a digest)
        self._seen: dict[int, bytes] = {}  # digests of suspect frames met in the current run
        self._target_pts = -(2**62)  # packets shown before this one may skip non-reference frames
        self.thread = threading.current_thread()

    def _open(self) -> None:
        import av

        try:
            self.container = av.open(self.path)
        except av.error.FFmpegError as err:
            raise FileFormatError(self.path, f"cannot open the video: {err}") from err
        self.stream = self.container.streams.video[0]
        self.threading = self.index.thread_type
        self.stream.thread_type = self.threading
        self.primed = False

    def close(self) -> None:
        self._frames = None
        self.container.close()

    def _follow_threading(self) -> None:
        """Reopen when the file was switched to single-threaded decoding since this opened."""
        if self.threading != self.index.thread_type:
            self.close()
            self._open()

    def read(self, i: int) -> Any:
        """The ``av.VideoFrame`` at index ``i``, as a sequential decode gives it.

        Decodes on from here or seeks first. A seek point whose frames come out flagged as
        corrupt is avoided for this read (``avoid``) and the frame is read from the seek point
        before; the suspect frames (``pending``) are then compared with what that decode gives,
        which decides whether the seek point is bad for good. A frame flagged from two seek
        points is likely flagged in the sequential decode too: the read then goes to the start
        of the stream at once, rather than one keyframe back at a time.
        """
        avoid: set[int] = set()
        pending: dict[int, list[tuple[int, bytes]]] = {}
        from_start = False
        while True:
            self._follow_threading()
            start = 0 if from_start else self.index.start_for(i, avoid)
            if self._frames is None or self.origin in avoid or not (self.last < i and start <= self.last + 1):
                self._seek(start, decode_all=bool(pending))
            try:
                frame = self._decode_until(i, pending)
            except _ThreadingChanged:
                self._frames = None
                avoid.clear()
                pending.clear()
                from_start = False
                continue
            except _SeekPointFailed as failed:
                self._frames = None
                avoid.add(failed.origin)
                if failed.frame is not None and failed.digest is not None:
                    from_start = from_start or failed.frame in pending
                    pending.setdefault(failed.frame, []).append((failed.origin, failed.digest))
                continue
            except FileFormatError:
                self._frames = None
                raise
            except Exception as err:  # av errors while decoding: corrupt or truncated data
                self._frames = None
                raise FileFormatError(
                    self.path, f"decoding frame {i} failed ({err}); {TRANSCODE_HINT}"
                ) from err
            if pending:
                self._settle(pending)
            return frame

    def run_from(self, start: int) -> Iterator[tuple[int | None, Any]]:
        """``(index, frame)`` for every frame a seek to ``start`` gives, with no checks.

        For :func:`~napari_posetrack.core.video.check.check_video`, which compares these
        frames with a sequential decode. Primed like every read; nothing is skipped.
        """
        self._follow_threading()
        self._seek(start, decode_all=True)
        self._target_pts = -(2**62)
        assert self._frames is not None
        for frame in self._frames:
            if self.index.exact_timestamps:
                yield self.index.frame_at_pts(frame.pts), frame
            else:
                self._counted += 1
                yield self._counted, frame

    def _prime(self) -> None:
        """Decode the stream's first packet once, so that what it carries for the whole stream
        (x264's SEI with the encoder build, in-band parameter sets) is known before a seek.

        The decoded frame is dropped: the seek that follows flushes the decoder's frames but
        keeps what it learned about the stream.
        """
        import av

        self.primed = True
        with contextlib.suppress(av.error.FFmpegError):
            for packet in self.container.demux(self.stream):
                if packet.size:
                    packet.decode()
                    break

    def _seek(self, start: int, decode_all: bool = False) -> None:
        self.n_seeks += 1
        if self.index.exact_timestamps:
            if start > 0 and not self.primed:
                self._prime()
            # A run from the start decodes the first packet itself; once it has, the decoder
            # is primed (and a later _prime would demux from the middle of the file).
            self.primed = True
            self.container.seek(
                int(self.index.pts[start]), stream=self.stream, backward=True, any_frame=False
            )
            self.last = start - 1
        else:
            # Without usable timestamps the only known position is the start of the file.
            self.container.close()
            self._open()
            self.last = -1
            start = 0
        self.origin = start
        self._decode_all = decode_all
        self._seen = {}
        self._frames = self._decoded_frames()
        self._counted = self.last  # frames counted so far when timestamps are not usable
        self._just_seeked = True

    def _decoded_frames(self) -> Iterator[Any]:
        """Frames in presentation order from the demuxer's position to the end of the stream.

        Packets of non-reference frames shown before the frame being sought are not decoded
        (no other frame depends on them), which shortens random access within a long GOP;
        single-threaded (damaged) files decode every packet.
        A packet FFmpeg cannot decode is recorded and passed over, as FFmpeg's own tools do.
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
                # Skipping is exact for intact streams only: FFmpeg conceals errors from the
                # previous decoded picture, which may be a non-reference one.
                skip = (
                    self.skip_nonref
                    and not self._decode_all
                    and self.threading != "NONE"
                    and self.index.exact_timestamps
                    and packet.pts is not None
                    and packet.pts < self._target_pts
                )
                if skip != skipping:
                    context.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                try:
                    frames = packet.decode()  # the last, empty packet flushes the decoder
                except av.error.EOFError:
                    return
                except av.error.FFmpegError as err:
                    self._decode_failed(packet, err)
                    continue
                yield from frames
        except av.error.FFmpegError:
            # The demuxer failed part-way (damaged file): still hand out the frames the
            # decoder holds back for reordering.
            with contextlib.suppress(av.error.FFmpegError):
                yield from context.decode(None)

    def _decode_failed(self, packet: Any, err: Exception) -> None:
        if self.threading != "NONE":
            # Frame threads report an error some packets late: switch, and let the
            # single-threaded decode record it at its own frame.
            self._go_single_thread(-1, "decode_error")
        j = self.index.frame_at_pts(packet.pts)
        message = " ".join(str(err).split())
        with self.index.lock:
            self.index.decode_errors.setdefault(-1 if j is None else j, message)
        where = "a frame" if j is None else f"frame {j}"
        warn_once(
            self.path,
            "decode-error",
            f"{self.path}: FFmpeg could not decode {where} ({message}); frames near it are missing "
            f"or damaged. `posetrack info --check {self.path}` lists every damaged frame; {TRANSCODE_HINT}.",
        )

    def _go_single_thread(self, j: int, why: str = "damaged") -> None:
        """Switch the file to single-threaded decoding (if no decoder did yet); start the read over.

        Frames before the first damage are the same with any threading, so what was read so
        far stands; digests taken under frame threading do not, and are dropped. ``why`` is
        ``"damaged"`` (frame ``j`` was flagged) or ``"decode_error"``.
        """
        with self.index.lock:
            new = not self.index.single_thread
            self.index.single_thread = True
            if new:
                self.index.known_digests.clear()
        if new and self.on_learn is not None:
            self.on_learn(why, j)
        raise _ThreadingChanged

    def _decode_until(self, i: int, pending: dict[int, list[tuple[int, bytes]]]) -> Any:
        target = int(self.index.pts[i])
        self._target_pts = target
        frames = self._frames
        assert frames is not None
        for frame in frames:
            just_seeked, self._just_seeked = self._just_seeked, False
            if not self.index.exact_timestamps:
                self._counted += 1
                ts = j = self._counted
            else:
                ts = frame.pts
                if ts is None:
                    raise FileFormatError(self.path, f"a decoded frame has no timestamp; {TRANSCODE_HINT}")
                j = self.index.frame_at_pts(ts)
            if j is not None and j >= self.origin:
                if frame.is_corrupt:
                    self._judge(j, frame)
                if j in pending:
                    self._seen[j] = frame_digest(frame)
            if ts == target:
                self.last = i
                return frame
            if ts > target:
                if just_seeked and self.origin > 0 and self.index.exact_timestamps:
                    # The demuxer landed after the keyframe: start again from an earlier one.
                    raise _SeekPointFailed(self.origin)
                self._frames = None
                failed = self.index.decode_errors.get(i)
                if failed is not None:
                    raise FileFormatError(
                        self.path, f"frame {i} could not be decoded ({failed}); {TRANSCODE_HINT}"
                    )
                raise FileFormatError(
                    self.path, f"frame {i} (timestamp {target}) is missing from the stream; {TRANSCODE_HINT}"
                )
        self._frames = None
        raise FileFormatError(
            self.path,
            f"the stream ended before frame {i} (timestamp {target}): the file is truncated or corrupt",
        )

    def _judge(self, j: int, frame: Any) -> None:
        """Frame ``j`` came out flagged as corrupt: accept it, or fail the current seek point.

        A decode from frame 0 is the sequential decode: its flagged frames are the reference
        and their digests are kept. After a seek, a flagged frame is accepted only when it is
        known to equal the sequential decode's frame.
        """
        if self.threading != "NONE":
            self._go_single_thread(j)
        digest = frame_digest(frame)
        with self.index.lock:
            if self.origin == 0:
                self.index.known_digests[j] = digest
                return
            known = self.index.known_digests.get(j)
        if known == digest:
            return
        if known is not None:
            self._mark_bad(self.origin)
            raise _SeekPointFailed(self.origin)
        raise _SeekPointFailed(self.origin, j, digest)

    def _settle(self, pending: dict[int, list[tuple[int, bytes]]]) -> None:
        """Judge the seek points that gave suspect frames, against this run's frames."""
        for j, tries in pending.items():
            seen = self._seen.get(j)
            if seen is None:
                continue  # not decoded on the way (cannot happen with decode_all); no verdict
            with self.index.lock:
                self.index.known_digests.setdefault(j, seen)
            for origin, digest in tries:
                if digest != seen:
                    self._mark_bad(origin)

    def _mark_bad(self, origin: int) -> None:
        with self.index.lock:
            new = origin not in self.index.bad_seek_points
            self.index.bad_seek_points.add(origin)
        if new and self.on_learn is not None:
            self.on_learn("bad_seek_point", origin)


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

    Attributes
    ----------
    nominal_fps : float or None
        The frame rate the stream header declares (``fps`` falls back on the measured rate).
    timestamps : numpy.ndarray
        Seconds of every frame from the first frame (see :attr:`timestamps`).
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
        self.nominal_fps = float(rate) if rate else None
        self.fps = self.nominal_fps or self._fps_from_timestamps()
        self._warn_about_index()
        self._recall_bad_seek_points()
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
        return self._index.keyframes.copy()

    @property
    def bad_seek_points(self) -> list[int]:
        """Keyframes found unable to stand alone; reads decode from an earlier keyframe there."""
        with self._index.lock:
            return sorted(self._index.bad_seek_points)

    @property
    def timestamps(self) -> np.ndarray | None:
        """Presentation time of every frame in seconds, counted from the first frame.

        Frame ``i`` is the ``i``-th presented frame whatever the spacing, so a variable frame
        rate shows here, not in the indices. Files without usable timestamps (raw streams)
        give ``i / fps``, or None when the rate is unknown too.
        """
        index = self._index
        if index.exact_timestamps and index.time_base > 0:
            return (index.pts - index.pts[0]).astype(np.float64) * index.time_base
        return super().timestamps

    @property
    def timing(self) -> FrameTiming:
        """Nominal and measured frame rate, the largest gap and irregular intervals."""
        tick = self._index.time_base if self._index.exact_timestamps else 0.0
        return frame_timing(self.timestamps if self._index.exact_timestamps else None, self.nominal_fps, tick)

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
            decoder = self._new_decoder()
            with self._lock:
                # Decoders of threads that ended are closed here rather than kept open.
                dead = [d for d in self._decoders if not d.thread.is_alive()]
                self._decoders = [d for d in self._decoders if d.thread.is_alive()] + [decoder]
            for d in dead:
                d.close()
            self._local.decoder = decoder
        return decoder

    def _new_decoder(self) -> _Decoder:
        return _Decoder(self.path, self._index, self._learned)

    def _learned(self, what: str, frame: int) -> None:
        """A decoder learned something about the file: say so once, and remember it."""
        if what == "bad_seek_point":
            self._warn_slow_seeking(
                f"frames decoded after seeking to keyframe {frame} differ from a sequential decode"
            )
        elif what == "damaged":  # a decode error warns by itself, at its frame
            where = "a frame" if frame < 0 else f"frame {frame}"
            warn_once(
                self.path,
                "damaged",
                f"{self.path}: FFmpeg reports {where} as damaged (errors concealed); the file is decoded "
                f"single-threaded from now on, so that damaged frames come out the same on every machine. "
                f"`posetrack info --check {self.path}` lists every damaged frame.",
            )
        remember_index(self.path, self._index)

    def _recall_bad_seek_points(self) -> None:
        """Take what earlier sessions learned: bad seek points, threading, flagged-frame digests."""
        entry = cache.load_entry(self.path)
        bad = {int(k) for k in entry.get("bad_seek_points", []) if 0 < int(k) < self.n_frames}
        known = {int(j): bytes.fromhex(d) for j, d in entry.get("known_digests", {}).items()}
        with self._index.lock:
            self._index.bad_seek_points.update(bad)
            if entry.get("single_thread"):
                self._index.single_thread = True
            if self._index.single_thread:  # digests of frame-threaded decodes are never stored
                self._index.known_digests.update(known)
        if bad:
            self._warn_slow_seeking(f"{len(bad)} keyframe(s) cannot be decoded on their own (found earlier)")

    def _warn_slow_seeking(self, why: str) -> None:
        warn_once(
            self.path,
            "slow-seek",
            f"{self.path}: seeking is slow in this file: {why}, so frames there are decoded from an "
            f"earlier keyframe (exact, but slower). {SLOW_SEEK_HINT}.",
        )

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
        decoder = self._new_decoder()
        frames, failures = [], []
        try:
            for i in sample_indices:
                try:
                    frames.append(decoder.read(int(i)))
                except FileFormatError as err:
                    failures.append(err)  # one undecodable frame must not make the file unreadable
            if not frames:
                raise failures[0]
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
        decoder = self._new_decoder()
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
