"""Training data pipeline on the real fly clip: labelled frames, split, frame cache, batches."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.labels import PREDICTED
from napari_posetrack.core.training import data as tdata


@pytest.fixture(scope="module")
def fly_labels(flies):
    from napari_posetrack.core.io.slp import load_slp

    return load_slp(flies / "clip.2node.slp")


def _first_frames(labels, n):
    return labels.subset(labels.rows()[labels.instances.frame < n])


def test_labelled_frames_user_only_and_dense(fly_labels):
    labels = _first_frames(fly_labels, 10)
    # a prediction on a new frame must not become training data
    labels.add_instances(0, 500, np.array([[10.0, 20.0], [30.0, 40.0]]), kind=PREDICTED, score=0.9)
    frames = tdata.labelled_frames(labels)
    assert frames.pairs.tolist() == [[0, f] for f in range(10)]
    assert frames.points.shape == (10, 2, 2, 2)
    assert frames.n_instances.tolist() == [2] * 10
    # every user instance appears once, with its coordinates
    t = labels.instances
    rows = labels.rows(video=0, frame=3, kind="user")
    expected = np.sort(t.points[rows].astype(np.float32).reshape(len(rows), -1), axis=0)
    got = np.sort(frames.points[3].reshape(2, -1), axis=0)
    np.testing.assert_allclose(got, expected, equal_nan=True)


def test_split_is_fixed_by_seed_and_saved(fly_labels, tmp_path):
    labels = _first_frames(fly_labels, 50)
    frames = tdata.labelled_frames(labels)
    a = tdata.split_frames(len(frames), 0.2, seed=3)
    b = tdata.split_frames(len(frames), 0.2, seed=3)
    c = tdata.split_frames(len(frames), 0.2, seed=4)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.validation, b.validation)
    assert not np.array_equal(a.validation, c.validation)
    assert len(a.validation) == 10 and len(a.train) == 40
    assert not set(a.train) & set(a.validation)
    tdata.save_split(tmp_path / "split.json", frames, a, labels)
    doc = json.loads((tmp_path / "split.json").read_text())
    assert doc["seed"] == 3 and len(doc["validation"]) == 10
    assert doc["validation"] == frames.pairs[a.validation].tolist()
    back = tdata.load_split(tmp_path / "split.json", frames)
    assert np.array_equal(back.train, a.train) and np.array_equal(back.validation, a.validation)


def test_single_frame_split_uses_it_for_both():
    s = tdata.split_frames(1, 0.1)
    assert s.train.tolist() == [0] and s.validation.tolist() == [0]


def test_frame_cache_scales_once_and_pads_to_stride(fly_labels, tmp_path):
    from napari_posetrack.core.video import open_video

    labels = _first_frames(fly_labels, 6)
    frames = tdata.labelled_frames(labels)
    cache = tdata.build_frame_cache(labels, frames, input_scaling=0.1, stride=16)
    # 1024 * 0.1 = 102.4 -> 102 px, padded to 112; grayscale content -> 1 channel
    assert cache.images.shape == (6, 112, 112, 1) and cache.images.dtype == np.uint8
    assert cache.path is None
    np.testing.assert_allclose(cache.points, frames.points * np.float32(0.1))
    with open_video(labels.videos[0]) as reader:
        full = reader.frame(4)
    import cv2

    small = cv2.resize(full, (102, 102), interpolation=cv2.INTER_AREA).reshape(102, 102, -1)
    np.testing.assert_array_equal(cache.images[4, :102, :102], small)
    assert not cache.images[:, 102:].any() and not cache.images[:, :, 102:].any()

    # a cache larger than the memory limit lives in a memmap in the run folder, with the same pixels
    on_disk = tdata.build_frame_cache(
        labels, frames, input_scaling=0.1, stride=16, cache_dir=tmp_path, memory_limit=1000
    )
    assert on_disk.path == tmp_path / "frames.npy" and isinstance(on_disk.images, np.memmap)
    np.testing.assert_array_equal(np.asarray(on_disk.images), cache.images)


def test_batches_from_memmap_survive_pickling(fly_labels, tmp_path):
    import pickle

    labels = _first_frames(fly_labels, 6)
    frames = tdata.labelled_frames(labels)
    cache = tdata.build_frame_cache(
        labels, frames, input_scaling=0.1, stride=16, cache_dir=tmp_path, memory_limit=1000
    )
    ds = tdata.FrameBatchDataset(cache, np.arange(6), per_instance=True)
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < cache.images.nbytes  # the frames are reopened, not copied
    a, b = ds[[5, 0, 3]], clone[[5, 0, 3]]
    for key in a:
        assert (a[key] == b[key]).all() or key == "points"
    np.testing.assert_array_equal(a["points"].numpy(), b["points"].numpy())
    assert len(ds) == 12  # two instances per frame
    assert a["image"].shape == (3, 112, 112, 1)
    assert a["index"].tolist() == [2, 0, 1] and a["instance"].tolist() == [1, 0, 1]


def test_loader_feeds_whole_batches(fly_labels):
    labels = _first_frames(fly_labels, 10)
    frames = tdata.labelled_frames(labels)
    cache = tdata.build_frame_cache(labels, frames, input_scaling=0.1, stride=16)
    ds = tdata.FrameBatchDataset(cache, np.arange(10))
    sampler = tdata.EpochBatchSampler(len(ds), 4, seed=1, drop_last=True)
    batches = list(tdata.make_loader(ds, sampler, workers=0))
    assert [len(b["index"]) for b in batches] == [4, 4]
    seen = np.concatenate([b["index"].numpy() for b in batches])
    assert len(set(seen.tolist())) == 8
    dev = tdata.to_device(batches[0], "cpu")
    assert dev["image"].shape == (4, 1, 112, 112) and float(dev["image"].max()) <= 1.0


def test_loader_with_worker_processes(fly_labels, tmp_path):
    labels = _first_frames(fly_labels, 8)
    frames = tdata.labelled_frames(labels)
    cache = tdata.build_frame_cache(
        labels, frames, input_scaling=0.1, stride=16, cache_dir=tmp_path, memory_limit=1000
    )
    ds = tdata.FrameBatchDataset(cache, np.arange(8))
    sampler = tdata.EpochBatchSampler(len(ds), 2, seed=0)
    in_process = [b["image"].numpy() for b in tdata.make_loader(ds, sampler, workers=0)]
    with_workers = [b["image"].numpy() for b in tdata.make_loader(ds, sampler, workers=2)]
    assert len(in_process) == 4
    for a, b in zip(in_process, with_workers):
        np.testing.assert_array_equal(a, b)


def test_sampler_resume_skips_exactly_the_trained_batches():
    s = tdata.EpochBatchSampler(23, 4, seed=7, batches_per_epoch=10)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 10 and all(len(b) == 4 for b in full)
    s.set_epoch(2, skip_batches=6)
    rest = list(s)
    assert len(s) == 4
    assert all(np.array_equal(a, b) for a, b in zip(full[6:], rest))
    s.set_epoch(3)
    assert not np.array_equal(list(s)[0], full[0])


def test_sampler_shards_across_ranks():
    shards = [list(tdata.EpochBatchSampler(10, 2, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 3
    a = np.concatenate(shards[0])
    b = np.concatenate(shards[1])
    assert not set(a.tolist()) & set(b.tolist())
    assert set(a.tolist()) | set(b.tolist()) == set(range(10))


def test_unreadable_video_names_the_file(fly_labels, tmp_path):
    labels = _first_frames(fly_labels, 4)
    broken = tmp_path / "clip.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    labels.replace_video(0, str(broken))
    frames = tdata.labelled_frames(labels)
    with pytest.raises(FileFormatError, match="clip.mp4"):
        tdata.build_frame_cache(labels, frames, input_scaling=0.1)
    labels.replace_video(0, str(tmp_path / "gone.mp4"))
    with pytest.raises(MissingFileError, match="gone.mp4"):
        tdata.build_frame_cache(labels, frames, input_scaling=0.1)


def test_truncated_video_names_the_file(fly_labels, flies, tmp_path):
    labels = _first_frames(fly_labels, 4)
    labels = labels.subset(labels.rows()[labels.instances.frame >= 2])
    cut = tmp_path / "cut.mp4"
    src = (flies / "clip.mp4").read_bytes()
    cut.write_bytes(src[: len(src) // 50])
    labels.replace_video(0, str(cut))
    # frames past the end of what survives: an error naming the file, never a black frame
    late = labels.copy()
    late.instances.frame[:] += 1400
    frames = tdata.labelled_frames(late)
    with pytest.raises(FileFormatError, match="cut.mp4"):
        tdata.build_frame_cache(late, frames, input_scaling=0.1)
    shutil.rmtree(tmp_path, ignore_errors=True)
