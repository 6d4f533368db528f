"""Open the result of ``posetrack demo`` in napari with every PoseTrack dock widget docked.

``core`` never imports napari, so ``posetrack demo`` starts this module in its own process:
``python -m napari_posetrack.demo_viewer <out_dir>/summary.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

WIDGETS = (
    ("labelling", "LabellingWidget", "Labelling"),
    ("skeleton", "SkeletonWidget", "Skeleton"),
    ("suggestions", "SuggestionsWidget", "Suggestions"),
    ("training", "TrainingWidget", "Training"),
    ("inference", "InferenceWidget", "Inference and tracking"),
    ("tools", "ToolsWidget", "Tools"),
)
"""Every dock widget: module under ``napari_posetrack._widgets``, class, dock title."""


def dock_all_widgets(viewer: Any) -> dict[str, Any]:
    """Dock every PoseTrack widget (tabbed on the right) and return them by module name."""
    import importlib

    docked: dict[str, Any] = {}
    for module, cls, title in WIDGETS:
        widget = getattr(importlib.import_module(f"napari_posetrack._widgets.{module}"), cls)(viewer)
        viewer.window.add_dock_widget(widget, name=title, area="right", tabify=bool(docked))
        docked[module] = widget
    return docked


def open_demo_viewer(summary: dict[str, Any], *, show: bool = True) -> tuple[Any, dict[str, Any]]:
    """A viewer on the demo's label set with its tracked predictions applied and the widgets docked."""
    import napari

    from napari_posetrack._widgets._project import project_for
    from napari_posetrack.core.io import load_labels

    viewer = napari.Viewer(title="napari-posetrack demo", show=show)
    project = project_for(viewer)
    project.open(summary["labels"])
    predictions = load_labels(summary["predictions"])
    project.apply_predictions(predictions, "demo predictions")
    project.session.seal()
    widgets = dock_all_widgets(viewer)
    runs = [Path(r) for r in summary.get("runs", [])]
    if runs:
        for widget in widgets.values():
            set_runs = getattr(widget, "set_runs_folder", None)
            if callable(set_runs):
                set_runs(runs[0].parent)
    return viewer, widgets


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m napari_posetrack.demo_viewer summary.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m napari_posetrack.demo_viewer <summary.json>", file=sys.stderr)
        return 2
    summary = json.loads(Path(args[0]).read_text())
    import napari

    open_demo_viewer(summary)
    napari.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
