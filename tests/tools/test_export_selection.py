"""Export choices (videos, frames, source, tracked only, nodes) in core and the CLI; DLC machine labels; movement."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_posetrack.core.cli import main
from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.io.analysis_h5 import _gather, analysis_slots
from napari_posetrack.core.labels import NO_TRACK, PREDICTED, USER, Video
from napari_posetrack.core.tools.export import (
    ExportSelection,
    export_labels,
    parse_frame_range,
    select_for_export,
)


@pytest.fixture(scope="module")
def mixed(flies: Path):
    """Real fly labels (user, tracked) on frames 0-9, real predictions (tracked) on frames 0-29, one
    untracked prediction copy on frames 20-29, and a second (empty) video."""
    user = load_labels(flies / "clip.2node.slp")
    user = user.subset(np.flatnonzero(user.instances.frame < 10))
    pred = load_labels(flies / "clip.predictions.slp")
    user.merge(pred.subset(np.flatnonzero(pred.instances.frame < 30)))
    t = user.instances
    extra = np.flatnonzero((t.kind == PREDICTED) & (t.frame >= 20) & (t.track == 0))
    user.add_instances(0, t.frame[extra], t.points[extra] + 1.0, kind=PREDICTED, score=0.5)
    user.add_video(Video(str(flies / "centered_pair_small.mp4"), n_frames=1100))
    return user


def test_frame_range_parsing() -> None:
    assert parse_frame_range("100-200") == (100, 200)
    assert parse_frame_range(" 7 ") == (7, 7)
    for bad in ("200-100", "a-b", "1-2-3", "-5"):
        with pytest.raises(ValueError, match="frame range"):
            parse_frame_range(bad)


def test_each_choice_selects_what_it_says(mixed) -> None:
    t = mixed.instances
    assert mixed.n_instances == len(t)
    # source
    user = select_for_export(mixed, ExportSelection(source="user"))
    assert user.n_instances == int((t.kind == USER).sum()) and (user.instances.kind == USER).all()
    pred = select_for_export(mixed, ExportSelection(source="predicted"))
    assert pred.n_instances == int((t.kind == PREDICTED).sum()) and (pred.instances.kind == PREDICTED).all()
    both = select_for_export(mixed, ExportSelection())
    assert both.n_instances == mixed.n_instances
    # frames (both ends included), the frame numbers are kept
    window = select_for_export(mixed, ExportSelection(frames=(5, 12)))
    assert window.n_instances == int(((t.frame >= 5) & (t.frame <= 12)).sum())
    assert window.instances.frame.min() == 5 and window.instances.frame.max() == 12
    # tracked only
    tracked = select_for_export(mixed, ExportSelection(tracked_only=True))
    assert tracked.n_instances == int((t.track != NO_TRACK).sum()) < mixed.n_instances
    assert (tracked.instances.track >= 0).all()
    # nodes, in the order asked, points following them
    nodes = select_for_export(mixed, ExportSelection(nodes=["thorax", "head"]))
    assert nodes.skeleton.nodes == ["thorax", "head"] and nodes.skeleton.edge_names == [("thorax", "head")]
    np.testing.assert_array_equal(nodes.instances.points[:, 0], t.points[:, 1])
    one = select_for_export(mixed, ExportSelection(nodes=["thorax"]))
    assert one.n_nodes == 1 and one.skeleton.edges == []
    # videos, by index or name: the other videos are dropped, indices follow
    second = select_for_export(mixed, ExportSelection(videos=["centered_pair_small.mp4"]))
    assert [v.name for v in second.videos] == ["centered_pair_small.mp4"] and second.n_instances == 0
    first = select_for_export(mixed, ExportSelection(videos=[0]))
    assert len(first.videos) == 1 and first.n_instances == mixed.n_instances
    # the input is untouched
    assert mixed.n_nodes == 2 and len(mixed.videos) == 2


def test_bad_choices_are_named(mixed, tmp_path) -> None:
    with pytest.raises(ValueError, match="no video named 'nope.mp4'"):
        select_for_export(mixed, ExportSelection(videos=["nope.mp4"]))
    with pytest.raises(ValueError, match="video index 7"):
        select_for_export(mixed, ExportSelection(videos=[7]))
    with pytest.raises(ValueError, match=r"unknown node\(s\) \['tail'\]"):
        select_for_export(mixed, ExportSelection(nodes=["tail"]))
    with pytest.raises(ValueError, match="source"):
        select_for_export(mixed, ExportSelection(source="gt"))
    with pytest.raises(FileFormatError, match="no instance") as err:
        export_labels(mixed, tmp_path / "x.csv", "tidy", ExportSelection(frames=(500, 600)))
    assert str(tmp_path / "x.csv") in str(err.value) and not (tmp_path / "x.csv").exists()


def test_tidy_csv_with_every_choice_keeps_time(mixed, tmp_path) -> None:
    sel = ExportSelection(
        videos=["clip.mp4"], frames=(5, 24), source="predicted", tracked_only=True, nodes=["thorax"]
    )
    (path,) = export_labels(mixed, tmp_path / "poses.csv", "tidy", sel)
    table = pd.read_csv(path)
    assert (
        set(table.video) == {"clip.mp4"}
        and set(table.node) == {"thorax"}
        and set(table.kind) == {"predicted"}
    )
    assert table.frame.min() == 5 and table.frame.max() == 24
    assert set(table.track) == {"female", "male"}  # the untracked copies are left out
    # time in seconds from the video's own timestamps (clip.mp4 is 25 fps, constant)
    np.testing.assert_allclose(table.time.to_numpy(), table.frame.to_numpy() / 25.0)
    t = mixed.instances
    rows = np.flatnonzero((t.kind == PREDICTED) & (t.track >= 0) & (t.frame >= 5) & (t.frame <= 24))
    assert len(table) == len(rows)
    expected = {
        (int(f), mixed.tracks[int(k)].name): p
        for f, k, p in zip(t.frame[rows], t.track[rows], t.points[rows, 1])
    }
    for f, tr, x, y in zip(table.frame, table.track, table.x, table.y):
        np.testing.assert_array_equal([x, y], expected[(f, tr)])


def test_analysis_h5_with_a_frame_range_keeps_frame_numbers_and_time(mixed, tmp_path) -> None:
    sel = ExportSelection(videos=[0], frames=(10, 19), source="predicted", nodes=["head"])
    (path,) = export_labels(mixed, tmp_path / "poses.h5", "analysis", sel)
    with h5py.File(path) as f:
        tracks = f["tracks"][()]  # (tracks, 2, nodes, frames)
        assert [n.decode() for n in f["node_names"][()]] == ["head"]
        times = f["frame_times"][()]
        assert f.attrs["fps"] == pytest.approx(25.0)
    assert tracks.shape[2] == 1 and tracks.shape[3] == 1500  # frames of the whole video, in place
    present = np.flatnonzero(~np.isnan(tracks).all(axis=(0, 1, 2)))
    assert present.min() == 10 and present.max() == 19
    np.testing.assert_allclose(times[:30], np.arange(30) / 25.0)


def test_dlc_predictions_file_holds_the_analysis_poses(mixed, tmp_path) -> None:
    (path,) = export_labels(
        mixed, tmp_path / "clipDLC_posetrack.h5", "dlc_predictions", ExportSelection(videos=[0])
    )
    df = pd.read_hdf(path, "df_with_missing")
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(df.columns.get_level_values("coords")[:3]) == ["x", "y", "likelihood"]
    selected = select_for_export(mixed, ExportSelection(videos=[0]))
    slot_rows, names, _ = analysis_slots(selected, 0)
    arrays = _gather(selected, slot_rows)
    assert list(dict.fromkeys(df.columns.get_level_values("individuals"))) == names
    assert len(df) == 1500 and list(df.index[:3]) == [0, 1, 2]
    for k, name in enumerate(names):
        for n, node in enumerate(selected.skeleton.nodes):
            np.testing.assert_array_equal(
                df[("posetrack", name, node, "x")].to_numpy(), arrays["tracks"][:, k, n, 0]
            )
            np.testing.assert_array_equal(
                df[("posetrack", name, node, "y")].to_numpy(), arrays["tracks"][:, k, n, 1]
            )
    # likelihood: the prediction's point score, 1 for user points, NaN where missing
    lik = df[("posetrack", names[0], "head", "likelihood")].to_numpy()
    kind = arrays["kind"][:, 0]
    assert (lik[kind == USER] == 1.0).all()
    np.testing.assert_allclose(lik[kind == PREDICTED], arrays["point_scores"][kind == PREDICTED, 0, 0])
    assert np.isnan(lik[30:]).all()
    # and our DLC reader reads it back as predictions on the same frames
    back = load_labels(path)
    assert (back.instances.kind == PREDICTED).all()


def test_single_animal_dlc_predictions_have_three_header_levels(mixed, tmp_path) -> None:
    sel = ExportSelection(source="predicted", nodes=["thorax"])
    one = select_for_export(mixed, sel)
    one = one.subset(np.flatnonzero(one.instances.track == 0))
    one.tracks = []
    one.instances.track[:] = NO_TRACK
    one = one.subset(np.flatnonzero(np.r_[True, np.diff(one.instances.frame) != 0]))  # one per frame
    (path,) = export_labels(one, tmp_path / "oneDLC_x.csv", "dlc_predictions", ExportSelection(videos=[0]))
    df = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    assert df.columns.names == ["scorer", "bodyparts", "coords"]
    assert list(df.columns) == [("posetrack", "thorax", c) for c in ("x", "y", "likelihood")]


def test_cli_convert_takes_every_choice(capsys, flies, tmp_path) -> None:
    out = tmp_path / "poses.csv"
    args = [
        "convert",
        str(flies / "clip.predictions.slp"),
        str(out),
        "--video",
        "clip.mp4",
        "--frames",
        "100-200",
        "--source",
        "predicted",
        "--tracked-only",
        "--nodes",
        "thorax",
    ]
    assert main(args) == 0
    table = pd.read_csv(out)
    assert table.frame.min() >= 100 and table.frame.max() == 200 and set(table.node) == {"thorax"}
    assert set(table.kind) == {"predicted"} and table.track.notna().all()
    assert (
        main(
            ["convert", str(flies / "clip.slp"), str(tmp_path / "u.csv"), "--source", "user", "--frames", "3"]
        )
        == 0
    )
    u = pd.read_csv(tmp_path / "u.csv")
    assert set(u.frame) == {3} and set(u.kind) == {"user"} and len(u) == 2 * 13
    dlc = tmp_path / "clipDLC_posetrack.h5"
    assert (
        main(["convert", str(flies / "clip.predictions.slp"), str(dlc), "--format", "dlc_predictions"]) == 0
    )
    assert pd.read_hdf(dlc).shape[1] == 2 * 2 * 3
    assert main(["convert", str(flies / "clip.slp"), str(tmp_path / "n.csv"), "--nodes", "wing"]) == 1
    assert "unknown node(s) ['wing']" in capsys.readouterr().err


def test_exports_open_in_movement_with_the_same_poses(mixed, tmp_path) -> None:
    movement = pytest.importorskip("movement")
    from movement.io import load_poses

    sel = ExportSelection(videos=[0], frames=(0, 29), tracked_only=True)
    (h5,) = export_labels(mixed, tmp_path / "poses.analysis.h5", "analysis", sel)
    (dlc,) = export_labels(mixed, tmp_path / "clipDLC_posetrack.h5", "dlc_predictions", sel)
    selected = select_for_export(mixed, sel)
    slot_rows, names, _ = analysis_slots(selected, 0)
    ours = _gather(selected, slot_rows)["tracks"]  # (frames, tracks, nodes, xy)
    for ds in (load_poses.from_sleap_file(h5, fps=25), load_poses.from_dlc_file(dlc, fps=25)):
        pos = ds.position.transpose("time", "individuals", "keypoints", "space")
        assert list(ds.individuals.values) == names
        assert list(ds.keypoints.values) == selected.skeleton.nodes
        np.testing.assert_array_equal(pos.values, ours)
        np.testing.assert_allclose(ds.time.values[:30], np.arange(30) / 25.0)
    assert movement is not None
