"""Streaming prediction over whole videos: background decoding, batched inference, a resumable journal.

Frames are decoded in a background thread into a short queue of batches while the network runs, so
memory stays constant in video length. Every finished batch is appended to a journal (an HDF5 file
beside the output) so a run that is interrupted resumes where it stopped; the journal becomes
predicted instances in :class:`~napari_posetrack.core.labels.Labels` at the end.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from napari_posetrack.core.errors import FileFormatError, PoseTrackError
from napari_posetrack.core.inference.pipelines import FramePredictions, Pipeline
from napari_posetrack.core.labels import PREDICTED, Labels, Video

if TYPE_CHECKING:
    from napari_posetrack.core.video.base import VideoReader

ProgressCallback = Callable[[int, int], None]
"""Called with ``(frames done, frames total)`` after every batch, from the post-processing thread."""


class PredictionCancelled(PoseTrackError):
    """The user stopped a prediction run; what was predicted so far is kept in the journal."""


class PredictionJournal:
    """Append-only HDF5 record of predicted frames, so an interrupted run can resume.

    Datasets: ``frames`` (frames done), ``instance_frame``, ``points`` (n, nodes, 2),
    ``point_scores`` (n, nodes), ``scores`` (n,), and for an identity model (``n_classes`` > 0)
    ``class_probs`` (n, classes). Every append is flushed before returning.
    """

    def __init__(self, path: str | os.PathLike[str], n_nodes: int, video_path: str, n_classes: int = 0) -> None:
        self.path = Path(path)
        self.n_nodes = n_nodes
        self.n_classes = int(n_classes)
        fresh = not self.path.exists()
        try:
            self._file = h5py.File(self.path, "a")
        except OSError as exc:
            raise FileFormatError(self.path, f"cannot open the prediction journal ({exc}); delete it to start over") from exc
        f = self._file
        if fresh or "frames" not in f:
            f.attrs["video_path"] = video_path
            f.attrs["n_nodes"] = n_nodes
            f.create_dataset("frames", (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
            f.create_dataset("instance_frame", (0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
            f.create_dataset("points", (0, n_nodes, 2), maxshape=(None, n_nodes, 2), dtype=np.float64, chunks=(1024, n_nodes, 2))
            f.create_dataset("point_scores", (0, n_nodes), maxshape=(None, n_nodes), dtype=np.float32, chunks=(1024, n_nodes))
            f.create_dataset("scores", (0,), maxshape=(None,), dtype=np.float32, chunks=(4096,))
            if self.n_classes:
                f.create_dataset("class_probs", (0, self.n_classes), maxshape=(None, self.n_classes),
                                 dtype=np.float32, chunks=(4096, self.n_classes))
        elif int(f.attrs.get("n_nodes", -1)) != n_nodes:
            raise FileFormatError(self.path, "this journal was written for another skeleton; delete it to start over")
        elif (f["class_probs"].shape[1] if "class_probs" in f else 0) != self.n_classes:
            raise FileFormatError(
                self.path, "this journal was written by a model with other identity classes; delete it to start over"
            )

    def done_frames(self) -> np.ndarray:
        return self._file["frames"][:]

    def append(self, results: Sequence[FramePredictions]) -> None:
        f = self._file
        frames = np.array([r.frame for r in results], dtype=np.int64)
        counts = np.array([len(r.scores) for r in results], dtype=np.int64)
        n = int(counts.sum())
        if n:
            new = {
                "instance_frame": np.repeat(frames, counts),
                "points": np.concatenate([r.points for r in results]).astype(np.float64),
                "point_scores": np.concatenate([r.point_scores for r in results]).astype(np.float32),
                "scores": np.concatenate([r.scores for r in results]).astype(np.float32),
            }
            if self.n_classes:
                new["class_probs"] = np.concatenate(
                    [r.class_probs if r.class_probs is not None else np.full((len(r.scores), self.n_classes), np.nan)
                     for r in results]
                ).astype(np.float32)
            for name, arr in new.items():
                ds = f[name]
                start = ds.shape[0]
                ds.resize(start + n, axis=0)
                ds[start:] = arr
        ds = f["frames"]
        start = ds.shape[0]
        ds.resize(start + len(frames), axis=0)
        ds[start:] = frames  # written last: a frame counts as done only once its instances are stored
        f.flush()

    def read(self) -> dict[str, np.ndarray]:
        f = self._file
        names = ("frames", "instance_frame", "points", "point_scores", "scores")
        return {name: f[name][:] for name in names + (("class_probs",) if "class_probs" in f else ())}

    def close(self) -> None:
        self._file.close()


def _batches(frames: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(frames), batch_size):
        yield frames[start : start + batch_size]


def _put(out: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; True when it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _decode_into(reader, frames: np.ndarray, batch_size: int, out: queue.Queue, stop: threading.Event) -> None:
    """Decode ``frames`` in batches into ``out``; contiguous runs use the reader's sequential path."""
    try:
        if len(frames) > 1 and np.all(np.diff(frames) == 1):
            sequential = reader.iter_frames(int(frames[0]), int(frames[-1]) + 1)
            decode = lambda idx: np.stack([next(sequential)[1] for _ in idx])  # noqa: E731
        else:
            decode = reader.frames
        for batch_idx in _batches(frames, batch_size):
            if not _put(out, (batch_idx, decode(batch_idx)), stop):
                return
        _put(out, None, stop)
    except BaseException as exc:  # handed to the consumer, which re-raises it with context
        _put(out, exc, stop)


