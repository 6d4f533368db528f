"""DeepLabCut projects saved back into their own files (core.io.dlc_inplace), on the real openfield project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.io import load_labels, save_labels
from napari_posetrack.core.io.dlc import load_dlc, save_dlc
from napari_posetrack.core.io.dlc_inplace import save_dlc_in_place
from napari_posetrack.core.labels import PREDICTED, Skeleton, Video

TABLE = "CollectedData_Pranav"


@pytest.fixture
def openfield(data: Path) -> Path:
    return data / "dlc-openfield"


@pytest.fixture
def project(openfield: Path, tmp_path: Path) -> Path:
    """A writable copy of the real project: config and tables copied, images linked."""
    root = tmp_path / "openfield"
    folder = root / "labeled-data" / "m4s1"
    folder.mkdir(parents=True)
    shutil.copy(openfield / "config.yaml", root / "config.yaml")
    for entry in (openfield / "labeled-data" / "m4s1").iterdir():
        if entry.name.startswith("CollectedData"):
            shutil.copy(entry, folder / entry.name)
        else:
            os.symlink(entry, folder / entry.name)
    return root


def h5_of(root: Path) -> pd.DataFrame:
    return pd.read_hdf(root / "labeled-data" / "m4s1" / f"{TABLE}.h5", "df_with_missing")


def csv_of(root: Path, header: int = 3) -> pd.DataFrame:
    return pd.read_csv(
        root / "labeled-data" / "m4s1" / f"{TABLE}.csv", header=list(range(header)), index_col=0
    )


def changed_cells(a: pd.DataFrame, b: pd.DataFrame) -> set[tuple[str, tuple[str, ...]]]:
    """(row, column) of every cell that differs (NaN equals NaN); frames must share index and columns."""
    assert list(a.index) == list(b.index) and list(a.columns) == list(b.columns)
    va, vb = a.to_numpy(), b.to_numpy()
    diff = ~((va == vb) | (np.isnan(va) & np.isnan(vb)))
    return {(str(a.index[r]), tuple(a.columns[c])) for r, c in zip(*np.nonzero(diff))}


@pytest.mark.parametrize(
    "opened", ["config.yaml", f"labeled-data/m4s1/{TABLE}.csv", f"labeled-data/m4s1/{TABLE}.h5"]
)
def test_round_trip_is_exact(openfield: Path, project: Path, opened: str) -> None:
    original_h5 = pd.read_hdf(openfield / "labeled-data" / "m4s1" / f"{TABLE}.h5", "df_with_missing")
    labels = load_labels(project / opened)
    save_labels(labels, project / opened)
    pd.testing.assert_frame_equal(h5_of(project), original_h5)
    with pd.HDFStore(project / "labeled-data" / "m4s1" / f"{TABLE}.h5", "r") as store:
        assert store.keys() == ["/df_with_missing"] and store.get_storer("/df_with_missing").is_table
    src_csv = openfield / "labeled-data" / "m4s1" / f"{TABLE}.csv"
    assert (project / "labeled-data" / "m4s1" / f"{TABLE}.csv").read_bytes() == src_csv.read_bytes()
    # no temporary file is left beside the tables
    assert sorted(p.name for p in (project / "labeled-data" / "m4s1").glob(".*")) == []


def test_edits_land_in_their_cells_and_nothing_else_changes(openfield: Path, project: Path) -> None:
    folder = project / "labeled-data" / "m4s1"
    os.symlink(
        openfield / "labeled-data" / "m4s1" / "img0000.png", folder / "img9000.png"
    )  # unlabelled image
    before_h5, before_csv = h5_of(project), csv_of(project)
    labels = load_labels(project / "config.yaml")
    video = labels.videos[0]
    frame_of = {Path(p).name: f for f, p in enumerate(video.path)}
    t = labels.instances
    # a moved point
    row = int(np.flatnonzero(t.frame == frame_of["img0005.png"])[0])
    t.points[row, labels.skeleton.node_index("leftear")] = [101.5, 202.25]
    # a point cleared
    row7 = int(np.flatnonzero(t.frame == frame_of["img0007.png"])[0])
    t.points[row7, labels.skeleton.node_index("tailbase")] = np.nan
    # a deleted instance
    labels.delete(np.flatnonzero(t.frame == frame_of["img0009.png"]))
    # a new label on the unlabelled image, snout and tailbase only
    new = np.full((1, 4, 2), np.nan)
    new[0, 0], new[0, 3] = [5.0, 6.0], [7.5, 8.5]
    labels.add_instances(0, [frame_of["img9000.png"]], new)
    # predictions are not training data: never written
    labels.add_instances(0, [frame_of["img0001.png"]], np.full((1, 4, 2), 3.0), kind=PREDICTED, score=0.9)

    written = save_dlc_in_place(labels, project / "config.yaml")
    assert {p.name for p in written} == {f"{TABLE}.csv", f"{TABLE}.h5"}
    for after, before in ((h5_of(project), before_h5), (csv_of(project), before_csv)):
        # the new image is the one added row, at the end, keyed like the others
        assert (
            list(after.index[:-1]) == list(before.index)
            and after.index[-1] == "labeled-data/m4s1/img9000.png"
        )
        np.testing.assert_array_equal(
            after.iloc[-1].to_numpy(), [5.0, 6.0, np.nan, np.nan, np.nan, np.nan, 7.5, 8.5]
        )
        head = after.iloc[:-1]
        assert changed_cells(head, before) == {
            ("labeled-data/m4s1/img0005.png", ("Pranav", "leftear", "x")),
            ("labeled-data/m4s1/img0005.png", ("Pranav", "leftear", "y")),
            ("labeled-data/m4s1/img0007.png", ("Pranav", "tailbase", "x")),
            ("labeled-data/m4s1/img0007.png", ("Pranav", "tailbase", "y")),
        } | {("labeled-data/m4s1/img0009.png", c) for c in before.columns}
        assert head.loc["labeled-data/m4s1/img0005.png", ("Pranav", "leftear", "x")] == 101.5
        assert head.loc["labeled-data/m4s1/img0005.png", ("Pranav", "leftear", "y")] == 202.25
        assert head.loc["labeled-data/m4s1/img0009.png"].isna().all()  # the row stays, emptied
        assert np.isnan(head.loc["labeled-data/m4s1/img0007.png", ("Pranav", "tailbase", "y")])
    # and it loads back as what was saved
    again = load_labels(project / "config.yaml")
    user = labels.subset(np.flatnonzero(labels.instances.kind != PREDICTED))
    order_a = np.argsort(again.instances.frame)
    order_u = np.argsort(user.instances.frame)
    np.testing.assert_array_equal(again.instances.points[order_a], user.instances.points[order_u])


def test_unlabelled_rows_half_pairs_and_unknown_columns_are_kept(openfield: Path, project: Path) -> None:
    """Rows with no label, NaNs, a half-missing pair, a likelihood column and a body part the config lacks."""
    path = project / "labeled-data" / "m4s1" / f"{TABLE}.h5"
    df = h5_of(project)
    df.loc["labeled-data/m4s1/img0003.png"] = np.nan  # an image whose row has no label
    df.loc["labeled-data/m4s1/img0004.png", ("Pranav", "rightear", "y")] = np.nan  # half-missing pair
    df[("Pranav", "tailtip", "x")] = np.linspace(1.0, 2.0, len(df))  # not in config.yaml
    df[("Pranav", "tailtip", "y")] = np.linspace(3.0, 4.0, len(df))
    df[("Pranav", "tailtip", "likelihood")] = 0.5
    df.to_hdf(path, key="df_with_missing", mode="w", format="table")
    (project / "labeled-data" / "m4s1" / f"{TABLE}.csv").unlink()
    before = h5_of(project)
    with pytest.warns(UserWarning, match="tailtip"):
        labels = load_labels(path)
    save_labels(labels, path)
    pd.testing.assert_frame_equal(h5_of(project), before)
    # an edit of the extra body part lands in its column; the likelihood column is untouched
    row = int(np.flatnonzero(labels.instances.frame == 10)[0])
    labels.instances.points[row, labels.skeleton.node_index("tailtip")] = [9.0, 9.5]
    save_labels(labels, path)
    after = h5_of(project)
    key = labels.videos[0].path[10].replace(str(project) + os.sep, "").replace(os.sep, "/")
    assert changed_cells(after, before) == {
        (key, ("Pranav", "tailtip", "x")),
        (key, ("Pranav", "tailtip", "y")),
    }


def test_multi_animal_three_level_index_in_place(openfield: Path, project: Path) -> None:
    """DLC 2.3's three index columns and individuals: an untracked new animal takes the free individual."""
    labels = load_dlc(project / "labeled-data" / "m4s1" / f"{TABLE}.csv")
    (project / "config.yaml").write_text(
        "scorer: Pranav\nmultianimalproject: true\nbodyparts: MULTI!\n"
        "multianimalbodyparts: [snout, leftear, rightear, tailbase]\nuniquebodyparts: []\n"
        "individuals: [mus1, mus2]\nskeleton: []\n"
    )
    labels.add_track("mus1")
    labels.add_track("mus2")
    labels.instances.track[:] = 0
    second = labels.instances.points[:4] + 50.0
    labels.add_instances(0, labels.instances.frame[:4], second, track=1)
    table = project / "labeled-data" / "m4s1" / f"{TABLE}.h5"
    save_dlc(labels, table, index_style="multi", multianimal=True)
    save_dlc(labels, table.with_suffix(".csv"), index_style="multi", multianimal=True)
    before = pd.read_hdf(table, "df_with_missing")
    assert isinstance(before.index, pd.MultiIndex)

    again = load_labels(project / "config.yaml")
    save_labels(again, project / "config.yaml")
    pd.testing.assert_frame_equal(pd.read_hdf(table, "df_with_missing"), before)
    # a second animal drawn (untracked) on an image that had only mus1
    frame = int(again.instances.frame[again.instances.track == 0][10])
    again.add_instances(0, [frame], np.full((1, 4, 2), 11.0))
    save_labels(again, project / "config.yaml")
    after = pd.read_hdf(table, "df_with_missing")
    image = Path(again.videos[0].path[frame]).name
    diff = changed_cells(after, before)
    assert diff == {
        (str(("labeled-data", "m4s1", image)), ("Pranav", "mus2", p, c))
        for p in ("snout", "leftear", "rightear", "tailbase")
        for c in ("x", "y")
    }
    csv_after = pd.read_csv(table.with_suffix(".csv"), header=[0, 1, 2, 3], index_col=[0, 1, 2])
    assert csv_after.loc[("labeled-data", "m4s1", image), ("Pranav", "mus2", "snout", "x")] == 11.0


