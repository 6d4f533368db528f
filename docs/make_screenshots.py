"""Make the pictures of the user guide (``docs/images/``) from the real fly clip.

Usage (a display is needed; on a headless Linux machine run it under a virtual one)::

    QT_QPA_PLATFORM=xcb xvfb-run -a python docs/make_screenshots.py [OUT_DIR] [--data DATA_DIR]

``OUT_DIR`` defaults to ``docs/images``; ``DATA_DIR`` to ``$POSETRACK_DATA`` or the shared data
folder beside the project (``sleap-flies/clip.mp4``, ``clip.slp`` and ``clip.predictions.slp`` are
read, never written). The clip and its labels are copied into ``flies-project`` in a temporary
folder that stands in for the home folder (``HOME`` points there while the script runs), so the
paths the widgets show read ``~/flies-project/...``. One napari viewer is used throughout; a tiny
bottom-up model is really trained for a few steps so that the loss plot is a real one.

``tests/test_docs_screenshots.py`` runs :func:`make_screenshots` into a temporary folder and checks
that each picture of :data:`EXPECTED` is there, has a plausible size and is not one flat colour.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# picture -> (min width, max width, min height, max height) in pixels, after downscaling
WINDOW = (700, 1100, 400, 800)
DOCK = (250, 560, 250, 1100)
EXPECTED: dict[str, tuple[int, int, int, int]] = {
    "viewer_labelling.png": WINDOW,
    "labelling.png": DOCK,
    "skeleton.png": DOCK,
    "suggestions.png": DOCK,
    "training.png": DOCK,
    "training_viewer.png": WINDOW,
    "inference.png": DOCK,
    "inference_viewer.png": WINDOW,
    "tools_merge.png": DOCK,
    "tools_dataset.png": DOCK,
    "tools_compare_models.png": DOCK,
    "tools_export.png": DOCK,
    "tools_videos.png": DOCK,
    "proofread.png": DOCK,
    "proofread_viewer.png": WINDOW,
    "identity_swap.png": (600, 1100, 250, 600),
    "trajectories.png": (600, 1100, 300, 700),
    "missing_videos.png": (350, 900, 120, 500),
    "demo_sample.png": WINDOW,
}

PROJECT = "flies-project"
LABELLED_EVERY = 100  # the project's labels: every 100th frame of clip.slp (15 frames, 30 flies)
SWAP_FRAME = 1101  # clip.predictions.slp: SLEAP's identity model swaps female and male here
TRAJECTORY = (1000, 1499)  # the frames of the trajectory plot (the flies sit still before ~950)


def data_folder() -> Path:
    env = os.environ.get("POSETRACK_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


# ----------------------------------------------------------------------------------------- helpers


def _process(ms: int = 50) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + ms / 1000
    while True:
        QApplication.processEvents()
        if time.monotonic() >= end:
            return
        time.sleep(0.01)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Run the Qt event loop until ``condition()`` holds (RuntimeError naming ``what`` after ``timeout`` s)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        _process(20)


def _save(image: Any, path: Path, width: int | None = None, crop: tuple[int, int, int, int] | None = None,
          trim_bottom: bool = False) -> Path:
    """Save a QImage/QPixmap or an RGB(A) array as a small PNG (cropped, downscaled, 256 colours)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    else:
        from qtpy.QtCore import QBuffer, QIODevice

        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        import io

        pil = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    if crop is not None:
        pil = pil.crop(crop)
    if trim_bottom:
        rows = np.asarray(pil).astype(int)
        background = rows[-1, :1]
        busy = np.flatnonzero(np.abs(rows - background).max(axis=(1, 2)) > 12)
        if len(busy):
            pil = pil.crop((0, 0, pil.width, min(int(busy[-1]) + 12, pil.height)))
    if width is not None and pil.width > width:
        pil = pil.resize((width, round(pil.height * width / pil.width)), Image.Resampling.LANCZOS)
    pil = pil.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pil.save(path, optimize=True)
    return path


