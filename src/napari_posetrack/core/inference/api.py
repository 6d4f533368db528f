"""What the CLI and the widgets call: predict (and optionally track) labels files, videos, folders."""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.errors import MissingFileError
from napari_posetrack.core.inference.frames import select_frames
from napari_posetrack.core.inference.pipelines import InferenceOptions, Pipeline, load_pipeline, pipeline_skeleton_check
from napari_posetrack.core.inference.predictor import add_predictions, predict_frames
from napari_posetrack.core.labels import PREDICTED, Labels

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm")


def journal_path_for(output: str | os.PathLike[str], video_index: int) -> Path:
    """Where the resumable journal of one video of an output file lives (beside the output)."""
    out = Path(output)
    return out.with_name(f".{out.name}.video{video_index}.journal.h5")


def predict_labels(
    labels: Labels,
    pipeline: Pipeline,
    *,
    target: str = "all",
    videos: Sequence[int] | None = None,
    output: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> int:
    """Predict on ``labels``' videos in place (user instances untouched); returns instances added.

    ``target`` is ``"all"``, ``"labelled"``, ``"unlabelled"``, ``"suggested"`` or a frame
    specification such as ``"100-200"``. With ``output``, per-video journals beside it make the run
    resumable; they are removed once the output is saved by :func:`predict_to_file`.
    ``progress`` receives ``(video index, frames done, frames total)``.
    """
    from napari_posetrack.core.video import open_video

    pipeline_skeleton_check(pipeline, labels.skeleton, labels.provenance.get("filename", "labels"))
    added = 0
    for v in videos if videos is not None else range(len(labels.videos)):
        video = labels.videos[v]
        if video.backend != "embedded" and not video.exists:
            raise MissingFileError(video.filename, "video not found; point it at its new location first")
        with open_video(video) as reader:
            frames = select_frames(labels, v, target, len(reader))
            if len(frames) == 0:
                continue
            journal = journal_path_for(output, v) if output is not None else None
            result = predict_frames(
                pipeline,
                reader,
                frames,
                journal_path=journal,
                progress=None if progress is None else (lambda d, t, v=v: progress(v, d, t)),
                cancel=cancel,
            )
        result = _reorder_to_labels(result, pipeline, labels)
        added += add_predictions(labels, v, result, pipeline.class_names)
    return added


def tracker_after(pipeline: Pipeline, tracker: Any, where: str | os.PathLike[str]) -> Any:
    """The tracker to run after ``pipeline``: none for an identity model, which names its tracks itself."""
    if tracker is not None and pipeline.class_names:
        warnings.warn(
            f"{where}: the identity model put its predictions on the tracks {', '.join(pipeline.class_names)}; "
            "the tracker was not run (it would replace them)",
            UserWarning, stacklevel=3,
        )
        return None
    return tracker


def _reorder_to_labels(result: dict[str, Any], pipeline: Pipeline, labels: Labels) -> dict[str, Any]:
    """Put the model's node order into the labels' node order (same names, maybe another order)."""
    if pipeline.skeleton.nodes == labels.skeleton.nodes:
        return result
    order = [pipeline.skeleton.node_index(n) for n in labels.skeleton.nodes]
    out = dict(result)
    out["points"] = result["points"][:, order]
    out["point_scores"] = result["point_scores"][:, order]
    return out


def labels_for_input(path: str | os.PathLike[str], pipeline: Pipeline) -> Labels:
    """Labels to predict into: a labels file as loaded, or a new project holding one video."""
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.video import probe_video

    p = Path(path)
    if not p.exists():
        raise MissingFileError(p)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return Labels(pipeline.skeleton.copy(), videos=[probe_video(p)], provenance={"filename": str(p)})
    labels = load_labels(p)
    labels.provenance.setdefault("filename", str(p))
    return labels


def predict_to_file(
    input_path: str | os.PathLike[str],
    run_dirs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    target: str = "all",
    options: InferenceOptions | None = None,
    tracker: Any = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> Path:
    """Predict one labels file or video and save the result to ``output`` (atomic).

    ``tracker`` is a :class:`~napari_posetrack.core.tracking.tracker.TrackerConfig` to track the new
    predictions, or ``None``. Interrupted runs resume from the journals beside ``output``.
    """
    from napari_posetrack.core.io import save_labels

    pipeline = load_pipeline(run_dirs, options)
    labels = labels_for_input(input_path, pipeline)
    tracker = tracker_after(pipeline, tracker, input_path)
    if tracker is not None:
        from napari_posetrack.core.tracking.tracker import check_max_tracks

        check_max_tracks(labels, tracker)  # before the long step, not after it
    predict_labels(labels, pipeline, target=target, output=output, progress=progress)
    if tracker is not None:
        from napari_posetrack.core.tracking.tracker import track_labels

        if (labels.instances.kind == PREDICTED).any():
            labels = track_labels(labels, tracker)
        else:
            warnings.warn(f"{input_path}: the model predicted no instances, so nothing was tracked", UserWarning,
                          stacklevel=2)
    save_labels(labels, output)
    for v in range(len(labels.videos)):
        journal_path_for(output, v).unlink(missing_ok=True)
    return Path(output)


def predictions_path_for(video_path: str | os.PathLike[str]) -> Path:
    """Where the predictions of a video outside a project go by default: ``<video>.predictions.slp``.

    The video's whole file name is kept (``clip.mp4`` -> ``clip.mp4.predictions.slp``), as
    ``sleap-track`` names its output, so that another file called ``clip.predictions.slp`` beside
    the video is never overwritten.
    """
    p = Path(video_path)
    return p.with_name(f"{p.name}.predictions.slp")


@dataclass
class VideoPrediction:
    """What :func:`predict_video_file` did.

    Attributes
    ----------
    labels
        The new file's labels: the video and its predictions (tracked when asked and not cancelled).
    output
        The file written (``None`` when nothing was written: cancelled before any frame finished).
    added
        Predicted instances in ``labels``.
    frames_done, frames_total
        Frames predicted out of the frames asked for.
    cancelled
        The run was stopped; ``output`` holds the frames finished before, and the journal beside
        it stays, so predicting the same video to the same file again does only the rest.
    """

    labels: Labels
    output: Path | None
    added: int
    frames_done: int
    frames_total: int
    cancelled: bool


def predict_video_file(
    video_path: str | os.PathLike[str],
    pipeline: Pipeline,
    output: str | os.PathLike[str] | None = None,
    *,
    target: str = "all",
    tracker: Any = None,
    progress: Callable[[int, int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> VideoPrediction:
    """Predict a video that is in no project and save its predictions (atomic) as a SLEAP file.

    Parameters
    ----------
    video_path
        The video file.
    pipeline
        The loaded model (:func:`~napari_posetrack.core.inference.pipelines.load_pipeline`).
    output
        The ``.slp`` to write; default :func:`predictions_path_for` (beside the video).
    target
        ``"all"`` or a frame specification (``"100-200"``); a video outside a project has no
        labelled or suggested frames, so those targets are refused.
    tracker
        A :class:`~napari_posetrack.core.tracking.tracker.TrackerConfig` to track the predictions
        with, or ``None``.
    progress
        Receives ``(0, frames done, frames total)``.
    cancel
        Polled between batches; when it returns true the frames finished so far are saved to
        ``output`` and the result says ``cancelled`` (no exception).

    Returns
    -------
    VideoPrediction

    Raises
    ------
    MissingFileError
        The video does not exist.
    ConfigError
        The target names labelled or suggested frames, or the output is not a ``.slp`` file.
    """
    from napari_posetrack.core.errors import ConfigError
    from napari_posetrack.core.inference.predictor import PredictionCancelled, PredictionJournal
    from napari_posetrack.core.io import save_labels
    from napari_posetrack.core.video import probe_video

    video_path = Path(video_path)
    if not video_path.is_file():
        raise MissingFileError(video_path, "video not found")
    out = Path(output) if output is not None else predictions_path_for(video_path)
    if not out.name.lower().endswith(".slp"):
        raise ConfigError(f"{out}: predictions of a video are saved as a SLEAP .slp file; choose a name ending in .slp")
    if target.strip().lower() in ("labelled", "labeled", "user", "suggested", "suggestions"):
        raise ConfigError(
            f"{video_path}: a video outside the project has no {target.strip().lower()} frames; "
            "predict all frames or a frame range"
        )
    labels = Labels(pipeline.skeleton.copy(), videos=[probe_video(video_path)], provenance={"filename": str(out)})
    n_frames = labels.videos[0].n_frames
    tracker = tracker_after(pipeline, tracker, video_path)
    if tracker is not None:
        from napari_posetrack.core.tracking.tracker import check_max_tracks

        check_max_tracks(labels, tracker)
    total = len(select_frames(labels, 0, target, n_frames)) if n_frames else 0
    out.parent.mkdir(parents=True, exist_ok=True)  # the journal beside it is written from the first batch
    cancelled = False
    try:
        added = predict_labels(labels, pipeline, target=target, output=out, progress=progress, cancel=cancel)
    except PredictionCancelled:
        cancelled = True
        journal_file = journal_path_for(out, 0)
        added = 0
        if journal_file.exists():
            journal = PredictionJournal(journal_file, pipeline.skeleton.n_nodes, str(video_path),
                                        n_classes=len(pipeline.class_names or ()))
            try:
                finished = journal.read()
            finally:
                journal.close()
            added = add_predictions(labels, 0, _reorder_to_labels(finished, pipeline, labels), pipeline.class_names)
            done = len(np.unique(finished["frames"]))
        else:
            done = 0
    else:
        done = total
    if done == 0:
        return VideoPrediction(labels, None, 0, 0, total, cancelled)
    if tracker is not None and not cancelled:
        from napari_posetrack.core.tracking.tracker import track_labels

        if (labels.instances.kind == PREDICTED).any():
            labels = track_labels(labels, tracker)
        else:
            warnings.warn(f"{video_path}: the model predicted no instances, so nothing was tracked", UserWarning,
                          stacklevel=2)
    save_labels(labels, out)
    if not cancelled:
        journal_path_for(out, 0).unlink(missing_ok=True)
    return VideoPrediction(labels, out, added, done, total, cancelled)


def expand_inputs(pattern: str) -> list[Path]:
    """A file, a folder (its videos), or a glob pattern -> the files to predict."""
    p = Path(pattern)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
    elif p.exists():
        files = [p]
    else:
        files = sorted(Path(f) for f in glob.glob(pattern))
    if not files:
        raise MissingFileError(pattern, "no videos or labels files match")
    return files


def _predict_one_task(input_path: str, run_dirs: list[str], output: str, target: str, options: InferenceOptions, tracker: Any) -> str:
    """One dask task: predict one input unless its output already exists (per-video resumability)."""
    if Path(output).exists():
        return output
    return str(predict_to_file(input_path, run_dirs, output, target=target, options=options, tracker=tracker))


def predict_many(
    inputs: Sequence[str | os.PathLike[str]],
    run_dirs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    target: str = "all",
    options: InferenceOptions | None = None,
    tracker: Any = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    on_done: Callable[[str], None] | None = None,
) -> list[Path]:
    """Predict many videos as one ``dask.distributed`` task each.

    ``scheduler`` is the address of an existing scheduler (a cluster); ``None`` starts a
    ``LocalCluster`` with one single-threaded worker process per task slot. Finished videos
    (their output exists) are skipped, so re-running after a failure does only what is left.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = options or InferenceOptions()
    outputs = [out_dir / f"{Path(p).stem}.predictions.slp" for p in inputs]
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_workers or 1, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = [
            client.submit(
                _predict_one_task, str(i), [str(d) for d in run_dirs], str(o), target, options, tracker, pure=False
            )
            for i, o in zip(inputs, outputs)
        ]
        for fut in as_completed(futures):
            path = fut.result()  # re-raises a task's error here, with its message
            if on_done is not None:
                on_done(path)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return outputs
