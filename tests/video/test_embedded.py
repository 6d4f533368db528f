"""Frames embedded in ``.pkg.slp`` files read through the common ``VideoReader`` interface."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_posetrack.core.io import slp_embedded
from napari_posetrack.core.video import EmbeddedFrameReader, VideoReader, open_video


@pytest.fixture
def package(tmp_path: Path) -> tuple[Path, dict[int, np.ndarray]]:
    """A package holding frames 2 and 5 of a 7-frame colour video, written as SLEAP does."""
    rng = np.random.default_rng(0)
    stored = {
        2: rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
        5: rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
    }
    path = tmp_path / "frames.pkg.slp"
    with h5py.File(path, "w") as f:
        slp_embedded.write_embedded_video(
            f,
            "video0",
            list(stored),
            [slp_embedded.encode_png(image) for image in stored.values()],
            height=12,
            width=16,
            channels=3,
            n_frames=7,
            fps=30.0,
        )
    return path, stored


def test_embedded_frames_share_the_reader_interface(package) -> None:
    path, stored = package
    assert slp_embedded.EmbeddedFrameReader is EmbeddedFrameReader  # still importable from io
    reader = open_video(path)
    assert isinstance(reader, EmbeddedFrameReader) and isinstance(reader, VideoReader)
    with reader:
        assert (reader.n_frames, reader.shape, reader.fps, reader.grayscale) == (7, (12, 16, 3), 30.0, False)
        first = reader.frame(2)
        assert np.array_equal(first, stored[2]) and reader.frame(2) is first  # from the cache
        assert not first.flags.writeable
        assert reader.has_frame(5) and not reader.has_frame(3)
        assert not reader.frame(3).any()  # frames the package does not hold read as black
        stack = reader.frames([5, 2, 0])
        assert np.array_equal(stack[0], stored[5]) and np.array_equal(stack[1], stored[2])
        streamed = dict(reader.iter_frames(1, 6, 2))
        assert list(streamed) == [1, 3, 5] and streamed[5].flags.writeable
        array = reader.to_dask()
        assert array.shape == (7, 12, 16, 3) and np.array_equal(array[5].compute(), stored[5])
        np.testing.assert_allclose(reader.timestamps, np.arange(7) / 30.0)
        assert reader.metadata["backend"] == "embedded"
        assert np.array_equal(
            np.frombuffer(reader.raw(2).tobytes(), np.uint8)[:8],
            np.frombuffer(b"\x89PNG\r\n\x1a\n", np.uint8),
        )


def test_embedded_reader_pickles_and_reopens(package) -> None:
    path, stored = package
    reader = EmbeddedFrameReader(path)
    clone = pickle.loads(pickle.dumps(reader))  # what a dask worker receives
    assert np.array_equal(clone.frame(5), stored[5])
    reader.close()
    assert np.array_equal(reader.frame(2), stored[2])  # a closed reader reopens its file
    reader.close()
    clone.close()


def test_real_package_reads_as_grayscale(flies: Path) -> None:
    with EmbeddedFrameReader(flies / "minimal_instance.pkg.slp", rgb=True) as reader:
        assert reader.grayscale and reader.shape == (384, 384, 3)
        frame = reader.frame(0)
        assert frame.shape == (384, 384, 3) and np.array_equal(frame[..., 0], frame[..., 2])