def test_new_video_in_project_gets_its_own_table(data: Path, project: Path) -> None:
    labels = load_labels(project / "config.yaml")
    video = data / "lp-mirror-mouse" / "videos" / "test_vid.mp4"
    v = labels.add_video(Video(str(video), n_frames=994))
    labels.add_instances(v, [12], np.full((1, 4, 2), 20.0))
    written = save_dlc_in_place(labels, project / "config.yaml")
    new = project / "labeled-data" / "test_vid" / f"{TABLE}.h5"
    assert new in written and new.with_suffix(".csv") in written
    assert (project / "labeled-data" / "test_vid" / "img00012.png").is_file()
    again = load_labels(project / "config.yaml")
    assert len(again.videos) == 2 and again.n_instances == 117


def test_tables_that_cannot_hold_the_labels_change_nothing(
    openfield: Path, project: Path, data: Path
) -> None:
    table = project / "labeled-data" / "m4s1" / f"{TABLE}.csv"
    labels = load_labels(table)
    before = {p: p.read_bytes() for p in table.parent.glob("CollectedData*")}
    labels.add_instances(0, [0], np.full((1, 4, 2), 1.0))  # a second animal in a single-animal table
    with pytest.raises(FileFormatError, match="single-animal") as err:
        save_labels(labels, table)
    assert str(table) in str(err.value) or str(table.with_suffix(".h5")) in str(err.value)
    assert {p: p.read_bytes() for p in table.parent.glob("CollectedData*")} == before

    # a lone table (no config.yaml) cannot take labels of another video
    lone = project.parent / "lone"
    shutil.copytree(project / "labeled-data", lone / "data", symlinks=True)
    lone_table = lone / "data" / "m4s1" / f"{TABLE}.h5"
    labels = load_labels(lone_table)
    v = labels.add_video(Video(str(data / "lp-mirror-mouse" / "videos" / "test_vid.mp4"), n_frames=994))
    labels.add_instances(v, [3], np.full((1, 4, 2), 2.0))
    with pytest.raises(FileFormatError, match="config.yaml") as err:
        save_labels(labels, lone_table)
    assert str(lone_table) in str(err.value)


