"""Export in every offered format, read back; merging files into an open (in-memory) project."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.io import load_labels, save_labels
from napari_posetrack.core.labels import PREDICTED, USER, Video
from napari_posetrack.core.tools.export import (
    EXPORT_FORMATS,
    analysis_paths,
    export_labels,
    predicted_only,
)
from napari_posetrack.core.tools.merge import merge_into


@pytest.fixture(scope="module")
def mixed(flies):
    """Real fly labels on 10 frames plus real predictions on 20 frames (same 2-node skeleton)."""
    user = load_labels(flies / "clip.2node.slp")
    user = user.subset(np.flatnonzero(user.instances.frame < 10))
    pred = load_labels(flies / "clip.predictions.slp")
    user.merge(pred.subset(np.flatnonzero(pred.instances.frame < 20)))
    return user


def test_predicted_only_keeps_predictions_and_the_videos(mixed):
    only = predicted_only(mixed)
    assert only.n_instances == int((mixed.instances.kind == PREDICTED).sum()) > 0
    assert (only.instances.kind == PREDICTED).all()
    assert len(only.videos) == len(mixed.videos)


@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_every_format_is_written_and_reads_back(mixed, tmp_path, fmt):
    name = {"dlc_csv": "CollectedData_me.csv", "dlc_h5": "CollectedData_me.h5"}.get(
        fmt, "out" + EXPORT_FORMATS[fmt].suffix
    )
    (path,) = export_labels(mixed, tmp_path / name, fmt)
    assert path.is_file() and path.stat().st_size > 0
    if fmt == "slp":
        back = load_labels(path)
        assert back.n_instances == mixed.n_instances
    elif fmt == "slp_predicted":
        back = load_labels(path)
        assert (back.instances.kind == PREDICTED).all() and back.n_instances == predicted_only(
            mixed
        ).n_instances
    elif fmt == "analysis":
        with h5py.File(path) as f:
            assert [n.decode() for n in f["node_names"][()]] == list(mixed.skeleton.nodes)
            assert f["tracks"].ndim == 4 and len(mixed.skeleton.nodes) in f["tracks"].shape
    elif fmt == "dlc_predictions":
        table = pd.read_hdf(path, "df_with_missing")
        assert table.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
        assert len(table) == mixed.videos[0].n_frames
    elif fmt == "tidy":
        table = pd.read_csv(path)
        assert {"video", "frame", "track", "node", "x", "y"} <= set(table.columns)
        assert table.frame.max() == 19
    else:
        back = load_labels(path)
        n_user = int((mixed.instances.kind == USER).sum())
        assert (back.instances.kind == USER).sum() == n_user
        rows = np.flatnonzero(mixed.instances.kind == USER)
        assert np.allclose(
            np.sort(back.instances.points[..., 0].ravel()),
            np.sort(mixed.instances.points[rows, :, 0].ravel()),
            equal_nan=True,
        )


def test_analysis_export_writes_one_file_per_video(mixed, tmp_path):
    two = mixed.copy()
    two.add_video(Video("/elsewhere/other.mp4", n_frames=5, shape=(32, 32, 1)))
    paths = export_labels(two, tmp_path / "poses.h5", "analysis")
    assert paths == analysis_paths(two, tmp_path / "poses.h5") and len(paths) == 2
    assert all(p.is_file() for p in paths) and "other" in paths[1].name
    with h5py.File(paths[1]) as f:
        assert int(f["video_ind"][()]) == 1


def test_exports_that_have_nothing_to_write_say_so(mixed, tmp_path):
    user_only = mixed.subset(np.flatnonzero(mixed.instances.kind == USER))
    with pytest.raises(FileFormatError, match="no predicted instances"):
        export_labels(user_only, tmp_path / "p.slp", "slp_predicted")
    with pytest.raises(FileFormatError, match="unknown export format"):
        export_labels(user_only, tmp_path / "p.xyz", "xyz")
    assert not list(tmp_path.iterdir())


def test_merge_into_leaves_the_base_alone_and_counts(flies, tmp_path):
    base = load_labels(flies / "clip.2node.slp")
    base = base.subset(np.flatnonzero(base.instances.frame < 5))
    pred = load_labels(flies / "clip.predictions.slp")
    save_labels(pred.subset(np.flatnonzero(pred.instances.frame < 8)), tmp_path / "p.slp")
    merged, summary = merge_into(base, [tmp_path / "p.slp"])
    assert base.n_instances == 10
    assert (
        merged.n_instances == summary["instances"] == 10 + summary["added"] - summary["replaced_predictions"]
    )
    assert summary["files"] == 1 and summary["videos"] == 1


def test_merge_into_names_the_file_with_another_skeleton(flies):
    base = load_labels(flies / "clip.2node.slp")
    with pytest.raises(FileFormatError, match="clip.slp"):
        merge_into(base, [flies / "clip.slp"])
