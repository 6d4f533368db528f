"""Training in a child process, watched from the GUI thread.

Each model of a job is one ``posetrack train CONFIG LABELS`` run in its own Python process
(:class:`~qtpy.QtCore.QProcess`), so that

- napari stays responsive (nothing waits on the GPU in the GUI process);
- the GPU memory of a model is given back to the system when its process exits;
- a crash (out of memory, a CUDA error, a segfault in a library) ends that process, not napari.

Progress is read from the run folder's ``metrics.jsonl`` (one JSON record a line, flushed by the
trainer as it writes) by a :class:`~qtpy.QtCore.QTimer`; the child's stdout and stderr are kept and
handed over when it fails. Stop writes the run folder's ``CANCEL`` file: the trainer finishes the
batch it is on, saves ``last.ckpt`` and exits normally.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

POLL_MS = 250
"""How often ``metrics.jsonl`` is read for new records."""
OUTPUT_TAIL = 8000
"""Characters of the child's output kept for error messages."""


@dataclass
class TrainingStep:
    """One model to train: a config file, the labels file and the run folder the trainer will create."""

    model: str
    config_path: Path
    labels_path: Path
    run_dir: Path
    device: str = "auto"

    def command(self) -> list[str]:
        """The child's command line (the ``posetrack train`` module entry point of this Python)."""
        return [
            sys.executable, "-m", "napari_posetrack.core.training.cli", "train",
            str(self.config_path), str(self.labels_path), "--device", self.device,
        ]


@dataclass
class _Tail:
    """Reads the complete lines appended to a file since the last read."""

    path: Path
    offset: int = 0
    pending: bytes = b""
    records: list[dict[str, Any]] = field(default_factory=list)

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:  # not created yet
            return []
        self.offset += len(chunk)
        data = self.pending + chunk
        lines = data.split(b"\n")
        self.pending = lines.pop()  # a partly written last line waits for the next read
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


class TrainingProcess(QObject):
    """Runs :class:`TrainingStep` s one after another in child processes.

    Signals
    -------
    step_started(model, run_dir)
        A model's process started.
    record(model, record)
        A new ``metrics.jsonl`` record of that model.
    output(text)
        Text the child wrote (stdout and stderr, as it arrives).
    finished(run_dirs, cancelled)
        Every step ended normally (``cancelled``: Stop was pressed; the run folders of the models
        that trained, possibly partly, are given).
    failed(message)
        A child exited with an error (the message ends with its last output); later steps are not run.
    """

    step_started = Signal(str, object)
    record = Signal(str, object)
    output = Signal(str)
    finished = Signal(list, bool)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._steps: list[TrainingStep] = []
        self._current: TrainingStep | None = None
        self._process: QProcess | None = None
        self._tail: _Tail | None = None
        self._done: list[Path] = []
        self._output = ""
        self._cancelled = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._on_timer_timeout)

    # -- control ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def current(self) -> TrainingStep | None:
        return self._current

    def start(self, steps: list[TrainingStep]) -> None:
        """Start the first step; the others follow as each ends normally."""
        if self.running:
            raise RuntimeError("a training is already running")
        if not steps:
            raise ValueError("nothing to train")
        self._steps = list(steps)
        self._done = []
        self._cancelled = False
        self._start_next()

    def stop(self) -> None:
        """Ask the running model to stop after its current batch; the models after it are not started."""
        if not self.running or self._current is None:
            return
        self._cancelled = True
        self._steps = []
        run_dir = self._current.run_dir
        if run_dir.is_dir():
            from napari_posetrack.core.training.trainer import CANCEL_FILE

            (run_dir / CANCEL_FILE).write_text("stop requested from the napari training widget\n")
        else:
            # still starting (no run folder yet): there is nothing to save, end it now
            self._process.kill()

    def kill(self) -> None:
        """End the child now (widget closed); no signal is emitted afterwards."""
        self._steps = []
        process = self._process
        if process is None:
            return
        self._timer.stop()
        process.finished.disconnect()
        process.kill()
        process.waitForFinished(5000)
        self._process = None
        self._current = None

    # -- internals ----------------------------------------------------------------
    def _start_next(self) -> None:
        step = self._steps.pop(0)
        self._current = step
        self._tail = _Tail(step.run_dir / "metrics.jsonl")
        self._output = ""
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        process.setProcessEnvironment(env)
        process.setProcessChannelMode(QProcess.MergedChannels)
        process.readyReadStandardOutput.connect(self._on_process_output)
        process.finished.connect(self._on_process_finished)
        command = step.command()
        self._process = process
        process.start(command[0], command[1:])
        self._timer.start()
        self.step_started.emit(step.model, step.run_dir)

    def _poll(self) -> None:
        if self._tail is None or self._current is None:
            return
        for rec in self._tail.read():
            self.record.emit(self._current.model, rec)

    def _on_timer_timeout(self) -> None:
        self._poll()

    def _on_process_output(self) -> None:
        if self._process is None:
            return
        text = bytes(self._process.readAllStandardOutput()).decode("utf-8", errors="replace")
        self._output = (self._output + text)[-OUTPUT_TAIL:]
        self.output.emit(text)

    def _on_process_finished(self, exit_code: int, exit_status: Any) -> None:
        self._on_process_output()
        self._poll()  # the last records (epoch, end) written just before the exit
        self._timer.stop()
        step = self._current
        process = self._process
        self._process = None
        self._current = None
        if process is not None:
            process.deleteLater()
        crashed = exit_status == QProcess.CrashExit
        if step is not None and step.run_dir.is_dir():
            self._done.append(step.run_dir)
        if self._cancelled:
            self.finished.emit(list(self._done), True)
            return
        if crashed or exit_code != 0:
            how = "crashed" if crashed else f"ended with exit code {exit_code}"
            name = step.model if step is not None else "training"
            self.failed.emit(f"{name} training {how}.\n{self._output.strip()}")
            return
        if self._steps:
            self._start_next()
        else:
            self.finished.emit(list(self._done), False)


__all__ = ["TrainingProcess", "TrainingStep"]