def _tilde(widget: Any, home: Path) -> None:
    """Show paths under ``home`` as ``~/...`` in the labels and logs of ``widget`` (as a shell would).

    Only displayed text of labels and read-only logs is changed; fields a user types into get ``~``
    paths through their own text (the widgets expand ``~``).
    """
    from qtpy.QtWidgets import QLabel, QPlainTextEdit

    prefix = str(home)
    for label in widget.findChildren(QLabel):
        if prefix in label.text():
            label.setText(label.text().replace(prefix, "~"))
    for log in widget.findChildren(QPlainTextEdit):
        if log.isReadOnly() and prefix in log.toPlainText():
            log.setPlainText(log.toPlainText().replace(prefix, "~"))


@contextlib.contextmanager
def _home(folder: Path) -> Iterator[None]:
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old


def _write_project(flies: Path, home: Path) -> dict[str, Path]:
    """``~/flies-project``: the clip, labels on every 100th frame, SLEAP's predictions, a moved copy."""
    from napari_posetrack.core.io.slp import load_slp, save_slp

    project = home / PROJECT
    project.mkdir(parents=True)
    video = project / "clip.mp4"
    shutil.copy(flies / "clip.mp4", video)
    gt = load_slp(flies / "clip.slp")
    labels = gt.subset(np.flatnonzero(gt.instances.frame % LABELLED_EVERY == 0))
    labels.videos[0].path = str(video)
    save_slp(labels, project / "flies.slp")
    predictions = load_slp(flies / "clip.predictions.slp")
    predictions.videos[0].path = str(video)
    save_slp(predictions, project / "clip.predictions.slp")
    # the same labels as they come back from the lab computer: the video path is that machine's
    moved = home / "from-lab-pc"
    moved.mkdir()
    labels.videos[0].path = r"D:\recordings\2024-05-14\clip.mp4"
    save_slp(labels, moved / "flies.slp")
    shutil.copy(flies / "clip.2node.slp", home / "truth.slp")  # true identities, to count switches
    return {"labels": project / "flies.slp", "predictions": project / "clip.predictions.slp",
            "truth": home / "truth.slp",
            "moved": moved / "flies.slp", "folder": project}


def _dock(viewer: Any, name: str) -> Any:
    """Dock a PoseTrack widget as Plugins > PoseTrack does (napari.yaml), tabbed with the others."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-posetrack", name, tabify=True)
    return widget


def _show(viewer: Any, widget: Any) -> None:
    """Bring ``widget``'s dock tab to the front."""
    from qtpy.QtWidgets import QDockWidget

    parent = widget.parent()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parent()
    if parent is not None:
        parent.show()
        parent.raise_()
    _process(150)


def _window(viewer: Any, path: Path) -> Path:
    _process(100)
    return _save(viewer.screenshot(canvas_only=False, flash=False), path, width=1000)


def _grab(widget: Any, path: Path, width: int = 520, tall: bool = True) -> Path:
    """Grab a docked widget with room for all of it (a tall window), without the empty space below."""
    window = widget.window()
    size = window.size()
    if tall:
        window.resize(size.width(), 1400)
    _process(250)
    image = widget.grab()
    if tall:
        window.resize(size)
        _process(100)
    return _save(image, path, width=width, trim_bottom=tall)


def _project_idle(project: Any) -> Callable[[], bool]:
    return lambda: not project._idle_timer.isActive()


# ----------------------------------------------------------------------------------------- pictures


