"""Frame-exact video reading: real videos against a plain sequential PyAV decode (the oracle)."""

from __future__ import annotations

import pickle
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.labels import Video
from napari_posetrack.core.video import (
    ImageSequenceReader,
    PyAVReader,
    list_images,
    natural_sort_key,
    open_video,
    probe_video,
    video_dask_array,
)

av = pytest.importorskip("av")

REAL_VIDEOS = [
    pytest.param("sleap-flies/clip.mp4", marks=pytest.mark.slow, id="clip"),
    pytest.param("sleap-flies/centered_pair_low_quality.mp4", id="centered_pair_low_quality"),
    pytest.param("sleap-flies/centered_pair_small.mp4", id="centered_pair_small"),
    pytest.param("lp-mirror-mouse/videos/test_vid.mp4", marks=pytest.mark.slow, id="lp_test_vid"),
]


# --------------------------------------------------------------------------- oracles and fixtures


@pytest.fixture(autouse=True)
def video_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A video cache of the test's own: what readers learn about files stays within the test."""
    folder = tmp_path_factory.mktemp("video-cache")
    monkeypatch.setenv("POSETRACK_VIDEO_CACHE", str(folder))
    return folder


def decode_sequentially(path: str | Path, wanted: set[int] | None = None) -> dict[int, np.ndarray]:
    """The oracle: plain PyAV, decoding every frame in order; keeps only ``wanted`` frames.

    The number of frames decoded is stored under key ``-1`` (as a 0-d array).
    """
    frames = {}
    count = 0
    with av.open(str(path)) as container:
        for count, frame in enumerate(container.decode(video=0), start=1):
            if wanted is None or count - 1 in wanted:
                frames[count - 1] = frame.to_ndarray(format="rgb24")
    frames[-1] = np.array(count)
    return frames


def as_channels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """An oracle RGB frame in the reader's channel layout (grayscale content keeps channel 0)."""
    return rgb[..., :channels]


