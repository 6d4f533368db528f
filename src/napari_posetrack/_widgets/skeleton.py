"""The skeleton dock widget: nodes, edges (parent -> child), symmetry pairs, templates and files.

The widget shows the skeleton of the open project. Every change is one undoable step applied
through :meth:`PoseProject.apply`, so the pose layers follow at once (renamed nodes keep their
points, new nodes start missing, removed nodes lose theirs). With no project open the widget edits
a draft skeleton, and "New project" starts an empty project that uses it.

The edits themselves live in :mod:`napari_posetrack.core.skeleton_edit`; this module only collects
names from the user and reports what happened.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_posetrack._widgets._project import project_for
from napari_posetrack.core import skeleton_edit as edits
from napari_posetrack.core.errors import PoseTrackError
from napari_posetrack.core.labels import Labels, Skeleton

if TYPE_CHECKING:
    import napari

_WARNING_STYLE = "color: #ffb000;"  # amber: readable on napari's dark and light themes
_OK_STYLE = "color: #6cc070;"


def _button(text: str, name: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setToolTip(tip)
    return button


def _pair_table(name: str, headers: tuple[str, str], tip: str) -> QTableWidget:
    table = QTableWidget(0, 2)
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(headers))
    table.setToolTip(tip)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(22)  # compact rows: more pairs fit in a dock
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.setMinimumHeight(90)
    return table


def _node_combo(name: str, tip: str) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    combo.setToolTip(tip)
    combo.setMinimumContentsLength(6)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    return combo


class SkeletonWidget(QWidget):
    """Create and edit the skeleton of the open project (or of a new one).

    Parameters
    ----------
    napari_viewer
        The viewer whose :class:`~napari_posetrack._widgets._project.PoseProject` is edited.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.setObjectName("posetrack_skeleton")
        self.viewer = napari_viewer
        self.project = project_for(napari_viewer)
        # the skeleton edited while no project is open ("New project" starts one with it)
        self._draft = Skeleton([], name="skeleton")
        self._shown: Skeleton | None = None
        self._build_ui()
        self.project.events.labels_replaced.connect(self._on_project_labels_replaced)
        self.project.events.labels_changed.connect(self._on_project_labels_changed)
        self.refresh()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        # the three lists need more height than a short screen gives a dock: scroll rather than squeeze
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setObjectName("skeleton_scroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        content = QWidget()
        scroll.setWidget(content)
        outer.addWidget(scroll)
        layout = QVBoxLayout(content)

        self.status_label = QLabel()
        self.status_label.setObjectName("skeleton_status")
        self.status_label.setWordWrap(True)
        self.status_label.setToolTip(
            "Whether the skeleton has exactly one root: the one node that no edge points to."
        )
        self.message_label = QLabel()
        self.message_label.setObjectName("skeleton_message")
        self.message_label.setWordWrap(True)
        self.message_label.setToolTip("What the last action did, or why it could not be done.")

        # skeleton name, templates and files
        top = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("skeleton_name")
        self.name_edit.setToolTip(
            "The skeleton's name, as SLEAP shows it and files store it. Press Enter to apply."
        )
        self.name_edit.returnPressed.connect(self._on_name_edit_return_pressed)
        top.addRow("Name", self.name_edit)

        self.template_combo = QComboBox()
        self.template_combo.setObjectName("skeleton_template")
        self.template_combo.setToolTip("Ready-made skeletons that come with the plugin.")
        for name in edits.list_templates():
            self.template_combo.addItem(name)
            self.template_combo.setItemData(
                self.template_combo.count() - 1, edits.template_description(name), Qt.ItemDataRole.ToolTipRole
            )
        self.template_button = _button(
            "Use template",
            "skeleton_use_template",
            "Replace the skeleton by the chosen template. Nodes with the same name keep their points; "
            "the others are dropped (Undo brings them back).",
        )
        self.template_button.clicked.connect(self._on_template_button_clicked)
        row = QHBoxLayout()
        row.addWidget(self.template_combo, 1)
        row.addWidget(self.template_button)
        top.addRow("Template", row)

        files = QHBoxLayout()
        self.load_button = _button(
            "Load…",
            "skeleton_load",
            "Use a skeleton saved as a SLEAP skeleton .json file (nodes are matched by name).",
        )
        self.save_button = _button(
            "Save…", "skeleton_save", "Save this skeleton as a SLEAP skeleton .json file."
        )
        self.new_project_button = _button(
            "New project",
            "skeleton_new_project",
            "Start an empty project that uses this skeleton (only when no project is open). "
            "Then add videos and label.",
        )
        self.load_button.clicked.connect(self._on_load_button_clicked)
        self.save_button.clicked.connect(self._on_save_button_clicked)
        self.new_project_button.clicked.connect(self._on_new_project_button_clicked)
        for b in (self.load_button, self.save_button, self.new_project_button):
            files.addWidget(b)
        top.addRow(files)
        layout.addLayout(top)
        layout.addWidget(self.status_label)

        layout.addWidget(self._build_nodes_box())
        layout.addWidget(self._build_edges_box())
        layout.addWidget(self._build_symmetries_box())
        layout.addWidget(self.message_label)
        layout.addStretch(1)
        # a scroll area has no width of its own: keep the dock as wide as the controls need
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(
            content.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        )

    def _build_nodes_box(self) -> QGroupBox:
        box = QGroupBox("Nodes (body parts)")
        v = QVBoxLayout(box)
        self.node_list = QListWidget()
        self.node_list.setObjectName("skeleton_nodes")
        self.node_list.setToolTip(
            "The body parts, in the order files store them. Select one to rename, move or remove it."
        )
        self.node_list.setMinimumHeight(110)
        self.node_list.currentTextChanged.connect(self._on_node_list_current_changed)
        v.addWidget(self.node_list)
        self.node_name_edit = QLineEdit()
        self.node_name_edit.setObjectName("skeleton_node_name")
        self.node_name_edit.setPlaceholderText("node name, e.g. head")
        self.node_name_edit.setToolTip("Type a name, then Add (a new node) or Rename (the selected node).")
        self.node_name_edit.returnPressed.connect(self._on_add_node_button_clicked)
        name_row = QHBoxLayout()
        name_row.addWidget(QLabel("Node name"))
        name_row.addWidget(self.node_name_edit, 1)
        v.addLayout(name_row)
        row = QHBoxLayout()
        self.add_node_button = _button(
            "Add",
            "skeleton_add_node",
            "Add a node with the typed name. Existing animals get it as a missing point.",
        )
        self.rename_node_button = _button(
            "Rename", "skeleton_rename_node", "Give the selected node the typed name; its points stay."
        )
        self.remove_node_button = _button(
            "Remove",
            "skeleton_remove_node",
            "Remove the selected node and its points in every frame (Undo brings them back). "
            "Its children are attached to its parent.",
        )
        self.node_up_button = _button("↑", "skeleton_node_up", "Move the selected node up the list.")
        self.node_down_button = _button("↓", "skeleton_node_down", "Move the selected node down the list.")
        self.add_node_button.clicked.connect(self._on_add_node_button_clicked)
        self.rename_node_button.clicked.connect(self._on_rename_node_button_clicked)
        self.remove_node_button.clicked.connect(self._on_remove_node_button_clicked)
        self.node_up_button.clicked.connect(self._on_node_up_button_clicked)
        self.node_down_button.clicked.connect(self._on_node_down_button_clicked)
        for b in (self.add_node_button, self.rename_node_button, self.remove_node_button):
            row.addWidget(b)
        for b in (self.node_up_button, self.node_down_button):
            b.setMaximumWidth(32)
            row.addWidget(b)
        v.addLayout(row)
        return box

    def _build_edges_box(self) -> QGroupBox:
        box = QGroupBox("Edges (parent → child)")
        v = QVBoxLayout(box)
        self.edge_table = _pair_table(
            "skeleton_edges",
            ("Parent", "Child"),
            "The lines of the skeleton. Each goes from a parent node to a child node.",
        )
        v.addWidget(self.edge_table)
        row = QHBoxLayout()
        self.edge_parent_combo = _node_combo("skeleton_edge_parent", "The parent node of the new edge.")
        self.edge_child_combo = _node_combo("skeleton_edge_child", "The child node of the new edge.")
        self.add_edge_button = _button(
            "Add", "skeleton_add_edge", "Add an edge from the parent to the child."
        )
        self.remove_edge_button = _button(
            "Remove", "skeleton_remove_edge", "Remove the edge selected in the table."
        )
        self.add_edge_button.clicked.connect(self._on_add_edge_button_clicked)
        self.remove_edge_button.clicked.connect(self._on_remove_edge_button_clicked)
        row.addWidget(self.edge_parent_combo, 1)
        row.addWidget(QLabel("→"))
        row.addWidget(self.edge_child_combo, 1)
        row.addWidget(self.add_edge_button)
        row.addWidget(self.remove_edge_button)
        v.addLayout(row)
        return box

    def _build_symmetries_box(self) -> QGroupBox:
        box = QGroupBox("Symmetries (left ↔ right)")
        v = QVBoxLayout(box)
        self.symmetry_table = _pair_table(
            "skeleton_symmetries",
            ("Node", "Mirror node"),
            "Pairs of nodes that swap when the image is flipped (left and right). Training uses them to flip poses.",
        )
        v.addWidget(self.symmetry_table)
        row = QHBoxLayout()
        self.symmetry_a_combo = _node_combo("skeleton_symmetry_a", "One node of the pair, e.g. wingL.")
        self.symmetry_b_combo = _node_combo("skeleton_symmetry_b", "Its mirror image, e.g. wingR.")
        self.add_symmetry_button = _button(
            "Add", "skeleton_add_symmetry", "Declare the two nodes a left/right pair."
        )
        self.remove_symmetry_button = _button(
            "Remove", "skeleton_remove_symmetry", "Remove the pair selected in the table."
        )
        self.add_symmetry_button.clicked.connect(self._on_add_symmetry_button_clicked)
        self.remove_symmetry_button.clicked.connect(self._on_remove_symmetry_button_clicked)
        row.addWidget(self.symmetry_a_combo, 1)
        row.addWidget(QLabel("↔"))
        row.addWidget(self.symmetry_b_combo, 1)
        row.addWidget(self.add_symmetry_button)
        row.addWidget(self.remove_symmetry_button)
        v.addLayout(row)
        return box

    # ------------------------------------------------------------------ state
    @property
    def skeleton(self) -> Skeleton:
        """The skeleton shown: the open project's, else the draft."""
        labels = self.project.labels
        return labels.skeleton if labels is not None else self._draft

    def refresh(self) -> None:
        """Show the current skeleton (cheap; skipped when nothing changed)."""
        sk = self.skeleton
        if self._shown is not None and sk == self._shown:
            self._update_buttons()
            return
        with edits.quiet_roots():  # the status line shows the root problem instead
            self._shown = sk.copy()
        selected = self.node_list.currentItem().text() if self.node_list.currentItem() else None
        self.name_edit.setText(sk.name)
        self.node_list.clear()
        self.node_list.addItems(sk.nodes)
        if selected in sk.nodes:
            self.node_list.setCurrentRow(sk.nodes.index(selected))
        self._fill_table(self.edge_table, sk.edge_names)
        self._fill_table(self.symmetry_table, sk.symmetry_names)
        for combo in (
            self.edge_parent_combo,
            self.edge_child_combo,
            self.symmetry_a_combo,
            self.symmetry_b_combo,
        ):
            current = combo.currentText()
            combo.clear()
            combo.addItems(sk.nodes)
            if current in sk.nodes:
                combo.setCurrentText(current)
        problem = edits.root_problem(sk)
        if problem is None:
            root = sk.nodes[sk.roots()[0]] if sk.edges else sk.nodes[0]
            self.status_label.setText(f"✓ One root: {root} ({sk.n_nodes} nodes, {len(sk.edges)} edges)")
            self.status_label.setStyleSheet(_OK_STYLE)
        else:
            self.status_label.setText(f"⚠ {problem}")
            self.status_label.setStyleSheet(_WARNING_STYLE)
        self._update_buttons()

    @staticmethod
    def _fill_table(table: QTableWidget, pairs: list[tuple[str, str]]) -> None:
        table.setRowCount(len(pairs))
        for r, (a, b) in enumerate(pairs):
            table.setItem(r, 0, QTableWidgetItem(a))
            table.setItem(r, 1, QTableWidgetItem(b))

    def _update_buttons(self) -> None:
        self.new_project_button.setEnabled(self.project.labels is None)

    def _say(self, text: str, *, problem: bool = False) -> None:
        self.message_label.setText(text)
        self.message_label.setStyleSheet(_WARNING_STYLE if problem else "")

    # ------------------------------------------------------------------ applying edits
    def apply_edit(self, edit: edits.SkeletonEdit) -> None:
        """Apply a skeleton edit: to the open project as one undoable step, else to the draft."""
        labels = self.project.labels
        if labels is None:
            self._draft = edit.skeleton
        else:
            self.project.apply(edits.apply_skeleton_edit(labels, edit), edit.description)
        message = edit.description[:1].upper() + edit.description[1:] + "."
        if edit.removed and labels is not None:
            message += f" Points of {', '.join(edit.removed)} were removed (Undo brings them back)."
        self._say(message)
        self.refresh()

    def _try(self, make_edit: object, *args: object) -> bool:
        """Build an edit with ``make_edit(skeleton, *args)`` and apply it; report a refusal in words."""
        try:
            edit = make_edit(self.skeleton, *args)  # type: ignore[operator]
        except (ValueError, KeyError) as exc:
            self._say(str(exc).strip("'\""), problem=True)
            return False
        self.apply_edit(edit)
        return True

    # node actions (tests and other widgets call these directly)
    def add_node(self, name: str, parent: str | None = None) -> bool:
        return self._try(edits.add_node, name, parent)

    def rename_node(self, node: str, new_name: str) -> bool:
        return self._try(edits.rename_node, node, new_name)

    def remove_node(self, node: str) -> bool:
        return self._try(edits.remove_node, node)

    def move_node(self, node: str, new_index: int) -> bool:
        return self._try(edits.move_node, node, new_index)

    def add_edge(self, parent: str, child: str) -> bool:
        return self._try(edits.add_edge, parent, child)

    def remove_edge(self, parent: str, child: str) -> bool:
        return self._try(edits.remove_edge, parent, child)

    def add_symmetry(self, a: str, b: str) -> bool:
        return self._try(edits.add_symmetry, a, b)

    def remove_symmetry(self, a: str, b: str) -> bool:
        return self._try(edits.remove_symmetry, a, b)

    def use_skeleton(self, skeleton: Skeleton) -> None:
        """Replace the skeleton, keeping the points of nodes whose name is unchanged."""
        self.apply_edit(edits.match_by_name(self.skeleton, skeleton))

    def use_template(self, name: str) -> bool:
        """Use the bundled template ``name``."""
        try:
            skeleton = edits.load_template(name)
        except (KeyError, PoseTrackError) as exc:
            show_error(f"Could not load the skeleton template {name!r}: {exc}")
            return False
        self.use_skeleton(skeleton)
        return True

    def load_skeleton_file(self, path: str | os.PathLike[str]) -> bool:
        """Use the (first) skeleton of a SLEAP skeleton JSON file; a bad file changes nothing."""
        from napari_posetrack.core.io.skeleton_json import load_skeletons_json

        try:
            skeletons = load_skeletons_json(path)
        except PoseTrackError as exc:  # names the file and the problem
            show_error(f"Could not load the skeleton: {exc}")
            self._say(str(exc), problem=True)
            return False
        if len(skeletons) > 1:
            show_info(
                f"{os.fspath(path)} holds {len(skeletons)} skeletons; using the first, {skeletons[0].name!r}."
            )
        self.use_skeleton(skeletons[0])
        return True

    def save_skeleton_file(self, path: str | os.PathLike[str]) -> bool:
        """Save the skeleton as a SLEAP skeleton JSON file (atomically)."""
        from napari_posetrack.core.io.skeleton_json import save_skeleton_json

        try:
            save_skeleton_json(self.skeleton, path)
        except OSError as exc:
            show_error(f"Could not save the skeleton to {os.fspath(path)}: {exc}")
            return False
        self._say(f"Saved the skeleton to {os.fspath(path)}.")
        return True

    def new_project(self) -> bool:
        """Start an empty project using the current skeleton (only when no project is open)."""
        if self.project.labels is not None:
            show_warning("A project is open already: save it and close its layers before starting a new one.")
            return False
        if self.skeleton.n_nodes == 0:
            self._say("Add at least one node (or use a template) before starting a project.", problem=True)
            return False
        problem = edits.root_problem(self.skeleton)
        if problem:
            show_warning(f"Starting the project anyway: {problem}")
        with edits.quiet_roots():  # warned about above, in words
            labels = Labels(self.skeleton.copy())
        self.project.set_labels(labels, None)
        self._say(f"New project with skeleton {self.skeleton.name!r}. Add a video to start labelling.")
        self.refresh()
        return True

    # ------------------------------------------------------------------ slots
    def _on_project_labels_replaced(self) -> None:
        self.refresh()

    def _on_project_labels_changed(self, change: object = None) -> None:
        # undo/redo of a skeleton edit replaces the skeleton; point edits leave it (refresh is a no-op)
        self.refresh()

    def _on_node_list_current_changed(self, text: str) -> None:
        if text:
            self.node_name_edit.setText(text)

    def _selected_node(self) -> str | None:
        item = self.node_list.currentItem()
        if item is None:
            self._say("Select a node in the list first.", problem=True)
            return None
        return item.text()

    def _on_add_node_button_clicked(self) -> None:
        name = self.node_name_edit.text()
        if self.add_node(name):
            self.node_list.setCurrentRow(self.node_list.count() - 1)
            self.node_name_edit.clear()

    def _on_rename_node_button_clicked(self) -> None:
        node = self._selected_node()
        if node is not None and self.rename_node(node, self.node_name_edit.text()):
            self.node_list.setCurrentRow(self.skeleton.nodes.index(self.node_name_edit.text().strip()))

    def _on_remove_node_button_clicked(self) -> None:
        node = self._selected_node()
        if node is not None:
            self.remove_node(node)

    def _move_selected(self, step: int) -> None:
        node = self._selected_node()
        if node is None:
            return
        target = self.skeleton.nodes.index(node) + step
        if 0 <= target < self.skeleton.n_nodes and self.move_node(node, target):
            self.node_list.setCurrentRow(target)

    def _on_node_up_button_clicked(self) -> None:
        self._move_selected(-1)

    def _on_node_down_button_clicked(self) -> None:
        self._move_selected(+1)

    @staticmethod
    def _selected_pair(table: QTableWidget) -> tuple[str, str] | None:
        row = table.currentRow()
        if row < 0 or table.item(row, 0) is None:
            return None
        return table.item(row, 0).text(), table.item(row, 1).text()

    def _on_add_edge_button_clicked(self) -> None:
        self.add_edge(self.edge_parent_combo.currentText(), self.edge_child_combo.currentText())

    def _on_remove_edge_button_clicked(self) -> None:
        pair = self._selected_pair(self.edge_table)
        if pair is None:
            self._say("Select an edge in the table first.", problem=True)
        else:
            self.remove_edge(*pair)

    def _on_add_symmetry_button_clicked(self) -> None:
        self.add_symmetry(self.symmetry_a_combo.currentText(), self.symmetry_b_combo.currentText())

    def _on_remove_symmetry_button_clicked(self) -> None:
        pair = self._selected_pair(self.symmetry_table)
        if pair is None:
            self._say("Select a pair in the table first.", problem=True)
        else:
            self.remove_symmetry(*pair)

    def _on_name_edit_return_pressed(self) -> None:
        if self.name_edit.text().strip() != self.skeleton.name:
            self._try(edits.rename_skeleton, self.name_edit.text())

    def _on_template_button_clicked(self) -> None:
        self.use_template(self.template_combo.currentText())

    def _on_load_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a skeleton", "", "SLEAP skeleton (*.json)")
        if path:
            self.load_skeleton_file(path)

    def _on_save_button_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the skeleton", f"{self.skeleton.name}.json", "SLEAP skeleton (*.json)"
        )
        if path:
            if not path.lower().endswith(".json"):
                path += ".json"
            self.save_skeleton_file(path)

    def _on_new_project_button_clicked(self) -> None:
        self.new_project()
