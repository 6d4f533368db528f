"""The suggestions dock widget: which frames to label next (the active-learning loop).

Pick a method (evenly spread frames, visually varied frames by k-means, low prediction scores,
implausible motion), generate suggestions for this video or all videos, then walk through them
with Previous / Next or by clicking the list. Suggestions are stored in the project (saved in
``.slp`` files, one undoable step per round) and the inference widget can predict on them.

The methods live in :mod:`napari_posetrack.core.tools.suggestions`; a round runs off the GUI
thread on a copy of the labels (k-means decodes video frames).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets._scroll import scrolling_body
from napari_posetrack.core.labels import Labels, Suggestion
from napari_posetrack.core.tools.suggestion_rounds import (
    METHODS,
    RoundProgress,
    group_name,
    labelled_flags,
    neighbour_suggestion,
    run_suggestion_round,
)
from napari_posetrack.core.tools.suggestions import add_suggestions

if TYPE_CHECKING:
    import napari

THIS_VIDEO, ALL_VIDEOS = "This video", "All videos"
# the "labelled" column follows edits, but not on every step of a drag
_LABELLED_REFRESH_MS = 300


@thread_worker
def _suggestion_round(labels: Labels, method: str, videos: list[int], n: int, **params: Any):
    """Run one round in a worker thread: yields progress per video, returns (suggestions, problems)."""
    found: list[Suggestion] = []
    problems: list[str] = []
    for progress in run_suggestion_round(labels, method, videos, n, **params):
        found.extend(progress.found)
        if progress.problem:
            problems.append(progress.problem)
        yield progress
    return found, problems


class SuggestionsWidget(QWidget):
    """Generate, list and visit frame suggestions.

    Parameters
    ----------
    napari_viewer
        The viewer whose :class:`~napari_posetrack._widgets._project.PoseProject` is used.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.setObjectName("posetrack_suggestions")
        self.viewer = napari_viewer
        self.project = project_for(napari_viewer)
        self.worker: Any = None
        self._running_method = ""
        self._note = ""  # the outcome of the last round, shown under the buttons
        self._shown: list[Suggestion] = []
        self._jumping = False
        self._build_ui()
        self._labelled_timer = QTimer(self)
        self._labelled_timer.setSingleShot(True)
        self._labelled_timer.setInterval(_LABELLED_REFRESH_MS)
        self._labelled_timer.timeout.connect(self.refresh)
        self.project.events.labels_replaced.connect(self._on_project_labels_replaced)
        self.project.events.labels_changed.connect(self._on_project_labels_changed)
        self._on_method_combo_changed()
        self.refresh()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        layout = scrolling_body(self, "suggestions")
        form = QFormLayout()

        self.method_combo = QComboBox()
        self.method_combo.setObjectName("suggestions_method")
        self.method_combo.setToolTip("How to choose the frames to label next.")
        for method in METHODS.values():
            self.method_combo.addItem(method.title, method.key)
        self.method_combo.currentIndexChanged.connect(self._on_method_combo_changed)
        form.addRow("Method", self.method_combo)
        self.method_help = QLabel()
        self.method_help.setObjectName("suggestions_method_help")
        self.method_help.setWordWrap(True)
        self.method_help.setToolTip("What the chosen method does.")
        form.addRow(self.method_help)

        self.count_spin = QSpinBox()
        self.count_spin.setObjectName("suggestions_count")
        self.count_spin.setRange(1, 100_000)
        self.count_spin.setValue(20)
        self.count_spin.setToolTip("How many frames to suggest in each video (fewer when fewer qualify).")
        form.addRow("Frames per video", self.count_spin)

        self.scope_combo = QComboBox()
        self.scope_combo.setObjectName("suggestions_scope")
        self.scope_combo.addItems([THIS_VIDEO, ALL_VIDEOS])
        self.scope_combo.setToolTip(
            "Suggest frames in the video shown now, or in every video of the project."
        )
        form.addRow("Videos", self.scope_combo)

        self.sample_label = QLabel("Frames to compare")
        self.sample_spin = QSpinBox()
        self.sample_spin.setObjectName("suggestions_kmeans_sample")
        self.sample_spin.setRange(2, 100_000)
        self.sample_spin.setValue(300)
        self.sample_spin.setToolTip(
            "k-means: how many frames of each video are read and compared. More frames find rarer "
            "postures but take longer."
        )
        form.addRow(self.sample_label, self.sample_spin)

        self.z_label = QLabel("Jump threshold")
        self.z_spin = QDoubleSpinBox()
        self.z_spin.setObjectName("suggestions_motion_z")
        self.z_spin.setRange(1.0, 100.0)
        self.z_spin.setSingleStep(0.5)
        self.z_spin.setValue(4.0)
        self.z_spin.setToolTip(
            "Implausible motion: how unusual a body part's speed must be to flag the frame, in robust "
            "standard deviations from its typical speed. Lower finds more frames."
        )
        form.addRow(self.z_label, self.z_spin)
        layout.addLayout(form)

        row = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("suggestions_generate")
        self.generate_button.setToolTip("Add suggestions with the chosen method (Undo removes them again).")
        self.generate_button.clicked.connect(self._on_generate_button_clicked)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("suggestions_clear")
        self.clear_button.setToolTip("Remove every suggestion from the project (your labels stay).")
        self.clear_button.clicked.connect(self._on_clear_button_clicked)
        row.addWidget(self.generate_button)
        row.addWidget(self.clear_button)
        layout.addLayout(row)

        self.progress = QProgressBar()
        self.progress.setObjectName("suggestions_progress")
        self.progress.setToolTip("Progress of the round, one step per video.")
        self.progress.setVisible(False)
        layout.addWidget(self.progress)

        self.summary_label = QLabel()
        self.summary_label.setObjectName("suggestions_summary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setToolTip("How many frames are suggested and how many of them you have labelled.")
        layout.addWidget(self.summary_label)

        self.table = QTableWidget(0, 4)
        self.table.setObjectName("suggestions_table")
        self.table.setHorizontalHeaderLabels(["Video", "Frame", "Method", "Labelled"])
        self.table.setToolTip("Suggested frames. Click one to go there.")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)  # compact rows: more frames fit
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(160)
        self.table.currentCellChanged.connect(self._on_table_current_changed)
        self.table.cellClicked.connect(self._on_table_cell_clicked)
        layout.addWidget(self.table, 1)

        nav = QHBoxLayout()
        self.previous_button = QPushButton("◀ Previous")
        self.previous_button.setObjectName("suggestions_previous")
        self.previous_button.setToolTip("Go to the suggested frame before the current one.")
        self.previous_button.clicked.connect(self._on_previous_button_clicked)
        self.next_button = QPushButton("Next ▶")
        self.next_button.setObjectName("suggestions_next")
        self.next_button.setToolTip("Go to the suggested frame after the current one.")
        self.next_button.clicked.connect(self._on_next_button_clicked)
        nav.addWidget(self.previous_button)
        nav.addWidget(self.next_button)
        layout.addLayout(nav)

    # ------------------------------------------------------------------ state
    @property
    def method(self) -> str:
        return str(self.method_combo.currentData())

    def set_method(self, key: str) -> None:
        """Choose a method by its key (``uniform``, ``kmeans``, ``low_scores``, ``motion``)."""
        index = self.method_combo.findData(key)
        if index < 0:
            raise ValueError(f"unknown suggestion method {key!r}")
        self.method_combo.setCurrentIndex(index)

    def refresh(self) -> None:
        """Show the project's suggestions (sorted by video and frame) and whether each is labelled."""
        labels = self.project.labels
        suggestions = [] if labels is None else sorted(labels.suggestions, key=lambda s: (s.video, s.frame))
        flags = labelled_flags(labels, suggestions) if labels is not None else []
        self._shown = suggestions
        self._jumping = True  # rebuilding the table must not move the viewer
        try:
            self.table.setRowCount(len(suggestions))
            for r, (s, done) in enumerate(zip(suggestions, flags)):
                video = labels.videos[s.video].name if s.video < len(labels.videos) else str(s.video)
                cells = (video, str(s.frame), group_name(s.group), "yes" if done else "no")
                for c, text in enumerate(cells):
                    self.table.setItem(r, c, QTableWidgetItem(text))
        finally:
            self._jumping = False
        busy = self.worker is not None
        has_labels = labels is not None
        self.generate_button.setEnabled(has_labels and not busy)
        self.clear_button.setEnabled(has_labels and bool(suggestions) and not busy)
        self.previous_button.setEnabled(bool(suggestions))
        self.next_button.setEnabled(bool(suggestions))
        if not has_labels:
            self.summary_label.setText("Open or create a project to get suggestions.")
        else:
            n_done = int(sum(flags))
            note = f"\n{self._note}" if self._note else ""
            self.summary_label.setText(f"{len(suggestions)} suggested frames, {n_done} labelled.{note}")

    # ------------------------------------------------------------------ actions
    def generate(self) -> Any:
        """Start a round with the chosen method and settings; returns the worker (``None`` if not started)."""
        labels = self.project.labels
        if labels is None:
            show_warning("Open or create a project first.")
            return None
        if not labels.videos:
            show_warning("The project has no video yet: add one first.")
            return None
        if self.worker is not None:
            return self.worker
        method = self.method
        videos = (
            [self.project.video_index]
            if self.scope_combo.currentText() == THIS_VIDEO
            else list(range(len(labels.videos)))
        )
        self._running_method = method
        self._note = ""
        # the copy lets the user keep labelling while frames are read
        snapshot = labels.copy()
        self.worker = _suggestion_round(
            snapshot,
            method,
            videos,
            self.count_spin.value(),
            sample=self.sample_spin.value(),
            z=self.z_spin.value(),
            seed=len(labels.suggestions),
        )
        self.worker.yielded.connect(self._on_worker_yielded)
        self.worker.returned.connect(self._on_worker_returned)
        self.worker.errored.connect(self._on_worker_errored)
        self.worker.finished.connect(self._on_worker_finished)
        self.progress.setRange(0, len(videos))
        self.progress.setValue(0)
        self.progress.setFormat(f"{METHODS[method].title}: %v / %m videos")
        self.progress.setVisible(True)
        self.generate_button.setEnabled(False)
        self.clear_button.setEnabled(False)
        self.worker.start()
        return self.worker

    def clear(self) -> None:
        """Remove every suggestion (one undoable step)."""
        labels = self.project.labels
        if labels is None or not labels.suggestions:
            return
        new = labels.copy()
        new.suggestions = []
        self.project.apply(new, "clear suggestions")
        self.refresh()

    def go_to_row(self, row: int) -> None:
        """Show the frame of table row ``row``."""
        if not 0 <= row < len(self._shown):
            return
        s = self._shown[row]
        labels = self.project.labels
        if labels is None or s.video >= len(labels.videos):
            return
        self.project.go_to(s.frame, s.video)

    def step(self, direction: int) -> None:
        """Go to the next (``+1``) or previous (``-1``) suggestion from the current frame."""
        index = neighbour_suggestion(
            self._shown, self.project.video_index, self.project.current_frame, direction
        )
        if index is None:
            return
        self._jumping = True
        try:
            self.table.selectRow(index)
        finally:
            self._jumping = False
        self.go_to_row(index)

    # ------------------------------------------------------------------ slots
    def _on_method_combo_changed(self, *_: object) -> None:
        method = METHODS[self.method]
        self.method_help.setText(method.help)
        for widget in (self.sample_label, self.sample_spin):
            widget.setVisible(method.key == "kmeans")
        for widget in (self.z_label, self.z_spin):
            widget.setVisible(method.key == "motion")

    def _on_generate_button_clicked(self) -> None:
        self.generate()

    def _on_clear_button_clicked(self) -> None:
        self.clear()

    def _on_previous_button_clicked(self) -> None:
        self.step(-1)

    def _on_next_button_clicked(self) -> None:
        self.step(+1)

    def _on_table_current_changed(self, row: int, *_: int) -> None:
        if not self._jumping:
            self.go_to_row(row)

    def _on_table_cell_clicked(self, row: int, _column: int) -> None:
        self.go_to_row(row)

    def _on_project_labels_replaced(self) -> None:
        self.refresh()

    def _on_project_labels_changed(self, change: object = None) -> None:
        self._labelled_timer.start()

    def _on_worker_yielded(self, progress: RoundProgress) -> None:
        self.progress.setValue(progress.done)

    def _on_worker_returned(self, result: tuple[list[Suggestion], list[str]]) -> None:
        found, problems = result
        for problem in problems:
            show_warning(problem)
        labels = self.project.labels
        if labels is None:
            return
        new = labels.copy()
        added = add_suggestions(new, found)
        title = METHODS[self._running_method].short
        outcome = (
            f"Last round: added {added} frames ({title})."
            if added
            else f"Last round: no new frames ({title})."
        )
        self._note = " ".join([outcome, *(p[:1].upper() + p[1:] + "." for p in problems)])
        if added:
            self.project.apply(new, "suggest frames")
        show_info(outcome)

    def _on_worker_errored(self, exc: Exception) -> None:
        self._note = f"Suggesting frames failed: {exc}"
        show_error(self._note)

    def _on_worker_finished(self) -> None:
        self.worker = None
        self.progress.setVisible(False)
        self.refresh()