def encode_video(
    path: Path,
    codec: str = "libx264",
    n_frames: int = 40,
    size: tuple[int, int] = (48, 64),
    gray: bool = False,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
) -> Path:
    """A tiny moving-blocks video; with the default options, H.264 with B-frames, GOP of 8."""
    if options is None and codec == "libx264":
        options = {"x264-params": "keyint=8:min-keyint=8:bframes=2:scenecut=0:log-level=none"}
    height, width = size
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 256, (height // 8, width // 8, 1 if gray else 3), dtype=np.uint8)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options:
            stream.options = options
        for i in range(n_frames):
            image = np.roll(blocks.repeat(8, 0).repeat(8, 1), i, axis=1)
            image = np.repeat(image, 3, axis=2) if gray else image
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def tiny_h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode_video(tmp_path_factory.mktemp("video") / "tiny.mp4")


def assert_reader_exact(
    reader: PyAVReader | ImageSequenceReader, oracle: dict[int, np.ndarray], order
) -> None:
    for i in order:
        got = reader.frame(int(i))
        want = as_channels(oracle[int(i)], reader.shape[2])
        assert got.dtype == np.uint8 and got.shape == reader.shape
        assert np.array_equal(got, want), f"{reader.path}: frame {i} differs from the sequential decode"


# --------------------------------------------------------------------------- real videos


@pytest.mark.parametrize("relative", REAL_VIDEOS)
def test_random_access_matches_sequential_decode(data: Path, relative: str) -> None:
    path = data / relative
    with open_video(path, cache_size=0) as reader:  # no cache: every read really decodes
        n = reader.n_frames
        rng = np.random.default_rng(0)
        second_key = int(reader.keyframes[1])
        window = range(second_key - 6, second_key + 6)  # sequential reads across a keyframe
        wanted = sorted({0, n - 1, *rng.choice(n, size=24, replace=False).tolist(), *window})
        oracle = decode_sequentially(path, set(wanted))
        assert int(oracle[-1]) == n  # the packet index counts exactly the decodable frames
        assert reader.grayscale and reader.shape[2] == 1  # every animal video is grayscale content
        assert_reader_exact(reader, oracle, rng.permutation(wanted))
        # The last frame must also come out right when reached backwards after a far seek.
        assert_reader_exact(reader, oracle, [n - 1, 0, n - 1])
        for i, frame in reader.iter_frames(window.start, window.stop):
            assert np.array_equal(frame, oracle[i][..., :1]), f"iter_frames: frame {i}"


def test_probe_reports_metadata_without_decoding_everything(flies: Path) -> None:
    video = probe_video(flies / "clip.mp4")
    assert isinstance(video, Video)
    assert (video.n_frames, video.shape, video.fps, video.backend) == (1500, (1024, 1024, 1), 25.0, "pyav")
    small = probe_video(str(flies / "centered_pair_small.mp4"))
    assert (small.n_frames, small.shape, small.fps) == (1100, (384, 384, 1), 15.0)


def test_keyframes_come_from_the_packet_index(flies: Path) -> None:
    with open_video(flies / "clip.mp4") as reader:
        assert reader.keyframes.tolist() == [0, 250, 500, 750, 1000, 1250]


def test_rgb_true_keeps_three_identical_channels(flies: Path) -> None:
    path = flies / "centered_pair_low_quality.mp4"
    oracle = decode_sequentially(path, {5})
    with open_video(path, rgb=True) as reader:
        assert reader.grayscale and reader.shape == (384, 384, 3)
        assert np.array_equal(reader.frame(5), oracle[5])


def test_several_threads_reading_random_frames_get_exact_frames(data: Path) -> None:
    path = data / "lp-mirror-mouse/videos/test_vid.mp4"
    rng = np.random.default_rng(3)
    per_thread = [rng.choice(994, size=8, replace=False) for _ in range(4)]
    oracle = decode_sequentially(path, {int(i) for ids in per_thread for i in ids})
    reader = open_video(path, cache_size=0)  # no cache: every read really decodes
    errors: list[BaseException] = []

    def work(ids: np.ndarray) -> None:
        try:
            assert_reader_exact(reader, oracle, ids)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(ids,)) for ids in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    reader.close()
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def test_dask_array_shape_dtype_and_exact_slice(flies: Path) -> None:
    path = flies / "centered_pair_small.mp4"
    with open_video(path) as reader:
        array = reader.to_dask()
        assert array.shape == (1100, 384, 384) and array.dtype == np.uint8
        assert array.chunksize == (1, 384, 384)
        assert reader.metadata["fps"] == 15.0 and reader.metadata["path"] == str(path)
        oracle = decode_sequentially(path, {150, 151, 152, 700})
        block = array[150:153, 10:300].compute()
        want = np.stack([oracle[i][10:300, :, 0] for i in (150, 151, 152)])
        assert np.array_equal(block, want)
        assert np.array_equal(np.asarray(array[700]), oracle[700][..., 0])
    rgb_array = video_dask_array(str(path), rgb=True)
    assert rgb_array.shape == (1100, 384, 384, 3)
    assert np.array_equal(rgb_array[700].compute(), oracle[700])


def test_dask_array_of_a_long_video_builds_instantly() -> None:
    import time

    class LongVideo:  # a reader-shaped source: 100,000 frames, never decoded here
        path, n_frames, shape = "long.mp4", 100_000, (32, 32, 1)

        def frame(self, i: int) -> np.ndarray:
            return np.full(self.shape, i % 256, dtype=np.uint8)

    start = time.perf_counter()
    array = video_dask_array(LongVideo())
    built = time.perf_counter() - start
    assert array.shape == (100_000, 32, 32)
    assert built < 1.0, f"building took {built:.2f} s"
    assert int(array[99_999, 0, 0].compute()) == 99_999 % 256


# --------------------------------------------------------------------------- tiny synthetic videos


