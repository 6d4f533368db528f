"""The labelling project shown in one napari viewer, shared by every dock widget of that viewer.

A :class:`PoseProject` holds one :class:`~napari_posetrack.core.session.LabelsSession` (the single
source of truth) and the layers that view one of its videos: ``video: <name>`` (Image),
``poses: <name>`` (Points), ``skeleton: <name>`` (Vectors) and ``tracks: <name>`` (Tracks).

The Points layer holds a window of frames around the shown one (all of a short video; about
:data:`WINDOW_POINTS` points of a long one) and is refilled from the labels when the time slider
leaves the middle half of the window: napari's cost of adding or removing points grows with the
layer (it re-validates every point's marker symbol), so edits would otherwise slow down with the
length of the video. The layer's metadata still describes every instance of the video, so napari's
own writers save all of it. The Tracks layer follows the whole video (built from the labels once
the first frame is shown); the skeleton only the shown frame. When the video is not on disk and
one window does not hold it all, a black stand-in of its size gives the time slider its length.

Edits flow one way: the user drags, adds or deletes points -> the Points layer's ``events.data``
-> a session edit (undoable) -> the other layers are redrawn. Edits made through the session
(undo, redo, new instance, bulk deletion, a processed copy applied with :meth:`PoseProject.apply`)
redraw the layers from the labels.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal, SignalGroup

from napari_posetrack.core.labels import PREDICTED, Labels, Video
from napari_posetrack.core.session import Change, LabelsSession, find_autosave
from napari_posetrack.layers import (
    AXIS_LABELS,
    METADATA_KEY,
    POINT_FEATURES,
    blank_video_layer,
    frame_status,
    frame_time,
    frame_window,
    labels_to_layers,
    labels_to_points,
    labels_to_tracks,
    points_layer,
    points_per_frame,
    points_style,
    skeleton_vectors,
    unmatched_rows,
)

if TYPE_CHECKING:
    import napari

AUTOSAVE_INTERVAL_MS = 30_000
# redraw the skeleton at most this often while points are dragged
DRAG_REDRAW_MS = 15
# after edits settle (and after the layers are first shown), refresh the layer metadata (used by
# napari's own writers) and the tracks
IDLE_SYNC_MS = 600
UNTITLED_AUTOSAVE_DIR = Path.home() / ".cache" / "napari-posetrack"
# edits touching at most this many frames redraw only those frames' points (big projects stay fast)
PARTIAL_REDRAW_MAX_FRAMES = 64
# the Points layer holds the frames around the shown one up to about this many points: napari's
# cost of adding points grows with the layer; below this its fixed cost per edit dominates (halving
# the window to 5,000 gained nothing measurable on the 780k-point bench, bench/gui_edit_latency.py)
WINDOW_POINTS = 10_000
# the window of a layer that is never refilled (a project with no video yet)
_EVERYTHING = (0, 2**62)
# edits after which the Tracks layer needs recomputing (moving points shifts a centroid a little only)
_MOVES = frozenset({"move_points", "move_instance", "set_visible"})
# between napari's own status (layer, cursor coordinates) and the shown frame's number and time
STATUS_SEP = "  |  "
TRACK_COLOUR_FEATURE = "track_colour"  # the Tracks layer feature its colormap reads


class ProjectEvents(SignalGroup):
    """Signals of a :class:`PoseProject`."""

    labels_replaced = Signal()
    """Another Labels is shown (open, new, recover) or the whole store changed (apply, its undo)."""
    labels_changed = Signal(object)
    """Any edit: a :class:`~napari_posetrack.core.session.Change` (``None`` when unknown)."""
    video_changed = Signal(int)
    """The shown video changed (its index)."""
    saved = Signal(object)
    """The labels were saved (the path)."""
    point_menu_requested = Signal(int)
    """A point was right-clicked (its row in the Points layer): the labelling widget shows a menu."""


def batched_layer_changes(viewer: Any) -> Any:
    """A context in which removing several layers redraws napari's scene (and runs its full garbage
    collection, about 0.2 s with torch loaded) once, not once per layer."""
    batched = getattr(viewer.layers, "batched_update", None)  # napari >= 0.5.5
    return batched() if batched is not None else nullcontext()


def _frame_video_keys(video: np.ndarray, frame: np.ndarray) -> np.ndarray:
    return np.asarray(video, dtype=np.int64) << 32 | np.asarray(frame, dtype=np.int64)


class PoseProject:
    """One labels session shown in one viewer (see the module docstring).

    Use :func:`project_for` to get the viewer's project; widgets never construct their own.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer_ref = weakref.ref(viewer)
        self.session: LabelsSession | None = None
        self.video_index = 0
        self.events = ProjectEvents()
        self.active_instance: int | None = None
        self._video_layer: Any = None
        self._points_layer: Any = None
        self._vectors_layer: Any = None
        self._tracks_layer: Any = None
        self._blank_layer: Any = None
        # frames [start, stop) of the shown video held by the Points layer, and the video's length then
        self._window: tuple[int, int] = _EVERYTHING
        self._window_frames = 0
        # points per frame of the shown video, by (video, length): kept until the labels change
        self._frame_counts: tuple[tuple[int, int], np.ndarray] | None = None
        self._syncing = 0
        self._tracks_stale = False
        self._from_layer = False
        self._removing: tuple[np.ndarray, np.ndarray] | None = None
        self._untitled_path: Path | None = None
        from qtpy.QtCore import QTimer

        self._drag_timer = QTimer()
        self._drag_timer.setSingleShot(True)
        self._drag_timer.setInterval(DRAG_REDRAW_MS)
        self._drag_timer.timeout.connect(self.redraw_skeleton)
        self._idle_timer = QTimer()
        self._idle_timer.setSingleShot(True)
        self._idle_timer.setInterval(IDLE_SYNC_MS)
        self._idle_timer.timeout.connect(self._sync_metadata_and_tracks)
        self._autosave_timer = QTimer()
        self._autosave_timer.setInterval(AUTOSAVE_INTERVAL_MS)
        self._autosave_timer.timeout.connect(self.autosave)
        self._autosave_timer.start()
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:  # closing napari with unsaved edits leaves them in the recovery file
            app.aboutToQuit.connect(self.autosave)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.dims.events.current_step.connect(self._on_dims_current_step)
        self._status_busy = False
        viewer.events.status.connect(self._on_viewer_status)

    # ------------------------------------------------------------------ properties
    @property
    def viewer(self) -> napari.viewer.Viewer:
        viewer = self._viewer_ref()
        if viewer is None:
            raise RuntimeError("the viewer of this project was closed")
        return viewer

    @property
    def labels(self) -> Labels | None:
        return None if self.session is None else self.session.labels

    @property
    def path(self) -> Path | None:
        return None if self.session is None else self.session.path

    @property
    def video(self) -> Video | None:
        labels = self.labels
        if labels is None or not labels.videos:
            return None
        return labels.videos[self.video_index]

    @property
    def points_layer(self) -> Any:
        """The ``poses:`` Points layer of the shown video (``None`` when nothing is open)."""
        return self._points_layer

    @property
    def tracks_layer(self) -> Any:
        """The ``tracks:`` layer of the shown video (``None`` without tracked instances)."""
        return self._tracks_layer if self._tracks_layer in self.viewer.layers else None

    @property
    def video_layer(self) -> Any:
        return self._video_layer

    @property
    def current_frame(self) -> int:
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) else 0

    def frame_image(self, frame: int | None = None) -> np.ndarray:
        """Pixels of ``frame`` (default: the current one) of the shown video, ``(H, W)`` or ``(H, W, 3)``."""
        frame = self.current_frame if frame is None else int(frame)
        if self._video_layer is not None:
            return np.asarray(self._video_layer.data[frame])
        video = self.video
        if video is None:
            raise ValueError("no video is open")
        from napari_posetrack.core.video import open_video

        with open_video(video) as reader:
            image = reader.frame(frame)
        return image[..., 0] if image.shape[-1] == 1 else image

    # ------------------------------------------------------------------ opening
    def open(self, path: str | os.PathLike[str], *, recover: bool = False) -> None:
        """Load a labels file (SLEAP, DeepLabCut, analysis HDF5) and show its first video.

        With ``recover``, the autosave beside ``path`` is loaded instead (saving still goes to ``path``).
        Nothing shown is replaced when loading fails.
        """
        self.start_session(self.load_session(path, recover=recover))

    @staticmethod
    def load_session(path: str | os.PathLike[str], *, recover: bool = False) -> LabelsSession:
        """Read a labels file into a new session (no viewer involved: safe on a worker thread)."""
        from napari_posetrack.core.io import load_labels

        path = Path(path)
        if recover:
            return LabelsSession.recover(path)
        from napari_posetrack.core.io.dlc_inplace import is_dlc_project_file

        labels = load_labels(path)
        # SLEAP files and DeepLabCut projects (config.yaml, CollectedData tables) are saved back in
        # place; other formats (analysis files, DLC predictions) are saved as a new .slp
        in_place = path.name.lower().endswith(".slp") or is_dlc_project_file(path)
        return LabelsSession(labels, path if in_place else None)

    def start_session(self, session: LabelsSession) -> None:
        """Show a loaded session (main thread); videos not found are offered for replacement."""
        self._start(session)
        self.offer_missing_videos()

    # the open "Videos not found" dialog of the last file opened (None when every video was found)
    missing_videos_dialog: Any = None

    def offer_missing_videos(self) -> Any:
        """Open the "Videos not found" dialog (not blocking) when videos of the labels are missing.

        Returns the :class:`~napari_posetrack._widgets._missing_videos.MissingVideosDialog`, or
        ``None`` when every video is where the labels say.
        """
        from napari_posetrack._widgets._missing_videos import offer_missing_videos

        self.missing_videos_dialog = offer_missing_videos(self)
        return self.missing_videos_dialog

    def set_labels(self, labels: Labels, path: str | os.PathLike[str] | None = None) -> None:
        """Start a new session on ``labels`` (saved to ``path``) and show its first video."""
        self._start(LabelsSession(labels, path))

    @staticmethod
    def autosave_of(path: str | os.PathLike[str]) -> Path | None:
        """The crash-recovery file of ``path`` when it is newer than the file itself."""
        return find_autosave(path)

    def _start(self, session: LabelsSession) -> None:
        if self.session is not None:
            self.session.changed.remove(self._on_session_changed)
        self.session = session
        self._frame_counts = None
        session.changed.append(self._on_session_changed)
        self.active_instance = None
        self.video_index = 0
        self._show(rebuild_video=True)
        self.events.labels_replaced.emit()
        self.events.video_changed.emit(self.video_index)

    def adopt_open_layers(self) -> bool:
        """Take over the pose layers a labels file opened through napari's reader created.

        Returns ``True`` when layers were adopted (they are replaced by this project's layers).
        """
        from napari.layers import Points

        from napari_posetrack.layers import points_layers_to_labels

        viewer = self.viewer
        ours = {id(x) for x in self._own_layers()}
        poses = [
            layer
            for layer in viewer.layers
            if isinstance(layer, Points)
            and id(layer) not in ours
            and METADATA_KEY in layer.metadata
            and "skeleton" in layer.metadata[METADATA_KEY]
        ]
        if not poses:
            return False
        labels = points_layers_to_labels(
            [(np.asarray(p.data), {c: p.features[c].to_numpy() for c in p.features}, p.metadata) for p in poses]
        )
        source = poses[0].metadata[METADATA_KEY].get("source")
        tags = {p.name.split(": ", 1)[-1] for p in poses}
        with batched_layer_changes(viewer):
            for layer in list(viewer.layers):
                prefix, _, tag = layer.name.partition(": ")
                if tag in tags and prefix in {"video", "poses", "skeleton", "tracks"} and id(layer) not in ours:
                    viewer.layers.remove(layer)
        path = source if source and str(source).lower().endswith(".slp") else None
        self.set_labels(labels, path)
        self.offer_missing_videos()
        return True

    # ------------------------------------------------------------------ navigation
    def show_video(self, index: int) -> None:
        """Show video ``index`` of the labels (its layers replace the shown video's)."""
        labels = self.labels
        if labels is None:
            raise ValueError("no labels are open")
        if not 0 <= index < len(labels.videos):
            raise IndexError(f"video {index} out of range (the labels hold {len(labels.videos)} videos)")
        if index == self.video_index and self._points_layer is not None:
            return
        self.video_index = int(index)
        self.active_instance = None
        self._show(rebuild_video=True)
        self.events.video_changed.emit(self.video_index)

    def add_video(self, path: str | os.PathLike[str] | Video) -> int:
        """Add a video file to the project (one undoable step) and return its index.

        ``path`` may be a :class:`Video` already probed (its frame index read off the GUI thread).
        """
        from napari_posetrack.core.video import probe_video

        video = path if isinstance(path, Video) else probe_video(path)
        labels = self.labels
        if labels is None:
            raise ValueError("no labels are open: create a project (pick a skeleton) first")
        new = labels.copy()
        index = new.add_video(video)
        self.apply(new, "add video")
        return index

    def go_to(self, frame: int, video: int | None = None) -> None:
        """Show ``frame`` (of ``video``, default the shown one)."""
        if video is not None and video != self.video_index:
            self.show_video(video)
        self.viewer.dims.set_current_step(0, int(frame))

    # ------------------------------------------------------------------ whole-store edits
    def apply(self, new_labels: Labels, action: str) -> None:
        """Make the labels hold ``new_labels`` (a processed copy) in one undoable step."""
        if self.session is None:
            self.set_labels(new_labels)
            return
        self.session.replace_all(new_labels, action)

    def apply_predictions(self, result: Labels, action: str = "predict") -> None:
        """Put the predictions (and tracks) of ``result`` into the labels in one undoable step.

        ``result`` is a copy of the labels that inference or tracking worked on. Edits made while
        it ran are kept: the predictions of every frame ``result`` holds predictions for are
        replaced by ``result``'s, and user instances stay as they are now.
        """
        labels = self.labels
        if labels is None:
            self.set_labels(result)
            return
        new = labels.copy()
        rt = result.instances
        pred = np.flatnonzero(rt.kind == PREDICTED)
        vmap = np.array(
            [next((i for i, v in enumerate(new.videos) if v.matches_path(rv)), -1) for rv in result.videos]
            or [-1],
            dtype=np.int64,
        )
        keys = _frame_video_keys(vmap[rt.video[pred]], rt.frame[pred])
        t = new.instances
        stale = (t.kind == PREDICTED) & np.isin(_frame_video_keys(t.video, t.frame), keys)
        new.delete(np.flatnonzero(stale))
        incoming = result.subset(pred)
        if len(incoming.tracks):
            # tracking renames identities: drop ours that nothing uses any more
            used = np.unique(new.instances.track[new.instances.track >= 0])
            if len(used) == 0:
                new.tracks = []
        new.merge(incoming)  # ``delete`` above already cleared links to the replaced predictions
        self.apply(new, action)

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Save the labels atomically (``path`` None: the project file) and drop the autosave."""
        if self.session is None:
            raise ValueError("no labels are open")
        target = self.session.save(path)
        self.events.saved.emit(target)
        return target

    def autosave(self) -> Path | None:
        """Write the crash-recovery file when there are unsaved edits (called by a timer)."""
        session = self.session
        if session is None or not session.dirty:
            return None
        project = session.path
        if project is None:
            if self._untitled_path is None:
                UNTITLED_AUTOSAVE_DIR.mkdir(parents=True, exist_ok=True)
                self._untitled_path = UNTITLED_AUTOSAVE_DIR / f"untitled-{os.getpid()}.slp"
            project = self._untitled_path
        try:
            return session.autosave(project)
        except OSError as err:
            from napari.utils.notifications import show_warning

            show_warning(f"autosave next to {project} failed: {err}")
            return None

    # ------------------------------------------------------------------ layers
    def _own_layers(self) -> list[Any]:
        return [
            x
            for x in (
                self._blank_layer, self._video_layer, self._tracks_layer, self._vectors_layer, self._points_layer
            )
            if x is not None
        ]

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Layer changes made by the project itself are not edits."""
        self._syncing += 1
        try:
            yield
        finally:
            self._syncing -= 1

    def _remove_own_layers(self, *, keep_video: bool) -> None:
        viewer = self.viewer
        with self._quiet(), batched_layer_changes(viewer):
            for attr in ("_tracks_layer", "_vectors_layer", "_points_layer", "_video_layer", "_blank_layer"):
                layer = getattr(self, attr)
                if layer is None or (keep_video and attr == "_video_layer"):
                    continue
                if layer in viewer.layers:
                    viewer.layers.remove(layer)
                setattr(self, attr, None)

    def _show(self, *, rebuild_video: bool) -> None:
        """(Re)create the layers of the shown video."""
        from napari.utils.notifications import show_warning

        labels = self.labels
        viewer = self.viewer
        same_video = (
            self._video_layer is not None
            and self.video is not None
            and self._video_layer.metadata.get("path") == self.video.path
        )
        self._remove_own_layers(keep_video=same_video and not rebuild_video)
        if labels is None or not labels.videos:
            if labels is not None:
                self._add_empty_points(labels)
            return
        window = self._window_around(self.current_frame)
        # the Tracks layer (every frame's centroids) comes a moment after the first frame is shown
        layers, problems = labels_to_layers(
            labels, videos=[self.video_index], load_video=self._video_layer is None, window=window, tracks=False
        )
        for message in problems:
            show_warning(message)
        has_video = self._video_layer is not None or any(kind == "image" for _, _, kind in layers)
        self._window = window
        with self._quiet():
            if not has_video and window != (0, self._window_frames):
                blank, blank_kwargs, _ = self._blank_frames()
                self._blank_layer = viewer.add_image(blank, **blank_kwargs)
            for data, kwargs, kind in layers:
                if kind == "image":
                    self._video_layer = viewer.add_image(data, **kwargs)
                elif kind == "vectors":
                    self._vectors_layer = viewer.add_vectors(data, **kwargs)
                elif kind == "points":
                    if self._leaves_window_middle(self.current_frame):
                        # the layers added first moved the time slider: build the window shown there
                        self._window = self._window_around(self.current_frame)
                        data, kwargs, _ = points_layer(
                            *labels_to_points(labels, self.video_index, window=self._window), kwargs["name"]
                        )
                    self._points_layer = viewer.add_points(data, **kwargs)
        if self._vectors_layer is None and labels.skeleton.edges:
            with self._quiet():
                self._vectors_layer = viewer.add_vectors(
                    np.zeros((0, 2, 3)), name=f"skeleton: {self._tag()}", ndim=3, edge_width=1.5,
                    vector_style="line", axis_labels=AXIS_LABELS,
                )
        self._connect_points()
        if self._leaves_window_middle(self.current_frame):  # the new layers moved the slider
            self._fill_window(*self._window_around(self.current_frame))
        self.redraw_skeleton()
        self._tracks_stale = True
        self._idle_timer.start()
        self.viewer.layers.selection.active = self._points_layer
        self.viewer.title = f"napari-posetrack: {self._tag()} ({self.video_index + 1} of {len(labels.videos)})"
        self._on_viewer_status()

    def _tag(self) -> str:
        video = self.video
        return (video.name or f"video {self.video_index}") if video is not None else "new project"

    def _blank_frames(self) -> Any:
        """The stand-in Image tuple of the shown video (not on disk): its length and size, black."""
        video = self.video
        if video is not None and video.shape is not None:
            height, width = video.shape[:2]
        else:  # unknown size: as far as the points reach
            points = self.labels.instances.points[self.labels.rows(video=self.video_index)]
            far = np.nanmax(points.reshape(-1, 2), axis=0) if np.isfinite(points).any() else np.zeros(2)
            width, height = (np.ceil(far) + 1).astype(int)
        return blank_video_layer(self._window_frames, height, width, f"video: {self._tag()} (not found)")

    def _add_empty_points(self, labels: Labels) -> None:
        """The Points layer of a project with no video yet (labelling starts after a video is added)."""
        d, kwargs, _ = points_layer(*labels_to_points(labels, 0), f"poses: {self._tag()}")
        with self._quiet():
            self._points_layer = self.viewer.add_points(d, **kwargs)
        self._window, self._window_frames = _EVERYTHING, 0
        self._connect_points()

    def _connect_points(self) -> None:
        layer = self._points_layer
        if layer is None:
            return
        layer.events.data.connect(self._on_points_data)
        layer.feature_defaults = {
            "instance": -1, "track": "", "node": "", "score": np.nan, "kind": "user", "visible": True,
            "rejected": "",
        }
        layer.mouse_drag_callbacks.insert(0, self._on_points_drag)
        layer.mouse_double_click_callbacks.append(self._on_points_double_click)

    def _on_layer_removed(self, event: Any) -> None:
        removed = event.value
        if self._syncing:
            return
        for attr in ("_tracks_layer", "_vectors_layer", "_points_layer", "_video_layer", "_blank_layer"):
            if getattr(self, attr) is removed:
                setattr(self, attr, None)

    def refresh(self) -> None:
        """Redraw the shown video's pose layers from the labels (the whole window, vectorised)."""
        layer = self._points_layer
        labels = self.labels
        if labels is None:
            return
        if layer is None or layer not in self.viewer.layers:
            self._show(rebuild_video=False)
            return
        self._fill_window(*self._window_around(self.current_frame))
        self._tracks_stale = True
        self._idle_timer.start()

    # ------------------------------------------------------------------ the window of frames
    def _n_frames(self) -> int:
        """Length of the shown video: its frame count, or its last labelled frame if that is later."""
        video, labels = self.video, self.labels
        known = (video.n_frames or 0) if video is not None else 0
        if self._video_layer is not None and self._video_layer in self.viewer.layers:
            known = max(known, int(self._video_layer.data.shape[0]))
        frames = labels.instances.frame[labels.rows(video=self.video_index)]
        return max(known, int(frames.max()) + 1 if len(frames) else 0, 1)

    def _window_around(self, frame: int) -> tuple[int, int]:
        """The window of frames to show around ``frame`` (also notes the video's length)."""
        labels = self.labels
        if labels is None or not labels.videos:
            self._window_frames = 0
            return _EVERYTHING
        key = (self.video_index, self._n_frames())
        if self._frame_counts is None or self._frame_counts[0] != key:
            self._frame_counts = (key, points_per_frame(labels, self.video_index, key[1]))
        counts = self._frame_counts[1]
        self._window_frames = len(counts)
        return frame_window(counts, frame, WINDOW_POINTS)

    def _leaves_window_middle(self, frame: int) -> bool:
        """Whether ``frame`` is outside the middle half of the window (its ends at the video's ends count)."""
        start, stop = self._window
        if not start <= frame < stop:
            return True
        quarter = (stop - start) // 4
        return (start > 0 and frame < start + quarter) or (stop < self._window_frames and frame >= stop - quarter)

    def _fill_window(self, start: int, stop: int) -> None:
        """Make the Points layer hold frames ``[start, stop)`` from the labels; selected points stay selected."""
        layer = self._points_layer
        data, features, metadata = labels_to_points(self.labels, self.video_index, window=(start, stop))
        with self._quiet():
            selected = self._point_keys(layer.selected_data)
            layer.selected_data = set()
            layer.data = data
            layer.features = features
            layer.metadata = metadata
            self._style_points()
            self._window = (start, stop)
            keep = self._rows_of_keys(selected)
            if keep:
                layer.selected_data = keep
        self.redraw_skeleton()

    def _point_keys(self, rows: Any) -> set[tuple[int, str]]:
        """``(instance id, node)`` of Points layer rows: what names a point whatever the rows hold."""
        if not rows:
            return set()
        layer = self._points_layer
        rows = np.fromiter(rows, dtype=np.int64)
        inst = layer.features["instance"].to_numpy()[rows].astype(np.int64)
        return set(zip(inst.tolist(), layer.features["node"].to_numpy()[rows].tolist()))

    def _rows_of_keys(self, keys: set[tuple[int, str]]) -> set[int]:
        """Rows of the Points layer showing the points ``keys`` names (see :meth:`_point_keys`)."""
        if not keys:
            return set()
        layer = self._points_layer
        inst = layer.features["instance"].to_numpy().astype(np.int64)
        candidates = np.flatnonzero(np.isin(inst, [k[0] for k in keys]))
        nodes = layer.features["node"].to_numpy()[candidates]
        return {int(r) for r, i, n in zip(candidates, inst[candidates], nodes) if (int(i), n) in keys}

    def refresh_frames(self, frames: set[int] | np.ndarray) -> None:
        """Redraw only the points of ``frames`` of the shown video (after an edit touching few frames).

        The rows of those frames are removed from the Points layer and the labels' rows of those
        frames appended, except that an edit that only adds points (a new instance) only appends and
        one that only removes points (a deleted instance) only removes: napari's cost of a removal or
        an addition grows with the layer, so each one skipped counts.
        """
        layer, labels = self._points_layer, self.labels
        if labels is None or layer is None or layer not in self.viewer.layers:
            self.refresh()
            return
        frames = np.fromiter(frames, dtype=np.int64) if isinstance(frames, set) else np.asarray(frames, np.int64)
        frames = frames[(frames >= self._window[0]) & (frames < self._window[1])]  # the others are not shown
        if len(frames) == 0:
            return
        data = np.asarray(layer.data)
        old_rows = np.flatnonzero(np.isin(np.rint(data[:, 0]).astype(np.int64), frames))
        old_features = {c: layer.features[c].to_numpy()[old_rows] for c in POINT_FEATURES if c in layer.features}
        new_data, new_features, _ = labels_to_points(labels, self.video_index, frames)
        stale, fresh = unmatched_rows(data[old_rows], old_features, new_data, new_features)
        if stale.any() and fresh.any():
            # points changed in place: their frames are redrawn whole, so rows keep the labels' order
            old_frames = np.rint(data[old_rows, 0])
            changed = np.union1d(old_frames[stale], new_data[fresh, 0])
            stale |= np.isin(old_frames, changed)
            fresh |= np.isin(new_data[:, 0], changed)
        with self._quiet():
            layer.selected_data = set()
            if stale.any():
                layer.remove(old_rows[stale].tolist())
            if fresh.any():
                self._append_points(new_data[fresh], {c: v[fresh] for c, v in new_features.items()})
        self.redraw_skeleton()

    def _append_points(self, data: np.ndarray, features: dict[str, np.ndarray]) -> None:
        """Append rows with their features and styling.

        napari re-validates every point's marker symbol whenever points are added, so everything is
        added in one call; the other symbol is then set on just those rows by selecting them (what
        napari does when the symbol control changes with points selected).
        """
        layer = self._points_layer
        style = points_style(features, layer.metadata)
        symbols = np.broadcast_to(np.asarray(style["symbol"]).astype(str), (len(data),))
        start = len(layer.data)
        layer.current_symbol = str(symbols[0])
        layer.add(data)
        self._set_symbols(symbols, start, already=str(symbols[0]))
        table = layer.features
        merged = {}
        for name in table.columns:
            column = table[name].to_numpy().copy()
            if name in features:
                column[start:] = np.asarray(features[name])
            merged[name] = column
        layer.features = merged
        face, border = np.array(layer.face_color), np.array(layer.border_color)
        face[start:] = np.asarray(style["face_color"])
        border[start:] = np.asarray(style["border_color"])
        layer.face_color = face
        layer.border_color = border

    def _style_points(self) -> None:
        layer = self._points_layer
        features = {c: layer.features[c].to_numpy() for c in layer.features}
        style = points_style(features, layer.metadata)
        if len(layer.data):
            layer.face_color = style["face_color"]
            layer.border_color = style["border_color"]
            symbols = np.broadcast_to(np.asarray(style["symbol"]).astype(str), (len(layer.data),))
            values, counts = np.unique(symbols, return_counts=True)
            most = str(values[np.argmax(counts)])
            layer.symbol = most  # one value: validated once, not once per point
            self._set_symbols(symbols, 0, already=most)

    def _set_symbols(self, symbols: np.ndarray, start: int, already: str) -> None:
        """Give rows ``start:`` of the Points layer the marker ``symbols`` (those showing ``already`` have it).

        napari validates every point's symbol in Python when handed an array of them, so each other
        symbol is set on its rows by selecting them (what napari does when the symbol control changes
        with points selected): a cost per symbol, not per point.
        """
        layer = self._points_layer
        for symbol in np.unique(symbols[symbols != already]):
            layer.selected_data = set((start + np.flatnonzero(symbols == symbol)).tolist())
            layer.current_symbol = str(symbol)
        layer.selected_data = set()
        layer.current_symbol = already  # what a point placed in napari's add mode gets until redrawn

    def redraw_skeleton(self) -> None:
        """Redraw the skeleton lines of the current frame from the live point positions.

        Only the shown frame's lines are drawn, so the cost follows the animals on screen, not the
        length of the video: it runs while points are dragged and whenever the frame changes.
        """
        layer, vectors_layer = self._points_layer, self._vectors_layer
        if layer is None or vectors_layer is None or vectors_layer not in self.viewer.layers:
            return
        data = np.asarray(layer.data)
        on_frame = np.flatnonzero(np.rint(data[:, 0]) == self.current_frame) if len(data) else []
        features = {
            c: layer.features[c].to_numpy()[on_frame]
            for c in ("instance", "node", "track", "kind", "rejected")
            if c in layer.features
        }
        vectors, colours = skeleton_vectors(data[on_frame], features, layer.metadata)
        with self._quiet():
            vectors_layer.data = vectors
            if len(colours):
                vectors_layer.edge_color = colours

    # ------------------------------------------------------------------ status bar
    def frame_status_text(self) -> str | None:
        """The shown frame's number and time (``"frame 12/300 · 0.480 s"``); ``None`` with no video shown.

        The time is the frame's timestamp in the video file (variable frame rates included), else
        ``frame / fps``; it is left out when neither is known.
        """
        video = self.video
        if video is None:
            return None
        frame = self.current_frame
        layer = self._video_layer
        timestamps = layer.metadata.get("timestamps") if layer is not None else None
        return frame_status(frame, self._n_frames() or None, frame_time(frame, timestamps, video.fps))

    def _on_viewer_status(self, event: Any = None) -> None:
        """Append the shown frame's number and time to napari's status (cursor moves, slider moves)."""
        if self._status_busy:
            return
        text = self.frame_status_text()
        if text is None:
            return
        viewer = self.viewer
        status = viewer.status
        if isinstance(status, dict):  # napari's layer status: the bar shows its "coordinates"
            coordinates = str(status.get("coordinates", "")).split(STATUS_SEP)[0]
            new: str | dict = {**status, "coordinates": f"{coordinates}{STATUS_SEP}{text}"}
        else:
            new = f"{str(status).split(STATUS_SEP)[0]}{STATUS_SEP}{text}"
        if new == status:
            return
        self._status_busy = True
        try:
            viewer.status = new
        finally:
            self._status_busy = False

    def _on_dims_current_step(self, event: Any) -> None:
        self._on_viewer_status()
        layer = self._points_layer
        if (
            not self._syncing
            and self.labels is not None
            and layer is not None
            and layer in self.viewer.layers
            and self._leaves_window_middle(self.current_frame)
        ):
            self._fill_window(*self._window_around(self.current_frame))
        else:
            self.redraw_skeleton()

    def _redraw_tracks(self) -> None:
        if self._points_layer is None or self.labels is None:
            return
        from napari.utils.colormaps import Colormap

        from napari_posetrack.layers import track_colour_positions, track_colour_stops

        tracks, props = labels_to_tracks(self.labels, self.video_index)
        # each path in its track's colour (as its points), not napari's colormap over track ids
        props[TRACK_COLOUR_FEATURE] = track_colour_positions(tracks[:, 0], len(self.labels.tracks))
        colors, controls = track_colour_stops(self.labels.tracks)
        colormaps = {TRACK_COLOUR_FEATURE: Colormap(colors, controls=controls, interpolation="zero",
                                                    name="posetrack tracks")}
        viewer = self.viewer
        existing = self._tracks_layer if self._tracks_layer in viewer.layers else None
        with self._quiet():
            if existing is not None and len(tracks):
                existing.data = tracks  # in place: re-adding a layer costs a scene-graph rebuild
                existing.features = props
                existing.colormaps_dict = colormaps
                existing.color_by = TRACK_COLOUR_FEATURE
                return
            if existing is not None:
                viewer.layers.remove(existing)
            self._tracks_layer = None
            if len(tracks):
                index = viewer.layers.index(self._points_layer) if self._points_layer in viewer.layers else None
                self._tracks_layer = viewer.add_tracks(
                    tracks, features=props, name=f"tracks: {self._tag()}", tail_length=15, tail_width=2,
                    axis_labels=AXIS_LABELS, colormaps_dict=colormaps, color_by=TRACK_COLOUR_FEATURE,
                )
                if index is not None:
                    viewer.layers.move(viewer.layers.index(self._tracks_layer), index)
                viewer.layers.selection.active = self._points_layer

    def _sync_metadata_and_tracks(self) -> None:
        """Bring the Points layer's round-trip metadata and the Tracks layer up to date."""
        labels, layer = self.labels, self._points_layer
        if labels is None or layer is None:
            return
        # the metadata of the window (it describes the whole video): napari's writers save all of it
        _, _, metadata = labels_to_points(labels, self.video_index, window=self._window)
        with self._quiet():
            layer.metadata = metadata
        if self._tracks_stale:
            self._tracks_stale = False
            self._redraw_tracks()

    # ------------------------------------------------------------------ session -> layers
    def _on_session_changed(self, change: Change) -> None:
        self._frame_counts = None
        if change.whole and (not self.labels.videos or self.video_index >= len(self.labels.videos)):
            self.video_index = 0
            self._show(rebuild_video=True)
            self.events.video_changed.emit(self.video_index)
        elif change.whole:
            vectors_ok = (self._vectors_layer is not None) == bool(self.labels.skeleton.edges)
            video_ok = self._video_layer is not None and self._video_layer.metadata.get("path") == self.video.path
            if vectors_ok and video_ok and self._points_layer is not None:
                self.refresh()
                self._sync_metadata_and_tracks()
            else:
                self._show(rebuild_video=not video_ok)
        elif change.tracks_changed:
            # names and colours of tracks live in the layer metadata, every point's style and the paths
            self.refresh()
            self._tracks_stale = True
            self._sync_metadata_and_tracks()
        elif not self._from_layer:
            start, stop = self._window
            shown = {f for v, f in change.frames if v == self.video_index and start <= f < stop}
            if change.frames and len(shown) <= PARTIAL_REDRAW_MAX_FRAMES:
                if shown:
                    self.refresh_frames(shown)
                self._tracks_stale = self._tracks_stale or change.action not in _MOVES
                self._idle_timer.start()
            else:
                self.refresh()
        else:
            self._idle_timer.start()
        self.events.labels_changed.emit(change)
        if change.whole:
            self.events.labels_replaced.emit()

    @contextmanager
    def _edit_from_layer(self) -> Iterator[None]:
        """Session edits whose result the Points layer already shows (no full redraw)."""
        self._from_layer = True
        try:
            yield
        finally:
            self._from_layer = False

    # ------------------------------------------------------------------ layers -> session
    def node_index_of(self, names: np.ndarray) -> np.ndarray:
        nodes = self.labels.skeleton.nodes
        lookup = {name: i for i, name in enumerate(nodes)}
        return np.array([lookup.get(str(n), -1) for n in names], dtype=np.int64)

    def rows_info(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(instance ids, node indices)`` of Points layer rows."""
        layer = self._points_layer
        rows = np.asarray(rows, dtype=np.int64)
        inst = layer.features["instance"].to_numpy()[rows].astype(np.int64)
        nodes = self.node_index_of(layer.features["node"].to_numpy()[rows])
        return inst, nodes

    def _on_points_data(self, event: Any) -> None:
        if self._syncing or self.session is None:
            return
        action = str(event.action)
        rows = np.asarray(event.data_indices, dtype=np.int64).reshape(-1)
        if action.endswith("changed") or action == "ActionType.CHANGED":
            self._points_moved(rows)
        elif action.endswith("added"):
            self._points_added(rows)
        elif action.endswith("removing"):
            self._removing = self.rows_info(rows) if len(rows) else None
        elif action.endswith("removed"):
            removed, self._removing = self._removing, None
            if removed is not None:
                self._points_removed(*removed)

    def _points_moved(self, rows: np.ndarray) -> None:
        layer = self._points_layer
        if len(rows) == 0 or len(rows) == len(layer.data) and len(rows) > 64:
            return  # a whole-layer data assignment is not a drag
        inst, nodes = self.rows_info(rows)
        yx = np.asarray(layer.data)[rows, 1:]
        labels = self.labels
        with self._edit_from_layer():
            for instance_id in np.unique(inst):
                if instance_id < 0:
                    continue
                mine = inst == instance_id
                row = labels.row_of_id(np.array([instance_id]))
                if row[0] < 0:
                    continue
                old = labels.instances.points[row[0]]
                present = ~np.isnan(old).any(axis=-1)
                xy = yx[mine][:, ::-1]
                moved_all = set(nodes[mine].tolist()) == set(np.flatnonzero(present).tolist())
                if moved_all and present.sum() > 1:
                    shift = (xy - old[nodes[mine]]).mean(axis=0)
                    self.session.move_instance(int(instance_id), shift, merge_key=None)
                else:
                    self.session.move_points(int(instance_id), nodes[mine], xy, merge_key=None)
                self.active_instance = int(instance_id)
        self.session.seal()
        self.redraw_skeleton()

    def _points_added(self, rows: np.ndarray) -> None:
        """A point placed in napari's add mode: the next missing node of the active instance."""
        layer = self._points_layer
        labels = self.labels
        data = np.asarray(layer.data)
        for r in rows:
            frame = int(np.rint(data[r, 0]))
            xy = data[r, 2:0:-1]
            target = self._instance_to_complete(frame)
            if target is None:
                points = np.full((labels.n_nodes, 2), np.nan)
                points[0] = xy
                self.active_instance = self.session.add_instance(self.video_index, frame, points)
            else:
                instance_id, node = target
                self.session.move_points(instance_id, [node], xy[None], merge_key=None)
                self.active_instance = instance_id

    def _instance_to_complete(self, frame: int) -> tuple[int, int] | None:
        """``(instance id, first missing node)`` of the active user instance on ``frame``, if any."""
        labels = self.labels
        if self.active_instance is None:
            return None
        row = labels.row_of_id(np.array([self.active_instance]))[0]
        if row < 0:
            return None
        t = labels.instances
        if int(t.frame[row]) != frame or int(t.video[row]) != self.video_index or t.kind[row] == PREDICTED:
            return None
        missing = np.flatnonzero(np.isnan(t.points[row]).any(axis=-1))
        return (self.active_instance, int(missing[0])) if len(missing) else None

    def _points_removed(self, inst: np.ndarray, nodes: np.ndarray) -> None:
        labels = self.labels
        whole = []
        for instance_id in np.unique(inst):
            if instance_id < 0:
                continue
            row = labels.row_of_id(np.array([instance_id]))[0]
            if row < 0:
                continue
            present = ~np.isnan(labels.instances.points[row]).any(axis=-1)
            gone = nodes[inst == instance_id]
            if set(np.flatnonzero(present).tolist()) <= set(gone.tolist()):
                whole.append(int(instance_id))
            else:
                self.session.clear_points(int(instance_id), gone[gone >= 0])
        if whole:
            self.session.delete_instances(whole)

    # ------------------------------------------------------------------ mouse
    def _on_points_drag(self, layer: Any, event: Any) -> Any:
        """Alt-drag moves the whole instance under the cursor; any drag keeps the skeleton drawn.

        A right click on a point asks for the point menu (occlude, to user instance, delete).
        """
        if getattr(event, "button", 1) == 2:
            value = layer.get_value(event.position, world=True)
            if value is not None:
                self.events.point_menu_requested.emit(int(value))
            return
        if "Alt" in event.modifiers and layer.mode == "select":
            value = layer.get_value(event.position, world=True)
            if value is not None:
                instance = layer.features["instance"].to_numpy()
                layer.selected_data = set(np.flatnonzero(instance == instance[value]).tolist())
        if layer.mode == "select":
            value = layer.get_value(event.position, world=True)
            if value is not None:
                self.active_instance = int(layer.features["instance"].to_numpy()[value])
        yield
        while event.type == "mouse_move":
            if not self._drag_timer.isActive():
                self._drag_timer.start()
            yield

    def _on_points_double_click(self, layer: Any, event: Any) -> None:
        """Double-clicking a predicted point turns its instance into a user instance."""
        value = layer.get_value(event.position, world=True)
        if value is None:
            return
        if layer.features["kind"].to_numpy()[value] == "predicted":
            self.promote(int(layer.features["instance"].to_numpy()[value]))

    # ------------------------------------------------------------------ instance actions (labelling widget)
    def selected_instances(self) -> np.ndarray:
        """Ids of the instances with a selected point in the Points layer."""
        layer = self._points_layer
        if layer is None or not layer.selected_data:
            return np.zeros(0, dtype=np.int64)
        rows = np.fromiter(layer.selected_data, dtype=np.int64)
        inst = layer.features["instance"].to_numpy()[rows].astype(np.int64)
        return np.unique(inst[inst >= 0])

    def promote(self, instance_id: int) -> int:
        """Turn a prediction into a user instance (the prediction stays, hidden under it)."""
        new_id = self.session.promote_prediction(instance_id)
        self.active_instance = new_id
        return new_id


_PROJECTS: dict[int, tuple[weakref.ReferenceType, PoseProject]] = {}


def has_project(viewer: napari.viewer.Viewer) -> bool:
    """Whether ``viewer`` already has its :class:`PoseProject` (without creating one)."""
    while hasattr(viewer, "__wrapped__"):
        viewer = viewer.__wrapped__
    entry = _PROJECTS.get(id(viewer))
    return entry is not None and entry[0]() is viewer


def project_for(viewer: napari.viewer.Viewer) -> PoseProject:
    """The project of ``viewer`` (created on first use; every dock widget of the viewer shares it).

    A labels file already opened through napari's reader is adopted. napari hands each plugin widget
    its own public-only proxy of the viewer, so the project is keyed by (and drives) the viewer
    behind the proxy: every widget of one window must find the same project.
    """
    while hasattr(viewer, "__wrapped__"):  # wrapt's documented way to reach a proxy's object
        viewer = viewer.__wrapped__
    for key, (ref, _) in list(_PROJECTS.items()):
        if ref() is None:
            del _PROJECTS[key]
    entry = _PROJECTS.get(id(viewer))
    if entry is not None and entry[0]() is viewer:
        return entry[1]
    project = PoseProject(viewer)
    _PROJECTS[id(viewer)] = (weakref.ref(viewer), project)
    project.adopt_open_layers()
    # the first PoseTrack widget of the session puts "PoseTrack workspace" into Plugins > PoseTrack
    from napari_posetrack._widgets._workspace import add_workspace_menu_item

    add_workspace_menu_item()
    return project


__all__ = ["PoseProject", "ProjectEvents", "has_project", "project_for"]
