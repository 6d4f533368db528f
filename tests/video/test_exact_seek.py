"""Random access equals the sequential decode on files where a plain seek does not.

Two kinds of generated files: a lossless 4:4:4 H.264 stream whose first packet names an old
x264 build (FFmpeg decodes it with a work-around only a decoder that saw that packet applies),
and streams whose packets are damaged (FFmpeg conceals the damage differently after a seek).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from video_media import (
    damage_packet,
    decode_sequentially,
    encode,
    seek_and_decode,
    x264_lossless_444,
)

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.video import PyAVReader, open_video

av = pytest.importorskip("av")


def read_all_in_random_order(reader: PyAVReader, seed: int = 0) -> dict[int, np.ndarray]:
    order = np.random.default_rng(seed).permutation(reader.n_frames)
    return {int(i): np.array(reader.frame(int(i))) for i in order}


def assert_exact(got: dict[int, np.ndarray], frames: list[np.ndarray], path: Path) -> None:
    wrong = [i for i, frame in got.items() if not np.array_equal(frame, frames[i])]
    assert not wrong, f"{path.name}: frames {wrong} differ from the sequential decode"


def messages(caught: list[warnings.WarningMessage], text: str) -> list[str]:
    return [str(w.message) for w in caught if text in str(w.message)]


# --------------------------------------------------------------------------- x264 SEI


@pytest.fixture(scope="module")
def old_x264(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray], list[bool]]:
    """The all-intra lossless 4:4:4 file naming x264 build 148, with its sequential decode."""
    path = x264_lossless_444(tmp_path_factory.mktemp("x264") / "old_x264.mp4", core=148)
    frames, flags = decode_sequentially(path)
    return path, frames, flags


def test_old_x264_build_needs_the_first_packet_and_reads_exactly(old_x264) -> None:
    path, frames, flags = old_x264
    plain = seek_and_decode(path, 20, 20, prime=False)
    primed = seek_and_decode(path, 20, 20, prime=True)
    # Frames FFmpeg decodes without trouble in sequence, but differently after a plain seek:
    # the reproduction of the issue (if this fails, FFmpeg no longer needs the first packet).
    clean = [20 + k for k in range(20) if not flags[20 + k]]
    plain_wrong = [j for j in clean if not np.array_equal(plain[j - 20], frames[j])]
    assert plain_wrong, "a plain seek should decode some frames of this file differently"
    assert all(np.array_equal(primed[j - 20], frames[j]) for j in clean), "priming should make them exact"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this file's concealed frames warn (tested below)
        reader = open_video(path, cache_size=0, rgb=True)
    with reader:
        assert reader._index.x264_build == 148
        assert_exact(read_all_in_random_order(reader), frames, path)
        assert_exact(dict(reader.iter_frames(18, 26)), frames, path)


def test_a_flag_the_sequential_decode_has_too_keeps_the_seek_point(old_x264) -> None:
    """FFmpeg flags some frames of this file in the sequential decode too. Reached by decoding
    on from a seek point before them, they come out as in the sequential decode: that seek
    point stays good. Seeking to such a frame itself (every frame is a keyframe here) conceals
    it differently: that seek point is avoided."""
    path, frames, flags = old_x264
    later = [k for k in range(31, 40) if flags[k]]
    assert later and not flags[30], "the file should have flagged frames after an unflagged keyframe 30"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = open_video(path, cache_size=0, rgb=True)
    with reader:
        got = {i: np.array(reader.frame(i)) for i in range(30, 40)}  # one run from keyframe 30
        assert_exact(got, frames, path)
        assert 30 not in reader.bad_seek_points
        reader.frame(2)
        direct = np.array(reader.frame(later[0]))  # a seek to the flagged keyframe itself
        assert np.array_equal(direct, frames[later[0]])
        assert later[0] in reader.bad_seek_points
        assert_exact(read_all_in_random_order(reader, seed=5), frames, path)


def test_every_decoder_is_primed_before_its_first_seek(tmp_path: Path) -> None:
    path = x264_lossless_444(tmp_path / "new_x264.mp4", n_frames=12, keyint=4)
    frames, flags = decode_sequentially(path)
    assert not any(flags)
    with open_video(path, cache_size=0, rgb=True) as reader:
        assert reader._index.x264_build is not None and reader._index.x264_build >= 151
        decoder = reader._decoder()
        assert not decoder.primed
        got = reader.frame(9)  # the first read seeks to keyframe 8: the first packet goes first
        assert decoder.primed and np.array_equal(got, frames[9])
        assert decoder.threading == "AUTO"  # an intact stream keeps its frame threads
    with open_video(path, cache_size=0, rgb=True) as reader:
        decoder = reader._decoder()
        reader.frame(2)  # a run from the start decodes the first packet itself
        assert decoder.primed and np.array_equal(reader.frame(5), frames[5])


# --------------------------------------------------------------------------- damaged keyframes


@pytest.fixture
def damaged_keyframe(tmp_path: Path) -> Path:
    """H.264 with B-frames, keyframes at 0, 20, 40; keyframe 20's packet half zeroed."""
    clean = encode(tmp_path / "clean.mp4")
    return damage_packet(clean, tmp_path / "damaged_key.mp4", 20)


