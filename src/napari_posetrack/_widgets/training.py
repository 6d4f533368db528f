"""The Training dock widget: configure, preview and train pose models, with a live loss plot.

What a user does here, top to bottom:

1. pick the model type (single animal, top-down, bottom-up...), where runs go and a name prefix;
2. adjust the settings of each model (one tab per model: top-down trains two), every setting
   explained by its tooltip; load or save them as config files;
3. check the receptive field (drawn over the current frame), the size of each network (beside its
   backbone) and the training inputs (augmented samples with their confidence maps, shown as layers);
4. press Run: each model trains in a child process (napari stays responsive, GPU memory is freed
   when it ends, a crash cannot take napari down) while the loss is plotted live; Stop ends it
   cleanly after the current batch;
5. optionally, when training ends, predict on the suggested or unlabelled frames.

Everything slower than a click runs off the GUI thread (the preview, and the model builds that
measure the receptive field and count the parameters of a network without formulas, in
``thread_worker`` s; training in a child process watched by :mod:`._training_process`).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._config_form import ConfigForm
from napari_posetrack._widgets._loss_plot import LossHistory, LossPlot, format_duration
from napari_posetrack._widgets._scroll import scrolling_body
from napari_posetrack._widgets._training_process import TrainingProcess, TrainingStep
from napari_posetrack.core.config import FIELD_HELP, TrainingConfig, baseline_profile, topdown_configs
from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.layers import AXIS_LABELS

if TYPE_CHECKING:
    import napari

PIPELINE_CHOICES: list[tuple[str, str]] = [
    ("single_instance", "Single animal (single_instance)"),
    ("topdown", "Several animals, top-down (centroid + centered instance)"),
    ("bottomup", "Several animals, bottom-up"),
    ("centroid", "Centroid model only"),
    ("centered_instance", "Centered-instance model only"),
]
MODEL_TITLES = {
    "single_instance": "Single instance",
    "centroid": "Centroid",
    "centered_instance": "Centered instance",
    "bottomup": "Bottom-up",
}
PREDICT_TARGETS: list[tuple[str, str]] = [
    ("suggested", "suggested frames"),
    ("unlabelled", "unlabelled frames"),
    ("current", "current frame"),
]
RF_LAYER = "receptive field"
INPUTS_LAYER = "training inputs"
CONFMAPS_LAYER = "training confmaps"
SAMPLE_LAYER = "sample prediction"
CONFIG_FILTER = "Training configs (*.yaml *.yml *.json);;All files (*)"


def models_of(pipeline: str) -> list[str]:
    """The models a job of this pipeline trains, in training order."""
    return ["centroid", "centered_instance"] if pipeline == "topdown" else [pipeline]


def format_parameter_count(n: int) -> str:
    """``n`` trainable parameters in a few characters: ``"3.0 M parameters"``, ``"412 k parameters"``."""
    if n >= 999_500:
        return f"{n / 1e6:.1f} M parameters"
    if n >= 1000:
        return f"{n / 1e3:.0f} k parameters"
    return f"{n} parameters"


# the receptive-field boxes' edge colours, in the order of the pipeline's models
RF_COLOURS = ["yellow", "cyan"]


def receptive_field_captions(sizes: dict[str, float]) -> list[str]:
    """The caption of each receptive-field box: one legend on the largest box, the others empty.

    The legend names every box by its colour (``"receptive field: yellow centroid 92 px, cyan
    centered instance 76 px"``), so no two captions can overlap.
    """
    if not sizes:
        return []
    if len(sizes) == 1:  # one box needs no colour key (and a short caption stays on the canvas)
        return [f"receptive field {next(iter(sizes.values())):.0f} px"]
    parts = [
        f"{colour} {MODEL_TITLES[model].lower()} {size:.0f} px"
        for colour, (model, size) in zip(RF_COLOURS, sizes.items(), strict=False)
    ]
    captions = [""] * len(sizes)
    captions[int(np.argmax(list(sizes.values())))] = "receptive field: " + ", ".join(parts)
    return captions


def format_receptive_field(field: Any) -> str:
    """A :class:`~napari_posetrack.core.models.receptive_field.ReceptiveField` in image pixels (``"≥ 2048 px"``)."""
    return f"{'≥ ' if field.at_least else ''}{field.image_pixels:.0f} px"


class TrainingWidget(QWidget):
    """Configure and run training (see the module docstring)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        from napari_posetrack._widgets._project import project_for

        self.viewer = napari_viewer
        self.project = project_for(napari_viewer)
        self.setObjectName("training_widget")
        self.forms: dict[str, ConfigForm] = {}
        self.history = LossHistory()
        self.run_dirs: list[Path] = []
        self._job_configs: dict[str, TrainingConfig] = {}
        self._preview_worker: Any = None
        self.sample_worker: Any = None
        self.predict_worker: Any = None
        self.measure_worker: Any = None
        """Builds networks to measure their receptive field and count their parameters (None when idle)."""
        self._measurement: Any = None  # the ChildMeasurement the worker runs
        self._measuring: set[tuple[Any, ...]] = set()  # its keys
        self._measure_again = False
        self._measure_errors: dict[tuple[Any, ...], str] = {}

        self.process = TrainingProcess(self)
        self.process.step_started.connect(self._on_process_step_started)
        self.process.record.connect(self._on_process_record)
        self.process.output.connect(self._on_process_output)
        self.process.finished.connect(self._on_process_finished)
        self.process.failed.connect(self._on_process_failed)

        self._build()
        self._on_pipeline_changed()
        self.project.events.labels_replaced.connect(self._on_project_labels_replaced)
        self._on_project_labels_replaced()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        outer = scrolling_body(self, "training")

        top = QFormLayout()
        self.pipeline_combo = QComboBox()
        self.pipeline_combo.setObjectName("pipeline")
        for value, text in PIPELINE_CHOICES:
            self.pipeline_combo.addItem(text, value)
        self.pipeline_combo.setToolTip(FIELD_HELP["model.pipeline"])
        self.pipeline_combo.currentIndexChanged.connect(self._on_pipeline_changed)
        top.addRow("Model type", self.pipeline_combo)

        runs_row = QHBoxLayout()
        self.runs_folder_edit = QLineEdit("models")
        self.runs_folder_edit.setObjectName("runs_folder")
        self.runs_folder_edit.setToolTip(
            FIELD_HELP["outputs.runs_folder"] + " A relative folder is taken from the labels file's folder."
        )
        self.runs_folder_edit.editingFinished.connect(self._on_form_changed)
        browse = QPushButton("Browse…")
        browse.setObjectName("runs_folder_browse")
        browse.setToolTip("Choose the folder where training runs are written.")
        browse.clicked.connect(self._on_runs_folder_browse_clicked)
        runs_row.addWidget(self.runs_folder_edit, 1)
        runs_row.addWidget(browse)
        top.addRow("Runs folder", runs_row)

        self.prefix_edit = QLineEdit()
        self.prefix_edit.setObjectName("run_name_prefix")
        self.prefix_edit.setToolTip(FIELD_HELP["outputs.run_name_prefix"])
        top.addRow("Run name prefix", self.prefix_edit)

        profile_row = QHBoxLayout()
        self.rf_combo = QComboBox()
        self.rf_combo.setObjectName("receptive_field_profile")
        self.rf_combo.addItems(["small", "medium", "large"])
        self.rf_combo.setCurrentText("medium")
        self.rf_combo.setToolTip(
            "Receptive field of the baseline settings: how much of the image around a body part the network "
            "looks at. Pick 'large' for big animals or when body parts are hard to tell apart without context."
        )
        self.reset_button = QPushButton("Reset to baseline")
        self.reset_button.setObjectName("reset_baseline")
        self.reset_button.setToolTip(
            "Replace the settings of every model with a tested starting point (like SLEAP's baseline profiles), "
            "sized for the open video."
        )
        self.reset_button.clicked.connect(self._on_reset_clicked)
        profile_row.addWidget(self.rf_combo)
        profile_row.addWidget(self.reset_button)
        top.addRow("Baseline", profile_row)
        outer.addLayout(top)

        files_row = QHBoxLayout()
        self.load_button = QPushButton("Load config…")
        self.load_button.setObjectName("load_config")
        self.load_button.setToolTip(
            "Read training settings from a YAML/JSON file (also SLEAP's training_config.json). A top-down file "
            "fills both tabs; a centroid or centered-instance file fills its tab."
        )
        self.load_button.clicked.connect(self._on_load_clicked)
        self.save_button = QPushButton("Save config…")
        self.save_button.setObjectName("save_config")
        self.save_button.setToolTip(
            "Write the settings to a YAML (or .json) file, to reuse them or train from the command line "
            "(posetrack train CONFIG LABELS). Top-down writes one file per model (NAME.centroid.yaml, "
            "NAME.centered_instance.yaml)."
        )
        self.save_button.clicked.connect(self._on_save_clicked)
        files_row.addWidget(self.load_button)
        files_row.addWidget(self.save_button)
        outer.addLayout(files_row)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("model_tabs")
        self.tabs.setToolTip("The settings of each model this job trains (top-down trains two models).")
        self.tabs.currentChanged.connect(lambda *_: self._on_form_changed())
        self.tabs.setMinimumHeight(220)

        # settings above, progress below; the user moves the boundary
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("training_splitter")
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self.tabs)
        lower_widget = QWidget()
        lower = QVBoxLayout(lower_widget)
        lower.setContentsMargins(0, 0, 0, 0)
        splitter.addWidget(lower_widget)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        outer.addWidget(splitter, 1)
        outer = lower

        rf_row = QHBoxLayout()
        self.rf_check = QCheckBox("Show receptive field")
        self.rf_check.setObjectName("show_receptive_field")
        self.rf_check.setChecked(True)
        self.rf_check.setToolTip(
            "Draw a box the size of the network's receptive field in the middle of the frame: the region of "
            "the image the network can look at to place one body part. It should cover an animal, or at "
            "least a body part and its neighbours. It grows with the max stride and shrinks with input scaling."
        )
        self.rf_check.toggled.connect(self._on_form_changed)
        self.rf_label = QLabel("")
        self.rf_label.setObjectName("receptive_field_label")
        self.rf_label.setWordWrap(True)
        self.rf_label.setToolTip(self.rf_check.toolTip())
        rf_row.addWidget(self.rf_check)
        rf_row.addWidget(self.rf_label, 1)
        outer.addLayout(rf_row)

        preview_row = QHBoxLayout()
        self.preview_button = QPushButton("View training inputs")
        self.preview_button.setObjectName("view_training_inputs")
        self.preview_button.setToolTip(
            "Show augmented training samples of the model in the open tab, with their confidence maps (the "
            "blobs the network learns to draw), as layers. Check that rotations look plausible and each blob "
            "sits on its body part."
        )
        self.preview_button.clicked.connect(self._on_preview_clicked)
        self.preview_count = QSpinBox()
        self.preview_count.setObjectName("preview_samples")
        self.preview_count.setRange(1, 64)
        self.preview_count.setValue(8)
        self.preview_count.setToolTip("How many augmented samples to show.")
        preview_row.addWidget(self.preview_button, 1)
        preview_row.addWidget(QLabel("samples"))
        preview_row.addWidget(self.preview_count)
        outer.addLayout(preview_row)

        run_opts = QFormLayout()
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("device")
        self.device_combo.addItems(["auto", "cpu", "cuda", "mps"])
        self.device_combo.setToolTip(
            "Where training runs: 'auto' uses an NVIDIA GPU (cuda) or Apple GPU (mps) when there is one, "
            "otherwise the CPU (much slower)."
        )
        run_opts.addRow("Device", self.device_combo)
        predict_row = QHBoxLayout()
        self.predict_check = QCheckBox("Predict after training on")
        self.predict_check.setObjectName("predict_after_training")
        self.predict_check.setToolTip(
            "When training ends, run the new model(s) on these frames and show the predictions, so you can "
            "correct them and label faster."
        )
        self.predict_target = QComboBox()
        self.predict_target.setObjectName("predict_target")
        for value, text in PREDICT_TARGETS:
            self.predict_target.addItem(text, value)
        self.predict_target.setToolTip(self.predict_check.toolTip())
        predict_row.addWidget(self.predict_check)
        predict_row.addWidget(self.predict_target, 1)
        run_opts.addRow(predict_row)
        self.sample_check = QCheckBox("Show a sample prediction on the current frame while training")
        self.sample_check.setObjectName("sample_prediction")
        self.sample_check.setChecked(True)
        self.sample_check.setToolTip(
            "Each time the validation loss improves, predict the current frame with the best model so far "
            f"(on the CPU) and show it as the '{SAMPLE_LAYER}' layer: you see the model getting better."
        )
        run_opts.addRow(self.sample_check)
        outer.addLayout(run_opts)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("run_training")
        self.run_button.setToolTip(
            "Start training in a separate process (napari stays usable). The labels are saved to the run "
            "folder first when they have unsaved changes; your project file is not touched."
        )
        self.run_button.clicked.connect(self._on_run_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stop_training")
        self.stop_button.setToolTip(
            "Stop after the current batch. The checkpoints written so far are kept and can be used to predict."
        )
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        outer.addLayout(buttons)

        self.status_label = QLabel("Not training.")
        self.status_label.setObjectName("training_status")
        self.status_label.setWordWrap(True)
        self.status_label.setToolTip("What the training is doing: model, epoch, batch, losses, time left.")
        outer.addWidget(self.status_label)


        self.plot = LossPlot(self, height=2.4)
        self.plot.setObjectName("loss_plot")
        self.plot.setToolTip(
            "Training loss of each batch (thin line) and the mean training and validation loss of each epoch "
            "(dots). Both should fall; a validation loss rising while training loss falls means overfitting."
        )
        self.plot.setMinimumHeight(180)
        outer.addWidget(self.plot, 2)
        self._reset_plot("")

        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("training_log")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setMaximumHeight(110)
        self.log_view.setToolTip("What the training process printed (errors appear here in full).")
        outer.addWidget(self.log_view)

    # ------------------------------------------------------------------ config <-> forms
    @property
    def pipeline(self) -> str:
        return str(self.pipeline_combo.currentData())

    def set_pipeline(self, pipeline: str) -> None:
        index = self.pipeline_combo.findData(pipeline)
        if index < 0:
            raise ValueError(f"unknown pipeline {pipeline!r}")
        self.pipeline_combo.setCurrentIndex(index)

    def _frame_size(self) -> tuple[int, int] | None:
        video = self.project.video
        if video is not None and video.shape is not None:
            return int(video.shape[0]), int(video.shape[1])
        return None

    def _baseline(self, model: str) -> TrainingConfig:
        return baseline_profile(model, receptive_field=self.rf_combo.currentText(), frame_size=self._frame_size())

    def form(self, model: str) -> ConfigForm:
        """The settings form of one model type (created on first use, kept when the pipeline changes)."""
        if model not in self.forms:
            form = ConfigForm(exclude=("model.pipeline", "outputs.runs_folder", "outputs.run_name_prefix"))
            form.setObjectName(f"form:{model}")
            form.set_config(self._baseline(model))
            form.show_fields_for(model)
            labels = self.project.labels
            if labels is not None:
                form.set_anchor_choices(list(labels.skeleton.nodes))
            form.connect_changed(self._on_form_changed)
            self.forms[model] = form
        return self.forms[model]

    def model_configs(self) -> dict[str, TrainingConfig]:
        """The config of every model of the job, keyed by model type (raises ConfigError on bad text)."""
        out = {}
        for model in models_of(self.pipeline):
            config = self.form(model).config()
            config.model.pipeline = model
            config.outputs.runs_folder = self.runs_folder_edit.text().strip()
            config.outputs.run_name_prefix = self.prefix_edit.text()
            out[model] = config
        return out

    def set_model_config(self, config: TrainingConfig) -> None:
        """Show ``config`` in the form of its model type (a top-down config fills both models' tabs)."""
        if config.model.pipeline == "topdown":
            for part in topdown_configs(config):
                part.outputs.run_name_prefix = config.outputs.run_name_prefix
                part.outputs.run_name = config.outputs.run_name
                self.form(part.model.pipeline).set_config(part)
            self.set_pipeline("topdown")
        else:
            self.form(config.model.pipeline).set_config(config)
            if not (self.pipeline == "topdown" and config.model.pipeline in ("centroid", "centered_instance")):
                self.set_pipeline(config.model.pipeline)
        self.runs_folder_edit.setText(config.outputs.runs_folder)
        self.prefix_edit.setText(config.outputs.run_name_prefix)
        self._on_form_changed()

    def load_config(self, path: str | Path) -> None:
        """Read a config file into the form (errors name the file; the form is unchanged then)."""
        config = TrainingConfig.from_file(path)
        self.set_model_config(config)

    def save_config(self, path: str | Path) -> list[Path]:
        """Write the job's configs; top-down writes ``NAME.centroid.yaml`` and ``NAME.centered_instance.yaml``."""
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".yaml")
        configs = self.model_configs()
        written = []
        for model, config in configs.items():
            target = path if len(configs) == 1 else path.with_name(f"{path.stem}.{model}{path.suffix}")
            config.save(target)
            written.append(target)
        return written

    def _on_pipeline_changed(self, *_: Any) -> None:
        models = models_of(self.pipeline)
        self.tabs.blockSignals(True)
        while self.tabs.count():
            self.tabs.removeTab(0)
        for model in models:
            scroll = QScrollArea()
            scroll.setObjectName(f"tab:{model}")
            scroll.setWidgetResizable(True)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(self.form(model))
            self.tabs.addTab(scroll, MODEL_TITLES[model])
        self.tabs.blockSignals(False)
        self._on_form_changed()

    def _on_reset_clicked(self) -> None:
        for model, form in self.forms.items():
            form.set_config(self._baseline(model))
        self._on_form_changed()

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load training config", "", CONFIG_FILTER)
        if not path:
            return
        try:
            self.load_config(path)
        except (PoseTrackError, OSError, ValueError) as err:
            self._error(f"Cannot load training config {path}: {err}")

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save training config", "training_config.yaml", CONFIG_FILTER)
        if not path:
            return
        try:
            written = self.save_config(path)
        except (PoseTrackError, OSError, ValueError) as err:
            self._error(f"Cannot save training config {path}: {err}")
            return
        from napari.utils.notifications import show_info

        show_info("Saved " + ", ".join(str(p) for p in written))

    def _on_runs_folder_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Runs folder", str(self._runs_root()))
        if folder:
            self.runs_folder_edit.setText(folder)

    def _on_project_labels_replaced(self) -> None:
        labels = self.project.labels
        if labels is None:
            return
        for form in self.forms.values():
            form.set_anchor_choices(list(labels.skeleton.nodes))
        self._on_form_changed()

    # ------------------------------------------------------------------ receptive field and model size
    def _on_form_changed(self, *_: Any) -> None:
        self.update_receptive_field()

    def _frame_shape(self) -> tuple[int, int] | None:
        size = self._frame_size()
        if size is not None:
            return size
        layer = self.project.video_layer
        if layer is not None:
            shape = layer.data.shape
            return int(shape[1]), int(shape[2])
        return None

    def update_receptive_field(self) -> None:
        """Show each model's receptive field (label and boxes over the frame) and size (beside its backbone).

        A UNet without a neck has formulas for both. Other networks are built and measured once, in a
        child process watched by a worker thread (:attr:`measure_worker`), and cached; their values
        appear as they are done.
        """
        try:
            configs = self.model_configs()
        except (PoseTrackError, ValueError) as err:
            self.rf_label.setText(f"(settings incomplete: {err})")
            return
        jobs = self._show_parameter_counts(configs)
        fields, rf_jobs, problem = self._receptive_fields(configs)
        jobs.update(rf_jobs)
        if jobs:
            self._measure_in_background(jobs)
        if problem is not None:
            self.rf_label.setText(problem)
            return
        parts = [
            f"{format_receptive_field(fields[m]) if m in fields else 'measuring…'} ({MODEL_TITLES[m].lower()})"
            for m in configs
        ]
        self.rf_label.setText("Receptive field: " + ", ".join(parts))
        if len(fields) == len(configs):
            self._draw_receptive_fields({m: float(f.image_pixels) for m, f in fields.items()})

    def _skeleton(self) -> tuple[Any, str]:
        """The skeleton models are sized for, and how to say which: the open one, or a 2-part stand-in."""
        labels = self.project.labels
        if labels is not None:
            n = len(labels.skeleton.nodes)
            return labels.skeleton, f"the open skeleton's {n} body part{'s' if n != 1 else ''}"
        from napari_posetrack.core.models.receptive_field import stand_in_skeleton

        return stand_in_skeleton(2, 1), "2 body parts (no labels are open; each body part adds a few more)"

    def _show_parameter_counts(self, configs: dict[str, TrainingConfig]) -> dict[tuple[Any, ...], Any]:
        """Show each form's parameter count when known; return the counts to compute (requests by key)."""
        from napari_posetrack.core.models import receptive_field as rf

        skeleton, which = self._skeleton()
        jobs: dict[tuple[Any, ...], Any] = {}
        for model, config in configs.items():
            form = self.form(model)
            try:
                key = ("parameters", rf.architecture_key(config), config.data.channels,
                       len(skeleton.nodes), tuple(skeleton.edges))
                if rf.parameter_count_known(config, 0, skeleton=skeleton):
                    n = rf.count_parameters(config, 0, skeleton=skeleton)
                    form.set_parameter_count(format_parameter_count(n), f"{n:,} trainable parameters for {which}.")
                elif key in self._measure_errors:
                    form.set_parameter_count("size unknown", f"Cannot build this network: {self._measure_errors[key]}")
                else:
                    form.set_parameter_count("counting parameters…", "Building the network to count its parameters.")
                    jobs[key] = rf.Request("parameters", config, skeleton)
            except (PoseTrackError, ValueError) as err:
                form.set_parameter_count("size unknown", f"Cannot count the parameters: {err}")
        return jobs

    def _receptive_fields(
        self, configs: dict[str, TrainingConfig]
    ) -> tuple[dict[str, Any], dict[tuple[Any, ...], Any], str | None]:
        """``(known fields by model, measurements to make (requests by key), text of a problem or None)``."""
        from napari_posetrack.core.models import receptive_field as rf

        frame = self._frame_shape()
        fields: dict[str, Any] = {}
        jobs: dict[tuple[Any, ...], Any] = {}
        problem = None
        for model, config in configs.items():
            try:
                if rf.receptive_field_known(config):
                    fields[model] = rf.receptive_field(config, frame_size=frame)
                    continue
                key = ("receptive field", rf.architecture_key(config))
                if key in self._measure_errors:
                    problem = problem or f"(cannot measure the receptive field: {self._measure_errors[key]})"
                else:
                    jobs[key] = rf.Request("receptive_field", config)
            except (PoseTrackError, ValueError) as err:
                problem = problem or f"(settings incomplete: {err})"
        return fields, jobs, problem

    def _measure_in_background(self, jobs: dict[tuple[Any, ...], Any]) -> None:
        """Compute ``jobs`` (requests by key) in a child process, one at a time; core caches the values.

        A child, not this process: building torchvision networks imports torch and triton, which would
        freeze the GUI for seconds and can crash a process whose canvas already loaded OpenGL's LLVM. A
        child busy with networks the form no longer shows is stopped; the next one measures what it shows.
        """
        if self.measure_worker is not None:
            self._measure_again = True  # the running worker's end shows what is still missing
            if not set(jobs) <= self._measuring:
                self._measurement.stop()
            return
        from napari.qt.threading import thread_worker

        from napari_posetrack.core.models.receptive_field import ChildMeasurement

        keys = list(jobs)
        measurement = ChildMeasurement([jobs[k] for k in keys])

        @thread_worker
        def measure() -> Iterator[tuple[tuple[Any, ...], str | None]]:
            for index, error in measurement.results():
                yield keys[index], error

        worker = measure()
        worker.yielded.connect(self._on_measure_yielded)
        worker.finished.connect(self._on_measure_finished)
        self.measure_worker = worker
        self._measurement = measurement
        self._measuring = set(keys)
        self.destroyed.connect(measurement.stop)  # a viewer closed without closing this widget ends the child too
        worker.start()

    def stop_measuring(self) -> None:
        """Stop the child measuring networks, if any; what it finished stays cached, the rest waits for the next change."""
        self._measure_again = False
        if self.measure_worker is not None:
            self._measurement.stop()

    def _on_measure_yielded(self, result: tuple[tuple[Any, ...], str | None]) -> None:
        key, error = result
        if error is not None:
            self._measure_errors[key] = error
        if not self._measurement.stopped:  # a stopped child's late results start nothing new
            self.update_receptive_field()  # shows what this step made known (counts come before fields)

    def _on_measure_finished(self) -> None:
        self.measure_worker = None
        self._measuring = set()
        if self._measure_again:
            self._measure_again = False
            self.update_receptive_field()

    def _draw_receptive_fields(self, sizes: dict[str, float]) -> None:
        """One box per model, ``sizes`` image pixels wide, in the middle of the frame.

        The boxes are a 2-D overlay (no frame axis: the one time slider stays the video's). One
        caption, a legend naming every box by its colour, sits above the largest box, so captions
        never overlap however close the sizes are.
        """
        frame = self._frame_shape()
        existing = next((layer for layer in self.viewer.layers if layer.name == RF_LAYER), None)
        if not self.rf_check.isChecked() or frame is None:
            if existing is not None:
                existing.visible = False
            return
        cy, cx = frame[0] / 2.0, frame[1] / 2.0
        boxes = []
        for size in sizes.values():
            half = size / 2.0
            boxes.append(np.array([[cy - half, cx - half], [cy - half, cx + half],
                                   [cy + half, cx + half], [cy + half, cx - half]]))
        colours = RF_COLOURS[: len(boxes)]
        names = [MODEL_TITLES[m] for m in sizes]
        features = {"model": names, "caption": receptive_field_captions(sizes)}
        video_layer = self.project.video_layer
        scale = tuple(video_layer.scale[-2:]) if video_layer is not None else (1.0, 1.0)
        translate = tuple(video_layer.translate[-2:]) if video_layer is not None else (0.0, 0.0)
        if existing is not None and len(existing.data) == len(boxes):
            existing.data = boxes
            existing.features = features
            existing.visible = True
            return
        if existing is not None:
            self.viewer.layers.remove(existing)
        layer = self.viewer.add_shapes(
            boxes, shape_type="rectangle", name=RF_LAYER, edge_color=colours, face_color="transparent",
            edge_width=2, features=features,
            text={"string": "{caption}", "color": "white", "anchor": "upper_left", "size": 8},
            scale=scale, translate=translate, axis_labels=AXIS_LABELS[-2:],
        )
        layer.editable = False
        if self.project.points_layer is not None:
            self.viewer.layers.selection.active = self.project.points_layer

    # ------------------------------------------------------------------ training inputs preview
    def _current_model(self) -> str:
        models = models_of(self.pipeline)
        index = self.tabs.currentIndex()
        return models[index] if 0 <= index < len(models) else models[0]

    def _on_preview_clicked(self) -> None:
        labels = self.project.labels
        if labels is None:
            self._error("Open or create labels first: the preview shows labelled frames.")
            return
        model = self._current_model()
        try:
            config = self.model_configs()[model]
        except PoseTrackError as err:
            self._error(f"Invalid training settings: {err}")
            return
        from napari.qt.threading import thread_worker

        from napari_posetrack.core.training.preview import training_preview

        n = self.preview_count.value()
        seed = int(time.time()) % 100_000  # another click, other samples

        labels = labels.copy()  # the user may keep labelling while the worker reads

        @thread_worker
        def compute() -> Any:
            return training_preview(config, labels, n_samples=n, seed=seed)

        self.preview_button.setEnabled(False)
        self.preview_button.setText("Preparing samples…")
        worker = compute()
        worker.returned.connect(self._on_preview_returned)
        worker.errored.connect(self._on_preview_errored)
        worker.finished.connect(self._on_preview_finished)
        self._preview_worker = worker
        worker.start()

    def _on_preview_returned(self, preview: Any) -> None:
        stride = float(preview.output_stride)
        from napari_posetrack._widgets._project import batched_layer_changes

        with batched_layer_changes(self.viewer):
            for name in (INPUTS_LAYER, CONFMAPS_LAYER):
                if name in self.viewer.layers:
                    self.viewer.layers.remove(name)
        rgb = preview.images.ndim == 4
        self.viewer.add_image(preview.images, name=INPUTS_LAYER, rgb=rgb, contrast_limits=(0, 255),
                              metadata={"pipeline": preview.pipeline})
        self.viewer.add_image(
            preview.confmaps_max, name=CONFMAPS_LAYER, colormap="magma", blending="additive",
            contrast_limits=(0.0, 1.0), opacity=0.7, scale=(1.0, stride, stride),
            metadata={"channels": preview.channel_names, "pipeline": preview.pipeline},
        )
        self.viewer.dims.set_current_step(0, 0)
        from napari.utils.notifications import show_info

        show_info(
            f"{len(preview.images)} augmented {MODEL_TITLES[preview.pipeline].lower()} samples: layers "
            f"'{INPUTS_LAYER}' and '{CONFMAPS_LAYER}' (use the frame slider; delete them when done)."
        )

    def _on_preview_errored(self, err: BaseException) -> None:
        self._error(f"Cannot prepare training inputs: {err}")

    def _on_preview_finished(self) -> None:
        self.preview_button.setEnabled(True)
        self.preview_button.setText("View training inputs")
        self._preview_worker = None

    # ------------------------------------------------------------------ running
    def _runs_root(self) -> Path:
        """The runs folder as an absolute path (a relative one is taken from the labels file's folder)."""
        folder = Path(self.runs_folder_edit.text().strip() or "models").expanduser()
        if folder.is_absolute():
            return folder
        base = self.project.path.parent if self.project.path is not None else Path.cwd()
        return (base / folder).resolve()

    def _job_stem(self, root: Path, models: list[str]) -> str:
        """``<prefix><YYMMDD_HHMMSS>`` not used by any run folder yet (each model adds ``.<model>``)."""
        stem = f"{self.prefix_edit.text()}{datetime.datetime.now():%y%m%d_%H%M%S}"
        candidate, n = stem, 1
        while any((root / f"{candidate}.{m}").exists() for m in models) or (root / f"{candidate}.inputs").exists():
            candidate = f"{stem}_{n}"
            n += 1
        return candidate

    def _training_labels(self, inputs: Path) -> Path:
        """The labels file the child trains on: the project file when it is saved, else a copy in ``inputs``.

        The project file itself is never written here.
        """
        project = self.project
        session = project.session
        path = project.path
        if path is not None and path.suffix.lower() == ".slp" and path.is_file() and not session.dirty:
            return path
        from napari_posetrack.core.io import save_labels

        labels = project.labels.copy()
        for video in labels.videos:
            # the copy lives elsewhere: relative video paths would no longer resolve
            if video.backend == "embedded" or not video.exists:
                continue
            if isinstance(video.path, list):
                video.path = [str(Path(p).resolve()) for p in video.path]
            else:
                video.path = str(Path(video.path).resolve())
        target = inputs / "labels.slp"
        save_labels(labels, target)
        return target

    def start_training(self) -> list[Path]:
        """Validate, write the inputs and start the child process; returns the run folders it will write.

        Raises
        ------
        PoseTrackError
            Invalid settings or no labels (nothing is started).
        """
        from napari_posetrack.core.errors import ConfigError

        labels = self.project.labels
        if labels is None:
            raise ConfigError("open or create labels before training")
        if len(labels.user_frames()) == 0:
            raise ConfigError("the labels hold no labelled frames yet: label some frames first")
        configs = self.model_configs()
        for config in configs.values():
            config.validate(labels.skeleton)
        root = self._runs_root()
        stem = self._job_stem(root, list(configs))
        inputs = root / f"{stem}.inputs"
        inputs.mkdir(parents=True)
        labels_path = self._training_labels(inputs)
        steps = []
        for model, config in configs.items():
            config = config.copy()
            config.outputs.runs_folder = str(root)
            config.outputs.run_name = f"{stem}.{model}"
            config_path = inputs / f"{model}.yaml"
            config.to_yaml(config_path)
            steps.append(TrainingStep(model, config_path, labels_path, root / config.outputs.run_name,
                                      self.device_combo.currentText()))
        self._job_configs = configs
        self.run_dirs = [s.run_dir for s in steps]
        self.log_view.clear()
        self.log_view.appendPlainText(f"training data: {labels_path}")
        self.process.start(steps)
        self._set_running(True)
        return list(self.run_dirs)

    def _on_run_clicked(self) -> None:
        if self.process.running:
            return
        try:
            self.start_training()
        except (PoseTrackError, OSError, ValueError) as err:
            self._error(f"Cannot start training: {err}")
            self._set_running(False)

    def _on_stop_clicked(self) -> None:
        self.process.stop()
        self.stop_button.setEnabled(False)
        self.status_label.setText("Stopping after the current batch…")

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.load_button.setEnabled(not running)
        self.reset_button.setEnabled(not running)
        self.pipeline_combo.setEnabled(not running)

    def _on_process_step_started(self, model: str, run_dir: Any) -> None:
        config = self._job_configs.get(model)
        self.history = LossHistory(model, config.optimization.epochs if config is not None else 0)
        if config is not None:
            self.history.max_steps = config.optimization.max_iterations
        self._reset_plot(MODEL_TITLES.get(model, model))
        self.status_label.setText(f"{MODEL_TITLES.get(model, model)}: starting (reading frames)…")

    def _on_process_record(self, model: str, record: dict[str, Any]) -> None:
        self.history.add(record)
        event = record.get("event")
        title = MODEL_TITLES.get(model, model)
        h = self.history
        if event == "start":
            self.status_label.setText(f"{title}: training on {record.get('device')}, {h.steps_per_epoch} batches "
                                      f"per epoch, {h.epochs} epochs at most.")
        elif event == "batch":
            self.status_label.setText(
                f"{title}: epoch {int(record['epoch']) + 1}/{h.epochs}, batch {int(record['batch']) + 1}/"
                f"{h.steps_per_epoch}, loss {float(record['loss']):.4g}, time left ~{format_duration(h.eta())}"
            )
        elif event == "epoch":
            self.status_label.setText(
                f"{title}: epoch {int(record['epoch']) + 1}/{h.epochs} done, train loss "
                f"{float(record['train_loss']):.4g}, validation loss {float(record['val_loss']):.4g}, error "
                f"{float(record['val_mean_pixel_error']):.1f} px, time left ~{format_duration(h.eta())}"
            )
            if record.get("best") and self.sample_check.isChecked():
                self._start_sample_prediction(model)
        elif event == "end":
            self.status_label.setText(f"{title}: ended ({record.get('reason')}) after {record.get('step')} steps.")
        elif event == "error":
            self.log_view.appendPlainText(str(record.get("message")))
        self._update_plot()

    def _on_process_output(self, text: str) -> None:
        self.log_view.appendPlainText(text.rstrip("\n"))

    def _on_process_finished(self, run_dirs: list, cancelled: bool) -> None:
        self._set_running(False)
        self._update_plot(force=True)
        from napari.utils.notifications import show_info

        done = [Path(d) for d in run_dirs]
        trained = [d for d in done if (d / "best.ckpt").exists() or (d / "last.ckpt").exists()]
        where = ", ".join(str(d) for d in done)
        if cancelled:
            self.status_label.setText(f"Stopped. Checkpoints so far are in {where}.")
            show_info(f"Training stopped; checkpoints so far are in {where}")
        else:
            self.status_label.setText(f"Training finished: {where}")
            show_info(f"Training finished: {where}")
        complete = len(trained) == len(self.run_dirs) and trained == self.run_dirs
        if self.predict_check.isChecked() and complete and not cancelled:
            self.predict_after_training(trained)

    def _on_process_failed(self, message: str) -> None:
        self._set_running(False)
        self.status_label.setText("Training failed; see the log below.")
        first = message.strip().splitlines()
        error_lines = [line for line in first if "error" in line.lower()]
        summary = error_lines[-1] if error_lines else (first[-1] if first else message)
        self._error(f"Training failed: {summary}")

    def predict_after_training(self, run_dirs: list[Path]) -> Any:
        """Predict with the new models on the chosen frames (the inference widget's engine does the work)."""
        try:
            from napari_posetrack._widgets._background import predict_in_background
        except ImportError as err:
            self._error(f"Cannot predict after training: the inference module is unavailable ({err})")
            return None
        target = str(self.predict_target.currentData())
        videos = None
        if target == "current":
            # one frame of the shown video: a quick look at what the model learnt
            target, videos = str(self.project.current_frame), [self.project.video_index]
        self.status_label.setText(self.status_label.text() + " Predicting…")
        try:
            self.predict_worker = predict_in_background(
                self.project, list(run_dirs), target, videos=videos, on_done=self._on_predict_done
            )
        except (PoseTrackError, OSError, ValueError) as err:
            self._error(f"Cannot predict after training: {err}")
            return None
        return self.predict_worker

    def _on_predict_done(self, outcome: Any) -> None:
        """``outcome``: the inference module's ``BackgroundOutcome`` (labels, error or cancelled)."""
        self.predict_worker = None
        text = self.status_label.text().replace(" Predicting…", "")
        if getattr(outcome, "error", None):
            text += " Prediction failed (see the notification)."
        elif getattr(outcome, "cancelled", False):
            text += " Prediction cancelled."
        else:
            text += f" Predictions added ({getattr(outcome, 'added', 0)} instances)."
        self.status_label.setText(text)

    # ------------------------------------------------------------------ sample prediction
    def _sample_runs(self, model: str) -> list[Path] | None:
        """The run folders that make a whole predictor once ``model`` has a checkpoint (None: not yet)."""
        if model in ("single_instance", "bottomup"):
            return [d for d in self.run_dirs if d.name.endswith("." + model)]
        if model == "centered_instance" and len(self.run_dirs) == 2:
            return list(self.run_dirs)  # the centroid model finished before this one started
        return None

    def _start_sample_prediction(self, model: str) -> None:
        runs = self._sample_runs(model)
        if not runs or self.sample_worker is not None or self.project.video is None:
            return  # a prediction is still running: the next improvement shows a newer model anyway
        try:
            image = self.project.frame_image()
        except (OSError, ValueError, IndexError):
            return
        frame = self.project.current_frame
        from napari.qt.threading import thread_worker

        from napari_posetrack.core.training.preview import sample_prediction

        @thread_worker
        def compute() -> Any:
            return frame, sample_prediction(runs, image, frame)

        worker = compute()
        worker.returned.connect(self._on_sample_returned)
        worker.errored.connect(self._on_sample_errored)
        worker.finished.connect(self._on_sample_finished)
        self.sample_worker = worker
        worker.start()

    def _on_sample_returned(self, result: Any) -> None:
        frame, (points, _scores) = result
        xy = points.reshape(-1, 2)
        xy = xy[np.isfinite(xy).all(axis=1)]
        data = np.column_stack([np.full(len(xy), float(frame)), xy[:, 1], xy[:, 0]]) if len(xy) else np.zeros((0, 3))
        layer = next((x for x in self.viewer.layers if x.name == SAMPLE_LAYER), None)
        if layer is None:
            video = self.project.video_layer
            kwargs = {"scale": tuple(video.scale), "translate": tuple(video.translate)} if video is not None else {}
            self.viewer.add_points(data, name=SAMPLE_LAYER, ndim=3, size=5, face_color="magenta",
                                   border_color="white", symbol="cross", axis_labels=AXIS_LABELS, **kwargs)
            if self.project.points_layer is not None:
                self.viewer.layers.selection.active = self.project.points_layer
        else:
            layer.data = data

    def _on_sample_errored(self, err: BaseException) -> None:
        # a sample picture is a nicety: say why it is missing, do not interrupt training
        self.log_view.appendPlainText(f"sample prediction skipped: {err}")

    def _on_sample_finished(self) -> None:
        self.sample_worker = None

    # ------------------------------------------------------------------ plot
    def _reset_plot(self, title: str) -> None:
        self.plot.reset(title)

    def _update_plot(self, force: bool = False) -> None:
        self.plot.show_history(self.history, force=force)

    # ------------------------------------------------------------------ misc
    def _error(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.log_view.appendPlainText(message)
        show_error(message)

    def closeEvent(self, event: Any) -> None:
        self.process.kill()
        if self.measure_worker is not None:
            self.measure_worker.yielded.disconnect(self._on_measure_yielded)  # nothing reaches a closed widget
            self.stop_measuring()
        super().closeEvent(event)


__all__ = ["TrainingWidget"]