def test_tiny_h264_with_b_frames_every_order(tiny_h264: Path) -> None:
    with av.open(str(tiny_h264)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    assert any(p.pts != p.dts for p in packets), "the test video should have reordered B-frames"
    oracle = decode_sequentially(tiny_h264)
    with open_video(tiny_h264) as reader:
        assert reader.n_frames == int(oracle[-1]) == 40
        assert not reader.grayscale and reader.shape == (48, 64, 3)
        assert reader.keyframes.tolist() == [0, 8, 16, 24, 32]
        assert_reader_exact(reader, oracle, np.random.default_rng(1).permutation(40))
        assert_reader_exact(reader, oracle, range(39, -1, -1))


def test_sequential_reads_do_not_seek(tiny_h264: Path) -> None:
    with open_video(tiny_h264, cache_size=0) as reader:
        reader.frame(3)
        seeks = reader.n_seeks
        for i in range(4, 40):  # crosses four keyframes without seeking
            reader.frame(i)
        assert reader.n_seeks == seeks
        reader.frame(30)  # backwards: one seek
        assert reader.n_seeks == seeks + 1
        reader.frame(31)  # forward in the same group of pictures: decode on
        reader.frame(34)  # forward; the next frame to decode is keyframe 32: decode on
        assert reader.n_seeks == seeks + 1
        reader.frame(3)  # backwards: seek
        reader.frame(20)  # forward past keyframe 16: seeking skips frames 4..15
        assert reader.n_seeks == seeks + 3


def test_iter_frames_decodes_straight_through(tiny_h264: Path) -> None:
    oracle = decode_sequentially(tiny_h264)
    with open_video(tiny_h264) as reader:
        got = list(reader.iter_frames())
        assert [i for i, _ in got] == list(range(40))
        assert all(np.array_equal(frame, oracle[i]) for i, frame in got)
        stepped = list(reader.iter_frames(5, 30, 7))
        assert [i for i, _ in stepped] == [5, 12, 19, 26]
        assert all(np.array_equal(frame, oracle[i]) for i, frame in stepped)
        assert list(reader.iter_frames(38, 100)) and [i for i, _ in reader.iter_frames(38, 100)] == [38, 39]


def test_lru_cache_keeps_recent_frames(tiny_h264: Path) -> None:
    with open_video(tiny_h264, cache_size=3) as reader:
        first = reader.frame(10)
        assert reader.frame(10) is first  # a cache hit returns the same array
        assert not first.flags.writeable  # shared with the cache, so read-only
        for i in (11, 12, 13):
            reader.frame(i)
        assert 10 not in reader._cache and all(i in reader._cache for i in (11, 12, 13))
        seeks = reader.n_seeks
        reader.frame(11)
        assert reader.n_seeks == seeks and reader._cache.hits >= 2


def test_frames_returns_a_stack_in_the_requested_order(tiny_h264: Path) -> None:
    oracle = decode_sequentially(tiny_h264)
    with open_video(tiny_h264) as reader:
        stack = reader.frames([20, 3, 35, 3])
        assert stack.shape == (4, 48, 64, 3)
        assert all(np.array_equal(stack[k], oracle[i]) for k, i in enumerate([20, 3, 35, 3]))


def test_grayscale_content_gives_one_channel(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "gray.mp4", gray=True, n_frames=12)
    oracle = decode_sequentially(path)
    with open_video(path) as reader:
        assert reader.grayscale and reader.shape == (48, 64, 1)
        assert_reader_exact(reader, oracle, [11, 0, 6])
        assert reader.to_dask().shape == (12, 48, 64)
        # The fast red-plane conversion and packed RGB give the same bytes on every frame.
        assert reader._red_plane
        fast = [frame for _, frame in reader.iter_frames()]
        reader._red_plane = False
        slow = [frame for _, frame in reader.iter_frames()]
        assert all(np.array_equal(a, b) for a, b in zip(fast, slow, strict=True))


@pytest.mark.parametrize(
    ("name", "codec", "options", "pix_fmt"),
    [
        (
            "hevc.mkv",
            "libx265",
            {"x265-params": "keyint=8:min-keyint=8:bframes=2:scenecut=0:log-level=none"},
            "yuv420p",
        ),
        ("mjpeg.avi", "mjpeg", {}, "yuvj420p"),
        ("mpeg4.mov", "mpeg4", {"bf": "2", "g": "8"}, "yuv420p"),
    ],
)
def test_other_codecs_and_containers(
    tmp_path: Path, name: str, codec: str, options: dict, pix_fmt: str
) -> None:
    path = encode_video(tmp_path / name, codec=codec, options=options, pix_fmt=pix_fmt, n_frames=30)
    oracle = decode_sequentially(path)
    with open_video(path) as reader:
        assert reader.n_frames == int(oracle[-1]) == 30
        assert_reader_exact(reader, oracle, np.random.default_rng(2).permutation(30))


def test_variable_frame_rate_follows_presentation_order(tmp_path: Path) -> None:
    from fractions import Fraction

    path = tmp_path / "vfr.mp4"
    times_ms = np.cumsum(np.random.default_rng(4).choice([20, 40, 100], size=30))  # irregular gaps
    rng = np.random.default_rng(8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"x264-params": "keyint=8:min-keyint=8:bframes=2:scenecut=0:log-level=none"}
        for t in times_ms:
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = int(t), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    oracle = decode_sequentially(path)
    with open_video(path) as reader:
        assert reader.n_frames == int(oracle[-1]) == 30
        steps = np.diff(reader._index.pts)
        assert len(np.unique(steps)) > 1  # really variable
        assert_reader_exact(reader, oracle, np.random.default_rng(0).permutation(30))


def test_stream_without_timestamps_warns_and_stays_exact(tmp_path: Path) -> None:
    path = encode_video(tmp_path / "raw.h264", container_format="h264", n_frames=20)
    oracle = decode_sequentially(path)
    with pytest.warns(UserWarning, match=r"raw\.h264.*timestamps.*ffmpeg"):
        reader = open_video(path)
    with reader:
        assert reader.n_frames == 20
        assert_reader_exact(reader, oracle, [13, 2, 19, 0, 7])


def test_reader_pickles_for_dask_workers(tiny_h264: Path) -> None:
    with open_video(tiny_h264) as reader:
        reader.frame(4)
        clone = pickle.loads(pickle.dumps(reader))
    oracle = decode_sequentially(tiny_h264, {17})
    assert np.array_equal(clone.frame(17), oracle[17])
    clone.close()


def test_image_reader_pickles_and_image_lists_get_distinct_dask_names(data: Path) -> None:
    folder = data / "lp-mirror-mouse/labeled-data"
    forward = open_video([str(folder / "img01.png"), str(folder / "img02.png")])
    backward = open_video([str(folder / "img02.png"), str(folder / "img01.png")])
    assert forward.to_dask().name != backward.to_dask().name
    clone = pickle.loads(pickle.dumps(forward))
    assert np.array_equal(clone.frame(1), backward.frame(0))


# --------------------------------------------------------------------------- image folders


def test_dlc_image_folder_matches_pyav_decode(data: Path) -> None:
    folder = data / "dlc-openfield/labeled-data/m4s1"
    with open_video(folder) as reader:
        assert isinstance(reader, ImageSequenceReader) and reader.backend == "images"
        assert reader.n_frames == 116 and reader.shape == (480, 640, 1) and reader.grayscale
        rng = np.random.default_rng(5)
        order = [0, 115, *rng.choice(116, size=20, replace=False).tolist()]
        for i in order:
            with av.open(reader.paths[i]) as container:
                want = next(container.decode(video=0)).to_ndarray(format="rgb24")
            assert np.array_equal(reader.frame(i), want[..., :1]), reader.paths[i]
        assert reader.to_dask().shape == (116, 480, 640)


def test_image_folder_uses_natural_order(data: Path, tmp_path: Path) -> None:
    names = [Path(p).name for p in list_images(data / "lp-mirror-mouse/labeled-data")]
    assert names[:3] == ["img00.png", "img01.png", "img02.png"] and names[-1] == "img92.png"
    assert sorted(["img10.png", "img9.png", "img100.png"], key=natural_sort_key) == [
        "img9.png",
        "img10.png",
        "img100.png",
    ]


def test_image_list_keeps_given_order_and_probes(data: Path) -> None:
    folder = data / "lp-mirror-mouse/labeled-data"
    paths = [str(folder / f"img{i:02d}.png") for i in (5, 1, 3)]
    video = probe_video(Video(paths, backend="images"))
    assert (video.n_frames, video.shape, video.backend) == (3, (406, 396, 1), "images")
    with open_video(paths) as reader:
        with av.open(paths[0]) as container:
            want = next(container.decode(video=0)).to_ndarray(format="rgb24")[..., :1]
        assert np.array_equal(reader.frame(0), want)


def test_colour_images_stay_rgb(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    for k, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"f{k}.png"), image[..., ::-1])  # cv2 writes BGR
    with open_video(tmp_path) as reader:
        assert not reader.grayscale and reader.shape == (20, 30, 3)
        assert all(np.array_equal(reader.frame(k), images[k]) for k in range(3))


