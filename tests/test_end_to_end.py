"""The issue-4 loop through the real CLI on real data: train -> predict unseen frames -> track -> evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_posetrack.core.cli import main


@pytest.mark.slow
def test_train_predict_track_evaluate_through_the_cli(flies, tmp_path, capsys):
    from napari_posetrack.core.io import load_labels, save_labels

    truth = load_labels(flies / "clip.2node.slp")
    t = truth.instances
    train_set = truth.subset(np.flatnonzero(t.frame < 12))
    save_labels(train_set, tmp_path / "train.slp")
    unseen = range(1400, 1408)
    save_labels(truth.subset(np.flatnonzero(np.isin(t.frame, list(unseen)))), tmp_path / "unseen_truth.slp")

    runs = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                "--profile",
                "bottomup",
                str(tmp_path / "train.slp"),
                "--runs-folder",
                str(runs),
                "--quiet",
                "--device",
                "cpu",
                "--set",
                "data.input_scaling=0.25",
                "--set",
                "model.unet.filters=8",
                "--set",
                "optimization.epochs=1",
                "--set",
                "optimization.batches_per_epoch=2",
                "--set",
                "optimization.min_batches_per_epoch=1",
            ]
        )
        == 0
    )
    (run,) = runs.iterdir()
    assert {"best.ckpt", "training_config.yaml", "skeleton.json", "metrics.jsonl"} <= {
        p.name for p in run.iterdir()
    }

    pred = tmp_path / "pred.slp"
    assert (
        main(
            [
                "predict",
                str(flies / "clip.mp4"),
                "-m",
                str(run),
                "-o",
                str(pred),
                "--frames",
                "1400-1407",
                "--peak-threshold",
                "0",
                "--max-instances",
                "2",
                "--device",
                "cpu",
                "--track",
                "--max-tracks",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    predicted = load_labels(pred)
    assert set(predicted.instances.frame.tolist()) <= set(unseen)
    assert len(predicted.tracks) <= 2

    report = tmp_path / "eval.json"
    assert main(["evaluate", str(tmp_path / "unseen_truth.slp"), str(pred), "--json", str(report)]) == 0
    metrics = json.loads(report.read_text())
    assert {"distance", "pck", "oks"} <= set(metrics["poses"])
    printed = capsys.readouterr().out
    assert "PCK" in printed or "pck" in printed


def test_predict_reports_a_missing_model_folder_in_one_line(flies, tmp_path, capsys):
    status = main(["predict", str(flies / "clip.mp4"), "-m", str(tmp_path / "nope"), "-o", str(tmp_path / "o.slp")])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]  # the model folder is checked before anything is decoded
