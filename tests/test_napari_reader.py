"""Readers, writer and sample data inside a real napari viewer (run under Xvfb).

QT_QPA_PLATFORM=xcb xvfb-run -a .venv/bin/python -m pytest tests/test_napari_reader.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_posetrack.core.io.slp import load_slp
from napari_posetrack.core.labels import assert_labels_equal
from napari_posetrack.layers import METADATA_KEY, layers_to_labels

PLUGIN = "napari-posetrack"


def _warnings_since(start: int) -> list[str]:
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records[start:]]


def _n_records() -> int:
    from napari.utils.notifications import notification_manager

    return len(notification_manager.records)


@pytest.mark.gui
@pytest.mark.slow
def test_open_edit_save_reload_clip(make_napari_viewer, flies, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(flies / "clip.slp"), plugin=PLUGIN)
    kinds = {layer.name: type(layer).__name__ for layer in viewer.layers}
    assert kinds == {
        "video: clip.mp4": "Image",
        "tracks: clip.mp4": "Tracks",
        "skeleton: clip.mp4": "Vectors",
        "poses: clip.mp4": "Points",
    }
    video = viewer.layers["video: clip.mp4"]
    assert video.data.shape == (1500, 1024, 1024) and tuple(video.contrast_limits) == (0, 255)
    assert video.metadata["fps"] == pytest.approx(25.0)
    poses = viewer.layers["poses: clip.mp4"]
    original = load_slp(flies / "clip.slp")
    present = int((~np.isnan(original.instances.points).any(axis=-1)).sum())
    assert poses.data.shape == (present, 3)
    assert {"instance", "track", "node", "score", "kind", "visible"} <= set(poses.features.columns)
    assert set(poses.features["track"]) == {"female", "male"}
    assert viewer.layers["skeleton: clip.mp4"].data.shape[1:] == (2, 3)
    assert len(np.unique(viewer.layers["tracks: clip.mp4"].data[:, 0])) == 2
    # the frame under the slider decodes from the real video
    viewer.dims.set_point(0, 250)
    assert np.asarray(video.data[250]).shape == (1024, 1024)

    # move the female's head on frame 10 through the layer API
    f = poses.features
    row = np.flatnonzero(
        (f["node"] == "head").to_numpy() & (f["track"] == "female").to_numpy() & (poses.data[:, 0] == 10)
    )[0]
    data = poses.data.copy()
    data[row, 1:] += [3.5, -2.25]
    poses.data = data
    edited = layers_to_labels(poses.data, poses.features, poses.metadata)
    inst = int(f["instance"].iloc[row])
    expected = original.copy()
    r = expected.row_of_id(inst)[0]
    expected.instances.points[r, 0] += [-2.25, 3.5]  # x, y
    assert_labels_equal(expected, edited, check_ids=True)

    # save through the plugin's writer, reload, compare
    out = tmp_path / "edited.slp"
    # with every layer of the file selected (video, tracks, skeleton, poses), as users do
    written = napari.save_layers(str(out), list(viewer.layers), plugin=PLUGIN)
    assert written == [str(out)]
    reloaded = load_slp(out)
    assert_labels_equal(expected, reloaded)
    assert Path(reloaded.videos[0].filename).resolve() == (flies / "clip.mp4").resolve()


@pytest.mark.gui
def test_predictions_round_trip_through_live_layers(make_napari_viewer, flies):
    """Scores, predicted kind and 27 tracks survive napari's own feature table."""
    viewer = make_napari_viewer()
    path = flies / "centered_pair_predictions.slp"
    viewer.open(str(path), plugin=PLUGIN)
    poses = viewer.layers["poses: centered_pair_low_quality.mp4"]
    assert set(poses.features["kind"]) == {"predicted"} and poses.features["score"].notna().all()
    assert set(np.asarray(poses.symbol)) == {"diamond"}
    original = load_slp(path)
    assert_labels_equal(
        original, layers_to_labels(poses.data, poses.features, poses.metadata), check_ids=True
    )
    assert len(np.unique(viewer.layers["tracks: centered_pair_low_quality.mp4"].data[:, 0])) == 27


@pytest.mark.gui
def test_corrupt_and_missing_files_do_not_half_load(make_napari_viewer, flies, tmp_path):
    viewer = make_napari_viewer()
    # a truncated .slp: the reader raises an error naming the file, and nothing is added
    broken = tmp_path / "broken.slp"
    broken.write_bytes((flies / "clip.slp").read_bytes()[:4096])
    with pytest.raises(Exception, match="broken.slp"):
        viewer.open(str(broken), plugin=PLUGIN)
    assert len(viewer.layers) == 0
    # napari is still usable: a labels file whose video is missing opens without its video
    moved = tmp_path / "moved.slp"
    shutil.copy(flies / "minimal_instance.slp", moved)
    before = _n_records()
    viewer.open(str(moved), plugin=PLUGIN)
    names = [layer.name for layer in viewer.layers]
    assert not any(n.startswith("video:") for n in names)
    assert "poses: centered_pair_low_quality.mp4" in names
    assert any(
        "video not found" in m and "centered_pair_low_quality.mp4" in m for m in _warnings_since(before)
    )
    assert viewer.layers["poses: centered_pair_low_quality.mp4"].data.shape == (4, 3)


