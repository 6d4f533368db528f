"""Predicting a video that is in no project: ``<video>.predictions.slp`` beside it, cancel keeps what finished."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from napari_posetrack.core.errors import ConfigError, MissingFileError
from napari_posetrack.core.inference.api import journal_path_for, predict_video_file, predictions_path_for
from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import PREDICTED

OPTIONS = InferenceOptions(peak_threshold=0.0, device="cpu", batch_size=1)


@pytest.fixture
def clip(flies: Path, tmp_path: Path) -> Path:
    """The real fly clip, copied where the test may write beside it."""
    out = tmp_path / "videos" / "clip.mp4"
    out.parent.mkdir()
    shutil.copy(flies / "clip.mp4", out)
    return out


def _frames(labels) -> list[int]:
    t = labels.instances
    return sorted(set(t.frame[t.kind == PREDICTED].tolist()))


def test_default_output_keeps_the_video_file_name():
    assert predictions_path_for("/data/a/clip.mp4") == Path("/data/a/clip.mp4.predictions.slp")


@pytest.mark.slow  # trains the session's tiny model once (a few seconds on CPU)
def test_predicts_a_frame_range_to_a_file_beside_the_video(single_instance_run, clip):
    pipeline = load_pipeline([single_instance_run], OPTIONS)
    result = predict_video_file(clip, pipeline, target="3-5")
    assert not result.cancelled
    assert result.output == clip.with_name("clip.mp4.predictions.slp")
    assert (result.frames_done, result.frames_total) == (3, 3)
    saved = load_labels(result.output)
    assert [v.path for v in saved.videos] == [str(clip)]
    assert saved.skeleton.nodes == pipeline.skeleton.nodes
    assert _frames(saved) == [3, 4, 5] and result.added == saved.n_instances
    assert not journal_path_for(result.output, 0).exists()


@pytest.mark.slow
def test_cancel_saves_the_finished_frames_and_the_next_run_resumes(single_instance_run, clip, tmp_path):
    pipeline = load_pipeline([single_instance_run], OPTIONS)
    output = tmp_path / "out" / "mine.slp"
    seen: list[int] = []

    def progress(video: int, done: int, total: int) -> None:
        seen.append(done)

    result = predict_video_file(
        clip, pipeline, output, target="0-7", progress=progress, cancel=lambda: bool(seen) and seen[-1] >= 2
    )
    assert result.cancelled and result.output == output
    assert 2 <= result.frames_done < 8 and result.frames_total == 8
    partial = _frames(load_labels(output))
    assert partial == list(range(result.frames_done))
    assert journal_path_for(output, 0).exists()  # what finished is not predicted again
    seen.clear()
    again = predict_video_file(clip, pipeline, output, target="0-7", progress=progress)
    assert not again.cancelled and again.frames_done == 8
    assert _frames(load_labels(output)) == list(range(8))
    assert seen and seen[0] >= result.frames_done  # the second run started where the first stopped
    assert not journal_path_for(output, 0).exists()


@pytest.mark.slow
def test_bad_input_is_refused_naming_the_file(single_instance_run, clip, tmp_path):
    pipeline = load_pipeline([single_instance_run], OPTIONS)
    with pytest.raises(MissingFileError, match="nothere.mp4"):
        predict_video_file(tmp_path / "nothere.mp4", pipeline)
    with pytest.raises(ConfigError, match="labelled"):
        predict_video_file(clip, pipeline, target="labelled")
    with pytest.raises(ConfigError, match=r"out\.csv"):
        predict_video_file(clip, pipeline, tmp_path / "out.csv")
    assert not list(clip.parent.glob("*.slp")) and not (tmp_path / "out.csv").exists()
