"""Small generated videos of the kinds real recordings come in, and the decode oracle.

The oracle is plain PyAV decoding every frame in order, single-threaded: the definition of
"frame i" the readers promise to match. (For intact streams every threading gives the same
frames; where FFmpeg conceals errors, each threading mode and thread count conceals
differently, and only single-threaded decoding gives the same frames on every machine.)
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

QUIET_X264 = "scenecut=0:log-level=none"


def decode_sequentially(path: str | Path) -> tuple[list[np.ndarray], list[bool]]:
    """Every frame of ``path`` as packed RGB, in order, and FFmpeg's corrupt flag of each."""
    frames, flags = [], []
    with av.open(str(path)) as container:
        container.streams.video[0].thread_type = "NONE"
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            flags.append(bool(frame.is_corrupt))
    return frames, flags


def packet_table(path: str | Path) -> list[tuple[int, int, int, bool]]:
    """``(pts, byte position, size, keyframe)`` of every packet, in decode order."""
    with av.open(str(path)) as container:
        return [
            (int(p.pts), int(p.pos), int(p.size), bool(p.is_keyframe))
            for p in container.demux(video=0)
            if p.size
        ]


def seek_and_decode(path: str | Path, keyframe: int, count: int, prime: bool) -> list[np.ndarray]:
    """``count`` frames from a plain PyAV seek to frame ``keyframe`` (optionally primed with
    the first packet), as packed RGB: what random access gives without the reader's care."""
    pts = sorted(p[0] for p in packet_table(path))
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        if prime:
            for packet in container.demux(stream):
                if packet.size:
                    packet.decode()
                    break
        container.seek(pts[keyframe], stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts >= pts[keyframe]:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out


def moving_pattern(i: int, height: int, width: int, gray: bool = False) -> np.ndarray:
    """Frame ``i`` of a test pattern: a drifting ramp over fixed random blocks (RGB uint8)."""
    rng = np.random.default_rng(11)
    blocks = rng.integers(0, 256, (-(-height // 8), -(-width // 8), 3), dtype=np.uint8)
    blocks = blocks.repeat(8, 0).repeat(8, 1)[:height, :width]
    yy, xx = np.mgrid[0:height, 0:width]
    ramp = ((xx * 2 + yy * 3 + i * 5) % 256).astype(np.uint8)
    if gray:
        image = ((ramp.astype(np.uint16) + np.roll(blocks[..., 0], i, axis=1)) // 2).astype(np.uint8)
        return np.repeat(image[..., None], 3, axis=2)
    return np.stack([ramp, ramp // 2 + blocks[..., 1] // 2, np.roll(blocks[..., 2], i, axis=1)], axis=-1)


def encode(
    path: Path,
    n_frames: int = 60,
    size: tuple[int, int] = (96, 128),
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    x264_params: str = "keyint=20:min-keyint=20:bframes=2",
    options: dict[str, str] | None = None,
    gray: bool = False,
    times_ms: np.ndarray | None = None,
) -> Path:
    """Encode the moving pattern; ``times_ms`` gives each frame's time (variable frame rate)."""
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        opts = dict(options or {})
        if codec == "libx264":
            opts["x264-params"] = f"{x264_params}:{QUIET_X264}"
        stream.options = opts
        if times_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(moving_pattern(i, height, width, gray), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = int(times_ms[i]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def x264_lossless_444(path: Path, core: int | None = None, n_frames: int = 40, keyint: int = 1) -> Path:
    """Lossless H.264 High 4:4:4 Predictive (yuv444p, qp 0, no B-frames, an IDR every ``keyint``
    frames), as a lossless DeepLabCut recording is; with ``core`` the x264 build number in the
    SEI message of the first packet is rewritten (same number of digits) to an old build.

    FFmpeg then decodes lossless 8x8 intra prediction the way x264 builds before 151 encoded it,
    but only in decoders that saw that first packet. The stream was not really made by an old
    build, so the old-style decode also meets some errors that FFmpeg conceals (flagged frames).
    """
    params = f"keyint={keyint}:min-keyint={keyint}:bframes=0"
    encode(path, n_frames, pix_fmt="yuv444p", x264_params=params, options={"qp": "0"})
    if core is not None:
        data = bytearray(path.read_bytes())
        found = list(re.finditer(rb"x264 - core (\d+)", data))
        assert len(found) == 1, f"{path}: expected one x264 SEI message, found {len(found)}"
        new = str(core).encode()
        assert len(new) == len(found[0].group(1)), "the core number must keep its length (offsets stay valid)"
        data[found[0].start(1) : found[0].end(1)] = new
        path.write_bytes(bytes(data))
    return path


def damage_packet(src: Path, dst: Path, frame: int, how: str = "zero") -> Path:
    """A copy of ``src`` whose packet of frame ``frame`` (presentation order) has its second
    half overwritten (``"zero"``: zero bytes; ``"noise"``: random bytes); sizes and offsets
    are unchanged, so the container still indexes every packet."""
    table = packet_table(src)
    pts = sorted(p[0] for p in table)
    _, pos, size, _ = next(p for p in table if p[0] == pts[frame])
    data = bytearray(src.read_bytes())
    half = pos + size // 2
    filler = bytes(pos + size - half) if how == "zero" else np.random.default_rng(1).bytes(pos + size - half)
    data[half : pos + size] = filler
    dst.write_bytes(bytes(data))
    return dst