@pytest.mark.gui
def test_skeleton_video_and_dlc_readers(make_napari_viewer, data, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(data / "skeletons" / "flies13.json"), plugin=PLUGIN)
    skel = viewer.layers[-1]
    assert type(skel).__name__ == "Points" and len(skel.data) == 0
    meta = skel.metadata[METADATA_KEY]["skeleton"]
    assert len(meta["nodes"]) == 13 and len(meta["symmetries"]) == 5

    viewer.open(str(data / "sleap-flies" / "centered_pair_small.mp4"), plugin=PLUGIN)
    video = viewer.layers["video: centered_pair_small.mp4"]
    assert video.data.shape[:3] == (1100, 384, 384)

    table = data / "dlc-openfield" / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    viewer.open(str(table), plugin=PLUGIN)
    poses = next(layer for layer in viewer.layers if layer.name.startswith("poses: m4s1"))
    assert poses.data.shape == (116 * 4, 3)
    assert set(poses.features["node"]) == {"snout", "leftear", "rightear", "tailbase"}
    images = next(layer for layer in viewer.layers if layer.name.startswith("video: m4s1"))
    assert images.data.shape[0] >= 116
    # save as DeepLabCut CSV through the writer: the same table comes back
    out = tmp_path / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    napari.save_layers(str(out), [poses], plugin=PLUGIN)
    from napari_posetrack.core.io.dlc import load_dlc

    assert_labels_equal(load_dlc(table), load_dlc(out, config=data / "dlc-openfield" / "config.yaml"))


@pytest.mark.gui
@pytest.mark.slow
def test_sample_data(make_napari_viewer):
    pytest.importorskip("napari_posetrack.core.sample")
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "generated")
    kinds = [type(layer).__name__ for layer in viewer.layers]
    assert kinds[0] == "Image" and "Points" in kinds
    poses = next(layer for layer in viewer.layers if type(layer).__name__ == "Points")
    assert len(poses.data) > 0 and set(poses.features["kind"]) == {"user"}


# --------------------------------------------------------------------------- without a viewer


def test_get_reader_claims_only_our_files_and_never_raises(data, flies, tmp_path):
    from napari_posetrack._reader import (
        get_labels_reader,
        get_reader,
        get_skeleton_reader,
        get_video_reader,
        read_labels,
        read_skeleton,
        read_video,
    )

    dlc = data / "dlc-openfield"
    ours = {
        flies / "clip.slp": read_labels,
        dlc / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv": read_labels,
        dlc / "labeled-data" / "m4s1" / "CollectedData_Pranav.h5": read_labels,
        dlc / "config.yaml": read_labels,
        flies / "clip.mp4": read_video,
        data / "skeletons" / "bees.json": read_skeleton,
    }
    for path, reader in ours.items():
        assert get_reader(str(path)) is reader, path
        assert get_reader([str(path)]) is reader, path
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "settings.yaml").write_text("bodyparts: [a]\n")  # no labeled-data/ beside it
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    (tmp_path / "binary.json").write_bytes(bytes(range(256)))
    not_ours = [
        tmp_path / "table.csv",
        tmp_path / "other.json",
        tmp_path / "settings.yaml",
        tmp_path / "junk.h5",
        tmp_path / "binary.json",
        tmp_path / "absent.slp",
        tmp_path / "absent.mp4",
        tmp_path,
        data / "dlc-openfield" / "labeled-data" / "m4s1" / "img0000.png",
    ]
    for path in not_ours:
        for getter in (get_reader, get_labels_reader, get_video_reader, get_skeleton_reader):
            assert getter(str(path)) is None, (getter.__name__, path)
    assert get_reader([str(flies / "clip.slp"), str(flies / "clip.2node.slp")]) is None
    assert get_reader(None) is None and get_reader(12) is None


def test_failed_save_leaves_the_old_file(flies, tmp_path):
    from napari_posetrack._reader import read_labels
    from napari_posetrack._writer import write_slp

    target = tmp_path / "keep.slp"
    shutil.copy(flies / "minimal_instance.slp", target)
    before = target.read_bytes()
    layers = read_labels(str(flies / "minimal_instance.slp"))
    data, kwargs, kind = next(layer for layer in layers if layer[2] == "points")
    features = dict(kwargs["features"])
    features["node"] = np.array(["A", "B", "A", "wing"], dtype=object)
    with pytest.raises(ValueError, match="wing"):
        write_slp(str(target), [(data, dict(kwargs, features=features), kind)])
    assert target.read_bytes() == before
    with pytest.raises(ValueError, match="Points layer"):
        write_slp(str(target), [(np.zeros((2, 5, 5)), {}, "image")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.slp"]


@pytest.mark.gui
def test_opening_files_changes_no_napari_setting_and_hover_shows_point_features(make_napari_viewer, flies):
    """napari's settings persist across sessions: the plugin must leave them as the user set them."""
    from napari.settings import get_settings

    appearance = get_settings().appearance
    before = appearance.layer_tooltip_visibility
    appearance.layer_tooltip_visibility = False
    try:
        viewer = make_napari_viewer()
        viewer.open(str(flies / "clip.slp"), plugin="napari-posetrack")
        assert appearance.layer_tooltip_visibility is False
        poses = next(layer for layer in viewer.layers if layer.name.startswith("poses"))
        point = poses.data[0]
        status = poses.get_status(tuple(point), world=True)
        # the status bar names the body part and the animal under the cursor instead
        assert "node: " in status["value"] and "instance: " in status["value"]
    finally:
        appearance.layer_tooltip_visibility = before
