"""Video pre-processing: re-encode to H.264 with short keyframe intervals for fast, exact seeking.

``posetrack transcode IN OUT`` re-encodes one video (or every video in a folder) with libx264,
yuv420p, the source's constant frame rate and a keyframe every ``keyframe_interval`` frames;
optionally grayscale, scaled and cropped. Outputs are written atomically: on error or cancel
nothing is left at the destination.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.errors import FileFormatError, MissingFileError, PoseTrackError, atomic_write

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".h264")

ProgressCallback = Callable[[int, int], None]
CancelCallback = Callable[[], bool]


class TranscodeCancelled(PoseTrackError):
    """Raised when the ``cancel`` callback asked to stop; nothing was written."""


def _even(n: float) -> int:
    """The nearest even integer >= 2 (H.264 with 4:2:0 chroma needs even dimensions)."""
    return max(2, round(n / 2.0) * 2)


def _output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    if scale == 1.0:
        # no resampling: drop a trailing odd row/column instead of interpolating
        return max(2, width - width % 2), max(2, height - height % 2)
    return _even(width * scale), _even(height * scale)


def _frame_rate(fps: float | None) -> Fraction:
    if not fps or not np.isfinite(fps) or fps <= 0:
        return Fraction(30)
    # 1001 covers the NTSC rates (30000/1001, ...) exactly
    return Fraction(fps).limit_denominator(1001)


def transcode_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    keyframe_interval: int = 25,
    crf: int = 18,
    grayscale: bool = False,
    scale: float = 1.0,
    crop: tuple[int, int, int, int] | None = None,
    max_frames: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> Path:
    """Re-encode ``src`` to an H.264 file at ``dst``.

    Parameters
    ----------
    src, dst
        Source video and output path (its extension picks the container, e.g. ``.mp4``).
    keyframe_interval
        Frames between keyframes (GOP size); short intervals make seeking fast and exact.
    crf
        x264 constant rate factor (0 lossless, 18 visually lossless, 23 x264's default).
    grayscale
        Encode luminance only (chroma neutral); readers detect the content as grayscale.
    scale
        Resize factor applied after cropping; output dimensions are rounded to even numbers.
    crop
        ``(x, y, w, h)`` region of the source frame to keep.
    max_frames
        Encode only the first ``max_frames`` frames (all when ``None``).
    progress
        ``progress(done, total)`` called after each encoded frame.
    cancel
        Polled once per frame; when it returns true the output is discarded and
        :class:`TranscodeCancelled` is raised.

    Returns
    -------
    Path
        ``dst``.

    Raises
    ------
    MissingFileError
        ``src`` does not exist.
    FileFormatError
        ``src`` is not a readable video, or the options do not fit it.
    TranscodeCancelled
        ``cancel()`` returned true.
    """
    import av

    from napari_posetrack.core.video import open_video

    src_path, dst_path = Path(src), Path(dst)
    if not src_path.exists():
        raise MissingFileError(src_path)
    if keyframe_interval < 1:
        raise FileFormatError(src_path, f"keyframe interval must be >= 1, got {keyframe_interval}")
    if not scale > 0:
        raise FileFormatError(src_path, f"scale must be > 0, got {scale}")
    if src_path.resolve() == dst_path.resolve():
        raise FileFormatError(dst_path, "output would overwrite the input video")

    with open_video(src_path, rgb=True) as reader:
        height, width = int(reader.shape[0]), int(reader.shape[1])
        if crop is not None:
            x, y, w, h = (int(v) for v in crop)
            if w < 2 or h < 2 or x < 0 or y < 0 or x + w > width or y + h > height:
                raise FileFormatError(
                    src_path, f"crop {x},{y},{w},{h} is not inside the {width}x{height} frame"
                )
        else:
            x, y, w, h = 0, 0, width, height
        out_w, out_h = _output_size(w, h, scale)
        resample = scale != 1.0
        total = reader.n_frames if max_frames is None else min(reader.n_frames, int(max_frames))
        rate = _frame_rate(reader.fps)
        time_base = 1 / rate

        with atomic_write(dst_path, suffix=".tmp" + (dst_path.suffix or ".mp4")) as tmp:
            container = av.open(os.fspath(tmp), mode="w", format=None if dst_path.suffix else "mp4")
            try:
                stream = container.add_stream(
                    "libx264",
                    rate=rate,
                    options={
                        "crf": str(int(crf)),
                        # fixed GOP: keyframes exactly every N frames, none inserted at scene cuts
                        "x264-params": f"keyint={keyframe_interval}:min-keyint={keyframe_interval}:scenecut=0",
                    },
                )
                stream.width, stream.height = out_w, out_h
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = time_base
                done = 0
                for _, image in reader.iter_frames(0, total):
                    if cancel is not None and cancel():
                        raise TranscodeCancelled(f"{src_path}: transcoding cancelled")
                    region = image[y : y + h, x : x + w]
                    if grayscale:
                        # integer BT.601 luma, encoded as a gray frame so chroma is exactly neutral
                        rgb32 = region[..., :3].astype(np.uint32)
                        luma = (rgb32[..., 0] * 299 + rgb32[..., 1] * 587 + rgb32[..., 2] * 114 + 500) // 1000
                        frame = av.VideoFrame.from_ndarray(
                            np.ascontiguousarray(luma.astype(np.uint8)), format="gray"
                        )
                    else:
                        frame = av.VideoFrame.from_ndarray(
                            np.ascontiguousarray(region[..., :3]), format="rgb24"
                        )
                    if not resample and (frame.width, frame.height) != (out_w, out_h):
                        frame = av.VideoFrame.from_ndarray(
                            frame.to_ndarray()[:out_h, :out_w], format=frame.format.name
                        )
                    frame = frame.reformat(width=out_w, height=out_h, format="yuv420p")
                    frame.pts = done
                    frame.time_base = time_base
                    for packet in stream.encode(frame):
                        container.mux(packet)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                for packet in stream.encode():
                    container.mux(packet)
            except av.error.FFmpegError as exc:
                raise FileFormatError(src_path, f"could not transcode: {exc}") from exc
            finally:
                container.close()
            if done == 0:
                raise FileFormatError(src_path, "no frames to transcode")
    return dst_path


def list_videos(folder: str | os.PathLike[str]) -> list[Path]:
    """Video files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)