# --------------------------------------------------------------------------- bad input


def test_images_of_different_sizes_and_unreadable_images(tmp_path: Path) -> None:
    import cv2

    cv2.imwrite(str(tmp_path / "a1.png"), np.zeros((20, 30), np.uint8))
    cv2.imwrite(str(tmp_path / "a2.png"), np.zeros((10, 30), np.uint8))
    (tmp_path / "a3.png").write_bytes(b"not a png at all")
    good = str(tmp_path / "a1.png")
    # Frames 0, 3 and 6 are sampled at opening (grayscale check); the bad ones are 1 and 2.
    paths = [good, str(tmp_path / "a2.png"), str(tmp_path / "a3.png"), good, good, good, good]
    with open_video(paths) as reader:
        assert reader.frame(0).shape == (20, 30, 1)
        with pytest.raises(FileFormatError, match=r"a2.png.*same size"):
            reader.frame(1)
        with pytest.raises(FileFormatError, match=r"a3.png.*not a readable image"):
            reader.frame(2)
    with pytest.raises(FileFormatError, match=r"a2.png"):
        open_video(tmp_path)  # a folder of three: every image is sampled at opening


def test_missing_video_raises_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="nothere.mp4"):
        open_video(tmp_path / "nothere.mp4")
    with pytest.raises(MissingFileError, match="gone.png"):
        open_video([str(tmp_path / "gone.png")])