def test_a_keyframe_that_cannot_stand_alone_is_avoided_and_said_once(damaged_keyframe: Path) -> None:
    path = damaged_keyframe
    frames, flags = decode_sequentially(path)
    assert [i for i, f in enumerate(flags) if f] == [20]
    after_seek = seek_and_decode(path, 20, 20, prime=True)
    assert not np.array_equal(after_seek[0], frames[20]), "the damaged keyframe should not stand alone"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = open_video(path, cache_size=0, rgb=True)
        got = read_all_in_random_order(reader)
        again = {i: np.array(reader.frame(i)) for i in (25, 21, 39, 22)}
    with reader:
        assert_exact(got, frames, path)
        assert_exact(again, frames, path)
        assert reader.bad_seek_points == [20]
        assert reader._decoder().threading == "NONE"  # damaged: the same frames on every machine
    slow = messages(caught, "seeking is slow")
    assert len(slow) == 1 and str(path) in slow[0] and "posetrack transcode" in slow[0]
    damaged = messages(caught, "as damaged")
    assert len(damaged) == 1 and "frame 20" in damaged[0] and "posetrack info --check" in damaged[0]

    # A later session knows at once: no second fallback, decoders single-threaded from the start.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        later = PyAVReader(path, cache_size=0, rgb=True)
    with later:
        assert later.bad_seek_points == [20]
        assert np.array_equal(later.frame(30), frames[30])
        assert later.n_seeks == 1 and later._decoder().threading == "NONE"


def test_a_damaged_p_frame_condemns_its_keyframe_only_after_it(tmp_path: Path) -> None:
    """A damaged P-frame inside a group of pictures: FFmpeg conceals it from the frames before,
    differently after a seek to the group's keyframe than in the sequential decode. Frames
    before the damage still seek there; frames from it on decode from the keyframe before."""
    clean = encode(tmp_path / "clean.mp4", x264_params="keyint=20:min-keyint=20:bframes=0")
    path = damage_packet(clean, tmp_path / "damaged_p.mp4", 45)
    frames, flags = decode_sequentially(path)
    assert [i for i, f in enumerate(flags) if f] == [45]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = open_video(path, cache_size=0, rgb=True)
    with reader:
        assert np.array_equal(reader.frame(43), frames[43])  # before the damage: from keyframe 40
        assert reader.bad_seek_points == []
        assert np.array_equal(reader.frame(50), frames[50])  # the flagged frame 45 condemns 40
        assert reader.bad_seek_points == [40]
        assert_exact(read_all_in_random_order(reader, seed=3), frames, path)


def test_a_packet_ffmpeg_cannot_decode_is_passed_over_and_named(tmp_path: Path) -> None:
    clean = encode(tmp_path / "clean.mp4", x264_params="keyint=20:min-keyint=20:bframes=0:slices=4")
    path = damage_packet(clean, tmp_path / "undecodable.mp4", 25)
    with av.open(str(path)) as container, pytest.raises(av.error.InvalidDataError):
        for _ in container.decode(video=0):  # plain PyAV stops at the damaged packet
            pass
    with av.open(str(path)) as container:
        container.streams.video[0].thread_type = "NONE"
        reference = {}
        for packet in container.demux(video=0):
            try:
                for frame in packet.decode():
                    reference[int(frame.pts)] = frame.to_ndarray(format="rgb24")
            except av.error.InvalidDataError:
                continue  # what FFmpeg's own tools do
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = open_video(path, cache_size=0, rgb=True)
        with pytest.raises(FileFormatError, match=r"undecodable\.mp4: frame 25 could not be decoded"):
            reader.frame(25)
        pts = reader._index.pts
        for i in [30, 24, 26, 59, 0]:
            assert np.array_equal(reader.frame(i), reference[int(pts[i])]), f"frame {i}"
    reader.close()
    failed = messages(caught, "could not decode")
    assert len(failed) == 1 and "frame 25" in failed[0] and str(path) in failed[0]
