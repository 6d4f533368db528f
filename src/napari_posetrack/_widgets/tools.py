"""The Tools dock widget: what SLEAP users did in notebooks, as tabs.

Merge (labels files into the project or a new file), Dataset (what is labelled, as plots and
tables), Compare models (every model of a runs folder scored on its validation frames), Export
(.slp, analysis HDF5, tidy CSV, DeepLabCut) and Videos (re-encode for fast, exact seeking). Each
tab lives in its own ``_tools_<tab>.py`` module and calls ``core.tools`` / ``core.io``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QScrollArea, QTabWidget, QWidget

from napari_posetrack._widgets._project import project_for
from napari_posetrack._widgets._tools_compare import CompareTab
from napari_posetrack._widgets._tools_dataset import DatasetTab
from napari_posetrack._widgets._tools_export import ExportTab
from napari_posetrack._widgets._tools_merge import MergeTab
from napari_posetrack._widgets._tools_videos import VideosTab

if TYPE_CHECKING:
    import napari


def _scrolling(widget: QWidget) -> QScrollArea:
    """Tabs scroll when the dock is short rather than squashing their plots."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(widget)
    area.setObjectName(widget.objectName() + "_scroll")
    return area


class ToolsWidget(QTabWidget):
    """Dock widget with the tabs Merge / Dataset / Compare models / Export / Videos."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.project = project_for(napari_viewer)
        self.setObjectName("posetrack_tools")
        self.setMinimumWidth(420)  # tables and plots are unreadable in a narrower dock
        self.setToolTip("Merging, dataset statistics, model comparison, export and video re-encoding.")

        self.merge_tab = MergeTab(napari_viewer, self.project)
        self.dataset_tab = DatasetTab(napari_viewer, self.project)
        self.compare_tab = CompareTab(napari_viewer, self.project)
        self.export_tab = ExportTab(napari_viewer, self.project)
        self.videos_tab = VideosTab(napari_viewer, self.project)
        for tab, title, tip in (
            (self.merge_tab, "Merge", "Merge labels files into the open project or a new file."),
            (
                self.dataset_tab,
                "Dataset",
                "What is labelled: frames and instances per video, body-part visibility.",
            ),
            (
                self.compare_tab,
                "Compare models",
                "Score every trained model of a runs folder on its validation frames.",
            ),
            (self.export_tab, "Export", "Write the labels for SLEAP, DeepLabCut, pandas, MATLAB or R."),
            (self.videos_tab, "Videos", "Re-encode videos so every frame can be reached fast and exactly."),
        ):
            index = self.addTab(_scrolling(tab), title)
            self.setTabToolTip(index, tip)
        self.currentChanged.connect(self._on_tab_changed)

    def _on_tab_changed(self, index: int) -> None:
        # edits made since the last look are counted when the Dataset tab is shown again
        if self.widget(index) is not None and self.widget(index).widget() is self.dataset_tab:
            self.dataset_tab.refresh()
