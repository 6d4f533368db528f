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

from napari_posetrack.core.errors import PoseTrackError

if TYPE_CHECKING:
    from napari_posetrack._widgets._project import PoseProject
    from napari_posetrack.core.inference.pipelines import InferenceOptions
    from napari_posetrack.core.labels import Labels
    from napari_posetrack.core.tracking.tracker import TrackerConfig

# how long the worker waits for news from the computation before checking for Cancel again
_POLL_S = 0.05


@dataclass
class BackgroundOutcome:
    """How a background prediction or tracking run ended (passed to ``on_done``).

    Exactly one holds: ``labels`` (success: the processed copy, already applied to the project when
    ``on_done`` runs), ``error`` (the message shown to the user), or ``cancelled``.
    """

    action: str
    labels: Labels | None = None
    added: int = 0
    error: str | None = None
    cancelled: bool = False
    seconds: float = 0.0


@dataclass
class Progress:
    """One progress report from the worker: ``stage`` is ``"loading"``, ``"predicting"`` or ``"tracking"``."""

    stage: str
    video: int
    done: int
    total: int


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
    """
    from napari.qt.threading import create_worker

    news: queue.SimpleQueue = queue.SimpleQueue()
    holder: dict[str, Any] = {}

    def cancelled() -> bool:
        # read by the engine between batches; quit() may stop the generator below before it sees it
        return bool(holder["worker"].abort_requested)

    def compute_thread() -> None:
        try:
            labels, added = compute(news.put, cancelled)
            news.put(("done", (labels, added)))
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
                yield item
                continue
            kind, payload = item
            seconds = time.perf_counter() - started
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
        if outcome.labels is not None:
            try:
                if merge:
                    project.apply_predictions(outcome.labels, action)
                elif state["edited"]:
                    raise PoseTrackError(
                        "the labels were edited while it ran, so its result was not applied; run it again"
                    )
                else:
                    project.apply(outcome.labels, action)
            except Exception as exc:  # noqa: BLE001 - e.g. the project was closed meanwhile
                outcome.labels, outcome.error = None, error_message(exc)
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
        if not merge:
            project.events.labels_changed.disconnect(on_labels_edited)
            project.events.labels_replaced.disconnect(on_labels_edited)
        outcome = state["outcome"] or BackgroundOutcome(action, cancelled=True)
        if on_done is not None:
            on_done(outcome)

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

    def compute(report: Callable[[Progress], None], cancelled: Callable[[], bool]) -> tuple[Labels, int]:
        from napari_posetrack.core.inference.api import predict_labels
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
        if tracker_config is None or cancelled():
            return labels, added
        return _track(labels, tracker_config, report), added

    # tracking user instances too changes more than predictions: then the result replaces the labels
    merge = tracker_config is None or tracker_config.kind == "predicted"
    return run_in_background(
        project, "predict", compute, on_progress=on_progress, on_done=on_done, merge=merge
    )


def _track(labels: Labels, config: TrackerConfig, report: Callable[[Progress], None]) -> Labels:
    from napari_posetrack.core.tracking.tracker import track_labels

    return track_labels(labels, config, progress=lambda d, t: report(Progress("tracking", -1, d, t)))


def track_in_background(
    project: PoseProject,
    tracker_config: TrackerConfig,
    *,
    on_done: Callable[[BackgroundOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Any:
    """Track the project's existing instances (of ``tracker_config.kind``) in a napari worker.

    Tracking predictions only merges like prediction does (edits made meanwhile are kept); tracking
    user instances replaces the labels, and is refused if they were edited meanwhile.
    """
    if project.labels is None:
        raise ValueError("open or create labels before tracking")
    labels = project.labels.copy()

    def compute(report: Callable[[Progress], None], cancelled: Callable[[], bool]) -> tuple[Labels, int]:
        return _track(labels, tracker_config, report), 0

    return run_in_background(
        project,
        "track",
        compute,
        on_progress=on_progress,
        on_done=on_done,
        merge=tracker_config.kind == "predicted",
    )


__all__ = ["BackgroundOutcome", "Progress", "error_message", "predict_in_background", "run_in_background", "track_in_background"]
