"""Inference and tracking dock widget: pick trained models, predict, track, delete predictions.

Prediction and tracking run on a copy of the project's labels in a napari ``thread_worker``; the
copy's new predictions and tracks are merged into the project on the main thread when the work ends
(:meth:`PoseProject.apply_predictions`), as one undoable step. The viewer stays usable meanwhile.

A video that is not in the project (the "Video file outside the project" box) is predicted into its
own ``<video>.predictions.slp``, as SLEAP users do; the project is only changed when they ask for
the predictions to be added to it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._background import (
    BackgroundOutcome,
    Progress,
    error_message,
    predict_in_background,
    predict_video_file_in_background,
    track_in_background,
)
from napari_posetrack._widgets._tracker_form import DataclassForm, FormOverrides, TrackerForm, cli_help
from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.core.inference.pipelines import InferenceOptions

if TYPE_CHECKING:
    import napari


# what the target combo shows -> the engine's target name (None: built from other controls)
TARGETS: dict[str, str | None] = {
    "Current frame": None,
    "All frames": "all",
    "Frame range": None,
    "Labelled frames": "labelled",
    "Suggested frames": "suggested",
    "Unlabelled frames": "unlabelled",
}
CURRENT_VIDEO, ALL_VIDEOS, CHOSEN_VIDEOS = "Current video", "All videos", "Chosen videos"
DELETE_ALL, DELETE_RANGE, DELETE_BELOW = "All predictions", "In a frame range", "Below a score"
# the frame choices that mean something for a video outside the project (it has no labels)
VIDEO_FILE_TARGETS = ("All frames", "Frame range", "Unlabelled frames")
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.m4v *.mpg *.mpeg *.webm);;All files (*)"


# --------------------------------------------------------------------------- inference options form


INFERENCE_OVERRIDES = FormOverrides(
    labels={
        "peak_threshold": "Peak threshold",
        "max_instances": "Max instances per frame",
        "min_visible_nodes": "Min found nodes",
        "overlap": "Duplicate suppression",
        "overlap_threshold": "Duplicate similarity",
        "refinement": "Subpixel refinement",
        "batch_size": "Batch size (frames)",
        "device": "Device",
        "backend": "Backend",
        "half": "Half precision (GPU)",
    },
    editable_choices={"device": ("auto", "cpu", "cuda", "mps")},
    ranges={
        "peak_threshold": (0.0, 1.0, 0.05),
        "max_instances": (0, 1_000, 1),
        "min_visible_nodes": (0, 1_000, 1),
        "overlap_threshold": (0.0, 1.0, 0.05),
        "batch_size": (1, 1_024, 1),
    },
    none_text={"max_instances": "no limit"},
    skip=("grouping",),
)


def inference_help_texts() -> dict[str, str]:
    """The ``posetrack predict`` help of each inference option, by InferenceOptions field name."""
    import argparse

    from napari_posetrack.core.inference.cli import add_predict_parser

    parser = add_predict_parser(argparse.ArgumentParser(add_help=False).add_subparsers())
    return cli_help(parser)


# --------------------------------------------------------------------------- the widget


class InferenceWidget(QWidget):
    """Predict with trained models, track, and delete predictions in bulk.

    Parameters
    ----------
    napari_viewer
        The viewer whose project (see ``project_for``) this widget works on.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        from napari_posetrack._widgets._project import project_for

        self.viewer = napari_viewer
        self.project = project_for(napari_viewer)
        self.worker: Any = None
        self.last_outcome: BackgroundOutcome | None = None
        self._models: list[Any] = []
        self._n_frames = -1
        self._video_file_frames: int | None = None  # length of the chosen video file, once probed
        self.setObjectName("inference_widget")

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self._build_models_group())
        layout.addWidget(self._build_frames_group())
        layout.addWidget(self._build_video_file_group())
        layout.addWidget(self._build_tracking_group())
        layout.addLayout(self._build_run_row())
        layout.addWidget(self._build_delete_group())
        layout.addStretch(1)
        content.setMinimumWidth(340)  # the forms' labels stay readable in a narrow dock
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        self.project.events.labels_replaced.connect(self._on_project_labels_replaced)
        self.project.events.video_changed.connect(self._on_project_video_changed)
        self.project.events.labels_changed.connect(self._on_project_labels_changed)
        self._on_target_changed()
        self._fill_track_videos_list()
        self._on_delete_scope_changed()
        self._update_frame_limits()
        self._suggest_runs_folder()
        self._set_busy(False)

    # ------------------------------------------------------------------ building
    def _build_models_group(self) -> QGroupBox:
        box = QGroupBox("Trained models")
        box.setObjectName("models_group")
        form = QFormLayout(box)

        self.runs_folder_edit = QLineEdit()
        self.runs_folder_edit.setObjectName("runs_folder_edit")
        self.runs_folder_edit.setPlaceholderText("folder holding your training runs")
        self.runs_folder_edit.setToolTip(
            "The folder where training saved its runs (one subfolder per trained model). "
            "Press Enter or Refresh to list the models in it."
        )
        self.runs_folder_edit.editingFinished.connect(self._on_runs_folder_edited)
        browse = QPushButton("Browse…")
        browse.setObjectName("runs_folder_browse")
        browse.setToolTip("Choose the runs folder")
        browse.clicked.connect(self._on_runs_folder_browse_clicked)
        refresh = QToolButton()
        refresh.setText("⟳")
        refresh.setObjectName("models_refresh")
        refresh.setToolTip("List the models in the runs folder again (after a training finished)")
        refresh.clicked.connect(self._on_runs_folder_edited)
        row = QHBoxLayout()
        row.addWidget(self.runs_folder_edit, 1)
        row.addWidget(browse)
        row.addWidget(refresh)
        form.addRow("Runs folder", row)

        self.model_combo = QComboBox()
        self.model_combo.setObjectName("model_combo")
        self.model_combo.setToolTip(
            "The models found in the runs folder, most recent first. A top-down model is a pair: "
            "a centroid run (finds each animal) and a centered-instance run (finds its body parts)."
        )
        form.addRow("Model", self.model_combo)

        self.model_path_edit = QLineEdit()
        self.model_path_edit.setObjectName("model_path_edit")
        self.model_path_edit.setPlaceholderText("or one run folder / training_config.yaml")
        self.model_path_edit.setToolTip(
            "Instead of the list above: one trained run folder, or the training_config.yaml inside it. "
            "For a top-down model give either half; its partner is found beside it. Leave empty to use the list."
        )
        pick = QPushButton("Browse…")
        pick.setObjectName("model_path_browse")
        pick.setToolTip("Choose a run's training_config.yaml")
        pick.clicked.connect(self._on_model_path_browse_clicked)
        row2 = QHBoxLayout()
        row2.addWidget(self.model_path_edit, 1)
        row2.addWidget(pick)
        form.addRow("Model file", row2)

        self.options_toggle = QToolButton()
        self.options_toggle.setObjectName("inference_options_toggle")
        self.options_toggle.setText("Inference options")
        self.options_toggle.setCheckable(True)
        self.options_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.options_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.options_toggle.setToolTip("Show the detection settings (threshold, batch size, device…)")
        self.options_form = DataclassForm(
            InferenceOptions, inference_help_texts(), INFERENCE_OVERRIDES, prefix="inference_"
        )
        self.options_form.setObjectName("inference_options_form")
        self.options_form.setVisible(False)
        self.options_toggle.toggled.connect(self._on_options_toggle_toggled)
        form.addRow(self.options_toggle)
        form.addRow(self.options_form)
        return box

    def _build_frames_group(self) -> QGroupBox:
        box = QGroupBox("Predict on")
        box.setObjectName("frames_group")
        form = QFormLayout(box)
        self.target_combo = QComboBox()
        self.target_combo.setObjectName("target_combo")
        self.target_combo.addItems(list(TARGETS))
        self.target_combo.setCurrentText("All frames")
        self.target_combo.setToolTip(
            "Which frames to predict: the frame shown, every frame, a range, the frames you labelled, "
            "the suggested frames, or the frames you have not labelled."
        )
        self.target_combo.currentTextChanged.connect(self._on_target_changed)
        form.addRow("Frames", self.target_combo)

        self.range_start_spin = QSpinBox()
        self.range_start_spin.setObjectName("range_start_spin")
        self.range_start_spin.setToolTip("First frame of the range (counting from 0)")
        self.range_stop_spin = QSpinBox()
        self.range_stop_spin.setObjectName("range_stop_spin")
        self.range_stop_spin.setToolTip("Last frame of the range (included)")
        row = QHBoxLayout()
        row.addWidget(self.range_start_spin)
        row.addWidget(QLabel("to"))
        row.addWidget(self.range_stop_spin)
        self.range_row = QWidget()
        self.range_row.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Range", self.range_row)

        self.video_scope_combo = QComboBox()
        self.video_scope_combo.setObjectName("video_scope_combo")
        self.video_scope_combo.addItems([CURRENT_VIDEO, ALL_VIDEOS])
        self.video_scope_combo.setToolTip("Predict on the video shown, or on every video of the project")
        form.addRow("Videos", self.video_scope_combo)
        return box

    def _build_video_file_group(self) -> QGroupBox:
        box = QGroupBox("Predict a video file outside the project")
        box.setObjectName("video_file_group")
        box.setCheckable(True)
        box.setChecked(False)
        box.setToolTip(
            "Predict a video that is not in the project (new recordings), as sleap-track does: the "
            "predictions go to their own .slp file, which File > Open shows with the video. The "
            "frames chosen above (all, a range) are predicted; the project stays as it is unless you "
            "tick 'Also add them to the project'."
        )
        box.toggled.connect(self._on_video_file_toggled)
        self.video_file_group = box
        form = QFormLayout(box)
        self.video_file_edit = QLineEdit()
        self.video_file_edit.setObjectName("video_file_edit")
        self.video_file_edit.setPlaceholderText("the video to predict")
        self.video_file_edit.setToolTip("The video file to predict (it is not added to the project)")
        self.video_file_edit.editingFinished.connect(self._on_video_file_edited)
        browse = QPushButton("Browse…")
        browse.setObjectName("video_file_browse")
        browse.setToolTip("Choose the video file")
        browse.clicked.connect(self._on_video_file_browse_clicked)
        row = QHBoxLayout()
        row.addWidget(self.video_file_edit, 1)
        row.addWidget(browse)
        form.addRow("Video", row)
        self.video_output_edit = QLineEdit()
        self.video_output_edit.setObjectName("video_output_edit")
        self.video_output_edit.setPlaceholderText("<video>.predictions.slp beside the video")
        self.video_output_edit.setToolTip(
            "Where the predictions are saved (a SLEAP .slp file). Empty: beside the video, named after "
            "it (clip.mp4 -> clip.mp4.predictions.slp). An unfinished run of the same video to the same "
            "file resumes where it stopped."
        )
        save_as = QPushButton("Browse…")
        save_as.setObjectName("video_output_browse")
        save_as.setToolTip("Choose where to save the predictions")
        save_as.clicked.connect(self._on_video_output_browse_clicked)
        row2 = QHBoxLayout()
        row2.addWidget(self.video_output_edit, 1)
        row2.addWidget(save_as)
        form.addRow("Save to", row2)
        self.video_merge_check = QCheckBox("Also add them to the project")
        self.video_merge_check.setObjectName("video_merge_check")
        self.video_merge_check.setToolTip(
            "Also add the video and its predictions to the open project (one undo step). With no "
            "project open, the new file is opened. Unticked, the project is not changed."
        )
        form.addRow(self.video_merge_check)
        return box

    def _build_tracking_group(self) -> QGroupBox:
        box = QGroupBox("Tracking")
        box.setObjectName("tracking_group")
        layout = QVBoxLayout(box)
        self.track_check = QCheckBox("Track after predicting")
        self.track_check.setObjectName("track_check")
        self.track_check.setToolTip(
            "Give the new predictions identities (one track per animal) as soon as prediction ends"
        )
        layout.addWidget(self.track_check)
        videos_row = QHBoxLayout()
        videos_row.addWidget(QLabel("Track only on"))
        self.track_videos_combo = QComboBox()
        self.track_videos_combo.setObjectName("track_videos_combo")
        self.track_videos_combo.addItems([ALL_VIDEOS, CURRENT_VIDEO, CHOSEN_VIDEOS])
        self.track_videos_combo.setToolTip(
            "The videos 'Track only' gives identities to: every video of the project, the video shown, "
            "or the videos ticked in the list. The other videos' tracks stay as they are. 'Track after "
            "predicting' tracks the videos just predicted."
        )
        self.track_videos_combo.currentTextChanged.connect(self._on_track_videos_changed)
        videos_row.addWidget(self.track_videos_combo, 1)
        layout.addLayout(videos_row)
        self.track_videos_list = QListWidget()
        self.track_videos_list.setObjectName("track_videos_list")
        self.track_videos_list.setToolTip("Tick the videos to track")
        self.track_videos_list.setMaximumHeight(110)
        self.track_videos_list.setVisible(False)
        layout.addWidget(self.track_videos_list)
        self.tracker_toggle = QToolButton()
        self.tracker_toggle.setObjectName("tracker_settings_toggle")
        self.tracker_toggle.setText("Tracker settings")
        self.tracker_toggle.setCheckable(True)
        self.tracker_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.tracker_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.tracker_toggle.setToolTip("Show every tracker setting (window, number of animals, stitching…)")
        self.tracker_form = TrackerForm()
        self.tracker_form.setVisible(False)
        self.tracker_toggle.toggled.connect(self._on_tracker_toggle_toggled)
        layout.addWidget(self.tracker_toggle)
        layout.addWidget(self.tracker_form)
        return box

    def _build_run_row(self) -> QVBoxLayout:
        col = QVBoxLayout()
        row = QHBoxLayout()
        self.predict_button = QPushButton("Predict")
        self.predict_button.setObjectName("predict_button")
        self.predict_button.setToolTip("Predict poses on the chosen frames with the chosen model")
        self.predict_button.clicked.connect(self._on_predict_clicked)
        self.track_button = QPushButton("Track only")
        self.track_button.setObjectName("track_button")
        self.track_button.setToolTip("Assign tracks to the existing predictions without predicting again")
        self.track_button.clicked.connect(self._on_track_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.setToolTip(
            "Stop. Predicting the project: nothing predicted in this run is kept. Predicting a video "
            "file: the frames finished are saved to its file, and predicting it again does the rest."
        )
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        row.addWidget(self.predict_button)
        row.addWidget(self.track_button)
        row.addWidget(self.cancel_button)
        col.addLayout(row)
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progress_bar")
        self.progress_bar.setToolTip("Frames done out of the frames to do")
        col.addWidget(self.progress_bar)
        self.status_label = QLabel("")
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)
        self.status_label.setToolTip("What the last run did")
        col.addWidget(self.status_label)
        self.tracking_summary_label = QLabel("")
        self.tracking_summary_label.setObjectName("tracking_summary_label")
        self.tracking_summary_label.setWordWrap(True)
        self.tracking_summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tracking_summary_label.setToolTip(
            "What the last tracking run did: tracks, instances placed and rejected (and why), "
            "and its least certain decisions (lower = closer call): frames worth reviewing"
        )
        self.tracking_summary_label.setVisible(False)
        col.addWidget(self.tracking_summary_label)
        return col

    def _build_delete_group(self) -> QGroupBox:
        box = QGroupBox("Delete predictions")
        box.setObjectName("delete_group")
        form = QFormLayout(box)
        self.delete_scope_combo = QComboBox()
        self.delete_scope_combo.setObjectName("delete_scope_combo")
        self.delete_scope_combo.addItems([DELETE_ALL, DELETE_RANGE, DELETE_BELOW])
        self.delete_scope_combo.setToolTip(
            "Which predicted instances to delete: all of them, those in a frame range, or those whose "
            "score is below a value. Your own labels are never deleted. Undo brings them back."
        )
        self.delete_scope_combo.currentTextChanged.connect(self._on_delete_scope_changed)
        form.addRow("Delete", self.delete_scope_combo)
        self.delete_start_spin = QSpinBox()
        self.delete_start_spin.setObjectName("delete_start_spin")
        self.delete_start_spin.setToolTip("First frame whose predictions are deleted")
        self.delete_stop_spin = QSpinBox()
        self.delete_stop_spin.setObjectName("delete_stop_spin")
        self.delete_stop_spin.setToolTip("Last frame whose predictions are deleted (included)")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.delete_start_spin)
        row.addWidget(QLabel("to"))
        row.addWidget(self.delete_stop_spin)
        self.delete_range_row = QWidget()
        self.delete_range_row.setLayout(row)
        form.addRow("Frames", self.delete_range_row)
        self.delete_score_spin = QDoubleSpinBox()
        self.delete_score_spin.setObjectName("delete_score_spin")
        self.delete_score_spin.setRange(0.0, 1_000.0)
        self.delete_score_spin.setDecimals(3)
        self.delete_score_spin.setSingleStep(0.05)
        self.delete_score_spin.setValue(0.2)
        self.delete_score_spin.setToolTip("Predicted instances scoring below this are deleted")
        form.addRow("Score below", self.delete_score_spin)
        self.delete_video_combo = QComboBox()
        self.delete_video_combo.setObjectName("delete_video_combo")
        self.delete_video_combo.addItems([CURRENT_VIDEO, ALL_VIDEOS])
        self.delete_video_combo.setToolTip("Delete in the video shown, or in every video")
        form.addRow("Videos", self.delete_video_combo)
        self.delete_button = QPushButton("Delete predictions")
        self.delete_button.setObjectName("delete_predictions_button")
        self.delete_button.setToolTip("Delete the chosen predictions (one undo step)")
        self.delete_button.clicked.connect(self._on_delete_clicked)
        form.addRow(self.delete_button)
        return box

    # ------------------------------------------------------------------ reading the form
    def model_runs(self) -> list[Path]:
        """The run folders of the chosen model (the model file box wins when filled)."""
        from napari_posetrack.core.errors import ConfigError
        from napari_posetrack.core.inference.model_choice import runs_for_path

        path = self.model_path_edit.text().strip()
        if path:
            return runs_for_path(path)
        if not self._models:
            folder = self.runs_folder_edit.text().strip()
            if not folder:
                raise ConfigError("choose a runs folder or a model file first")
            self._list_models()
            if not self._models:
                raise ConfigError(f"{folder}: no trained models found in this runs folder")
        return list(self._models[max(self.model_combo.currentIndex(), 0)].runs)

    def target(self) -> str:
        """The engine's frame target for the chosen frames."""
        choice = self.target_combo.currentText()
        if choice == "Current frame":
            return str(self.project.current_frame)
        if choice == "Frame range":
            start, stop = self.range_start_spin.value(), self.range_stop_spin.value()
            return f"{min(start, stop)}-{max(start, stop)}"
        return str(TARGETS[choice])

    def videos(self) -> list[int] | None:
        """The chosen video indices (``None`` = all)."""
        if self.target_combo.currentText() in ("Current frame", "Frame range"):
            return [self.project.video_index]  # a frame number means a frame of the video shown
        return [self.project.video_index] if self.video_scope_combo.currentText() == CURRENT_VIDEO else None

    # ------------------------------------------------------------------ slots
    def _on_runs_folder_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Runs folder", self.runs_folder_edit.text())
        if folder:
            self.runs_folder_edit.setText(folder)
            self._on_runs_folder_edited()

    def _on_model_path_browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Trained model",
            self.runs_folder_edit.text(),
            "Training config (training_config.yaml *.yaml *.json)",
        )
        if path:
            self.model_path_edit.setText(path)

    def _on_video_file_browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video to predict", self.video_file_edit.text(), VIDEO_FILTER)
        if path:
            self.video_file_edit.setText(path)
            self._on_video_file_edited()

    def _on_video_output_browse_clicked(self) -> None:
        start = self.video_output_edit.text() or self.video_output_path_or_default()
        path, _ = QFileDialog.getSaveFileName(self, "Save predictions as", start, "SLEAP labels (*.slp)")
        if path:
            self.video_output_edit.setText(path)

    def _on_video_file_toggled(self, on: bool) -> None:
        self.video_scope_combo.setEnabled(not on and self.target_combo.currentText() not in ("Current frame", "Frame range"))
        self._update_frame_limits()

    def _on_video_file_edited(self) -> None:
        """Read the chosen video's length (frame range limits); a file that is not a video is said at once."""
        from napari.utils.notifications import show_error

        from napari_posetrack.core.video import probe_video

        self._video_file_frames = None
        path = self.video_file_edit.text().strip()
        if path:
            try:
                self._video_file_frames = probe_video(path).n_frames
            except (PoseTrackError, OSError, ValueError) as exc:
                show_error(f"Cannot read {path}: {error_message(exc)}")
        self._update_frame_limits()

    def video_file(self) -> Path | None:
        """The video outside the project to predict (``None`` when that box is off)."""
        if not self.video_file_group.isChecked():
            return None
        path = self.video_file_edit.text().strip()
        if not path:
            raise PoseTrackError("choose the video file to predict (or untick 'Predict a video file')")
        return Path(path)

    def video_output_path_or_default(self) -> str:
        """The output box's text, or the default file beside the chosen video (empty: no video yet)."""
        from napari_posetrack.core.inference.api import predictions_path_for

        text = self.video_output_edit.text().strip()
        if text:
            return text
        video = self.video_file_edit.text().strip()
        return str(predictions_path_for(video)) if video else ""

    def _on_runs_folder_edited(self) -> None:
        from napari.utils.notifications import show_error

        try:
            self._list_models()
        except PoseTrackError as exc:
            show_error(str(exc))

    def _list_models(self) -> None:
        from napari_posetrack.core.inference.model_choice import models_in_folder

        self._models = []
        self.model_combo.clear()
        folder = self.runs_folder_edit.text().strip()
        if not folder:
            return
        self._models = models_in_folder(folder)
        for i, m in enumerate(self._models):
            self.model_combo.addItem(f"{m.name}  ({m.pipeline})")
            self.model_combo.setItemData(i, "\n".join(str(r) for r in m.runs), Qt.ItemDataRole.ToolTipRole)

    def _on_options_toggle_toggled(self, shown: bool) -> None:
        self.options_form.setVisible(shown)
        self.options_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _on_tracker_toggle_toggled(self, shown: bool) -> None:
        self.tracker_form.setVisible(shown)
        self.tracker_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _on_target_changed(self, *_: Any) -> None:
        choice = self.target_combo.currentText()
        self.range_row.setEnabled(choice == "Frame range")
        self.video_scope_combo.setEnabled(
            choice not in ("Current frame", "Frame range") and not self.video_file_group.isChecked()
        )

    def _on_delete_scope_changed(self, *_: Any) -> None:
        scope = self.delete_scope_combo.currentText()
        self.delete_range_row.setEnabled(scope == DELETE_RANGE)
        self.delete_score_spin.setEnabled(scope == DELETE_BELOW)

    def _on_project_labels_replaced(self, *_: Any) -> None:
        self._update_frame_limits()
        self._suggest_runs_folder()
        self._fill_track_videos_list()

    def _on_project_labels_changed(self, *_: Any) -> None:
        labels = self.project.labels
        if labels is not None and len(labels.videos) != self.track_videos_list.count():  # a video added
            self._fill_track_videos_list()

    def _on_track_videos_changed(self, *_: Any) -> None:
        chosen = self.track_videos_combo.currentText() == CHOSEN_VIDEOS
        if chosen:
            self._fill_track_videos_list()
        self.track_videos_list.setVisible(chosen)

    def _fill_track_videos_list(self) -> None:
        """One checkable row per project video; ticks survive for videos that are still there."""
        labels = self.project.labels
        ticked = {self.track_videos_list.item(i).data(Qt.ItemDataRole.UserRole) for i in self._ticked_rows()}
        self.track_videos_list.clear()
        for i, video in enumerate(labels.videos if labels is not None else []):
            item = QListWidgetItem(f"{i}: {video.name}")
            item.setData(Qt.ItemDataRole.UserRole, str(video.path))
            item.setToolTip(str(video.path))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if str(video.path) in ticked else Qt.CheckState.Unchecked)
            self.track_videos_list.addItem(item)

    def _ticked_rows(self) -> list[int]:
        """Rows of the videos list that are ticked (= video indices)."""
        return [i for i in range(self.track_videos_list.count())
                if self.track_videos_list.item(i).checkState() == Qt.CheckState.Checked]

    def track_videos(self) -> list[int] | None:
        """The video indices 'Track only' works on (``None`` = all).

        Raises
        ------
        PoseTrackError
            When "Chosen videos" is picked and no video is ticked.
        """
        choice = self.track_videos_combo.currentText()
        if choice == ALL_VIDEOS:
            return None
        if choice == CURRENT_VIDEO:
            return [self.project.video_index]
        chosen = self._ticked_rows()
        if not chosen:
            raise PoseTrackError("tick at least one video to track in the list under 'Track only on'")
        return chosen

    def _suggest_runs_folder(self) -> None:
        """Fill in the runs folder training uses by default (``models`` beside the labels file)."""
        path = self.project.path
        if self.runs_folder_edit.text().strip() or path is None:
            return
        folder = Path(path).parent / "models"
        if folder.is_dir():
            self.runs_folder_edit.setText(str(folder))
            self._on_runs_folder_edited()

    def _on_project_video_changed(self, *_: Any) -> None:
        self._update_frame_limits()

    def _update_frame_limits(self) -> None:
        if self.video_file_group.isChecked() and self._video_file_frames is not None:
            n = self._video_file_frames  # the range counts frames of the video file being predicted
        else:
            video = self.project.video
            n = (video.n_frames or 0) if video is not None else 0
        last = max(n - 1, 0) if n else 999_999_999  # unknown length: the engine checks the range
        for spin in (
            self.range_start_spin,
            self.range_stop_spin,
            self.delete_start_spin,
            self.delete_stop_spin,
        ):
            spin.setRange(0, last)
        if n and n != self._n_frames:  # another video: the ranges start out covering all of it
            self.range_stop_spin.setValue(last)
            self.delete_stop_spin.setValue(last)
        self._n_frames = n

    def _on_predict_clicked(self) -> None:
        if self.video_file_group.isChecked():
            self._predict_video_file()
            return
        from napari.utils.notifications import show_error

        try:
            if self.project.labels is None:
                raise PoseTrackError("open a labels file or a video first")
            runs = self.model_runs()
            options = self.options_form.options()
            tracker = self.tracker_form.config() if self.track_check.isChecked() else None
            target, videos = self.target(), self.videos()
            self._set_busy(True)
            self._started = time.perf_counter()
            self.worker = predict_in_background(
                self.project,
                runs,
                target,
                tracker,
                on_done=self._on_worker_done,
                on_progress=self._on_worker_progress,
                options=options,
                videos=videos,
            )
        except (PoseTrackError, ValueError, OSError) as exc:  # bad choices: say which, start nothing
            self._set_busy(False)
            show_error(f"Cannot predict: {error_message(exc)}")

    def _predict_video_file(self) -> None:
        from napari.utils.notifications import show_error

        try:
            video = self.video_file()
            choice = self.target_combo.currentText()
            if choice not in VIDEO_FILE_TARGETS:
                raise PoseTrackError(
                    f"{video}: a video outside the project has no {choice.lower()}; choose "
                    + ", ".join(VIDEO_FILE_TARGETS[:-1]).lower() + f" or {VIDEO_FILE_TARGETS[-1].lower()}"
                )
            runs = self.model_runs()
            options = self.options_form.options()
            tracker = self.tracker_form.config() if self.track_check.isChecked() else None
            output = self.video_output_edit.text().strip() or None
            self._set_busy(True)
            self._started = time.perf_counter()
            self.worker = predict_video_file_in_background(
                self.project,
                runs,
                video,
                output,
                self.target(),
                tracker,
                merge=self.video_merge_check.isChecked(),
                options=options,
                on_done=self._on_worker_done,
                on_progress=self._on_worker_progress,
            )
        except (PoseTrackError, ValueError, OSError) as exc:
            self._set_busy(False)
            show_error(f"Cannot predict: {error_message(exc)}")

    def _on_track_clicked(self) -> None:
        from napari.utils.notifications import show_error

        try:
            if self.project.labels is None:
                raise PoseTrackError("open a labels file with predictions first")
            config = self.tracker_form.config()
            videos = self.track_videos()
            self._set_busy(True)
            self.worker = track_in_background(
                self.project,
                config,
                videos=videos,
                on_done=self._on_worker_done,
                on_progress=self._on_worker_progress,
            )
        except (PoseTrackError, ValueError, OSError) as exc:
            self._set_busy(False)
            show_error(f"Cannot track: {error_message(exc)}")

    def _on_cancel_clicked(self) -> None:
        if self.worker is not None:
            self.status_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)
            self.worker.quit()

    def _on_worker_progress(self, p: Progress) -> None:
        if p.stage == "loading":
            self.status_label.setText("Loading the model…")
            self.progress_bar.setRange(0, 0)  # busy indicator until frames are counted
            return
        self.progress_bar.setFormat("%v / %m frames")
        self.progress_bar.setRange(0, max(p.total, 1))
        self.progress_bar.setValue(p.done)
        where = (
            ""
            if p.video < 0 or self.project.labels is None or p.video >= len(self.project.labels.videos)
            else f" {self.project.labels.videos[p.video].name}:"
        )
        if p.video < 0 and self.video_file_group.isChecked() and self.video_file_edit.text().strip():
            where = f" {Path(self.video_file_edit.text().strip()).name}:"
        verb = "Predicting" if p.stage == "predicting" else "Tracking"
        self.status_label.setText(f"{verb}{where} frame {p.done} of {p.total}")

    def _on_worker_done(self, outcome: BackgroundOutcome) -> None:
        self.last_outcome = outcome
        self.worker = None
        self._set_busy(False)
        self._show_tracking_summary(outcome)
        if outcome.action == "predict video":
            self._report_video_file(outcome)
        elif outcome.cancelled:
            self.status_label.setText("Cancelled; the labels are unchanged.")
        elif outcome.error is not None:
            self.status_label.setText(f"Failed: {outcome.error}")
        elif outcome.action == "predict":
            self.status_label.setText(
                f"Added {outcome.added} predicted instances in {outcome.seconds:.1f} s."
            )
        else:
            n = 0 if outcome.labels is None else len(outcome.labels.tracks)
            self.status_label.setText(f"Tracked into {n} tracks in {outcome.seconds:.1f} s.")

    def _show_tracking_summary(self, outcome: BackgroundOutcome) -> None:
        """Show what the run's tracking did (kept from the last tracking run otherwise)."""
        summary = outcome.tracking_summary
        if summary is None:
            return
        self.tracking_summary_label.setText("\n".join(line.strip() for line in summary.lines()))
        self.tracking_summary_label.setVisible(True)

    def _report_video_file(self, outcome: BackgroundOutcome) -> None:
        """Status and notification of a video-file run: where the predictions went, how far it got."""
        from napari.utils.notifications import show_info, show_warning

        if outcome.error is not None:  # already notified by the worker
            self.status_label.setText(f"Failed: {outcome.error}")
            return
        done, total = outcome.frames_done, outcome.frames_total
        if outcome.cancelled:
            if outcome.saved_to is None:
                message = f"Cancelled after 0 of {total} frames; nothing was saved."
            else:
                message = (
                    f"Cancelled after {done} of {total} frames: the {done} finished frames "
                    f"({outcome.added} predicted instances) are saved in {outcome.saved_to}; predicting "
                    "this video to the same file again does only the rest. The project is unchanged."
                )
            self.status_label.setText(message)
            show_warning(message)
            return
        if outcome.saved_to is None:
            message = f"Nothing to predict: no frames chosen ({total})."
        else:
            message = (
                f"Saved {outcome.added} predicted instances on {done} frames to {outcome.saved_to} "
                f"in {outcome.seconds:.1f} s"
                + ("; added to the project." if outcome.merged else "; the project is unchanged.")
            )
        self.status_label.setText(message)
        show_info(message)

    def _on_delete_clicked(self) -> None:
        from napari.utils.notifications import show_error, show_info

        session = self.project.session
        if session is None:
            show_error("Cannot delete predictions: no labels are open")
            return
        scope = self.delete_scope_combo.currentText()
        video = self.project.video_index if self.delete_video_combo.currentText() == CURRENT_VIDEO else None
        frames = None
        if scope == DELETE_RANGE:
            start, stop = sorted((self.delete_start_spin.value(), self.delete_stop_spin.value()))
            frames = (start, stop + 1)  # the form's stop is included; the session's is not
        below = self.delete_score_spin.value() if scope == DELETE_BELOW else None
        n = session.delete_predictions(video, frames, below)
        self.project.refresh()
        self.status_label.setText(f"Deleted {n} predicted instances (undo brings them back).")
        show_info(f"Deleted {n} predicted instances")

    # ------------------------------------------------------------------ state
    def _set_busy(self, busy: bool) -> None:
        for w in (self.predict_button, self.track_button, self.delete_button):
            w.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat("")
