"""Prediction and tracking jobs that run off the GUI thread and land as one undoable step.

Each job works on a copy of the project's labels in a napari ``thread_worker`` and yields
:class:`Progress`; the result is merged into the project on the main thread
(:meth:`PoseProject.apply_predictions`). The inference widget and the training widget's
"predict after training" both use :func:`predict_in_background`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_posetrack._widgets._activity import Activity
from napari_posetrack.core.errors import PoseTrackError

if TYPE_CHECKING:
    from napari_posetrack._widgets._project import PoseProject
    from napari_posetrack.core.inference.pipelines import InferenceOptions
    from napari_posetrack.core.labels import Labels
    from napari_posetrack.core.tracking.summary import TrackingSummary
    from napari_posetrack.core.tracking.tracker import TrackerConfig

# how long the worker waits for news from the computation before checking for Cancel again
_POLL_S = 0.05


@dataclass
class BackgroundOutcome:
    """How a background prediction or tracking run ended (passed to ``on_done``).

    Exactly one holds: ``labels`` (success: the processed copy, already applied to the project when
    ``on_done`` runs), ``error`` (the message shown to the user), or ``cancelled``. A run that writes
    a file (predicting a video outside the project) also says where, and how far it got: cancelled,
    it saved the frames it finished (``saved_to`` is ``None`` when none had).
    """

    action: str
    labels: Labels | None = None
    added: int = 0
    error: str | None = None
    cancelled: bool = False
    seconds: float = 0.0
    tracking_summary: TrackingSummary | None = None  # what tracking did, when the run tracked
    saved_to: Path | None = None
    frames_done: int = 0
    frames_total: int = 0
    merged: bool = False


@dataclass
class Progress:
    """One progress report from the worker: ``stage`` is ``"loading"``, ``"predicting"`` or ``"tracking"``."""

    stage: str
    video: int
    done: int
    total: int


def progress_words(p: Progress) -> str:
    """The stage of a :class:`Progress` in words (``"predicting video 2"``, ``"loading the model"``)."""
    if p.stage == "loading":
        return "loading the model"
    if p.stage == "predicting" and p.video >= 0:
        return f"predicting video {p.video + 1}"
    return p.stage


def error_message(exc: BaseException) -> str:
    """A message for a notification: our errors already name the file and the problem."""
    if isinstance(exc, PoseTrackError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run_in_background(
    project: PoseProject,
    action: str,
    compute: Callable[[Callable[[Progress], None], Callable[[], bool]], tuple[Labels, int]],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_done: Callable[[BackgroundOutcome], None] | None = None,
    merge: bool = True,
    apply: bool = True,
    finish_on_cancel: bool = False,
) -> Any:
    """Run ``compute(report, cancelled)`` off the GUI thread and apply its labels on the main thread.

    With ``merge`` (for results that change predictions only), the result's predictions are merged
    into the labels as they are by then, keeping edits made meanwhile. Without it (results that
    change user instances too), the result replaces the labels, and is refused if the labels were
    edited while the worker ran.

    ``compute`` returns ``(processed copy of the labels, instances added)``; it calls ``report``
    with :class:`Progress` and should stop (raising) when ``cancelled()`` turns true. The returned
    napari worker is started; ``worker.quit()`` cancels: the labels stay as they were, whether or
    not ``compute`` noticed in time. Errors are shown as notifications. ``on_done`` runs on the main
    thread last, whatever the outcome.

    ``compute`` may instead return a whole :class:`BackgroundOutcome` (its ``labels`` are applied
    unless it says ``cancelled``). Without ``apply`` the result is never put into the project. With
    ``finish_on_cancel``, Cancel is only passed on to ``compute`` (through ``cancelled()``) and the
    run ends when ``compute`` returns, so that it can save what it finished first.
    """
    from napari.qt.threading import create_worker

    news: queue.SimpleQueue = queue.SimpleQueue()
    holder: dict[str, Any] = {}
    cancel_requested = threading.Event()

    def cancelled() -> bool:
        # read by the engine between batches; quit() may stop the generator below before it sees it
        return cancel_requested.is_set() or bool(holder["worker"].abort_requested)

    def compute_thread() -> None:
        try:
            result = compute(news.put, cancelled)
            news.put(("done", result))
        except BaseException as exc:  # noqa: BLE001 - reported to the user, never lost in a thread
            news.put(("error", exc))

    def work():
        # The computation runs in its own thread so that this generator can yield its progress
        # reports as they come (the engine reports through callbacks, not by yielding).
        started = time.perf_counter()
        thread = threading.Thread(target=compute_thread, name=f"posetrack-{action}", daemon=True)
        thread.start()
        while True:
            try:
                item = news.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, Progress):
                if finish_on_cancel and cancelled():
                    continue  # no more yields: the worker would stop here before compute has saved
                yield item
                continue
            kind, payload = item
            seconds = time.perf_counter() - started
            if kind == "done" and isinstance(payload, BackgroundOutcome):
                payload.seconds = seconds
                return payload
            if cancelled():
                return BackgroundOutcome(action, cancelled=True, seconds=seconds)
            if kind == "done":
                return BackgroundOutcome(action, labels=payload[0], added=payload[1], seconds=seconds)
            from napari_posetrack.core.inference.predictor import PredictionCancelled

            if isinstance(payload, PredictionCancelled):
                return BackgroundOutcome(action, cancelled=True, seconds=seconds)
            return BackgroundOutcome(action, error=error_message(payload), seconds=seconds)

    worker = create_worker(work, _start_thread=False, _ignore_errors=True)
    holder["worker"] = worker
    # napari's activity dock: stage, frames done, time left (the widgets have their Cancel)
    activity = Activity(f"{action.capitalize()}: starting")

    def on_activity(p: Progress) -> None:
        activity.update(p.done, p.total, f"{action.capitalize()}: {progress_words(p)}")

    if finish_on_cancel:
        # napari's quit() stops the generator at its next step, before compute has saved what it
        # finished: here quit() only tells compute, and the run ends when compute returns
        worker.quit = cancel_requested.set
    # the engine's warnings (a backend falling back, say) reach the worker's signal but, with this
    # napari, no notification; the manager drops repeats, so a napari that relays them too shows one
    from napari.utils.notifications import notification_manager

    worker.warned.connect(lambda args: notification_manager.receive_warning(*args))
    state: dict[str, Any] = {"outcome": None, "edited": False}

    def on_labels_edited(*_: Any) -> None:
        state["edited"] = True

    if not merge:
        project.events.labels_changed.connect(on_labels_edited)
        project.events.labels_replaced.connect(on_labels_edited)

    def on_returned(outcome: BackgroundOutcome) -> None:
        state["outcome"] = outcome
        if outcome.labels is not None and apply and not outcome.cancelled:
            try:
                if outcome.saved_to is not None and project.labels is None:
                    project.open(outcome.saved_to)  # nothing open to add to: show the new file
                elif merge:
                    project.apply_predictions(outcome.labels, action)
                elif state["edited"]:
                    raise PoseTrackError(
                        "the labels were edited while it ran, so its result was not applied; run it again"
                    )
                else:
                    project.apply(outcome.labels, action)
                outcome.merged = True
            except Exception as exc:  # noqa: BLE001 - e.g. the project was closed meanwhile
                outcome.labels, outcome.error = None, error_message(exc)
                if outcome.saved_to is not None:
                    outcome.error = f"saved to {outcome.saved_to}, but not added to the project: {outcome.error}"
        if outcome.error is not None:
            from napari.utils.notifications import show_error

            show_error(f"{action.capitalize()} failed: {outcome.error}")

    def on_errored(exc: Exception) -> None:
        # only an error of this module itself gets here (compute's errors are returned)
        state["outcome"] = BackgroundOutcome(action, error=error_message(exc))
        from napari.utils.notifications import show_error

        show_error(f"{action.capitalize()} failed: {error_message(exc)}")

    def on_finished() -> None:
        # a cancelled worker emits no ``returned``: finished is the one signal every run ends with
        activity.close()
        if not merge:
            project.events.labels_changed.disconnect(on_labels_edited)
            project.events.labels_replaced.disconnect(on_labels_edited)
        outcome = state["outcome"] or BackgroundOutcome(action, cancelled=True)
        if on_done is not None:
            on_done(outcome)

    worker.yielded.connect(on_activity)
    if on_progress is not None:
        worker.yielded.connect(on_progress)
    worker.returned.connect(on_returned)
    worker.errored.connect(on_errored)
    worker.finished.connect(on_finished)
    worker.start()
    return worker


def predict_in_background(
    project: PoseProject,
    run_dirs: Sequence[Path],
    target: str,
    tracker_config: TrackerConfig | None = None,
    *,
    on_done: Callable[[BackgroundOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    options: InferenceOptions | None = None,
    videos: Sequence[int] | None = None,
) -> Any:
    """Predict (and optionally track) the project's labels in a napari worker; returns the worker.

    Parameters
    ----------
    project
        The viewer's project; its labels are copied now and the copy is predicted in place.
    run_dirs
        One single-instance or bottom-up run, or a centroid run and a centered-instance run.
    target
        ``"all"``, ``"labelled"``, ``"unlabelled"``, ``"suggested"`` or a frame specification
        (``"100-200"``, ``"7"``).
    tracker_config
        Track the predictions afterwards with these settings; ``None`` = do not track.
    on_done
        Called on the main thread with a :class:`BackgroundOutcome` once the run ends (after the
        predictions were applied to the project, as one undoable ``"predict"`` step).
    on_progress
        Called on the main thread with each :class:`Progress`.
    options
        Inference options (default: :class:`InferenceOptions`).
    videos
        Video indices to predict (default: all videos).

    ``worker.quit()`` cancels; the project's labels then stay as they were.
    """
    if project.labels is None:
        raise ValueError("open or create labels before predicting")
    labels = project.labels.copy()  # on the main thread: the user may edit while the worker runs
    run_dirs = [Path(d) for d in run_dirs]
    videos = None if videos is None else list(videos)
    summary: dict[str, TrackingSummary] = {}

    def compute(report: Callable[[Progress], None], cancelled: Callable[[], bool]) -> tuple[Labels, int]:
        from napari_posetrack.core.inference.api import predict_labels, tracker_after
        from napari_posetrack.core.inference.pipelines import load_pipeline

        report(Progress("loading", -1, 0, 0))
        pipeline = load_pipeline(run_dirs, options)
        added = predict_labels(
            labels,
            pipeline,
            target=target,
            videos=videos,
            progress=lambda v, d, t: report(Progress("predicting", v, d, t)),
            cancel=cancelled,
        )
        # an identity model has named the tracks: the tracker would replace them (it warns, as a notification)
        tracker = tracker_after(pipeline, tracker_config, "this project")
        if tracker is None or cancelled():
            return labels, added
        return _track(labels, tracker, report, summary), added

    # tracking user instances too changes more than predictions: then the result replaces the labels
    merge = tracker_config is None or tracker_config.kind == "predicted"
    return run_in_background(
        project, "predict", compute, on_progress=on_progress, on_done=_with_summary(on_done, summary), merge=merge
    )


def predict_video_file_in_background(
    project: PoseProject,
    run_dirs: Sequence[Path],
    video_path: str | Path,
    output: str | Path | None,
    target: str,
    tracker_config: TrackerConfig | None = None,
    *,
    merge: bool = False,
    options: InferenceOptions | None = None,
    on_done: Callable[[BackgroundOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Any:
    """Predict (and optionally track) a video that is not in the project, into its own ``.slp`` file.

    Parameters
    ----------
    project
        The viewer's project: untouched unless ``merge``.
    run_dirs
        The model's run folders (as for :func:`predict_in_background`).
    video_path
        The video file.
    output
        The ``.slp`` to write; ``None``: ``<video>.predictions.slp`` beside the video.
    target
        ``"all"``, ``"unlabelled"`` (the same for a new video) or a frame specification.
    tracker_config
        Track the predictions before saving; ``None`` = do not track.
    merge
        Also add the predictions (and the video) to the project, as one undoable step; with no
        labels open, the new file is opened as the project.
    options
        Inference options (default: :class:`InferenceOptions`).
    on_done, on_progress
        As for :func:`predict_in_background`. The outcome's ``saved_to``, ``frames_done`` and
        ``frames_total`` say what was written.

    ``worker.quit()`` cancels after the current batch: the frames finished are saved to the file
    (and its journal kept, so predicting the same video to the same file again does only the
    rest); nothing is added to the project.
    """
    run_dirs = [Path(d) for d in run_dirs]
    video_path = Path(video_path)
    output = None if output is None else Path(output)

    def compute(report: Callable[[Progress], None], cancelled: Callable[[], bool]) -> BackgroundOutcome:
        from napari_posetrack.core.inference.api import predict_video_file
        from napari_posetrack.core.inference.pipelines import load_pipeline

        report(Progress("loading", -1, 0, 0))
        pipeline = load_pipeline(run_dirs, options)
        result = predict_video_file(
            video_path,
            pipeline,
            output,
            target=target,
            tracker=tracker_config,
            progress=lambda v, d, t: report(Progress("predicting", -1, d, t)),
            cancel=cancelled,
        )
        return BackgroundOutcome(
            "predict video",
            labels=result.labels,
            added=result.added,
            cancelled=result.cancelled,
            saved_to=result.output,
            frames_done=result.frames_done,
            frames_total=result.frames_total,
        )

    return run_in_background(
        project,
        "predict video",
        compute,
        on_progress=on_progress,
        on_done=on_done,
        merge=True,
        apply=merge,
        finish_on_cancel=True,
    )


def _track(
    labels: Labels,
    config: TrackerConfig,
    report: Callable[[Progress], None],
    summary: dict[str, TrackingSummary],
    videos: Sequence[int] | None = None,
) -> Labels:
    """Track ``videos`` of ``labels`` (``None`` = all); the run's :class:`TrackingSummary` goes into
    ``summary["summary"]``."""
    from napari_posetrack.core.tracking.tracker import track

    result = track(labels, config, progress=lambda d, t: report(Progress("tracking", -1, d, t)), videos=videos)
    summary["summary"] = result.summary  # set before compute returns, so before on_done runs
    return result.labels


def _with_summary(
    on_done: Callable[[BackgroundOutcome], None] | None, summary: dict[str, TrackingSummary]
) -> Callable[[BackgroundOutcome], None]:
    """``on_done`` that first puts the tracking summary of a successful run into the outcome."""

    def done(outcome: BackgroundOutcome) -> None:
        if outcome.labels is not None:
            outcome.tracking_summary = summary.get("summary")
        if on_done is not None:
            on_done(outcome)

    return done


def track_in_background(
    project: PoseProject,
    tracker_config: TrackerConfig,
    *,
    videos: Sequence[int] | None = None,
    on_done: Callable[[BackgroundOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Any:
    """Track the project's existing instances (of ``tracker_config.kind``) in a napari worker.

    ``videos`` are the indices of the videos to track (``None`` = every video); the others keep
    their tracks.

    Tracking predictions only merges like prediction does (edits made meanwhile are kept); tracking
    user instances replaces the labels, and is refused if they were edited meanwhile.
    """
    if project.labels is None:
        raise ValueError("open or create labels before tracking")
    labels = project.labels.copy()
    summary: dict[str, TrackingSummary] = {}

    def compute(report: Callable[[Progress], None], cancelled: Callable[[], bool]) -> tuple[Labels, int]:
        return _track(labels, tracker_config, report, summary, videos), 0

    return run_in_background(
        project,
        "track",
        compute,
        on_progress=on_progress,
        on_done=_with_summary(on_done, summary),
        merge=tracker_config.kind == "predicted",
    )


__all__ = [
    "BackgroundOutcome",
    "Progress",
    "error_message",
    "predict_in_background",
    "predict_video_file_in_background",
    "progress_words",
    "run_in_background",
    "track_in_background",
]
