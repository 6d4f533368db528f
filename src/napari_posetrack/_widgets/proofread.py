"""The "Proofread identities" dock widget: review the least sure frames and fix identities.

A review queue lists the frames where identities are least sure (the assignment margin of two
tracks, or the lowest tracking score: see :func:`napari_posetrack.core.tracking.proofread.review_queue`),
least sure first; Previous / Next or a click jumps to each. The edits below it call
:mod:`napari_posetrack.core.tracking.proofread` through
:meth:`~napari_posetrack.core.session.LabelsSession.edit_identities`: each is one undoable step of
the project (Ctrl+Z in the labelling widget) and is saved by the project's Save.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._project import project_for
from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.core.tracking import proofread
from napari_posetrack.core.tracking.proofread import ReviewItem

if TYPE_CHECKING:
    import napari

RANK_CHOICES = {"motion": "Assignment margin (motion)", "tracking_score": "Tracking score"}
# the queue is recomputed this long after the last edit (not on every step of a drag)
_QUEUE_REFRESH_MS = 300
# edits that move points without changing who is who (the queue is not recomputed for them)
_POSE_ONLY = frozenset({"move_points", "move_instance", "set_visible", "clear_points"})


def _unless_deleted(slot: Callable[..., None]) -> Callable[..., None]:
    """``slot``, doing nothing once the widget it updates was closed (a worker may end after that)."""

    def call(*args: Any) -> None:
        try:
            slot(*args)
        except RuntimeError as exc:  # "wrapped C/C++ object ... has been deleted"
            if "deleted" not in str(exc):
                raise

    return call


class ProofreadWidget(QWidget):
    """Review queue and identity edits (swap, set, merge, split, rename, recolour tracks).

    Parameters
    ----------
    napari_viewer
        The viewer whose :class:`~napari_posetrack._widgets._project.PoseProject` is edited.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.setObjectName("posetrack_proofread")
        self.viewer = napari_viewer
        self.project = project_for(napari_viewer)
        self.queue: list[ReviewItem] = []
        self._edits = 0  # labels changes seen: a queue ranked while one happened may be stale
        self._queue_version = 0  # bumped by every ranking asked for: only the newest one is shown
        self._queue_worker: Any = None
        self._queue_again = False
        self._build_ui()
        self._queue_timer = QTimer(self)
        self._queue_timer.setSingleShot(True)
        self._queue_timer.setInterval(_QUEUE_REFRESH_MS)
        self._queue_timer.timeout.connect(self.refresh_queue_in_background)
        self.project.events.labels_replaced.connect(self._on_project_labels_replaced)
        self.project.events.labels_changed.connect(self._on_project_labels_changed)
        self.project.events.video_changed.connect(self._on_project_labels_replaced)
        self._on_project_labels_replaced()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_queue_group())
        layout.addWidget(self._build_tracks_group())
        layout.addWidget(self._build_instance_group())
        self.status_label = QLabel("")
        self.status_label.setObjectName("proofread_status")
        self.status_label.setWordWrap(True)
        self.status_label.setToolTip("What the last edit did, or why it could not be made")
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _build_queue_group(self) -> QGroupBox:
        box = QGroupBox("Review queue")
        box.setObjectName("proofread_queue_group")
        col = QVBoxLayout(box)
        form = QFormLayout()
        self.rank_combo = QComboBox()
        self.rank_combo.setObjectName("proofread_rank")
        for key, title in RANK_CHOICES.items():
            self.rank_combo.addItem(title, key)
        self.rank_combo.setToolTip(
            "Assignment margin: how much worse swapping two tracks would continue their motion, in animal "
            "radii (negative = the swapped identities fit better: likely a switch). Tracking score: the "
            "lowest score of an instance's identity on the frame (an identity model's confidence or the "
            "tracker's match similarity)."
        )
        self.rank_combo.currentIndexChanged.connect(self._on_rank_combo_changed)
        form.addRow("Rank by", self.rank_combo)
        self.queue_limit_spin = QSpinBox()
        self.queue_limit_spin.setObjectName("proofread_queue_limit")
        self.queue_limit_spin.setRange(1, 100_000)
        self.queue_limit_spin.setValue(200)
        self.queue_limit_spin.setToolTip("Show at most this many frames, least sure first")
        self.queue_limit_spin.valueChanged.connect(self._on_rank_combo_changed)
        form.addRow("Frames listed", self.queue_limit_spin)
        col.addLayout(form)
        self.review_list = QListWidget()
        self.review_list.setObjectName("proofread_review_list")
        self.review_list.setToolTip("Frames to review, least sure first: click one to go there")
        self.review_list.currentRowChanged.connect(self._on_review_list_row_changed)
        col.addWidget(self.review_list)
        row = QHBoxLayout()
        self.prev_button = QPushButton("Previous")
        self.prev_button.setObjectName("proofread_prev")
        self.prev_button.setToolTip("Go to the previous frame of the queue")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button = QPushButton("Next")
        self.next_button.setObjectName("proofread_next")
        self.next_button.setToolTip("Go to the next frame of the queue")
        self.next_button.clicked.connect(lambda: self.step(1))
        self.queue_label = QLabel("")
        self.queue_label.setObjectName("proofread_queue_position")
        row.addWidget(self.prev_button)
        row.addWidget(self.next_button)
        row.addWidget(self.queue_label, 1)
        col.addLayout(row)
        return box

    def _build_tracks_group(self) -> QGroupBox:
        box = QGroupBox("Tracks")
        box.setObjectName("proofread_tracks_group")
        col = QVBoxLayout(box)
        form = QFormLayout()
        self.track_a_combo = QComboBox()
        self.track_a_combo.setObjectName("proofread_track_a")
        self.track_a_combo.setToolTip("The track to swap, split, rename or recolour (and to merge into)")
        self.track_b_combo = QComboBox()
        self.track_b_combo.setObjectName("proofread_track_b")
        self.track_b_combo.setToolTip("The other track (to swap with, or to merge into track A)")
        form.addRow("Track A", self.track_a_combo)
        form.addRow("Track B", self.track_b_combo)
        col.addLayout(form)

        row = QHBoxLayout()
        self.swap_from_button = QPushButton("Swap A and B from this frame")
        self.swap_from_button.setObjectName("proofread_swap_from")
        self.swap_from_button.setToolTip("Exchange the two tracks on the shown frame and every later frame")
        self.swap_from_button.clicked.connect(self._on_swap_from_clicked)
        row.addWidget(self.swap_from_button)
        col.addLayout(row)
        row = QHBoxLayout()
        self.swap_start_spin = QSpinBox()
        self.swap_start_spin.setObjectName("proofread_swap_start")
        self.swap_start_spin.setToolTip("First frame of the range to swap")
        self.swap_stop_spin = QSpinBox()
        self.swap_stop_spin.setObjectName("proofread_swap_stop")
        self.swap_stop_spin.setToolTip("Last frame of the range to swap (included)")
        for spin in (self.swap_start_spin, self.swap_stop_spin):
            spin.setRange(0, 10**9)
        self.swap_range_button = QPushButton("Swap over frames")
        self.swap_range_button.setObjectName("proofread_swap_range")
        self.swap_range_button.setToolTip("Exchange the two tracks on these frames only (both ends included)")
        self.swap_range_button.clicked.connect(self._on_swap_range_clicked)
        row.addWidget(self.swap_range_button)
        row.addWidget(self.swap_start_spin)
        row.addWidget(QLabel("to"))
        row.addWidget(self.swap_stop_spin)
        col.addLayout(row)

        row = QHBoxLayout()
        self.merge_button = QPushButton("Merge B into A")
        self.merge_button.setObjectName("proofread_merge")
        self.merge_button.setToolTip(
            "Put every instance of track B on track A and remove B (refused where both have an instance on "
            "one frame)"
        )
        self.merge_button.clicked.connect(self._on_merge_clicked)
        self.split_button = QPushButton("Split A here")
        self.split_button.setObjectName("proofread_split")
        self.split_button.setToolTip("Move track A's instances on the shown frame and later to a new track")
        self.split_button.clicked.connect(self._on_split_clicked)
        row.addWidget(self.merge_button)
        row.addWidget(self.split_button)
        col.addLayout(row)

        row = QHBoxLayout()
        self.rename_edit = QLineEdit()
        self.rename_edit.setObjectName("proofread_rename_edit")
        self.rename_edit.setPlaceholderText("new name of track A")
        self.rename_edit.setToolTip("A new name for track A (names are unique)")
        self.rename_edit.returnPressed.connect(self._on_rename_clicked)
        self.rename_button = QPushButton("Rename")
        self.rename_button.setObjectName("proofread_rename")
        self.rename_button.setToolTip("Give track A the name typed beside")
        self.rename_button.clicked.connect(self._on_rename_clicked)
        self.colour_button = QPushButton("Colour…")
        self.colour_button.setObjectName("proofread_colour")
        self.colour_button.setToolTip("Choose the colour track A is drawn in (saved with the labels)")
        self.colour_button.clicked.connect(self._on_colour_clicked)
        row.addWidget(self.rename_edit, 1)
        row.addWidget(self.rename_button)
        row.addWidget(self.colour_button)
        col.addLayout(row)
        return box

    def _build_instance_group(self) -> QGroupBox:
        box = QGroupBox("Selected instance")
        box.setObjectName("proofread_instance_group")
        col = QVBoxLayout(box)
        form = QFormLayout()
        self.instance_track_combo = QComboBox()
        self.instance_track_combo.setObjectName("proofread_instance_track")
        self.instance_track_combo.setEditable(True)
        self.instance_track_combo.setToolTip(
            "The track to put the selected instance on (type a new name for a new track)"
        )
        form.addRow("Put on track", self.instance_track_combo)
        col.addLayout(form)
        row = QHBoxLayout()
        self.set_frame_button = QPushButton("This frame")
        self.set_frame_button.setObjectName("proofread_set_frame")
        self.set_frame_button.setToolTip(
            "The selected instance takes the track on its frame; the instance that had it takes its old track"
        )
        self.set_frame_button.clicked.connect(lambda: self._on_set_track_clicked(False))
        self.set_onwards_button = QPushButton("From here on")
        self.set_onwards_button.setObjectName("proofread_set_onwards")
        self.set_onwards_button.setToolTip(
            "The selected instance's old track and the chosen one swap from its frame to the end of the video"
        )
        self.set_onwards_button.clicked.connect(lambda: self._on_set_track_clicked(True))
        row.addWidget(self.set_frame_button)
        row.addWidget(self.set_onwards_button)
        col.addLayout(row)
        return box

    # ------------------------------------------------------------------ queue
    @property
    def rank_by(self) -> str:
        return str(self.rank_combo.currentData())

    @property
    def refreshing(self) -> bool:
        """A ranking of the review queue is due or running."""
        return self._queue_timer.isActive() or self._queue_worker is not None

    def refresh_queue(self) -> None:
        """Recompute the review queue of the shown video now and list it (the selection follows its frame)."""
        self._queue_version += 1  # a ranking still running in the background is out of date
        labels = self.project.labels
        if labels is None or not labels.videos:
            queue = []
        else:
            queue = proofread.review_queue(
                labels, self.project.video_index, by=self.rank_by, limit=self.queue_limit_spin.value()
            )
        self._show_queue(queue)

    def refresh_queue_in_background(self) -> None:
        """Rank the review queue in a worker thread (about 2 s on a whole-video file of 880k instances)
        and list it when done; the GUI stays free. The labels are read while the user may edit: a
        ranking during which they changed is dropped and made again."""
        labels = self.project.labels
        if labels is None or not labels.videos:
            self._queue_version += 1
            self._show_queue([])
            return
        if self._queue_worker is not None:
            self._queue_again = True  # once the running one ends
            return
        from napari.qt.threading import create_worker

        self._queue_version += 1
        version, edits = self._queue_version, self._edits
        video, by, limit = self.project.video_index, self.rank_by, self.queue_limit_spin.value()

        def rank() -> list[ReviewItem]:
            return proofread.review_queue(labels, video, by=by, limit=limit)

        worker = create_worker(rank)
        worker.returned.connect(_unless_deleted(lambda queue: self._on_queue_ranked(queue, version, edits, labels)))
        worker.errored.connect(_unless_deleted(lambda exc: self._on_queue_failed(exc, version, edits)))
        worker.finished.connect(_unless_deleted(self._on_queue_worker_finished))
        self._queue_worker = worker
        self.queue_label.setText("ranking…")
        worker.start()

    def _on_queue_ranked(self, queue: list[ReviewItem], version: int, edits: int, labels: Any) -> None:
        if version != self._queue_version:
            return  # a newer ranking was asked for
        if edits != self._edits or labels is not self.project.labels:
            self._queue_again = True  # the labels changed while it ran
            return
        self._show_queue(queue)

    def _on_queue_failed(self, exc: BaseException, version: int, edits: int) -> None:
        if version != self._queue_version or edits != self._edits:
            self._queue_again = True  # read while an edit changed the arrays: rank again
            return
        self._say(f"Cannot rank the review queue: {exc}", problem=True)

    def _on_queue_worker_finished(self) -> None:
        self._queue_worker = None
        if self._queue_again:
            self._queue_again = False
            self._queue_timer.start()
        else:
            self._update_queue_label()

    def _show_queue(self, queue: list[ReviewItem]) -> None:
        labels = self.project.labels
        self.queue = queue
        current = self.review_list.currentRow()
        frame = self.project.current_frame if current >= 0 else None
        self.review_list.blockSignals(True)
        try:
            self.review_list.clear()
            if labels is not None:
                self.review_list.addItems([item.describe(labels) for item in self.queue])
            at = next((i for i, item in enumerate(self.queue) if item.frame == frame), -1)
            self.review_list.setCurrentRow(at)
        finally:
            self.review_list.blockSignals(False)
        self._update_queue_label()

    def step(self, delta: int) -> None:
        """Go to the next (``delta=1``) or previous (``-1``) frame of the queue."""
        if not self.queue and self._queue_worker is not None:
            self._say("The review queue is still being ranked; try again in a moment.")
            return
        if not self.queue:
            self._say("Nothing to review: no frame has two tracks to tell apart.")
            return
        row = self.review_list.currentRow()
        row = (0 if delta > 0 else len(self.queue) - 1) if row < 0 else (row + delta) % len(self.queue)
        self.review_list.setCurrentRow(row)  # jumps (currentRowChanged)

    def _on_review_list_row_changed(self, row: int) -> None:
        if 0 <= row < len(self.queue):
            item = self.queue[row]
            self.project.go_to(item.frame, item.video)
            a, b = item.tracks
            if a >= 0:
                self.track_a_combo.setCurrentIndex(a)
            if b >= 0:
                self.track_b_combo.setCurrentIndex(b)
            self.swap_start_spin.setValue(item.frame)
        self._update_queue_label()

    def _update_queue_label(self) -> None:
        row = self.review_list.currentRow()
        n = len(self.queue)
        self.queue_label.setText(f"{row + 1} of {n}" if row >= 0 else f"{n} frames")

    def _on_rank_combo_changed(self, *_: Any) -> None:
        self.refresh_queue_in_background()

    # ------------------------------------------------------------------ project events
    def _on_project_labels_replaced(self, *_: Any) -> None:
        self._fill_track_combos()
        labels = self.project.labels
        video = self.project.video
        last = max((video.n_frames or 1) - 1 if video is not None else 0, 0)
        if labels is not None and len(labels.instances):
            last = max(last, int(labels.instances.frame.max()))
        for spin in (self.swap_start_spin, self.swap_stop_spin):
            spin.setMaximum(last)
        self._edits += 1
        self.refresh_queue_in_background()

    def _on_project_labels_changed(self, change: Any) -> None:
        self._edits += 1
        if change is None or getattr(change, "tracks_changed", False) or getattr(change, "whole", False):
            self._fill_track_combos()
        if change is not None and change.action in _POSE_ONLY:
            return  # a moved point shifts margins a little: the queue is recomputed on the next identity edit
        self._queue_timer.start()

    def _fill_track_combos(self) -> None:
        labels = self.project.labels
        names = [t.name for t in labels.tracks] if labels is not None else []
        for combo in (self.track_a_combo, self.track_b_combo, self.instance_track_combo):
            keep = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if keep in names:
                combo.setCurrentIndex(names.index(keep))
            combo.blockSignals(False)
        if len(names) > 1 and self.track_b_combo.currentIndex() == self.track_a_combo.currentIndex():
            self.track_b_combo.setCurrentIndex((self.track_a_combo.currentIndex() + 1) % len(names))

    # ------------------------------------------------------------------ edits
    def _say(self, text: str, problem: bool = False) -> None:
        self.status_label.setText(text)
        if problem:
            from napari.utils.notifications import show_error

            show_error(text)

    def edit(self, action: str, fn: Callable[[Any], Any], done: Callable[[Any], str]) -> tuple[bool, Any]:
        """Run an identity edit as one undo step; say ``done(result)`` or why it could not be made.

        Returns ``(made, result)``.
        """
        session = self.project.session
        if session is None:
            self._say("Open labels with tracks first.", problem=True)
            return False, None
        try:
            result = session.edit_identities(action, fn)
        except (PoseTrackError, ValueError) as exc:
            self._say(f"Cannot {action}: {exc}", problem=True)
            return False, None
        self._say(done(result))
        return True, result

    def _two_tracks(self) -> tuple[int, int, str, str]:
        return (
            self.track_a_combo.currentIndex(),
            self.track_b_combo.currentIndex(),
            self.track_a_combo.currentText(),
            self.track_b_combo.currentText(),
        )

    def swap_from(self, frame: int | None = None) -> None:
        """Swap tracks A and B from ``frame`` (default: the shown one) to the end of the shown video."""
        a, b, name_a, name_b = self._two_tracks()
        frame = self.project.current_frame if frame is None else int(frame)
        video = self.project.video_index
        self.edit(
            "swap tracks",
            lambda lab: proofread.swap_tracks(lab, a, b, frame, None, video=video),
            lambda rows: f"Swapped {name_a} and {name_b} from frame {frame} on ({len(rows)} instances).",
        )

    def swap_range(self, start: int, stop: int) -> None:
        """Swap tracks A and B on frames ``start`` to ``stop`` (both included) of the shown video."""
        a, b, name_a, name_b = self._two_tracks()
        video = self.project.video_index
        self.edit(
            "swap tracks",
            lambda lab: proofread.swap_tracks(lab, a, b, int(start), int(stop) + 1, video=video),
            lambda rows: f"Swapped {name_a} and {name_b} on frames {start}-{stop} ({len(rows)} instances).",
        )

    def _on_swap_from_clicked(self) -> None:
        self.swap_from()

    def _on_swap_range_clicked(self) -> None:
        self.swap_range(self.swap_start_spin.value(), self.swap_stop_spin.value())

    def merge(self) -> None:
        """Merge track B into track A."""
        a, b, keep, other = self._two_tracks()
        self.edit(
            "merge tracks",
            lambda lab: proofread.merge_tracks(lab, a, b),
            lambda rows: f"Merged {other} into {keep} ({len(rows)} instances moved).",
        )

    def _on_merge_clicked(self) -> None:
        self.merge()

    def split(self, frame: int | None = None) -> None:
        """Split track A at ``frame`` (default: the shown one): later instances go to a new track."""
        a, _, name, _ = self._two_tracks()
        frame = self.project.current_frame if frame is None else int(frame)
        video = self.project.video_index
        labels = self.project.labels
        self.edit(
            "split track",
            lambda lab: proofread.split_track(lab, a, frame, video=video),
            lambda new: f"Split {name} at frame {frame}: frames {frame} on are now {labels.tracks[new].name}.",
        )

    def _on_split_clicked(self) -> None:
        self.split()

    def rename(self, name: str) -> None:
        """Rename track A."""
        a, _, old, _ = self._two_tracks()
        name = name.strip()
        made, _ = self.edit(
            "rename track", lambda lab: proofread.rename_track(lab, a, name), lambda _: f"Renamed {old} to {name}."
        )
        if made:
            self.rename_edit.clear()
            self.track_a_combo.setCurrentIndex(a)

    def _on_rename_clicked(self) -> None:
        self.rename(self.rename_edit.text())

    def recolour(self, rgb: Sequence[float] | None) -> None:
        """Give track A the colour ``rgb`` (0..1; ``None``: back to its palette colour)."""
        a, _, name, _ = self._two_tracks()
        self.edit("recolour track", lambda lab: proofread.recolour_track(lab, a, rgb), lambda _: f"Recoloured {name}.")

    def _on_colour_clicked(self) -> None:
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QColorDialog

        from napari_posetrack.layers import track_colors

        labels = self.project.labels
        a = self.track_a_combo.currentIndex()
        if labels is None or not 0 <= a < len(labels.tracks):
            self._say("Choose a track first.", problem=True)
            return
        start = track_colors(labels.tracks)[a]
        colour = QColorDialog.getColor(QColor.fromRgbF(*start), self, f"Colour of {labels.tracks[a].name}")
        if colour.isValid():
            self.recolour((colour.redF(), colour.greenF(), colour.blueF()))

    def set_selected_track(self, from_here_on: bool) -> None:
        """Put the selected (or last clicked) instance on the track named in the combo box."""
        ids = self.project.selected_instances()
        if len(ids) == 0 and self.project.active_instance is not None:
            ids = np.array([self.project.active_instance])
        if len(ids) != 1:
            self._say("Select the points of one instance first.", problem=True)
            return
        instance = int(ids[0])
        name = self.instance_track_combo.currentText().strip()
        if not name:
            self._say("Choose or type a track.", problem=True)
            return
        where = "from its frame on" if from_here_on else "on its frame"
        made, _ = self.edit(
            "set track",
            lambda lab: proofread.set_track(lab, instance, name, from_here_on=from_here_on),
            lambda rows: f"Put the instance on {name} {where} ({len(rows)} instances changed).",
        )
        if made:
            # redrawing the frame clears the point selection: the instance stays the one to act on
            self.project.active_instance = instance
            self._fill_track_combos()  # a new name made a new track

    def _on_set_track_clicked(self, from_here_on: bool) -> None:
        self.set_selected_track(from_here_on)


__all__ = ["ProofreadWidget"]
