"""Save in the Labelling widget writes a DeepLabCut project back into its own tables (real viewer)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")

import pandas as pd  # noqa: E402
from napari.layers.base import ActionType  # noqa: E402

from napari_posetrack._widgets._project import project_for  # noqa: E402
from napari_posetrack._widgets.labelling import LabellingWidget  # noqa: E402

pytestmark = pytest.mark.gui

TABLE = "CollectedData_Pranav"


@pytest.fixture
def project_dir(data: Path, tmp_path: Path) -> Path:
    """A writable copy of the real DLC openfield project (tables copied, images linked)."""
    src = data / "dlc-openfield"
    root = tmp_path / "openfield"
    folder = root / "labeled-data" / "m4s1"
    folder.mkdir(parents=True)
    shutil.copy(src / "config.yaml", root / "config.yaml")
    for entry in (src / "labeled-data" / "m4s1").iterdir():
        if entry.name.startswith("CollectedData"):
            shutil.copy(entry, folder / entry.name)
        else:
            os.symlink(entry, folder / entry.name)
    return root


def _drag(layer, rows: list[int], shift: tuple[float, float]) -> None:
    """What napari's select mode does for a drag: CHANGING, move with events blocked, CHANGED."""
    layer.events.data(value=layer.data, action=ActionType.CHANGING, data_indices=tuple(rows), vertex_indices=((),))
    with layer.events.data.blocker():
        data = layer.data
        data[rows, 1:] += np.asarray(shift)
        layer.data = data
    layer.events.data(value=layer.data, action=ActionType.CHANGED, data_indices=tuple(rows), vertex_indices=((),))


@pytest.mark.parametrize("opened", ["config.yaml", f"labeled-data/m4s1/{TABLE}.h5"])
def test_save_writes_back_to_the_dlc_tables(make_napari_viewer, project_dir: Path, opened: str) -> None:
    h5 = project_dir / "labeled-data" / "m4s1" / f"{TABLE}.h5"
    csv = h5.with_suffix(".csv")
    before_h5 = pd.read_hdf(h5, "df_with_missing")
    viewer = make_napari_viewer()
    widget = LabellingWidget(viewer)
    assert widget.open_path(project_dir / opened)
    project = project_for(viewer)
    assert project.path == project_dir / opened  # Save goes back to the file that was opened

    layer = project.points_layer
    project.go_to(0)
    f = layer.features
    (row,) = np.flatnonzero((np.asarray(layer.data)[:, 0] == 0) & (f["node"].to_numpy() == "rightear"))
    _drag(layer, [int(row)], (4.0, -3.0))  # dy, dx
    assert project.session.dirty
    moved = project.labels.instances.points[project.labels.instances.frame == 0][0, 2].copy()

    widget._on_save_clicked()  # the Save button
    assert not project.session.dirty and "Saved" in widget.status.text()
    after_h5 = pd.read_hdf(h5, "df_with_missing")
    after_csv = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    image = "labeled-data/m4s1/img0000.png"
    for after in (after_h5, after_csv):
        assert list(after.index) == list(before_h5.index) and list(after.columns) == list(before_h5.columns)
        expected = before_h5.copy()
        expected.loc[image, ("Pranav", "rightear", "x")] = moved[0]
        expected.loc[image, ("Pranav", "rightear", "y")] = moved[1]
        pd.testing.assert_frame_equal(after, expected, check_index_type=False, check_column_type=False)
    np.testing.assert_allclose(
        moved, before_h5.loc[image, [("Pranav", "rightear", "x"), ("Pranav", "rightear", "y")]].to_numpy() + [-3, 4]
    )
    assert not list(project_dir.rglob("*.slp"))  # no SLEAP file was made instead