def make_screenshots(
    out_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    viewer: Any = None,
    work_dir: str | os.PathLike[str] | None = None,
    train_steps: int = 6,
) -> list[Path]:
    """Write every picture of :data:`EXPECTED` into ``out_dir``; returns their paths.

    Parameters
    ----------
    viewer
        A napari viewer to use (left open); ``None``: one is made and closed at the end.
    work_dir
        Where ``flies-project`` is written (a new temporary folder when ``None``, removed at the end).
    train_steps
        Training steps of the tiny model whose live loss plot is shown (two per epoch).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flies = Path(data_dir or data_folder()) / "sleap-flies"
    for name in ("clip.mp4", "clip.slp", "clip.predictions.slp"):
        if not (flies / name).is_file():
            raise FileNotFoundError(f"{flies / name} is needed (set POSETRACK_DATA to the data folder)")
    own_work = work_dir is None
    home = Path(tempfile.mkdtemp(prefix="posetrack-docs-") if own_work else work_dir).resolve()
    own_viewer = viewer is None
    if own_viewer:
        import napari

        viewer = napari.Viewer()
    try:
        with _home(home):
            files = _write_project(flies, home)
            _pictures(viewer, files, home, out, train_steps)
    finally:
        if own_viewer:
            viewer.close()
        if own_work:
            shutil.rmtree(home, ignore_errors=True)
    return [out / name for name in EXPECTED]


def _pictures(viewer: Any, files: dict[str, Path], home: Path, out: Path, train_steps: int) -> None:
    from napari_posetrack._widgets._project import project_for

    viewer.window.resize(1366, 768)
    project = project_for(viewer)
    widgets = {name: _dock(viewer, name) for name in (
        "Labelling", "Skeleton", "Suggestions", "Training", "Inference and tracking", "Tools",
        "Proofread identities")}
    project.open(files["labels"])
    _wait(_project_idle(project), "the project to open")
    project.go_to(LABELLED_EVERY * 6)
    viewer.reset_view()

    # labelling, skeleton
    _show(viewer, widgets["Labelling"])
    _window(viewer, out / "viewer_labelling.png")
    _grab(widgets["Labelling"], out / "labelling.png")
    _show(viewer, widgets["Skeleton"])
    _grab(widgets["Skeleton"], out / "skeleton.png")

    # suggestions: a uniform round of 20 frames
    suggestions = widgets["Suggestions"]
    _show(viewer, suggestions)
    suggestions.set_method("uniform")
    suggestions.count_spin.setValue(20)
    suggestions.generate()
    _wait(lambda: suggestions.worker is None, "the suggestions")
    suggestions.table.setCurrentCell(3, 0)
    _grab(suggestions, out / "suggestions.png")
    project.save()  # the suggestions are kept in flies.slp

    _train(viewer, widgets["Training"], project, home, out, train_steps)
    _tools(viewer, widgets["Tools"], home, out)
    _inference(viewer, widgets["Inference and tracking"], project, files, home, out)
    _proofread(viewer, widgets["Proofread identities"], project, files, out)

    # videos not found: the labels as they come back from another computer
    project.open(files["moved"])
    dialog = project.missing_videos_dialog
    _wait(lambda: dialog is not None and dialog.isVisible(), "the Videos not found dialog", 20)
    dialog.resize(760, 260)
    _grab(dialog, out / "missing_videos.png", width=760, tall=False)
    dialog.reject()

    # the synthetic sample of `posetrack demo` (the only picture not of the fly clip)
    from napari_posetrack.core.sample import write_sample

    sample = write_sample(home / "posetrack-demo", n_animals=3, n_frames=60, size=(256, 256), seed=1)
    project.open(sample["labels"])
    _wait(_project_idle(project), "the sample to open")
    project.go_to(20)
    viewer.reset_view()
    _show(viewer, widgets["Labelling"])
    _window(viewer, out / "demo_sample.png")


def _train(viewer: Any, widget: Any, project: Any, home: Path, out: Path, steps: int) -> None:
    """A real bottom-up training of a tiny network, a few steps on the CPU, with its live loss plot."""
    _show(viewer, widget)
    widget.set_pipeline("bottomup")
    widget._on_reset_clicked()
    form = widget.form("bottomup")
    config = form.config()
    config.model.pipeline = "bottomup"
    config.data.input_scaling = 0.25
    config.model.unet.filters = 8
    config.model.unet.max_stride = 16
    config.model.heads.pafs.output_stride = 8
    config.optimization.batch_size = 2
    config.optimization.batches_per_epoch = 2
    config.optimization.epochs = max(steps // 2, 1)
    config.outputs.runs_folder = "models"
    config.outputs.run_name_prefix = "flies_"
    widget.set_model_config(config)
    widget.device_combo.setCurrentText("cpu")
    widget.sample_check.setChecked(False)
    widget.predict_check.setChecked(False)
    widget.run_button.click()
    _wait(lambda: widget.process.running, "training to start", 30)
    _wait(lambda: not widget.process.running, "training to finish", 300)
    if not widget.run_dirs or not (Path(widget.run_dirs[0]) / "best.ckpt").is_file():
        raise RuntimeError("training wrote no checkpoint:\n" + widget.log_view.toPlainText())
    widget._update_plot(force=True)
    _tilde(widget, home)
    _grab(widget, out / "training.png")
    viewer.window.resize(1366, 768)
    _window(viewer, out / "training_viewer.png")


def _tools(viewer: Any, tools: Any, home: Path, out: Path) -> None:
    """Each tab of the Tools widget on the flies project."""
    _show(viewer, tools)
    compare = tools.compare_tab
    compare.runs_dir.set_text(f"~/{PROJECT}/models")
    compare.device.setCurrentText("cpu")
    compare.run_button.click()
    _wait(lambda: compare.run_button.isEnabled() and compare.status.text() != "", "the model comparison", 120)
    export = tools.export_tab
    export.format.setCurrentIndex(export.format.findData("tidy"))
    export.output.set_text(f"~/{PROJECT}/exports/flies.csv")
    export.frames.setText("0-999")
    videos = tools.videos_tab
    from napari_posetrack._widgets._tools_common import PathField

    for field in videos.findChildren(PathField):
        if field.mode == "folder":
            field.set_text(f"~/{PROJECT}/reencoded")
    for index in range(tools.count()):
        tools.setCurrentIndex(index)
        _process(200)
        name = tools.tabText(index).lower().replace(" ", "_")
        _tilde(tools, home)
        _grab(tools, out / f"tools_{name}.png")


def _inference(viewer: Any, widget: Any, project: Any, files: dict[str, Path], home: Path, out: Path) -> None:
    """SLEAP's predictions of the clip, re-tracked with two animals ("Track only"), tracks drawn."""
    project.open(files["predictions"])
    _wait(_project_idle(project), "the predictions to open")
    _show(viewer, widget)
    widget.runs_folder_edit.setText(f"~/{PROJECT}/models")
    widget._on_runs_folder_edited()
    widget.tracker_form.set_values({"max_tracks": 2})
    widget.track_button.click()
    _wait(lambda: widget.worker is None and widget.track_button.isEnabled(), "Track only", 120)
    project.go_to(700)
    viewer.reset_view()
    _tilde(widget, home)
    _grab(widget, out / "inference.png")
    _window(viewer, out / "inference_viewer.png")
    project.session.undo()  # back to SLEAP's own tracks, with their identity switch at frame 1101
    _process(200)


