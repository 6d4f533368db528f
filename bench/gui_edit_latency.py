"""How long the labelling project keeps napari's event loop busy per edit, by project size.

Opens a labels file in a real viewer (run under Xvfb), then times, on the GUI thread: the end of a
point drag (the session edit plus the skeleton redraw), a skeleton redraw alone (what runs during a
drag, every 15 ms at most), adding an instance (a full redraw of the poses layer), undo and redo.
Larger stores are made by tiling the file's instances over more frames.

    QT_QPA_PLATFORM=xcb xvfb-run -a python bench/gui_edit_latency.py [LABELS.slp] [--scale 1 4 16]
"""

from __future__ import annotations

import argparse
import statistics
import time
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


def timed(fn, repeats: int = 5) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(path: Path, factor: int) -> dict[str, float]:
    import napari
    from napari.layers.base import ActionType

    from napari_posetrack._widgets._project import PoseProject
    from napari_posetrack.core.io import load_labels

    labels = tiled(load_labels(path), factor)
    viewer = napari.Viewer(show=False)
    project = PoseProject(viewer)
    project.set_labels(labels, None)
    layer = project.points_layer
    n_points = len(layer.data)
    row = n_points // 2

    def drag_end() -> None:
        layer.events.data(value=layer.data, action=ActionType.CHANGING, data_indices=(row,), vertex_indices=((),))
        with layer.events.data.blocker():
            data = layer.data
            data[row, 1:] += 0.5
            layer.data = data
        layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=(row,), vertex_indices=((),))

    frame = int(layer.data[row, 0])
    pose = np.full((labels.n_nodes, 2), 50.0)
    result = {
        "points": float(n_points),
        "drag end ms": timed(drag_end),
        "skeleton redraw ms": timed(project.redraw_skeleton),
        "add instance ms": timed(lambda: project.session.add_instance(0, frame, pose)),
        "undo ms": timed(project.session.undo),
        "redo ms": timed(project.session.redo),
    }
    viewer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", nargs="?", default=str(DEFAULT))
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    print(f"| points | drag end ms | skeleton redraw ms | add instance ms | undo ms | redo ms |  ({Path(args.labels).name})")
    print("|---|---|---|---|---|---|")
    for factor in args.scale:
        r = measure(Path(args.labels), factor)
        print(
            f"| {int(r['points']):,} | {r['drag end ms']:.0f} | {r['skeleton redraw ms']:.0f} | "
            f"{r['add instance ms']:.0f} | {r['undo ms']:.0f} | {r['redo ms']:.0f} |"
        )


if __name__ == "__main__":
    main()
