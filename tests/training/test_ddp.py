"""Multi-process training with torchrun + DistributedDataParallel on CPU (gloo, 2 processes).

Two ranks with batch size 2 see, batch for batch, the same samples as one process with batch size 4
(rank r takes every second sample of the epoch's permutation), and DDP averages their gradients: the
weights after training match the single-process run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from napari_posetrack.core.config import baseline_profile
from napari_posetrack.core.training.trainer import load_checkpoint_file, read_metrics


def _config(tmp_path, batch_size):
    cfg = baseline_profile("single_instance")
    cfg.data.input_scaling = 0.125
    cfg.data.validation_fraction = 0.25
    cfg.model.unet.filters = 4
    cfg.model.unet.max_stride = 16
    cfg.optimization.batch_size = batch_size
    cfg.optimization.epochs = 2
    cfg.optimization.batches_per_epoch = 2
    cfg.optimization.initial_learning_rate = 1e-3
    cfg.optimization.augmentation.rotation_probability = 0.0
    cfg.outputs.runs_folder = str(tmp_path / "runs")
    return cfg


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(flies, tmp_path):
    from napari_posetrack.core.io.slp import load_slp, save_slp

    labels = load_slp(flies / "clip.2node.slp")
    labels = labels.subset(labels.rows(track=0)[labels.instances.frame[labels.rows(track=0)] < 24])
    labels.replace_video(0, str(flies / "clip.mp4"))
    labels_path = tmp_path / "one_fly.slp"
    save_slp(labels, labels_path)

    ddp_cfg = _config(tmp_path, batch_size=2)
    ddp_cfg.outputs.run_name = "ddp"
    ddp_cfg.to_yaml(tmp_path / "ddp.yaml")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "napari_posetrack.core.training.cli",
        "train",
        str(tmp_path / "ddp.yaml"),
        str(labels_path),
        "--device",
        "cpu",
        "--quiet",
    ]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "runs" / "ddp"
    assert out.stdout.strip().splitlines() == [str(run_dir)]  # rank 0 alone prints and writes

    records = read_metrics(run_dir / "metrics.jsonl")
    assert records[0]["world_size"] == 2
    assert len([r for r in records if r["event"] == "start"]) == 1
    assert len([r for r in records if r["event"] == "batch"]) == 4
    assert records[-1]["reason"] == "completed"

    from napari_posetrack.core.training.run import train

    torch.set_num_threads(1)
    single_cfg = _config(tmp_path, batch_size=4)
    single_cfg.outputs.run_name = "single"
    single_dir = train(single_cfg, labels_path, device="cpu")
    ddp_state = load_checkpoint_file(run_dir / "last.ckpt")["model"]
    single_state = load_checkpoint_file(single_dir / "last.ckpt")["model"]
    for key, value in single_state.items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-4, atol=1e-5)
    single_losses = [r["loss"] for r in read_metrics(single_dir / "metrics.jsonl") if r["event"] == "batch"]
    ddp_losses = [r["loss"] for r in records if r["event"] == "batch"]
    assert ddp_losses == pytest.approx(single_losses, rel=1e-4)
