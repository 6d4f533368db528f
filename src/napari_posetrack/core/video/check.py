"""``posetrack info --check``: decode a whole video once and report what is wrong with it.

The check decodes every frame in order exactly as the reader does from frame 0 (the reference
"sequential decode"), then seeks to a sample of keyframes the way the reader does (primed with
the first packet) and compares the frames it gets with the sequential ones. It reports frames
FFmpeg flagged as corrupt (errors concealed), decode errors with their frame ranges, frames the
stream never delivered, keyframes whose random access differs from the sequential decode, and
timestamp irregularities. What it learns goes to the video cache: readers opened later decode
around the bad keyframes at once, and napari can mark the damaged frames on the time slider
with :func:`cached_check` without decoding anything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MissingFileError, PoseTrackError
from . import cache
from .pyav import PyAVReader, _Decoder, _ThreadingChanged, frame_digest, remember_index
from .timing import FrameTiming

ProgressCallback = Callable[[int, int], None]
CancelCallback = Callable[[], bool]
DEFAULT_SEEK_SAMPLES = 12
DEFAULT_FRAMES_PER_SEEK = 24


class VideoCheckCancelled(PoseTrackError):
    """The ``cancel`` callback asked the check to stop; nothing was cached."""


@dataclass
class DecodeError:
    """FFmpeg failed to decode the packets of frames ``first`` to ``last`` (-1: frame unknown)."""

    first: int
    last: int
    message: str


@dataclass
class SeekMismatch:
    """After a seek to ``keyframe``, ``frames`` differed from the sequential decode.

    ``flagged`` says whether FFmpeg flagged any of them as corrupt (which the reader notices
    by itself); ``error`` is a decode error met after the seek, if any.
    """

    keyframe: int
    frames: list[int]
    flagged: bool = False
    error: str | None = None


@dataclass
class VideoCheck:
    """What :func:`check_video` found in one video file.

    Attributes
    ----------
    frames, decoded_frames
        Frames in the packet index, and how many the sequential decode delivered.
    corrupt_frames
        Frames FFmpeg flagged as corrupt in the sequential decode (errors concealed).
    decode_errors
        Packets FFmpeg could not decode, as frame ranges with FFmpeg's message.
    missing_frames
        Frames of the index the sequential decode never delivered.
    seek_points_checked, seek_mismatches
        The keyframes sampled for random access, and those whose frames differed from the
        sequential decode (readers now decode around them).
    single_threaded
        Whether the file must be decoded single-threaded to give the same frames everywhere
        (FFmpeg conceals damage differently with each threading).
    x264_build
        The x264 build named in the stream's first packet, if any (FFmpeg applies work-arounds
        for builds below 151 to lossless 4:4:4 streams, and needs that packet to know).
    timing
        Nominal and measured frame rate, largest gap, irregular intervals.
    timestamp_problems
        Other timestamp trouble, in words (missing or duplicate timestamps, frames whose
        decoded timestamp is not in the index).
    """

    path: str
    frames: int
    decoded_frames: int
    corrupt_frames: list[int] = field(default_factory=list)
    decode_errors: list[DecodeError] = field(default_factory=list)
    missing_frames: list[int] = field(default_factory=list)
    seek_points_checked: list[int] = field(default_factory=list)
    seek_mismatches: list[SeekMismatch] = field(default_factory=list)
    single_threaded: bool = False
    x264_build: int | None = None
    timing: FrameTiming = field(default_factory=FrameTiming)
    timestamp_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def damaged_frames(self) -> np.ndarray:
        """Sorted indices of frames to mark as damaged: flagged, undecodable or missing."""
        errors = [f for e in self.decode_errors if e.first >= 0 for f in range(e.first, e.last + 1)]
        return np.unique(np.asarray([*self.corrupt_frames, *self.missing_frames, *errors], dtype=np.int64))

    @property
    def ok(self) -> bool:
        """No damaged frame, no seek mismatch and no timestamp problem."""
        return not (len(self.damaged_frames) or self.seek_mismatches or self.timestamp_problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "frames": self.frames,
            "decoded_frames": self.decoded_frames,
            "corrupt_frames": _ranges(self.corrupt_frames),
            "decode_errors": [[e.first, e.last, e.message] for e in self.decode_errors],
            "missing_frames": _ranges(self.missing_frames),
            "seek_points_checked": list(self.seek_points_checked),
            "seek_mismatches": [
                {"keyframe": m.keyframe, "frames": _ranges(m.frames), "flagged": m.flagged, "error": m.error}
                for m in self.seek_mismatches
            ],
            "single_threaded": self.single_threaded,
            "x264_build": self.x264_build,
            "timing": self.timing.to_dict(),
            "timestamp_problems": list(self.timestamp_problems),
            "seconds": self.seconds,
            "ok": self.ok,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoCheck:
        return cls(
            path=data["path"],
            frames=int(data["frames"]),
            decoded_frames=int(data["decoded_frames"]),
            corrupt_frames=_unranges(data["corrupt_frames"]),
            decode_errors=[DecodeError(int(a), int(b), str(m)) for a, b, m in data["decode_errors"]],
            missing_frames=_unranges(data["missing_frames"]),
            seek_points_checked=[int(k) for k in data["seek_points_checked"]],
            seek_mismatches=[
                SeekMismatch(int(m["keyframe"]), _unranges(m["frames"]), bool(m["flagged"]), m["error"])
                for m in data["seek_mismatches"]
            ],
            single_threaded=bool(data["single_threaded"]),
            x264_build=data["x264_build"],
            timing=FrameTiming.from_dict(data["timing"]),
            timestamp_problems=list(data["timestamp_problems"]),
            seconds=float(data["seconds"]),
        )

    def summary(self) -> list[str]:
        """The report as lines of text (what ``posetrack info --check`` prints)."""
        lines = [f"check: {self.decoded_frames} of {self.frames} frames decoded in {self.seconds:.1f} s"]
        if self.x264_build is not None:
            old = " (old: FFmpeg's work-arounds for it need the first packet, so readers prime with it)"
            lines.append(f"  encoder: x264 build {self.x264_build}{old if self.x264_build < 151 else ''}")
        lines.append(f"  corrupt (concealed): {_describe(self.corrupt_frames)}")
        if self.decode_errors:
            for e in self.decode_errors:
                where = "unknown frames" if e.first < 0 else _span(e.first, e.last)
                lines.append(f"  decode error at {where}: {e.message}")
        else:
            lines.append("  decode errors: none")
        lines.append(f"  missing: {_describe(self.missing_frames)}")
        checked = len(self.seek_points_checked)
        if self.seek_mismatches:
            for m in self.seek_mismatches:
                why = " (flagged corrupt)" if m.flagged else ""
                why += f" (decode error: {m.error})" if m.error else ""
                lines.append(
                    f"  random access differs after keyframe {m.keyframe}: {_describe(m.frames)}{why}"
                )
            lines.append(
                f"  {len(self.seek_mismatches)} of {checked} sampled keyframes cannot stand alone: readers decode "
                "from earlier keyframes there (exact, slower); `posetrack transcode` makes a copy that seeks fast"
            )
        else:
            lines.append(f"  random access: exact at all {checked} sampled keyframes")
        if self.single_threaded:
            lines.append(
                "  decoded single-threaded (damaged stream), so that frames are the same on every machine"
            )
        for problem in self.timestamp_problems:
            lines.append(f"  timestamps: {problem}")
        t = self.timing
        if t.n_irregular:
            shown = ", ".join(f"{f}->{f + 1} ({s * 1000:.1f} ms)" for f, s in t.irregular[:5])
            more = f" and {t.n_irregular - 5} more" if t.n_irregular > 5 else ""
            lines.append(f"  irregular frame intervals: {t.n_irregular}: {shown}{more}")
        lines.append("  verdict: " + ("no problems found" if self.ok else "problems found (see above)"))
        return lines


def check_video(
    path: str | os.PathLike[str],
    *,
    seek_samples: int = DEFAULT_SEEK_SAMPLES,
    frames_per_seek: int = DEFAULT_FRAMES_PER_SEEK,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> VideoCheck:
    """Decode all of ``path`` once and report damaged frames, seek problems and timestamps.

    This is the core of ``posetrack info --check`` and of the Labelling widget's check button
    (run it in a worker thread; ``progress(done, total)`` and ``cancel()`` are called from it).

    Parameters
    ----------
    path
        A video file (not an image folder: images have no decode to check).
    seek_samples
        Keyframes (besides the first) at which random access is compared with the sequential
        decode, spread evenly over the file; all of them when the file has fewer.
    frames_per_seek
        Frames compared after each sampled keyframe (fewer when the next keyframe comes first).
    progress, cancel
        Optional callbacks; ``cancel`` returning True stops the check with
        :class:`VideoCheckCancelled`.

    Returns
    -------
    VideoCheck
        Also stored in the video cache (see :func:`cached_check`), together with the bad
        seek points found, which every reader opened later uses.

    Raises
    ------
    MissingFileError, FileFormatError
        The file is absent or not a readable video.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(path, "no such video file")
    started = time.perf_counter()
    with PyAVReader(path, cache_size=0) as reader:
        index = reader._index
        n = reader.n_frames
        keys = [int(k) for k in index.keyframes if k > 0]
        if seek_samples < len(keys):
            picks = np.unique(np.linspace(0, len(keys) - 1, num=max(seek_samples, 0)).round().astype(int))
            keys = [keys[p] for p in picks] if seek_samples > 0 else []
        total = n + len(keys) * frames_per_seek
        tick = _Ticker(progress, cancel, total)
        digests, decoded, corrupt = _sequential_pass(path, index, reader._learned, tick)
        mismatches = []
        for k in keys:
            mismatch = _compare_after_seek(path, index, k, frames_per_seek, digests, decoded, tick)
            if mismatch is not None:
                mismatches.append(mismatch)
                with index.lock:
                    index.bad_seek_points.add(k)
        tick.finish()
        with index.lock:
            errors = dict(index.decode_errors)
        result = VideoCheck(
            path=path,
            frames=n,
            decoded_frames=int(decoded.sum()),
            corrupt_frames=corrupt,
            decode_errors=_error_ranges(errors),
            missing_frames=np.flatnonzero(~decoded).tolist(),
            seek_points_checked=keys,
            seek_mismatches=mismatches,
            single_threaded=index.single_thread,
            x264_build=index.x264_build,
            timing=reader.timing,
            timestamp_problems=_timestamp_problems(reader),
        )
    result.seconds = time.perf_counter() - started
    remember_index(path, index)
    cache.update_entry(path, check=result.to_dict())
    return result