def predict_frames(
    pipeline: Pipeline,
    video: Video | str | VideoReader,
    frames: np.ndarray | None = None,
    *,
    journal_path: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    queue_batches: int = 4,
) -> dict[str, np.ndarray]:
    """Predict ``frames`` of ``video`` (all when ``None``) and return the journal's arrays.

    ``video`` is a :class:`Video`, a path, or an already open reader (which stays open).

    With ``journal_path``, frames already in the journal are skipped and new ones appended after
    every batch, so a run that fails or is cancelled part-way keeps what it predicted.

    Raises
    ------
    PredictionCancelled
        ``cancel()`` returned true; the journal holds everything predicted so far.
    FileFormatError
        A frame could not be decoded (the message names the video and frame).
    """
    import tempfile

    from napari_posetrack.core.video import open_video

    # an open reader is used as it is (and left open), so callers need not index a video twice
    owned = not hasattr(video, "iter_frames")
    reader = open_video(video) if owned else video
    try:
        all_frames = np.arange(len(reader)) if frames is None else np.unique(np.asarray(frames, dtype=np.int64))
        tmpdir = None
        if journal_path is None:
            tmpdir = tempfile.TemporaryDirectory(prefix="posetrack-predict-")
            journal_path = Path(tmpdir.name) / "journal.h5"
        journal = PredictionJournal(journal_path, pipeline.skeleton.n_nodes, str(reader.path),
                                    n_classes=len(getattr(pipeline, "class_names", None) or ()))
        try:
            todo = np.setdiff1d(all_frames, journal.done_frames())
            total, done = len(all_frames), len(all_frames) - len(todo)
            if progress is not None:
                progress(done, total)
            batches: queue.Queue = queue.Queue(maxsize=queue_batches)
            raws: queue.Queue = queue.Queue(maxsize=queue_batches)
            stop = threading.Event()
            finished = {"done": done, "error": None}

            def post_process() -> None:
                # host stage: copies, grouping, journal writes, progress (one writer for the journal)
                while True:
                    raw = raws.get()
                    if raw is None:
                        return
                    try:
                        results = pipeline.assemble(raw)
                        journal.append(results)
                        finished["done"] += len(results)
                        if progress is not None:
                            progress(finished["done"], total)
                    except BaseException as exc:  # re-raised on the calling thread
                        finished["error"] = exc
                        stop.set()
                        return

            decoder = threading.Thread(
                target=_decode_into, args=(reader, todo, pipeline.options.batch_size, batches, stop), daemon=True
            )
            assembler = threading.Thread(target=post_process, daemon=True)
            decoder.start()
            assembler.start()
            submitted = done
            try:
                while len(todo) and not stop.is_set():
                    item = batches.get()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        if isinstance(item, PoseTrackError):
                            raise item
                        raise FileFormatError(reader.path, f"decoding failed part-way: {item}") from item
                    batch_idx, imgs = item
                    # device stage here, host stage on the assembler: the next batch runs meanwhile
                    if not _put(raws, pipeline.run_network(imgs, batch_idx), stop):
                        break
                    submitted += len(batch_idx)
                    if cancel is not None and cancel():
                        raise PredictionCancelled(
                            f"{reader.path}: prediction cancelled after {submitted} of {total} frames"
                        )
            finally:
                _put(raws, None, stop)  # the assembler finishes what was submitted, then ends
                assembler.join()
                stop.set()
                decoder.join(timeout=10)
            if finished["error"] is not None:
                raise finished["error"]
            return journal.read()
        finally:
            journal.close()
            if tmpdir is not None:
                tmpdir.cleanup()
    finally:
        if owned:
            reader.close()


def add_predictions(
    labels: Labels, video: int, predicted: dict[str, np.ndarray], class_names: list[str] | None = None
) -> int:
    """Put journal arrays into ``labels`` as predicted instances of ``video``.

    Earlier predictions on the predicted frames are replaced; user instances are never touched.
    With an identity model's ``class_names`` and the journal's ``class_probs``, the new instances are
    put on the tracks of those names (:func:`~napari_posetrack.core.tracking.identity.assign_identities`:
    exclusive per frame, smoothed over tracklets). Returns the number of instances added.
    """
    frames = np.unique(predicted["frames"])
    t = labels.instances
    old = np.flatnonzero((t.kind == PREDICTED) & (t.video == video) & np.isin(t.frame, frames))
    labels.delete(old)
    n = len(predicted["scores"])
    if n == 0:
        return 0
    pts = predicted["points"]
    ids = labels.add_instances(
        video,
        predicted["instance_frame"],
        pts,
        kind=PREDICTED,
        visible=~np.isnan(pts).any(axis=-1),
        score=predicted["scores"],
        point_scores=predicted["point_scores"],
    )
    if class_names and "class_probs" in predicted:
        from napari_posetrack.core.tracking.identity import apply_identities, assign_identities

        classes, scores = assign_identities(predicted["instance_frame"], pts, predicted["class_probs"])
        apply_identities(labels, labels.row_of_id(ids), class_names, classes, scores)
    return n
