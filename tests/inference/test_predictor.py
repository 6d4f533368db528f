"""Streaming prediction on real H.264 video with a real (tiny, briefly trained) model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.inference.api import (
    journal_path_for,
    predict_labels,
    predict_many,
    predict_to_file,
)
from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline
from napari_posetrack.core.inference.predictor import PredictionCancelled, PredictionJournal, predict_frames
from napari_posetrack.core.labels import PREDICTED, USER


@pytest.fixture(scope="module")
def sample(small_sample) -> dict[str, str]:
    return small_sample


@pytest.fixture(scope="module")
def single_run(single_instance_run) -> Path:
    return single_instance_run


def options(**kw) -> InferenceOptions:
    # no threshold: a briefly trained model still yields one instance per frame to follow through
    return InferenceOptions(peak_threshold=float("-inf"), device="cpu", batch_size=4, **kw)


def test_every_requested_frame_is_predicted_once(single_run, sample):
    pipeline = load_pipeline([single_run], options())
    seen = []
    out = predict_frames(
        pipeline, sample["video"], np.arange(5, 23), progress=lambda d, t: seen.append((d, t))
    )
    assert out["frames"].tolist() == list(range(5, 23))
    assert out["instance_frame"].tolist() == list(range(5, 23))
    assert out["points"].shape == (18, 7, 2) and np.isfinite(out["points"]).all()
    assert seen[0] == (0, 18) and seen[-1] == (18, 18)
    # scattered frames take the random-access path and give the same answers
    scattered = predict_frames(pipeline, sample["video"], np.array([22, 5, 13]))
    full = dict(zip(out["frames"].tolist(), out["points"]))
    for f, p in zip(scattered["instance_frame"], scattered["points"]):
        np.testing.assert_allclose(p, full[int(f)], atol=1e-4)


def test_cancelled_run_resumes_from_its_journal(single_run, sample, tmp_path):
    pipeline = load_pipeline([single_run], options())
    journal = tmp_path / "run.journal.h5"
    calls = {"n": 0}

    def cancel_after_two_batches() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    with pytest.raises(PredictionCancelled, match="cancelled after 8 of 40"):
        predict_frames(pipeline, sample["video"], journal_path=journal, cancel=cancel_after_two_batches)
    j = PredictionJournal(journal, 7, sample["video"])
    assert j.done_frames().tolist() == list(range(8))
    j.close()
    progress = []
    resumed = predict_frames(
        pipeline, sample["video"], journal_path=journal, progress=lambda d, t: progress.append(d)
    )
    assert progress[0] == 8  # the first 8 frames were not predicted again
    fresh = predict_frames(pipeline, sample["video"])
    order = np.argsort(resumed["instance_frame"], kind="stable")
    np.testing.assert_allclose(resumed["points"][order], fresh["points"], atol=1e-4)


def write_faststart_copy(src: str, dst: Path) -> None:
    """Re-encode ``src`` as an mp4 whose index comes first, so a truncated copy still claims every frame."""
    import av

    from napari_posetrack.core.video import open_video

    with open_video(src) as reader, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.height, stream.width = reader.shape[:2]
        stream.pix_fmt = "yuv420p"
        for _, frame in reader.iter_frames():
            rgb = np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_video_that_breaks_part_way_keeps_what_was_predicted(single_run, sample, tmp_path):
    whole = tmp_path / "whole.mp4"
    write_faststart_copy(sample["video"], whole)
    broken = tmp_path / "broken.mp4"
    data = whole.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    pipeline = load_pipeline([single_run], options())
    journal = tmp_path / "broken.journal.h5"
    with pytest.warns(UserWarning), pytest.raises(FileFormatError, match="broken.mp4"):
        predict_frames(pipeline, str(broken), np.arange(40), journal_path=journal)
    j = PredictionJournal(journal, 7, str(broken))
    done = j.done_frames()
    j.close()
    assert 0 < len(done) < 40 and done.tolist() == list(range(len(done)))  # frames before the damage are kept


def test_predict_into_labels_leaves_user_instances_alone(single_run, sample, tmp_path):
    from napari_posetrack.core.io import load_labels

    labels = load_labels(sample["labels"])
    labels.delete(np.flatnonzero(labels.instances.frame >= 4))
    user_before = labels.instances.points[labels.instances.kind == USER].copy()
    pipeline = load_pipeline([single_run], options())
    added = predict_labels(labels, pipeline, target="0-9")
    assert added == 10
    t = labels.instances
    np.testing.assert_array_equal(t.points[t.kind == USER], user_before)
    assert sorted(t.frame[t.kind == PREDICTED].tolist()) == list(range(10))
    # predicting again replaces the earlier predictions instead of piling them up
    predict_labels(labels, pipeline, target="0-9")
    assert (labels.instances.kind == PREDICTED).sum() == 10


def test_predict_to_file_removes_its_journal(single_run, sample, tmp_path):
    from napari_posetrack.core.io import load_labels

    out = tmp_path / "pred.slp"
    predict_to_file(sample["video"], [single_run], out, target="::10", options=options())
    labels = load_labels(out)
    assert labels.instances.frame.tolist() == [0, 10, 20, 30]
    assert not journal_path_for(out, 0).exists()


def test_missing_model_file_is_named(single_run, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(single_run, broken)
    (broken / "skeleton.json").unlink()
    with pytest.raises(FileNotFoundError, match="skeleton.json"):
        load_pipeline([broken], options())


def test_labels_with_another_skeleton_are_refused(single_run):
    from napari_posetrack.core.errors import ConfigError
    from napari_posetrack.core.labels import Labels, Skeleton, Video

    other = Labels(Skeleton(["a", "b"]), videos=[Video("x.mp4")])
    with pytest.raises(ConfigError, match="is not the model's"):
        predict_labels(other, load_pipeline([single_run], options()))


@pytest.mark.slow
def test_many_videos_run_as_dask_tasks_and_resume(single_run, sample, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(sample["video"], videos / name)
    outputs = predict_many(
        sorted(videos.iterdir()), [single_run], tmp_path / "out", target="0-3", options=options()
    )
    assert [p.name for p in outputs] == ["a.predictions.slp", "b.predictions.slp"]
    stamp = outputs[0].stat().st_mtime_ns
    predict_many(sorted(videos.iterdir()), [single_run], tmp_path / "out", target="0-3", options=options())
    assert outputs[0].stat().st_mtime_ns == stamp  # finished videos are not predicted again