def _proofread(viewer: Any, widget: Any, project: Any, files: dict[str, Path], out: Path) -> None:
    """The review queue on SLEAP's tracks; the swap at frame 1101 before and after, and a trajectory plot."""
    from napari_posetrack.core.evaluation import evaluate_tracking
    from napari_posetrack.core.io.slp import load_slp
    from napari_posetrack.core.tools.export import ExportSelection, export_labels

    _show(viewer, widget)
    widget.refresh_queue()
    _wait(lambda: not widget.refreshing and widget.review_list.count() > 0, "the review queue", 60)
    widget.review_list.setCurrentRow(0)
    _process(200)
    if project.current_frame != SWAP_FRAME:
        raise RuntimeError(f"the review queue starts at frame {project.current_frame}, not {SWAP_FRAME}")
    labels = project.labels
    before = labels.copy()
    viewer.reset_view()
    _grab(widget, out / "proofread.png")
    _window(viewer, out / "proofread_viewer.png")
    widget.swap_from_button.click()
    _process(300)
    gt = load_slp(files["truth"])
    switches = [evaluate_tracking(gt, labels_, "thorax")["id_switches"] for labels_ in (before, project.labels)]
    _side_by_side(project.frame_image(SWAP_FRAME), before, project.labels, switches, out / "identity_swap.png")

    # trajectories of both flies from an export of the corrected tracks
    csv = files["folder"] / "exports" / "flies.thorax.csv"
    csv.parent.mkdir(exist_ok=True)
    export_labels(project.labels, csv, "tidy",
                  ExportSelection(frames=(TRAJECTORY[0], TRAJECTORY[1]), nodes=["thorax"], tracked_only=True))
    _trajectory_plot(csv, out / "trajectories.png")


