"""The dialog shown when an opened labels file refers to videos that are not where it says.

It lists every missing video with its stored path. The user picks the new file of one (the other
videos that moved the same way, old folder -> new folder, follow, as in SLEAP's Replace Videos) or
a folder to search; "Use these files" points the project's videos at them in one undoable step and
shows the frames. The logic lives in :mod:`napari_posetrack.core.io.video_paths`; this is its view.

The dialog is opened with ``open()`` (window-modal, never blocking the caller), so a test drives it
through :meth:`MissingVideosDialog.set_new_path`, :meth:`MissingVideosDialog.search_folder` and
``accept()``.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack.core.errors import MissingFileError, PoseTrackError

if TYPE_CHECKING:
    from napari_posetrack._widgets._project import PoseProject

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.m4v *.mpg *.mpeg *.webm);;All files (*)"
OLD, NEW, FIND = range(3)
NOT_FOUND = "not found yet"


class MissingVideosDialog(QDialog):
    """Point each missing video of the project at its file, then apply (one undoable step).

    Parameters
    ----------
    project
        The project whose labels refer to missing videos.
    parent
        The Qt parent (the viewer's window).
    """

    def __init__(self, project: PoseProject, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        labels = project.labels
        if labels is None:
            raise ValueError("no labels are open")
        # single video files (image-folder videos keep their own list of paths)
        self._old_paths: list[str] = [
            labels.videos[i].path for i in labels.missing_videos() if isinstance(labels.videos[i].path, str)
        ]
        self._new_paths: dict[str, str] = {}
        self.applied: dict[str, str] = {}
        self.setObjectName("missing_videos_dialog")
        self.setWindowTitle("Videos not found")
        name = project.path.name if project.path is not None else "the labels"

        layout = QVBoxLayout(self)
        intro = QLabel(
            f"{len(self._old_paths)} video(s) of {name} are not where the file says. Pick the new file "
            "of one (the others that moved the same way follow), or a folder to search. The labels "
            "are open either way; videos left missing show as black frames."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.table = QTableWidget(len(self._old_paths), 3)
        self.table.setObjectName("missing_videos_table")
        self.table.setHorizontalHeaderLabels(["Stored path", "New file", ""])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(OLD, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(NEW, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(FIND, QHeaderView.ResizeMode.ResizeToContents)
        for row, old in enumerate(self._old_paths):
            item = QTableWidgetItem(old)
            item.setToolTip(old)
            self.table.setItem(row, OLD, item)
            self.table.setItem(row, NEW, QTableWidgetItem(NOT_FOUND))
            button = QPushButton("Find file…")
            button.setObjectName(f"find_video_{row}")
            button.setToolTip(f"Choose the new file of {Path(old.replace(chr(92), '/')).name}")
            button.clicked.connect(lambda _=False, r=row: self._on_find_clicked(r))
            self.table.setCellWidget(row, FIND, button)
        layout.addWidget(self.table)

        row_layout = QHBoxLayout()
        self.search_button = QPushButton("Search a folder…")
        self.search_button.setObjectName("search_videos_folder")
        self.search_button.setToolTip(
            "Look for every video still missing in a folder and below it (by its stored subfolders, "
            "then by file name)"
        )
        self.search_button.clicked.connect(self._on_search_clicked)
        row_layout.addWidget(self.search_button)
        row_layout.addStretch(1)
        layout.addLayout(row_layout)
        self.status = QLabel("")
        self.status.setObjectName("missing_videos_status")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        self.buttons = QDialogButtonBox()
        self.apply_button = self.buttons.addButton("Use these files", QDialogButtonBox.ButtonRole.AcceptRole)
        self.apply_button.setObjectName("missing_videos_apply")
        self.apply_button.setToolTip("Point the videos at the files found (one undo step); save to keep it")
        later = self.buttons.addButton("Not now", QDialogButtonBox.ButtonRole.RejectRole)
        later.setToolTip(
            "Keep the labels open without these videos (black frames); opening the file again asks again"
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.resize(760, 160 + 30 * min(len(self._old_paths), 10))
        self._refresh()

    # ------------------------------------------------------------------ what tests and users drive
    def old_paths(self) -> list[str]:
        """The stored paths of the missing videos, in the labels' order."""
        return list(self._old_paths)

    def replacements(self) -> dict[str, str]:
        """Old stored path -> new file, for the videos found so far."""
        return dict(self._new_paths)

    def set_new_path(self, video: int | str, new_path: str | os.PathLike[str]) -> dict[str, str]:
        """Point one missing video (row or stored path) at ``new_path``; the others that moved the same way follow.

        Returns
        -------
        dict
            Every video set by this call (old -> new), the chosen one first.

        Raises
        ------
        MissingFileError
            ``new_path`` is not a file.
        """
        from napari_posetrack.core.io.video_paths import propagate_replacement

        old = self._old_paths[video] if isinstance(video, int) else str(video)
        if old not in self._old_paths:
            raise KeyError(f"{old!r} is not one of the missing videos")
        new = os.fspath(new_path)
        if not os.path.isfile(new):
            raise MissingFileError(new, "the chosen video is not a file")
        changed = {old: new}
        still_missing = [p for p in self._old_paths if p not in self._new_paths and p != old]
        changed.update(propagate_replacement(old, new, still_missing))
        self._new_paths.update(changed)
        followed = len(changed) - 1
        self.status.setText(
            f"{Path(new).name}: found."
            + (f" {followed} other video(s) that moved the same way were found too." if followed else "")
        )
        self._refresh()
        return changed

    def search_folder(self, folder: str | os.PathLike[str]) -> dict[str, str]:
        """Look for every video still missing in ``folder`` (and below); returns those found (old -> new)."""
        from napari_posetrack.core.io.video_paths import find_in_folder

        found: dict[str, str] = {}
        for old in self._old_paths:
            if old in self._new_paths:
                continue
            hit = find_in_folder(old, folder)
            if hit is not None:
                found[old] = str(hit)
        self._new_paths.update(found)
        left = len(self._old_paths) - len(self._new_paths)
        self.status.setText(f"{folder}: found {len(found)} video(s); {left} still missing.")
        self._refresh()
        return found

    def accept(self) -> None:
        """Apply the replacements found to the project (one undoable step) and close."""
        from napari.utils.notifications import show_error, show_info

        from napari_posetrack.core.io.video_paths import replace_videos

        replacements = self.replacements()
        if replacements:
            labels = self.project.labels
            if labels is None:
                show_error("Cannot replace videos: the labels were closed")
                super().reject()
                return
            new = labels.copy()
            try:
                replace_videos(new, replacements)
            except PoseTrackError as exc:  # a file deleted since it was picked
                show_error(f"Cannot replace videos: {exc}")
                return
            self.project.apply(new, "replace videos")
            self.applied = replacements
            left = len(self._old_paths) - len(replacements)
            show_info(
                f"Replaced {len(replacements)} video path(s)"
                + (f"; {left} still missing" if left else "")
                + ". Save to keep the new paths."
            )
        super().accept()

    # ------------------------------------------------------------------ slots
    def _on_find_clicked(self, row: int) -> None:
        from napari.utils.notifications import show_error

        old = self._old_paths[row]
        start = str(self.project.path.parent) if self.project.path is not None else ""
        path, _ = QFileDialog.getOpenFileName(self, f"New location of {old}", start, VIDEO_FILTER)
        if not path:
            return
        try:
            self.set_new_path(row, path)
        except PoseTrackError as exc:
            show_error(str(exc))

    def _on_search_clicked(self) -> None:
        from napari.utils.notifications import show_error

        start = str(self.project.path.parent) if self.project.path is not None else ""
        folder = QFileDialog.getExistingDirectory(self, "Folder to search for the videos", start)
        if not folder:
            return
        try:
            self.search_folder(folder)
        except PoseTrackError as exc:
            show_error(str(exc))

    def _refresh(self) -> None:
        for row, old in enumerate(self._old_paths):
            new = self._new_paths.get(old)
            item = self.table.item(row, NEW)
            item.setText(new if new is not None else NOT_FOUND)
            item.setToolTip(new or "")
            item.setForeground(Qt.GlobalColor.darkGreen if new is not None else Qt.GlobalColor.darkRed)
        self.apply_button.setEnabled(bool(self._new_paths))


def offer_missing_videos(project: PoseProject) -> MissingVideosDialog | None:
    """Open the dialog (not blocking) when the project's labels refer to missing videos; else ``None``."""
    labels = project.labels
    if labels is None or not any(isinstance(labels.videos[i].path, str) for i in labels.missing_videos()):
        return None
    parent = None
    try:
        parent = project.viewer.window._qt_window  # napari's main window: the dialog stays on top of it
    except (AttributeError, RuntimeError):
        parent = None
    dialog = MissingVideosDialog(project, parent)
    dialog.open()
    return dialog


def offer_after_file_open(viewer_ref: weakref.ReferenceType) -> MissingVideosDialog | None:
    """After napari's File > Open read a labels file with missing videos: the project takes it over and asks.

    Scheduled by the labels reader (napari adds the layers after the reader returns). Only when
    the viewer has no PoseTrack project yet: its project then adopts the layers just opened, as
    opening a PoseTrack dock widget would, and shows the dialog. An open project is never replaced
    behind the user's back (its Labelling > Open asks the same for the files it opens).
    """
    from napari_posetrack._widgets._project import has_project, project_for

    viewer = viewer_ref()
    if viewer is None or has_project(viewer):
        return None
    try:
        window = viewer.window._qt_window
    except (AttributeError, RuntimeError):  # the viewer was closed meanwhile
        return None
    if window is None:
        return None
    return project_for(viewer).missing_videos_dialog


__all__ = ["MissingVideosDialog", "offer_after_file_open", "offer_missing_videos"]