def test_convert_still_writes_slp(project: Path, tmp_path: Path) -> None:
    from napari_posetrack.core.cli import main

    out = tmp_path / "openfield.slp"
    assert main(["convert", str(project / "config.yaml"), str(out)]) == 0
    slp = load_labels(out)
    assert slp.n_instances == 116 and slp.skeleton.nodes == ["snout", "leftear", "rightear", "tailbase"]
    assert Skeleton(slp.skeleton.nodes).nodes == slp.skeleton.nodes


def test_tables_with_different_body_parts_open_as_one_project_and_save_back(project: Path) -> None:
    """One folder's table has a body part the config (and the other tables) lack: the project opens
    with the union of body parts, and saving in place writes each table back as it was."""
    import pandas as pd

    first = project / "labeled-data" / "m4s1"
    second = project / "labeled-data" / "m4s1b"
    second.mkdir()
    for entry in first.iterdir():
        if not entry.name.startswith("CollectedData"):
            os.symlink(os.readlink(entry), second / entry.name)
    lines = (first / "CollectedData_Pranav.csv").read_text().splitlines()
    extra = [lines[0] + ",Pranav,Pranav", lines[1] + ",whisker,whisker", lines[2] + ",x,y"]
    rows = [line.replace("labeled-data/m4s1/", "labeled-data/m4s1b/") + f",{10 + i}.5,{20 + i}.25"
            for i, line in enumerate(lines[3:])]
    (second / "CollectedData_Pranav.csv").write_text("\n".join(extra + rows) + "\n")
    before = {p: pd.read_csv(p, header=[0, 1, 2], index_col=0)
              for p in (first / "CollectedData_Pranav.csv", second / "CollectedData_Pranav.csv")}

    with pytest.warns(UserWarning, match="whisker"):
        labels = load_labels(project / "config.yaml")
    assert labels.skeleton.nodes == ["snout", "leftear", "rightear", "tailbase", "whisker"]
    assert len(labels.videos) == 2
    t = labels.instances
    w = labels.skeleton.node_index("whisker")
    in_first = t.video == next(i for i, v in enumerate(labels.videos) if "m4s1b" not in str(v.path))
    assert np.isnan(t.points[in_first, w]).all()
    assert not np.isnan(t.points[~in_first, w]).any()
    np.testing.assert_array_equal(np.sort(t.points[~in_first, w, 0]), 10.5 + np.arange((~in_first).sum()))

    save_labels(labels, project / "config.yaml")
    for path, frame in before.items():
        pd.testing.assert_frame_equal(pd.read_csv(path, header=[0, 1, 2], index_col=0), frame)