def cached_check(path: str | os.PathLike[str]) -> VideoCheck | None:
    """The last :func:`check_video` result for this version of the file, without decoding.

    None when the file was never checked or changed since (napari calls this to mark damaged
    frames on the time slider when it opens a video).
    """
    data = cache.load_entry(path).get("check")
    if not data:
        return None
    try:
        return VideoCheck.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None  # an entry from another version of the package: check again


# --------------------------------------------------------------------------- the passes


class _Ticker:
    """Progress and cancel, called every ``step`` frames (often enough for a progress bar)."""

    def __init__(self, progress: ProgressCallback | None, cancel: CancelCallback | None, total: int) -> None:
        self.progress, self.cancel, self.total, self.done = progress, cancel, max(total, 1), 0
        self.step = max(1, self.total // 200)

    def finish(self) -> None:
        """Report completion (seek samples may compare fewer frames than estimated)."""
        self.done = self.total
        if self.progress is not None:
            self.progress(self.total, self.total)

    def __call__(self, frames: int = 1) -> None:
        before, self.done = self.done, self.done + frames
        if before // self.step == self.done // self.step:
            return
        if self.cancel is not None and self.cancel():
            raise VideoCheckCancelled("the video check was cancelled")
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


def _sequential_pass(
    path: str, index: Any, learned: Callable[[str, int], None], tick: _Ticker
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Digest of every frame of the reference decode, which frames came, and the flagged ones.

    Runs with the file's threading; the first flagged frame or decode error under frame
    threads switches the file to single-threaded decoding, and the pass starts over (frames
    FFmpeg conceals differ between threadings).
    """
    n = len(index.pts)
    while True:
        digests = np.zeros((n, 16), dtype=np.uint8)
        decoded = np.zeros(n, dtype=bool)
        corrupt: list[int] = []
        decoder = _Decoder(path, index, learned)
        try:
            for j, frame in decoder.run_from(0):
                if j is None or not 0 <= j < n or decoded[j]:
                    continue  # not in the index (reported by the timestamp checks)
                if frame.is_corrupt:
                    if decoder.threading != "NONE":
                        decoder._go_single_thread(j)  # raises _ThreadingChanged
                    corrupt.append(j)
                digests[j] = np.frombuffer(frame_digest(frame), dtype=np.uint8)
                decoded[j] = True
                tick()
        except _ThreadingChanged:
            tick.done = 0
            continue
        finally:
            decoder.close()
        return digests, decoded, sorted(corrupt)


def _compare_after_seek(
    path: str,
    index: Any,
    keyframe: int,
    count: int,
    digests: np.ndarray,
    decoded: np.ndarray,
    tick: _Ticker,
) -> SeekMismatch | None:
    """Seek to ``keyframe`` as a reader does and compare up to ``count`` frames from there."""
    pos = int(np.searchsorted(index.keyframes, keyframe, side="right"))
    stop = min(int(index.keyframes[pos]) if pos < len(index.keyframes) else len(index.pts), keyframe + count)
    differ: list[int] = []
    flagged = False
    error = None
    decoder = _Decoder(path, index)
    try:
        for j, frame in decoder.run_from(keyframe):
            if j is None or j < keyframe:
                continue  # open-GOP leading frames belong to the previous keyframe
            if j >= stop:
                break
            tick()
            if decoded[j] and frame_digest(frame) != digests[j].tobytes():
                differ.append(j)
                flagged = flagged or bool(frame.is_corrupt)
    except _ThreadingChanged:
        # A decode error met only after the seek: the keyframe cannot stand alone.
        error = index.decode_errors.get(keyframe) or "FFmpeg could not decode a frame after the seek"
    finally:
        decoder.close()
    if differ or error:
        return SeekMismatch(keyframe, sorted(differ), flagged, error)
    return None


def _timestamp_problems(reader: PyAVReader) -> list[str]:
    index = reader._index
    problems = []
    if not index.exact_timestamps:
        problems.append(
            "packets lack unique timestamps: frames are counted from the start, and random access "
            "decodes from the start of the file"
        )
    if index.declared_frames and index.declared_frames != reader.n_frames:
        problems.append(
            f"the header declares {index.declared_frames} frames, the stream holds {reader.n_frames}"
        )
    if index.truncated:
        problems.append("the file is truncated: its last frames are unreadable")
    t = reader.timing
    if t.variable:
        nominal = "unknown" if t.nominal_fps is None else f"{t.nominal_fps:g} fps"
        measured = "unknown" if t.measured_fps is None else f"{t.measured_fps:g} fps"
        problems.append(
            f"variable frame rate (nominal {nominal}, measured {measured}, largest gap "
            f"{(t.largest_gap_s or 0) * 1000:.1f} ms after frame {t.largest_gap_after}): frame i is the "
            "i-th presented frame; use the per-frame timestamps for time"
        )
    return problems


def _error_ranges(errors: dict[int, str]) -> list[DecodeError]:
    """Consecutive frames failing with the same message, as ranges (unknown frames last)."""
    out: list[DecodeError] = []
    for j in sorted(k for k in errors if k >= 0):
        if out and out[-1].last == j - 1 and out[-1].message == errors[j]:
            out[-1].last = j
        else:
            out.append(DecodeError(j, j, errors[j]))
    if -1 in errors:
        out.append(DecodeError(-1, -1, errors[-1]))
    return out


def _ranges(frames: Iterable[int]) -> list[list[int]]:
    """``[[first, last], ...]`` of sorted frame indices (compact for long damaged stretches)."""
    out: list[list[int]] = []
    for f in sorted(int(x) for x in frames):
        if out and out[-1][1] == f - 1:
            out[-1][1] = f
        elif not out or out[-1][1] != f:
            out.append([f, f])
    return out


def _unranges(ranges: Iterable[Iterable[int]]) -> list[int]:
    return [f for a, b in ranges for f in range(int(a), int(b) + 1)]


def _span(first: int, last: int) -> str:
    return f"frame {first}" if first == last else f"frames {first}-{last}"


def _describe(frames: list[int]) -> str:
    """``"none"``, ``"1 frame (20)"``, ``"20 frames (20-39)"``, ... (ten ranges at most)."""
    if not frames:
        return "none"
    spans = [_span(a, b).split(" ", 1)[1] for a, b in _ranges(frames)]
    shown = ", ".join(spans[:10]) + (f" and {len(spans) - 10} more ranges" if len(spans) > 10 else "")
    return f"{len(frames)} frame{'s' if len(frames) > 1 else ''} ({shown})"