def test_random_bytes_raise_file_format_error(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(FileFormatError, match="noise.mp4"):
        open_video(path)
    with pytest.raises(FileFormatError, match="noise.mp4"):
        probe_video(path)


def test_truncated_mp4_with_index_at_the_end_is_rejected(flies: Path, tmp_path: Path) -> None:
    data = (flies / "centered_pair_small.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(FileFormatError, match="cut.mp4"):
        open_video(path)


def test_truncated_faststart_mp4_reads_its_first_frames_and_refuses_the_rest(
    flies: Path, tmp_path: Path
) -> None:
    source = flies / "centered_pair_small.mp4"
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(source)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    data = faststart.read_bytes()
    cut = tmp_path / "faststart_cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.3)])
    with pytest.warns(UserWarning, match="faststart_cut.mp4.*truncated"):
        reader = open_video(cut)
    with reader:
        assert 200 < reader.n_frames < 1100
        oracle = decode_sequentially(source, {0, 100, reader.n_frames - 1})
        assert_reader_exact(reader, oracle, [reader.n_frames - 1, 100, 0])
        with pytest.raises(IndexError, match=r"faststart_cut.mp4.*frame 1000"):
            reader.frame(1000)


def test_index_out_of_range(tiny_h264: Path) -> None:
    with open_video(tiny_h264) as reader:
        with pytest.raises(IndexError, match=r"tiny.mp4.*frame 40 .*40 frames"):
            reader.frame(40)
        with pytest.raises(IndexError):
            reader.frames([0, -41])
        assert np.array_equal(reader.frame(-1), reader.frame(39))


def test_embedded_backend_dispatches_to_the_slp_reader(flies: Path) -> None:
    pytest.importorskip("napari_posetrack.core.io.slp_embedded")
    package = flies / "minimal_instance.pkg.slp"
    reader = open_video(Video(str(package), backend="embedded", backend_metadata={"dataset": "video0/video"}))
    assert type(reader).__name__ == "EmbeddedFrameReader"
    assert type(open_video(str(package))).__name__ == "EmbeddedFrameReader"
    frame = reader.frame(0)
    assert frame.dtype == np.uint8 and frame.ndim == 3
    assert video_dask_array(reader).shape[0] == reader.n_frames


def test_no_warnings_for_clean_videos(data: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_video(data / "sleap-flies/centered_pair_low_quality.mp4").close()
