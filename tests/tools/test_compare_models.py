"""Model comparison over a runs folder, and the demo loop wired end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_posetrack.core.demo import DemoSettings, run_demo
from napari_posetrack.core.inference.pipelines import InferenceOptions
from napari_posetrack.core.models.runs import find_model_sets
from napari_posetrack.core.tools.compare_models import compare_models, format_comparison


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo loop with tiny settings: a real top-down model trained for a few steps."""
    settings = DemoSettings(n_animals=2, n_frames=24, size=(96, 96), label_every=2, epochs=1, batches_per_epoch=2, device="cpu")
    lines: list[str] = []
    summary = run_demo(tmp_path_factory.mktemp("demo"), settings, log=lines.append)
    return summary, lines


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_says_where_results_are(demo):
    summary, lines = demo
    metrics = json.loads(Path(summary["metrics"]).read_text())
    assert {"poses", "tracking"} <= set(metrics)
    for key in ("predictions", "analysis", "csv"):
        assert any(summary[key] in line for line in lines)
    assert len(summary["runs"]) == 2  # centroid + centered instance
    assert lines[0].startswith("[1/6]") and lines[-6].startswith("done in")
    assert lines[-1].split()[-1].endswith("summary.json")


@pytest.mark.slow
def test_runs_folder_comparison_pairs_top_down_runs_and_scores_validation_frames(demo):
    summary, _ = demo
    runs_dir = summary["runs"][0].rsplit("/", 1)[0]
    (model_set,) = find_model_sets(runs_dir)
    assert model_set.pipeline == "topdown" and [r.name.split(".")[-1] for r in model_set.runs] == ["centroid", "centered_instance"]
    rows = compare_models(runs_dir, labels=summary["labels"], options=InferenceOptions(device="cpu", peak_threshold=0.0))
    assert rows[0]["validation_frames"] >= 1
    assert "distance" in rows[0]["metrics"] and rows[0]["best_val_loss"] is not None
    assert rows[0]["architecture"].startswith("unet/") and "; unet/" in rows[0]["architecture"]  # both runs
    assert "topdown" in format_comparison(rows)


def test_missing_runs_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_model_sets(tmp_path / "nowhere")


@pytest.mark.slow
def test_evaluate_runs_command_prints_a_table_and_writes_json(demo, tmp_path, capsys):
    from napari_posetrack.core.cli import main

    summary, _ = demo
    runs_dir = summary["runs"][0].rsplit("/", 1)[0]
    out = tmp_path / "comparison.json"
    assert main(["evaluate", "--runs", runs_dir, "--labels", summary["labels"], "--device", "cpu", "--json", str(out)]) == 0
    assert "median px" in capsys.readouterr().out
    assert json.loads(out.read_text())[0]["pipeline"] == "topdown"


@pytest.mark.slow
def test_a_model_that_finds_nothing_scores_nothing(demo):
    """Predictions are scored alone: the ground truth they sit beside must not count as found."""
    summary, _ = demo
    runs_dir = summary["runs"][0].rsplit("/", 1)[0]
    rows = compare_models(runs_dir, labels=summary["labels"], options=InferenceOptions(device="cpu", peak_threshold=1.5))
    assert rows[0]["predicted_instances"] == 0
    assert rows[0]["metrics"]["oks"]["mAP"] == 0.0
