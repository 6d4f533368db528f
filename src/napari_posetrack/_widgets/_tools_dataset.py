"""Tools > Dataset: what is labelled, per video and per body part, as plots and tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTableWidget, QVBoxLayout, QWidget

from napari_posetrack._widgets._plot import PlotCanvas
from napari_posetrack._widgets._tools_common import fill_table

if TYPE_CHECKING:
    import napari

    from napari_posetrack._widgets._project import PoseProject

VIDEO_HEADER = ("video", "frames", "labelled frames", "user instances", "predicted instances")
NODE_HEADER = ("body part", "visible", "present, not visible", "missing", "visible rate")


def _short(name: str, width: int = 14) -> str:
    """A video or node name cut to fit under a bar."""
    return name if len(name) <= width else name[: width - 1] + "…"


class DatasetTab(QWidget):
    """Statistics of the open project's labels (``core.tools.dataset_stats``).

    Plots: labelled frames and instances per video, the visible rate of each body part over user
    instances, and how many instances frames hold. Refreshes when other labels are opened.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, project: PoseProject) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = project
        self.stats: dict[str, Any] | None = None
        self.setObjectName("tools_dataset")

        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("dataset_refresh")
        self.refresh_button.setToolTip("Recompute the statistics from the labels as they are now.")
        self.summary = QLabel("No labels open.")
        self.summary.setObjectName("dataset_summary")
        self.summary.setWordWrap(True)
        self.summary.setToolTip("Totals over all videos.")
        self.plot = PlotCanvas(height=7.5)
        self.plot.setObjectName("dataset_plot")
        self.plot.setToolTip(
            "Labelled frames and instances per video, body-part visibility, instances per frame."
        )
        self.plot.setMinimumHeight(420)
        self.video_table = QTableWidget()
        self.video_table.setObjectName("dataset_videos")
        self.video_table.setToolTip("Per video: frames, labelled frames, user and predicted instances.")
        self.node_table = QTableWidget()
        self.node_table.setObjectName("dataset_nodes")
        self.node_table.setToolTip(
            "Per body part over user instances: visible, present but not visible, missing."
        )

        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.video_table, 1)
        layout.addWidget(self.node_table, 1)

        self.refresh_button.clicked.connect(self._on_refresh_clicked)
        self.project.events.labels_replaced.connect(self._on_labels_replaced)
        self.refresh()

    def _on_refresh_clicked(self) -> None:
        self.refresh()

    def _on_labels_replaced(self, *_: Any) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Recompute the statistics of ``project.labels`` and redraw (numpy only: milliseconds)."""
        from napari_posetrack.core.tools.dataset_stats import dataset_stats

        labels = self.project.labels
        if labels is None:
            self.stats = None
            self.summary.setText("No labels open.")
            fill_table(self.video_table, VIDEO_HEADER, [])
            fill_table(self.node_table, NODE_HEADER, [])
            self.plot.axes()
            self.plot.draw()
            return
        self.stats = stats = dataset_stats(labels)
        totals = stats["totals"]
        self.summary.setText(
            f"{len(stats['videos'])} video(s), {totals['labeled_frames']} labelled frames, "
            f"{totals['user_instances']} user and {totals['predicted_instances']} predicted instances, "
            f"{stats['tracks']['n_tracks']} tracks, {stats['n_suggestions']} suggested frames."
        )
        fill_table(
            self.video_table,
            VIDEO_HEADER,
            [
                (v["name"], v["n_frames"], v["labeled_frames"], v["user_instances"], v["predicted_instances"])
                for v in stats["videos"]
            ],
        )
        fill_table(
            self.node_table,
            NODE_HEADER,
            [
                (name, n["visible"], n["present_not_visible"], n["missing"], n["visible_rate"])
                for name, n in stats["nodes"].items()
            ],
        )
        self._draw(stats)

    def _draw(self, stats: dict[str, Any]) -> None:
        ax_videos, ax_nodes, ax_hist = self.plot.axes(3, 1)
        videos = stats["videos"]
        x = np.arange(len(videos))
        width = 0.27
        ax_videos.bar(x - width, [v["labeled_frames"] for v in videos], width, label="labelled frames")
        ax_videos.bar(x, [v["user_instances"] for v in videos], width, label="user instances")
        ax_videos.bar(
            x + width, [v["predicted_instances"] for v in videos], width, label="predicted instances"
        )
        ax_videos.set_xticks(x, [_short(v["name"]) for v in videos])
        ax_videos.set_title("per video", fontsize=9)
        ax_videos.legend(fontsize=7)

        names = list(stats["nodes"])
        rates = [stats["nodes"][n]["visible_rate"] or 0.0 for n in names]
        ax_nodes.bar(np.arange(len(names)), rates, color="tab:green")
        ax_nodes.set_xticks(np.arange(len(names)), [_short(n, 10) for n in names], rotation=60, fontsize=7)
        ax_nodes.set_ylim(0, 1.05)
        ax_nodes.set_title("body part visible rate (user instances)", fontsize=9)

        hist = stats["instances_per_frame"]
        counts = sorted(hist)
        ax_hist.bar(counts, [hist[c] for c in counts], color="tab:purple")
        ax_hist.set_xticks(counts)
        ax_hist.set_xlabel("instances in the frame", fontsize=8)
        ax_hist.set_ylabel("frames", fontsize=8)
        ax_hist.set_title("instances per labelled frame", fontsize=9)
        self.plot.draw()
