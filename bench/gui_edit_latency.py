"""How long the labelling project keeps napari's event loop busy per edit, by project size.

Writes the labels file tiled over more frames (its instances repeated on later frames), then, in a
real viewer (run under Xvfb), times on the GUI thread:

- open to first frame: ``PoseProject.open`` in a new viewer until a rendered screenshot of the
  canvas comes back (the file read, the layers built, the first frame decoded and drawn), after an
  untimed open in the same process (the first one imports dask, PyAV, pint: seconds, any file);
- drag end: the end of a point drag (the session edit plus the skeleton redraw), done as napari's
  drag does it (the layer data assigned with its events blocked, then ``CHANGED``);
- skeleton redraw: what runs during a drag (every 15 ms at most) and on every frame change;
- add instance, delete instance, undo, redo: session edits on a frame in the middle of the video;
- slider jump: moving the time slider between two frames half the video apart, poses only (the
  video layer is hidden so its decoding, napari's own and the same for any design, is left out).

Everything but "open" is the median of 5 (6 for jumps); "open" is the median of 3. The event loop
runs for a second after each open (timers, e.g. the tracks drawn after the first frame).
``--src DIR`` imports ``napari_posetrack`` from ``DIR`` instead (e.g. an exported older revision:
``git archive REV src | tar -x -C /tmp/old`` then ``--src /tmp/old/src``), so before and after are
timed by the same script on the same machine.

    QT_QPA_PLATFORM=xcb xvfb-run -a python bench/gui_edit_latency.py [LABELS.slp] [--scale 1 4 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sleap-flies" / "centered_pair_predictions.slp"


def tiled(labels, factor: int):
    """The store with its instances repeated ``factor`` times on later frames (same video)."""
    out = labels.copy()
    t = labels.instances
    span = int(t.frame.max()) + 1 if len(t) else 1
    for k in range(1, factor):
        later = labels.copy()
        later.instances.frame[:] += k * span
        out.merge(later)
    out.videos[0].n_frames = span * factor
    return out


def timed(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def settle(seconds: float = 1.0) -> None:
    """Let the Qt event loop run for ``seconds`` (timers that fire after an open or an edit)."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def warm_up(path: Path) -> None:
    """Open ``path`` once, untimed: the first open in a process imports dask, PyAV, pint, ... (seconds)."""
    import napari

    from napari_posetrack._widgets._project import PoseProject

    viewer = napari.Viewer(show=False)
    PoseProject(viewer).open(path)
    viewer.screenshot(canvas_only=True)
    settle()
    viewer.close()


def measure(path: Path, factor: int, workdir: Path) -> dict[str, float]:
    import napari
    from napari.layers.base import ActionType

    from napari_posetrack._widgets._project import PoseProject
    from napari_posetrack.core.io import load_labels, save_labels

    labels = tiled(load_labels(path), factor)
    span = int(labels.instances.frame.max()) + 1
    # the loaded store holds the video's resolved path, so the copy finds the video from anywhere
    target = workdir / f"tiled{factor}.slp"
    save_labels(labels, target)
    shown = ~np.isnan(labels.instances.points).any(axis=-1) & ~labels.shadowed_predictions()[:, None]
    n_store = int(shown.sum())

    opens = []
    for _ in range(3):  # each in a new viewer, as a user opens a file
        viewer = napari.Viewer(show=False)
        project = PoseProject(viewer)
        start = time.perf_counter()
        project.open(target)
        viewer.screenshot(canvas_only=True)  # returns once the first frame is drawn
        opens.append((time.perf_counter() - start) * 1000)
        settle()  # what the viewer does once the frame is shown (the tracks may come then)
        if len(opens) < 3:
            viewer.close()
    result = {"store points": float(n_store), "open ms": statistics.median(opens)}
    mid = span // 2
    project.go_to(mid)
    layer = project.points_layer
    result["layer points"] = float(len(layer.data))
    row = int(np.flatnonzero(np.rint(np.asarray(layer.data)[:, 0]) == mid)[0])

    def drag_end() -> None:
        layer.events.data(value=layer.data, action=ActionType.CHANGING, data_indices=(row,), vertex_indices=((),))
        with layer.events.data.blocker():
            data = layer.data
            data[row, 1:] += 0.5
            layer.data = data
        layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=(row,), vertex_indices=((),))

    result["drag end ms"] = timed(drag_end)
    result["skeleton redraw ms"] = timed(project.redraw_skeleton)
    pose = np.full((labels.n_nodes, 2), 50.0)
    added: list[int] = []
    result["add instance ms"] = timed(lambda: added.append(project.session.add_instance(0, mid, pose)))
    result["delete instance ms"] = timed(lambda: project.session.delete_instances([added.pop()]))
    result["undo ms"] = timed(project.session.undo)
    result["redo ms"] = timed(project.session.redo)

    project.video_layer.visible = False
    stops = iter([span // 4, 3 * span // 4] * 3)
    result["slider jump ms"] = timed(lambda: project.go_to(next(stops)), repeats=6)
    viewer.close()
    return result


COLUMNS = (
    "store points", "layer points", "open ms", "drag end ms", "skeleton redraw ms", "add instance ms",
    "delete instance ms", "undo ms", "redo ms", "slider jump ms",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", nargs="?", default=str(DEFAULT))
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--src", help="import napari_posetrack from this folder (an older revision's src/)")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    import napari_posetrack

    print(f"napari_posetrack from {Path(napari_posetrack.__file__).parent}, labels {Path(args.labels).name}")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    warm_up(Path(args.labels))
    with tempfile.TemporaryDirectory() as tmp:
        for factor in args.scale:
            r = measure(Path(args.labels), factor, Path(tmp))
            cells = [f"{int(r[c]):,}" if "points" in c else f"{r[c]:.0f}" for c in COLUMNS]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