def transcode_files(
    sources: Sequence[str | os.PathLike[str]],
    dst_dir: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    suffix: str = ".mp4",
    overwrite: bool = False,
    **kw: Any,
) -> list[Path]:
    """Transcode each video of ``sources`` into ``dst_dir`` (same stem, ``suffix`` extension).

    Returns the output of every source, in order. Existing outputs are skipped unless
    ``overwrite``. ``progress(done, total)`` counts frames over all files to transcode; on cancel the
    files already finished stay and the one in progress is not written. Other keywords go to
    :func:`transcode_video`.
    """
    from napari_posetrack.core.video import probe_video

    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    todo: list[tuple[Path, Path, int]] = []
    outputs: list[Path] = []
    for video in map(Path, sources):
        out = dst_dir / (video.stem + suffix)
        outputs.append(out)
        if out.exists() and not overwrite:
            continue
        n = int(probe_video(video).n_frames or 0)
        if kw.get("max_frames") is not None:
            n = min(n, int(kw["max_frames"]))
        todo.append((video, out, n))
    grand_total = sum(n for _, _, n in todo)
    finished = 0
    for video, out, n in todo:

        def file_progress(done: int, _total: int, base: int = finished) -> None:
            if progress is not None:
                progress(base + done, grand_total)

        transcode_video(video, out, progress=file_progress, cancel=cancel, **kw)
        finished += n
    return outputs


def transcode_folder(
    src_dir: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    **kw: Any,
) -> list[Path]:
    """Transcode every video in ``src_dir`` into ``dst_dir`` (see :func:`transcode_files`)."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise MissingFileError(src_dir, "no such folder")
    return transcode_files(list_videos(src_dir), dst_dir, **kw)


def _parse_crop(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--crop wants X,Y,W,H (four integers), got {text!r}") from None
    return x, y, w, h


def add_transcode_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``transcode`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "transcode",
        help="re-encode videos to H.264 with short keyframe intervals (fast, exact seeking)",
        description="Re-encode a video, or every video in a folder, to H.264 (libx264, yuv420p).",
    )
    p.add_argument("input", help="video file or folder of videos")
    p.add_argument("output", help="output video file (or folder, when IN is a folder)")
    p.add_argument("--keyframe-interval", type=int, default=25, help="frames between keyframes (default 25)")
    p.add_argument("--crf", type=int, default=18, help="x264 quality, lower is better (default 18)")
    p.add_argument("--grayscale", action="store_true", help="encode luminance only")
    p.add_argument("--scale", type=float, default=1.0, help="resize factor (default 1.0)")
    p.add_argument("--crop", type=_parse_crop, default=None, help="X,Y,W,H region to keep")
    p.add_argument("--max-frames", type=int, default=None, help="encode only the first N frames")
    p.add_argument("--quiet", action="store_true", help="print no summary")
    p.set_defaults(func=run_transcode)
    return p


def run_transcode(args: argparse.Namespace) -> int:
    """Entry point of ``posetrack transcode``."""
    options = {
        "keyframe_interval": args.keyframe_interval,
        "crf": args.crf,
        "grayscale": args.grayscale,
        "scale": args.scale,
        "crop": args.crop,
        "max_frames": args.max_frames,
    }
    src = Path(args.input)
    if src.is_dir():
        outputs = transcode_folder(src, args.output, **options)
    else:
        outputs = [transcode_video(src, args.output, **options)]
    if not args.quiet:
        for out in outputs:
            print(out)
    return 0
