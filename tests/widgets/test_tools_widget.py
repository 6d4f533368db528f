"""The Tools dock widget in a real napari viewer, on real files: merge, dataset plots, model
comparison (a tiny model trained on CPU), every export format, video re-encoding with progress and cancel."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from napari_posetrack._widgets._tools_common import format_cell
from napari_posetrack.core.io import load_labels, save_labels
from napari_posetrack.core.labels import PREDICTED, USER
from napari_posetrack.core.tools.dataset_stats import dataset_stats
from napari_posetrack.core.tools.export import EXPORT_FORMATS

pytestmark = pytest.mark.gui

WAIT_MS = 60_000


@pytest.fixture
def tools(make_napari_viewer):
    from napari_posetrack._widgets._project import project_for
    from napari_posetrack._widgets.tools import ToolsWidget

    viewer = make_napari_viewer()
    widget = ToolsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Tools")
    return viewer, widget, project_for(viewer)


@pytest.fixture(scope="module")
def fly_files(flies, tmp_path_factory):
    """Two real files with the same 2-node skeleton: user labels on frames 0-9, predictions on 0-19."""
    out = tmp_path_factory.mktemp("flies")
    user = load_labels(flies / "clip.2node.slp")
    pred = load_labels(flies / "clip.predictions.slp")
    save_labels(user.subset(np.flatnonzero(user.instances.frame < 10)), out / "user.slp")
    save_labels(pred.subset(np.flatnonzero(pred.instances.frame < 20)), out / "predictions.slp")
    return out / "user.slp", out / "predictions.slp"


def table_column(table, column: int) -> list[str]:
    return [table.item(r, column).text() for r in range(table.rowCount())]


# ---------------------------------------------------------------------------------------------- merge


def test_merge_into_the_open_project_is_one_undoable_step(tools, fly_files, qtbot):
    _, widget, project = tools
    user, predictions = fly_files
    project.open(user)
    tab = widget.merge_tab
    tab.add_files([predictions])
    assert tab.base_project.isChecked() and tab.to_project.isChecked()
    tab.run_button.click()
    qtbot.waitUntil(lambda: "Applied" in tab.summary.text(), timeout=WAIT_MS)
    expected = load_labels(user)
    expected.merge(load_labels(predictions))
    assert project.labels.n_instances == expected.n_instances
    assert (project.labels.instances.kind == PREDICTED).sum() == (expected.instances.kind == PREDICTED).sum()
    assert f"now {expected.n_instances} instances" in tab.summary.text()
    project.session.undo()
    assert project.labels.n_instances == 20


def test_merge_files_into_a_new_file_leaves_the_project_alone(tools, fly_files, qtbot, tmp_path):
    _, widget, project = tools
    user, predictions = fly_files
    tab = widget.merge_tab
    tab.base_file.setChecked(True)
    tab.base_path.set_text(str(user))
    tab.add_files([predictions])
    tab.to_file.setChecked(True)
    out = tmp_path / "merged.slp"
    tab.output.set_text(str(out))
    tab.run_button.click()
    qtbot.waitUntil(lambda: tab.run_button.isEnabled() and "Saved" in tab.summary.text(), timeout=WAIT_MS)
    merged = load_labels(out)
    assert (merged.instances.kind == USER).sum() == 20
    assert (merged.instances.kind == PREDICTED).sum() + (
        merged.instances.kind == USER
    ).sum() == merged.n_instances
    assert project.labels is None


def test_merging_a_file_with_other_body_parts_is_refused_by_name(tools, fly_files, flies, qtbot):
    _, widget, project = tools
    user, _ = fly_files
    project.open(user)
    tab = widget.merge_tab
    tab.add_files([flies / "clip.slp"])  # 13 body parts, not 2
    tab.run_button.click()
    qtbot.waitUntil(lambda: tab.run_button.isEnabled() and "failed" in tab.summary.text(), timeout=WAIT_MS)
    assert "clip.slp" in tab.summary.text()
    assert project.labels.n_instances == 20


# -------------------------------------------------------------------------------------------- dataset


def test_dataset_tab_shows_the_real_fly_labels(tools, flies):
    _, widget, project = tools
    tab = widget.dataset_tab
    assert "No labels" in tab.summary.text()
    project.open(flies / "clip.slp")  # labels_replaced refreshes the tab
    stats = dataset_stats(project.labels)
    assert tab.stats == stats
    video = stats["videos"][0]
    assert table_column(tab.video_table, 2) == [str(video["labeled_frames"])] == ["1500"]
    assert table_column(tab.video_table, 3) == [str(video["user_instances"])]
    assert table_column(tab.node_table, 0) == list(project.labels.skeleton.nodes)
    assert table_column(tab.node_table, 1) == [str(n["visible"]) for n in stats["nodes"].values()]
    ax_videos, ax_nodes, ax_hist = tab.plot.figure.axes[:3]
    assert [p.get_height() for p in ax_videos.patches] == [1500, 3000, 0]
    rates = [n["visible_rate"] for n in stats["nodes"].values()]
    assert np.allclose([p.get_height() for p in ax_nodes.patches], rates)
    assert [p.get_height() for p in ax_hist.patches] == [stats["instances_per_frame"][2]]


def test_dataset_refresh_button_follows_edits(tools, fly_files):
    _, widget, project = tools
    user, _ = fly_files
    project.open(user)
    tab = widget.dataset_tab
    first = tab.stats["totals"]["user_instances"]
    rows = project.labels.rows()
    project.session.delete_instances([int(project.labels.instances.instance_id[rows[0]])])
    tab.refresh_button.click()
    assert tab.stats["totals"]["user_instances"] == first - 1
    assert table_column(tab.video_table, 3) == [str(first - 1)]
    project.session.delete_instances([int(project.labels.instances.instance_id[project.labels.rows()[0]])])
    widget.setCurrentWidget(widget.widget(0))
    widget.setCurrentIndex(1)  # showing the Dataset tab again recounts
    assert tab.stats["totals"]["user_instances"] == first - 2


# --------------------------------------------------------------------------------------------- export


def test_every_export_format_is_written_and_reads_back(tools, fly_files, tmp_path, qtbot):
    _, widget, project = tools
    user, predictions = fly_files
    project.open(user)
    merged = project.labels.copy()
    merged.merge(load_labels(predictions))
    project.apply(merged, "merge")
    merged = project.labels.copy()  # the session may take over the object it was given
    kinds = merged.instances.kind
    tab = widget.export_tab
    for fmt, spec in EXPORT_FORMATS.items():
        tab.set_format(fmt)
        assert tab.output.text().endswith(spec.suffix)
        table = fmt in ("dlc_csv", "dlc_h5")
        out = tmp_path / fmt / (("CollectedData_me" if table else "out") + spec.suffix)
        out.parent.mkdir()
        tab.output.set_text(str(out))
        assert tab.extract_frames.isEnabled() == table
        tab.extract_frames.setChecked(fmt == "dlc_csv")
        tab.written = []
        tab.run_button.click()
        qtbot.waitUntil(lambda: bool(tab.written) and tab.run_button.isEnabled(), timeout=WAIT_MS)
        assert tab.written == [out] and out.stat().st_size > 0, fmt
        if fmt == "slp":
            assert load_labels(out).n_instances == merged.n_instances
        elif fmt == "slp_predicted":
            back = load_labels(out)
            assert back.n_instances == (kinds == PREDICTED).sum() and (back.instances.kind == PREDICTED).all()
        elif fmt == "analysis":
            with h5py.File(out) as f:
                assert [n.decode() for n in f["node_names"][()]] == list(merged.skeleton.nodes)
                assert f["tracks"].ndim == 4
        elif fmt == "tidy":
            table = pd.read_csv(out)
            assert sorted(table.node.unique()) == sorted(merged.skeleton.nodes)
            assert set(table.frame) == set(range(20))
        elif fmt == "dlc_predictions":
            frame = pd.read_hdf(out, "df_with_missing")
            assert frame.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
            assert frame.notna().any(axis=1).sum() == 20
        else:
            back = load_labels(out)
            assert (back.instances.kind == USER).sum() == (kinds == USER).sum() == 20
            images = sorted((out.parent / "labeled-data").glob("*/img*.png"))
            assert len(images) == (10 if fmt == "dlc_csv" else 0)  # the 10 user-labelled frames


def test_export_section_choices_shape_the_file(tools, fly_files, tmp_path, qtbot):
    """Videos, frames, source, tracked only and body parts chosen in the export section reach the file."""
    _, widget, project = tools
    user, predictions = fly_files
    project.open(user)
    merged = project.labels.copy()
    merged.merge(load_labels(predictions))
    project.apply(merged, "merge")
    tab = widget.export_tab
    assert [tab.videos.item(i).text() for i in range(tab.videos.count())] == ["clip.mp4"]
    assert [tab.nodes.item(i).text() for i in range(tab.nodes.count())] == list(merged.skeleton.nodes)
    tab.set_format("tidy")
    out = tmp_path / "chosen.csv"
    tab.output.set_text(str(out))
    tab.frames.setText("3-12")
    tab.source.setCurrentIndex(tab.source.findData("predicted"))
    tab.tracked_only.setChecked(True)
    tab.set_ticked(tab.nodes, ["thorax"])
    tab.written = []
    tab.run_button.click()
    qtbot.waitUntil(lambda: bool(tab.written) and tab.run_button.isEnabled(), timeout=WAIT_MS)
    table = pd.read_csv(out)
    assert set(table.node) == {"thorax"} and set(table.kind) == {"predicted"}
    assert table.frame.min() == 3 and table.frame.max() == 12 and table.track.notna().all()
    np.testing.assert_allclose(table.time, table.frame / 25.0)  # time in seconds stays
    t = project.labels.instances
    expected = (t.kind == PREDICTED) & (t.track >= 0) & (t.frame >= 3) & (t.frame <= 12)
    assert len(table) == int(expected.sum())

    # a bad range or no body part is refused by name, nothing written
    tab.frames.setText("12-3")
    tab.written = []
    tab.run_button.click()
    assert "frame range" in tab.status.text() and not tab.written
    tab.frames.setText("")
    tab.set_ticked(tab.nodes, [])
    tab.run_button.click()
    assert "body part" in tab.status.text() and not tab.written


def test_export_without_predictions_names_the_problem(tools, fly_files, tmp_path, qtbot):
    _, widget, project = tools
    project.open(fly_files[0])
    tab = widget.export_tab
    tab.set_format("slp_predicted")
    tab.output.set_text(str(tmp_path / "p.slp"))
    tab.run_button.click()
    qtbot.waitUntil(lambda: "failed" in tab.status.text(), timeout=WAIT_MS)
    assert "no predicted instances" in tab.status.text() and not (tmp_path / "p.slp").exists()


# --------------------------------------------------------------------------------------------- videos


@pytest.fixture(scope="module")
def fly_cut(flies, tmp_path_factory):
    """The first 8 frames of the real fly clip (1024 x 1024)."""
    from napari_posetrack.core.tools.transcode import transcode_video

    out = tmp_path_factory.mktemp("cut") / "flies_cut.mp4"
    return transcode_video(flies / "clip.mp4", out, max_frames=8, crf=23)


@pytest.mark.slow
def test_reencode_a_real_clip_with_crop_scale_and_grayscale(tools, fly_cut, tmp_path, qtbot):
    from napari_posetrack.core.video import open_video

    _, widget, _ = tools
    tab = widget.videos_tab
    tab.add_videos([fly_cut])
    tab.output.set_text(str(tmp_path / "out"))
    tab.keyframe_interval.setValue(4)
    tab.grayscale.setChecked(True)
    tab.crop_enabled.setChecked(True)
    for box, value in zip(tab.crop_fields, (100, 200, 400, 300)):
        box.setValue(value)
    tab.scale.setValue(0.5)
    assert not tab.relink.isEnabled()  # cropped videos no longer match the labels
    seen: list[int] = []
    tab.progress.valueChanged.connect(seen.append)
    tab.run_button.click()
    qtbot.waitUntil(lambda: bool(tab.written), timeout=WAIT_MS)
    assert tab.progress.value() == 100 and seen == sorted(seen) and len(seen) > 2
    out = tmp_path / "out" / "flies_cut.mp4"
    assert tab.written == [(fly_cut, out)]
    with open_video(out) as reader:
        assert reader.n_frames == 8 and tuple(reader.shape[:2]) == (150, 200)
        frame = reader.frame(5)
        assert frame.shape[-1] == 1 or np.array_equal(frame[..., 0], frame[..., 1])


@pytest.mark.slow
def test_reencoded_sample_video_replaces_the_project_video(tools, tmp_path, qtbot):
    from napari_posetrack.core.sample import write_sample

    _, widget, project = tools
    sample = write_sample(tmp_path / "sample", n_animals=1, n_frames=6, size=(64, 64))
    project.open(sample["labels"])
    tab = widget.videos_tab
    tab.add_project_button.click()
    assert [p.name for p in tab.input_paths()] == ["sample.mp4"]
    tab.output.set_text(str(tmp_path / "encoded"))
    tab.relink.setChecked(True)
    tab.run_button.click()
    qtbot.waitUntil(lambda: bool(tab.written), timeout=WAIT_MS)
    new_path = tmp_path / "encoded" / "sample.mp4"
    assert project.labels.videos[0].path == str(new_path) and project.labels.videos[0].n_frames == 6
    assert tab.progress.value() == 100
    project.session.undo()
    assert project.labels.videos[0].path == sample["video"]


def test_cancel_stops_reencoding_and_writes_nothing(tools, flies, tmp_path, qtbot):
    _, widget, _ = tools
    tab = widget.videos_tab
    tab.add_videos([flies / "clip.mp4"])  # 1500 frames of 1024 x 1024: cancelled long before the end
    tab.output.set_text(str(tmp_path / "out"))
    tab.relay.progress.connect(lambda *_: tab.cancel_button.isEnabled() and tab.cancel_button.click())
    tab.run_button.click()
    qtbot.waitUntil(lambda: tab.run_button.isEnabled(), timeout=WAIT_MS)
    assert "Cancelled" in tab.status.text() and tab.progress.value() < 100
    assert not tab.written and not list((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------- model comparison


@pytest.fixture(scope="module")
def runs_folder(fly_files, tmp_path_factory):
    """A runs folder with one single-instance model trained for 2 batches on CPU on one real fly."""
    import torch

    from napari_posetrack.core.config import baseline_profile
    from napari_posetrack.core.training.run import train

    out = tmp_path_factory.mktemp("compare")
    user = load_labels(fly_files[0])
    one_fly = user.subset(user.rows(track=0))
    labels_path = out / "one_fly.slp"
    save_labels(one_fly, labels_path)
    cfg = baseline_profile("single_instance")
    cfg.data.input_scaling = 0.125
    cfg.data.validation_fraction = 0.3
    cfg.model.unet.filters = 8
    cfg.model.unet.max_stride = 16
    cfg.optimization.batch_size = 4
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = 2
    cfg.optimization.augmentation.rotation_probability = 0.0
    cfg.outputs.runs_folder = str(out / "runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores
    try:
        train(cfg, labels_path, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return out / "runs"


@pytest.mark.slow
def test_compare_models_tab_scores_a_trained_model(tools, runs_folder, qtbot, screenshot_dir):
    from napari_posetrack.core.inference.pipelines import InferenceOptions
    from napari_posetrack.core.tools.compare_models import compare_models

    _, widget, _ = tools
    tab = widget.compare_tab
    tab.runs_dir.set_text(str(runs_folder))
    tab.device.setCurrentText("cpu")
    tab.peak_threshold.setValue(0.0)  # a model trained for 2 batches has weak peaks
    tab.run_button.click()
    qtbot.waitUntil(lambda: bool(tab.results) and tab.run_button.isEnabled(), timeout=WAIT_MS)
    expected = compare_models(runs_folder, options=InferenceOptions(device="cpu", peak_threshold=0.0))
    assert tab.table.rowCount() == len(expected) == 1
    assert table_column(tab.table, 1) == [expected[0]["architecture"]] and expected[0]["architecture"].startswith("unet/")
    assert table_column(tab.table, 2) == ["single_instance"]
    assert table_column(tab.table, 3) == [str(expected[0]["validation_frames"])]
    # a model trained for 2 batches predicts far from the labels: distances may be NaN (no match)
    got, want = tab.results[0]["metrics"], expected[0]["metrics"]
    assert got["n_pred_instances"] == want["n_pred_instances"] == expected[0]["validation_frames"]
    assert got["oks"]["mAP"] == pytest.approx(want["oks"]["mAP"]) and 0.0 <= got["oks"]["mAP"] <= 1.0
    assert got["distance"]["all"]["mean"] == pytest.approx(want["distance"]["all"]["mean"], nan_ok=True)
    assert table_column(tab.table, 10) == [format_cell(got["oks"]["mAP"])]
    ax_dist, ax_map = tab.plot.figure.axes[:2]
    assert len(ax_dist.patches) == len(ax_map.patches) == 1
    assert "1 model(s) evaluated" in tab.status.text()
    widget.setCurrentIndex(2)
    qtbot.wait(150)
    picture = screenshot_dir / "tools_compare_models_result.png"
    widget.grab().save(str(picture))
    assert picture.stat().st_size > 0


def test_compare_models_on_a_missing_folder_reports_it(tools, tmp_path, qtbot):
    _, widget, _ = tools
    tab = widget.compare_tab
    tab.runs_dir.set_text(str(tmp_path / "nowhere"))
    tab.run_button.click()
    qtbot.waitUntil(lambda: "failed" in tab.status.text(), timeout=WAIT_MS)
    assert "nowhere" in tab.status.text() and tab.run_button.isEnabled()


# ----------------------------------------------------------------------------------------- screenshot


def test_screenshot_of_each_tab(make_napari_viewer, flies, screenshot_dir, qtbot):
    from napari_posetrack._widgets._project import project_for
    from napari_posetrack._widgets.tools import ToolsWidget

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-posetrack", "Tools")  # through napari.yaml
    assert isinstance(widget, ToolsWidget)
    project = project_for(viewer)
    project.open(flies / "clip.slp")
    viewer.window.resize(1400, 900)
    qtbot.wait(300)  # the dock takes its new size
    for index in range(widget.count()):
        widget.setCurrentIndex(index)
        qtbot.wait(150)  # let the layout settle before grabbing
        name = widget.tabText(index).lower().replace(" ", "_")
        path = screenshot_dir / f"tools_{name}.png"
        widget.grab().save(str(path))
        assert path.is_file() and path.stat().st_size > 0
    whole = screenshot_dir / "tools.png"
    widget.setCurrentIndex(1)
    viewer.screenshot(str(whole), canvas_only=False)
    assert whole.is_file() and whole.stat().st_size > 0
