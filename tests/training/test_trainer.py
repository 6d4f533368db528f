"""The training loop and run folders, on the real fly clip at tiny sizes (CPU, seconds per run)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_posetrack.core.config import TrainingConfig, baseline_profile, topdown_configs
from napari_posetrack.core.errors import ConfigError, FileFormatError, MissingFileError
from napari_posetrack.core.training.run import load_run, resume, train, train_topdown
from napari_posetrack.core.training.trainer import (
    TrainingOutOfMemoryError,
    hard_keypoint_loss,
    load_checkpoint_file,
    read_metrics,
)


@pytest.fixture(scope="module")
def two_node(flies):
    from napari_posetrack.core.io.slp import load_slp

    labels = load_slp(flies / "clip.2node.slp")
    return labels.subset(labels.rows()[labels.instances.frame < 24])


@pytest.fixture(scope="module")
def one_fly(two_node):
    """The female only: a real single-instance dataset."""
    return two_node.subset(two_node.rows(track=0))


@pytest.fixture(scope="module")
def thirteen_node(flies):
    from napari_posetrack.core.io.slp import load_slp

    labels = load_slp(flies / "clip.slp")
    return labels.subset(labels.rows()[labels.instances.frame < 8])


def tiny_config(
    pipeline: str, tmp_path, *, scaling: float = 0.125, epochs: int = 2, batches: int = 4
) -> TrainingConfig:
    cfg = baseline_profile(pipeline)
    cfg.data.input_scaling = scaling
    cfg.data.validation_fraction = 0.25
    cfg.model.unet.filters = 8
    cfg.model.unet.max_stride = 16
    cfg.model.heads.pafs.output_stride = 4
    cfg.optimization.batch_size = 4
    cfg.optimization.epochs = epochs
    cfg.optimization.batches_per_epoch = batches
    cfg.optimization.initial_learning_rate = 1e-3
    cfg.optimization.augmentation.rotation_probability = 0.0
    cfg.outputs.runs_folder = str(tmp_path / "runs")
    return cfg


def batch_losses(run_dir):
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "batch"]


@pytest.fixture(autouse=True)
def _few_threads():
    # the CI machine has 2 cores shared by everything: one thread avoids oversubscription
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["single_instance", "centroid", "centered_instance", "bottomup"])
def test_each_pipeline_trains_and_its_loss_falls(pipeline, two_node, one_fly, tmp_path):
    cfg = tiny_config(pipeline, tmp_path, epochs=3, batches=4)
    run_dir = train(cfg, one_fly if pipeline == "single_instance" else two_node)
    losses = batch_losses(run_dir)
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])
    for name in (
        "training_config.yaml",
        "skeleton.json",
        "split.json",
        "best.ckpt",
        "last.ckpt",
        "metrics.jsonl",
        "labels_source.txt",
    ):
        assert (run_dir / name).is_file(), name
    assert run_dir.name.endswith(f".{pipeline}") and run_dir.parent == tmp_path / "runs"
    saved = TrainingConfig.from_file(run_dir / "training_config.yaml")
    assert saved.data.channels == "grayscale"  # "auto" resolved from the grayscale fly video
    if pipeline == "centered_instance":
        assert saved.data.crop_size is not None and saved.data.crop_size % 16 == 0
    config, skeleton, model = load_run(run_dir)
    assert skeleton.nodes == ["head", "thorax"]
    assert not model.training
    with torch.no_grad():
        out = model(torch.zeros(1, 1, 128, 128))
    assert set(out) == set(config.head_configs)


def test_metrics_jsonl_records(one_fly, tmp_path):
    cfg = tiny_config("single_instance", tmp_path, epochs=2, batches=3)
    seen = []
    run_dir = train(cfg, one_fly, progress=seen.append)
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["event"] for r in records] == ["start"] + ["batch"] * 3 + ["epoch"] + ["batch"] * 3 + [
        "epoch",
        "end",
    ]
    assert len(seen) == len(records)  # the progress callback sees every record as it is written
    batches = [r for r in records if r["event"] == "batch"]
    assert [r["step"] for r in batches] == [1, 2, 3, 4, 5, 6]
    assert all(
        r["loss"] > 0 and r["lr"] == pytest.approx(1e-3) and "confmaps" in r["losses"] for r in batches
    )
    epochs = [r for r in records if r["event"] == "epoch"]
    for r in epochs:
        assert r["train_loss"] > 0 and r["val_loss"] > 0
        assert 0 <= r["val_mean_pixel_error"] < 1500  # pixels of the 1024 x 1024 video
        assert r["elapsed"] > 0 and r["lr"] > 0
    assert epochs[0]["elapsed"] <= epochs[1]["elapsed"]
    assert records[-1]["reason"] == "completed"
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["train"]) == 18 and len(split["validation"]) == 6
    assert (run_dir / "labels_source.txt").read_text().strip()


def test_validation_pixel_error_drops_when_overfitting_one_animal(one_fly, tmp_path):
    cfg = tiny_config("single_instance", tmp_path, epochs=6, batches=4)
    cfg.data.validation_fraction = 0.0  # validate on the training frames
    run_dir = train(cfg, one_fly)
    errors = [
        r["val_mean_pixel_error"] for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "epoch"
    ]
    assert errors[-1] < errors[0]


def test_resume_after_a_crash_mid_epoch_repeats_only_that_epoch(one_fly, tmp_path):
    cfg = tiny_config("single_instance", tmp_path, epochs=3, batches=4)
    reference = train(cfg, one_fly, run_dir=tmp_path / "reference")

    class Crash(Exception):
        pass

    def crash_in_second_epoch(record):
        if record["event"] == "batch" and record["step"] == 6:
            raise Crash

    run_dir = tmp_path / "interrupted"
    with pytest.raises(Crash):
        train(cfg, one_fly, run_dir=run_dir, progress=crash_in_second_epoch)
    state = load_checkpoint_file(run_dir / "last.ckpt")
    assert (state["epoch"], state["batch"], state["global_step"]) == (1, 0, 4)  # end of epoch 0
    assert read_metrics(run_dir / "metrics.jsonl")[-1]["reason"] == "error: Crash"

    resume(run_dir, one_fly)
    records = read_metrics(run_dir / "metrics.jsonl")
    starts = [r for r in records if r["event"] == "start"]
    assert starts[-1]["resumed"] and starts[-1]["step"] == 4
    after = [r["loss"] for r in records[records.index(starts[-1]) :] if r["event"] == "batch"]
    # the resumed run replays epochs 1 and 2 exactly as the uninterrupted run did (same order, same RNG)
    np.testing.assert_allclose(after, batch_losses(reference)[4:], rtol=1e-5)
    final = load_checkpoint_file(run_dir / "last.ckpt")
    assert final["epoch"] == 3 and final["global_step"] == 12


def test_cancel_flag_stops_cleanly_and_resume_continues_mid_epoch(one_fly, tmp_path):
    cfg = tiny_config("single_instance", tmp_path, epochs=2, batches=4)
    reference = train(cfg, one_fly, run_dir=tmp_path / "reference")
    run_dir = tmp_path / "cancelled"

    def press_stop(record):
        if record["event"] == "batch" and record["step"] == 6:
            (run_dir / "CANCEL").write_text("")

    train(cfg, one_fly, run_dir=run_dir, progress=press_stop)
    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[-1]["event"] == "end" and records[-1]["reason"] == "cancelled"
    assert records[-1]["step"] == 6
    state = load_checkpoint_file(run_dir / "last.ckpt")
    assert (state["epoch"], state["batch"], state["global_step"]) == (1, 2, 6)
    assert (run_dir / "best.ckpt").is_file()

    resume(run_dir, one_fly)  # removes the stale flag
    assert not (run_dir / "CANCEL").exists()
    resumed = [
        r["loss"] for r in read_metrics(run_dir / "metrics.jsonl")[len(records) :] if r["event"] == "batch"
    ]
    assert len(resumed) == 2  # only the two batches of epoch 1 not trained yet
    np.testing.assert_allclose(resumed, batch_losses(reference)[6:], rtol=1e-5)


def test_max_iterations_stop_mid_epoch_with_validation(one_fly, tmp_path):
    cfg = tiny_config("single_instance", tmp_path, epochs=5, batches=4)
    cfg.optimization.max_iterations = 6
    run_dir = train(cfg, one_fly)
    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[-1]["reason"] == "max_iterations"
    assert len([r for r in records if r["event"] == "batch"]) == 6
    assert [r["partial"] for r in records if r["event"] == "epoch"] == [False, True]


@pytest.mark.parametrize("kind, milestones", [("one_cycle", []), ("multi_step", [1]), ("none", [])])
def test_schedules_change_the_learning_rate(kind, milestones, two_node, tmp_path):
    cfg = tiny_config("centroid", tmp_path, epochs=2, batches=3)
    cfg.optimization.schedule.kind = kind
    cfg.optimization.schedule.milestones = milestones
    cfg.optimization.gradient_clip_norm = 1.0
    cfg.optimization.optimizer = "adamw"
    run_dir = train(cfg, two_node)
    lrs = [r["lr"] for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "batch"]
    if kind == "one_cycle":
        assert lrs[0] < max(lrs) and lrs[-1] < max(lrs)
    elif kind == "multi_step":
        assert lrs[:3] == [pytest.approx(1e-3)] * 3 and lrs[3] == pytest.approx(
            1e-3 * cfg.optimization.schedule.factor
        )
    else:
        assert lrs == [pytest.approx(1e-3)] * 6


def test_early_stopping_on_a_plateau(two_node, tmp_path):
    cfg = tiny_config("centroid", tmp_path, epochs=20, batches=1)
    cfg.optimization.initial_learning_rate = 1e-9  # nothing is learnt: the validation loss stalls
    cfg.optimization.early_stopping.patience = 2
    cfg.optimization.early_stopping.min_delta = 1e-3
    run_dir = train(cfg, two_node)
    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[-1]["reason"] == "early_stopping"
    assert len([r for r in records if r["event"] == "epoch"]) == 3


def test_out_of_memory_keeps_the_last_checkpoint_and_says_what_to_change(two_node, tmp_path, monkeypatch):
    from napari_posetrack.core.models import model as model_module

    cfg = tiny_config("single_instance", tmp_path, epochs=3, batches=2)
    real_build = model_module.build_model

    def build_model_that_runs_out(config, skeleton, in_channels=None):
        model = real_build(config, skeleton, in_channels)
        forward = model.forward
        calls = {"n": 0}

        def forward_with_oom(images):
            calls["n"] += 1
            if model.training and calls["n"] > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(images)

        model.forward = forward_with_oom
        return model

    import napari_posetrack.core.models as models_package

    monkeypatch.setattr(models_package, "build_model", build_model_that_runs_out)
    run_dir = tmp_path / "oom"
    with pytest.raises(TrainingOutOfMemoryError, match="smaller batch size") as info:
        train(cfg, two_node, run_dir=run_dir)
    assert "input scaling" in str(info.value)
    state = load_checkpoint_file(run_dir / "last.ckpt")
    assert state["global_step"] == 2  # the batches before the failing one
    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[-2]["event"] == "error" and records[-2]["kind"] == "out_of_memory"
    assert records[-1]["reason"] == "out_of_memory"


def test_hard_keypoint_mining_weights_the_worst_parts():
    losses = torch.tensor([0.01, 0.01, 0.05, 0.2])
    # 0.05 and 0.2 are >= 2x the best: both hard, mean 0.125, times the scale
    assert float(hard_keypoint_loss(losses, 2.0, 1, None, 5.0)) == pytest.approx(0.625)
    assert float(hard_keypoint_loss(losses, 2.0, 1, 1, 5.0)) == pytest.approx(1.0)
    assert float(hard_keypoint_loss(losses, 100.0, 2, None, 1.0)) == pytest.approx(0.125)


def test_hard_keypoint_mining_in_training(thirteen_node, tmp_path):
    cfg = tiny_config("single_instance", tmp_path, epochs=1, batches=2)
    cfg.optimization.hard_keypoint_mining.enabled = True
    run_dir = train(cfg, thirteen_node)
    assert len(batch_losses(run_dir)) == 2


def test_unreadable_video_fails_before_training_naming_the_file(two_node, tmp_path):
    labels = two_node.copy()
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00" * 4096)
    labels.replace_video(0, str(bad))
    with pytest.raises(FileFormatError, match="clip.mp4"):
        train(tiny_config("centroid", tmp_path), labels)
    labels.replace_video(0, str(tmp_path / "moved_away.mp4"))
    with pytest.raises(MissingFileError, match="moved_away.mp4"):
        train(tiny_config("centroid", tmp_path), labels)


def test_labels_without_user_instances_are_refused(two_node, tmp_path):
    labels = two_node.copy()
    labels.instances.kind[:] = 1  # all predictions
    with pytest.raises(ConfigError, match="no user-labelled frames"):
        train(tiny_config("centroid", tmp_path), labels)


def test_load_run_names_the_missing_file(two_node, tmp_path):
    run_dir = train(tiny_config("centroid", tmp_path, epochs=1, batches=1), two_node)
    (run_dir / "skeleton.json").unlink()
    with pytest.raises(MissingFileError, match="skeleton.json"):
        load_run(run_dir)
    with pytest.raises(MissingFileError, match="nowhere"):
        load_run(tmp_path / "nowhere")


def test_train_topdown_writes_two_runs(two_node, tmp_path):
    cfg = tiny_config("topdown", tmp_path, epochs=1, batches=1)
    cfg.data.centroid_input_scaling = 0.0625
    centroid_dir, centered_dir = train_topdown(cfg, two_node)
    assert centroid_dir.name.startswith("centroid.") and centroid_dir.name.endswith(".centroid")
    assert centered_dir.name.endswith(".centered_instance")
    centroid = TrainingConfig.from_file(centroid_dir / "training_config.yaml")
    centered = TrainingConfig.from_file(centered_dir / "training_config.yaml")
    assert (centroid.model.pipeline, centroid.data.input_scaling) == ("centroid", 0.0625)
    assert (centered.model.pipeline, centered.data.input_scaling) == ("centered_instance", 0.125)
    assert centered.data.crop_size % centered.model.unet.max_stride == 0


@pytest.mark.slow
def test_topdown_overfits_eight_frames(thirteen_node, tmp_path):
    """A centroid model and a centered-instance model (the two halves of ``train_topdown``)."""
    cfg = tiny_config("topdown", tmp_path, scaling=0.25, epochs=100, batches=4)
    cfg.data.centroid_input_scaling = 0.125
    cfg.data.validation_fraction = 0.0  # measure the training error
    cfg.data.anchor_part = "thorax"
    cfg.model.heads.confmaps.sigma = 5.0
    cfg.model.heads.centroids.sigma = 5.0
    cfg.optimization.initial_learning_rate = 5e-3
    cfg.optimization.early_stopping.enabled = False
    cfg.optimization.schedule.kind = "none"
    cfg.optimization.max_training_hours = 150 / 3600  # guards a stuck run; the epochs decide
    centroid_cfg, centered_cfg = topdown_configs(cfg)
    # the centered-instance model gets more filters: it learns 13 parts on small crops
    centered_cfg.model.unet.filters = 16
    # epochs that reach the thresholds with margin (measured 2026-12-07 on one thread: centroid error
    # 14 px at epoch 12 and 7.7 px from epoch 27; centered instance 8 px at epoch 33, 5.4 px at 42);
    # the time limit only guards slow CI machines
    centroid_cfg.optimization.epochs = 30
    centered_cfg.optimization.epochs = 42
    centroid_dir = train(centroid_cfg, thirteen_node)
    centered_dir = train(centered_cfg, thirteen_node)
    assert centroid_dir.name.endswith(".centroid") and centered_dir.name.endswith(".centered_instance")
    for run_dir in (centroid_dir, centered_dir):
        epochs = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "epoch"]
        assert epochs[-1]["val_loss"] < 0.5 * epochs[0]["val_loss"]
    assert TrainingConfig.from_file(centroid_dir / "training_config.yaml").data.input_scaling == 0.125
    # errors in pixels of the 1024 x 1024 video: centroid on a 128 px frame, 13 parts in 0.25-scale crops
    centroid_err = [r for r in read_metrics(centroid_dir / "metrics.jsonl") if r["event"] == "epoch"][-1]
    centered_err = [r for r in read_metrics(centered_dir / "metrics.jsonl") if r["event"] == "epoch"][-1]
    assert centroid_err["val_mean_pixel_error"] < 20
    assert centered_err["val_mean_pixel_error"] < 25


@pytest.mark.slow
def test_bottomup_overfits_eight_frames(thirteen_node, tmp_path):
    # 45 epochs: error 24.6 px at epoch 27, 10.5 px at 45 (2026-12-07, one thread; the bound is 25)
    cfg = tiny_config("bottomup", tmp_path, scaling=0.125, epochs=45, batches=4)
    cfg.data.validation_fraction = 0.0
    cfg.model.heads.confmaps.output_stride = 2
    cfg.model.heads.confmaps.sigma = 2.5
    cfg.model.heads.pafs.output_stride = 4
    cfg.optimization.initial_learning_rate = 5e-3
    cfg.optimization.early_stopping.enabled = False
    cfg.optimization.schedule.kind = "none"
    cfg.optimization.max_training_hours = 150 / 3600  # guards a stuck run; the epochs decide
    run_dir = train(cfg, thirteen_node)
    epochs = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "epoch"]
    assert epochs[-1]["val_loss"] < 0.2 * epochs[0]["val_loss"]
    assert epochs[-1]["val_mean_pixel_error"] < 25  # 13 parts, 1024 px video seen at 128 px


def test_cli_trains_from_a_config_file_with_overrides(two_node, flies, tmp_path):
    from napari_posetrack.core.training.cli import main

    cfg = tiny_config("centroid", tmp_path, epochs=1, batches=2)
    cfg_path = tmp_path / "config.yaml"
    cfg.to_yaml(cfg_path)
    labels_path = tmp_path / "few.slp"
    from napari_posetrack.core.io.slp import save_slp

    labels = two_node.copy()
    labels.replace_video(0, str(flies / "clip.mp4"))
    save_slp(labels, labels_path)
    code = main(
        [
            "train",
            str(cfg_path),
            str(labels_path),
            "--set",
            "optimization.batches_per_epoch=3",
            "--set",
            "outputs.run_name=cli_run",
            "--quiet",
        ]
    )
    assert code == 0
    run_dir = tmp_path / "runs" / "cli_run"
    assert len(batch_losses(run_dir)) == 3
    assert (run_dir / "labels_source.txt").read_text().strip() == str(labels_path.resolve())
    # errors are one line and exit code 1
    assert main(["train", str(cfg_path), str(labels_path), "--set", "optimization.batch_size=zero"]) == 1
    assert main(["train", str(cfg_path), str(tmp_path / "missing.slp")]) == 1


@pytest.mark.slow
def test_cli_profile_and_resume_in_a_subprocess(two_node, flies, tmp_path):
    from napari_posetrack.core.io.slp import save_slp

    labels_path = tmp_path / "few.slp"
    labels = two_node.copy()
    labels.replace_video(0, str(flies / "clip.mp4"))
    save_slp(labels, labels_path)
    base = [sys.executable, "-m", "napari_posetrack.core.training.cli", "train"]
    sets = [
        "--set",
        "data.input_scaling=0.125",
        "--set",
        "model.unet.filters=4",
        "--set",
        "optimization.epochs=1",
        "--set",
        "optimization.batches_per_epoch=2",
        "--runs-folder",
        str(tmp_path / "runs"),
    ]
    out = subprocess.run(
        base + ["--profile", "single", str(labels_path)] + sets, check=False, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "runs" / out.stdout.strip().splitlines()[-1].split("/")[-1]
    assert run_dir.is_dir() and "epoch 0" in out.stderr
    # resuming a finished run trains nothing more and ends normally
    again = subprocess.run(base + ["--resume", str(run_dir)], check=False, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert read_metrics(run_dir / "metrics.jsonl")[-1]["reason"] == "completed"


def test_centered_instance_batches_are_centred_crops_under_augmentation(two_node, tmp_path):
    from napari_posetrack.core.training import data as tdata
    from napari_posetrack.core.training.pipelines import make_pipeline
    from napari_posetrack.core.training.run import resolve_automatic

    cfg = tiny_config("centered_instance", tmp_path, scaling=0.25)
    cfg.data.anchor_part = "thorax"
    aug = cfg.optimization.augmentation
    aug.rotation_probability, aug.rotation_min_angle, aug.rotation_max_angle = 1.0, -180.0, 180.0
    aug.scale_probability = aug.translate_probability = 1.0
    frames = tdata.labelled_frames(two_node)
    cache = tdata.build_frame_cache(two_node, frames, input_scaling=0.25, stride=16)
    cfg = resolve_automatic(cfg, frames, two_node.skeleton, 1)
    pipe = make_pipeline(cfg, two_node.skeleton)
    ds = tdata.FrameBatchDataset(cache, np.arange(len(cache)), per_instance=True)
    batch = tdata.to_device(ds[np.arange(8)], "cpu")
    gen = torch.Generator().manual_seed(0)
    crop = cfg.data.crop_size
    for training in (False, True):
        images, targets, points = pipe.prepare(batch, training=training, generator=gen if training else None)
        assert images.shape == (8, 1, crop, crop)
        thorax = points[:, 0, 1]
        # the anchor sits at the crop centre (to the pixel), whatever the augmentation did
        assert torch.all((thorax - crop // 2).abs() <= 0.5 + 1e-4)
        assert targets["confmaps"].shape == (8, 2, crop // 2, crop // 2)
        assert float(targets["confmaps"].amax()) > 0.9
        assert float(images.std()) > 0.01  # real pixels, not padding


def test_large_projects_train_from_a_memmap_that_is_removed_afterwards(one_fly, tmp_path):
    seen = []

    def watch(record):
        if record["event"] == "batch":
            seen.append((tmp_path / "run" / "frames.npy").is_file())

    run_dir = train(tiny_config("single_instance", tmp_path, epochs=1, batches=2), one_fly,
                    run_dir=tmp_path / "run", memory_limit=1000, workers=1, progress=watch)
    assert seen == [True, True]  # the frames were served from the on-disk cache, by a worker process
    assert not (run_dir / "frames.npy").exists()
    assert len(batch_losses(run_dir)) == 2


def test_initialisation_from_a_previous_run_copies_what_fits(two_node, thirteen_node, tmp_path):
    """A 2-node centroid run starts a 13-node run: same backbone, so its weights carry over."""
    import torch

    from napari_posetrack.core.models import build_model
    from napari_posetrack.core.training.run import initialise_from

    first = train(tiny_config("centroid", tmp_path / "a", epochs=1, batches=1), two_node)
    cfg = tiny_config("centroid", tmp_path / "b", epochs=1, batches=1)
    cfg.optimization.initialization = str(first)  # a run folder, not only a checkpoint file
    second = train(cfg, thirteen_node)
    _, _, before = load_run(first)
    _, _, fresh = load_run(second, checkpoint="last")
    name = next(k for k in before.state_dict() if k.startswith("backbone"))
    # one step of training later the weights moved, but they started from the first run's
    assert torch.allclose(before.state_dict()[name], fresh.state_dict()[name], atol=0.05)

    bottomup = build_model(tiny_config("bottomup", tmp_path), thirteen_node.skeleton, in_channels=1)
    copied = initialise_from(bottomup, first)
    assert copied and all(k.startswith("backbone") for k in copied)  # heads differ and stay fresh
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="best.ckpt"):
        initialise_from(bottomup, tmp_path / "empty")