def _thorax_paths(labels: Any, first: int, last: int) -> dict[str, np.ndarray]:
    """track name -> (frames, 3) array of frame, thorax x, thorax y (frames ``first``..``last``)."""
    t = labels.instances
    thorax = labels.skeleton.nodes.index("thorax")
    paths = {}
    for index, track in enumerate(labels.tracks):
        rows = np.flatnonzero((t.track == index) & (t.frame >= first) & (t.frame <= last))
        rows = rows[np.argsort(t.frame[rows])]
        paths[track.name] = np.column_stack([t.frame[rows], t.points[rows, thorax]])
    return paths


def _side_by_side(frame: np.ndarray, before: Any, after: Any, switches: list[int], path: Path) -> None:
    """The thorax of each track a few frames either side of the swap, on the frame, before and after."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    first, last = SWAP_FRAME - 5, SWAP_FRAME + 5
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    colours = {"female": "tab:blue", "male": "tab:orange"}
    xy = np.concatenate([p[:, 1:] for p in _thorax_paths(before, first, last).values()])
    (x0, y0), (x1, y1) = np.nanmin(xy, axis=0) - 60, np.nanmax(xy, axis=0) + 60
    for ax, labels, title in zip(
        fig.subplots(1, 2),
        (before, after),
        (f"SLEAP's tracks ({switches[0]} identity switches in the clip)",
         f"after 'Swap A and B from this frame' ({switches[1]})"),
    ):
        ax.imshow(frame, cmap="gray")
        for name, p in _thorax_paths(labels, first, last).items():
            ax.plot(p[:, 1], p[:, 2], ".-", lw=1, ms=5, color=colours.get(name), label=name)
            now = p[p[:, 0] == SWAP_FRAME]
            ax.plot(now[:, 1], now[:, 2], "o", ms=11, mfc="none", mew=2, color=colours.get(name))
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    ax.legend(loc="upper right", fontsize=8, title=f"thorax, frames {first}-{last}\n(circle: {SWAP_FRAME})",
              title_fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    _save(np.asarray(fig.canvas.buffer_rgba()), path)


def _trajectory_plot(csv: Path, path: Path) -> None:
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    table = pd.read_csv(csv)
    fig = Figure(figsize=(9, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax_xy, ax_t = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    for track, rows in table.groupby("track"):
        ax_xy.plot(rows["x"], rows["y"], lw=1, label=str(track))
        ax_t.plot(rows["frame"], rows["x"], lw=1, label=f"{track} x")
    ax_xy.set_aspect("equal")
    ax_xy.invert_yaxis()
    ax_xy.set_xlabel("x (px)")
    ax_xy.set_ylabel("y (px)")
    ax_xy.set_title(f"thorax, frames {TRAJECTORY[0]}-{TRAJECTORY[1]}")
    ax_xy.legend(fontsize=9)
    ax_t.axvline(SWAP_FRAME, color="0.6", ls="--", lw=1)
    ax_t.set_xlabel("frame")
    ax_t.set_ylabel("thorax x (px)")
    ax_t.set_title(f"x over time (dashed: frame {SWAP_FRAME})")
    fig.tight_layout()
    fig.canvas.draw()
    _save(np.asarray(fig.canvas.buffer_rgba()), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--data", default=None, help="the data folder (holds sleap-flies/)")
    parser.add_argument("--train-steps", type=int, default=6)
    args = parser.parse_args(argv)
    written = make_screenshots(args.out_dir, args.data, train_steps=args.train_steps)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
