"""Runs shared by the backend and export tests: exports cost seconds each, so they are made once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def exported_single_run(single_instance_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the single-instance run with its float32 ONNX export beside it.

    A copy, so the shared run stays without an export for the tests that start from none; tests that
    change the export copy this folder again.
    """
    from napari_posetrack.core.inference.export import export_run

    run = tmp_path_factory.mktemp("exported") / single_instance_run.name
    shutil.copytree(single_instance_run, run)
    export_run(run)
    return run


@pytest.fixture(scope="session")
def bottomup_run(small_sample: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bottom-up run (confidence maps at stride 2, PAFs at stride 4) trained for two steps, exported."""
    import numpy as np

    from napari_posetrack.core.config import baseline_profile
    from napari_posetrack.core.inference.export import export_run
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.training.run import train

    labels = load_labels(small_sample["labels"])
    labels = labels.subset(np.flatnonzero(labels.instances.frame < 12))
    cfg = baseline_profile("bottomup")
    cfg.model.unet.filters, cfg.model.unet.max_stride = 8, 8
    cfg.model.heads.confmaps.output_stride, cfg.model.heads.pafs.output_stride = 2, 4
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = cfg.optimization.min_batches_per_epoch = 2
    cfg.outputs.runs_folder = str(tmp_path_factory.mktemp("bottomup_runs"))
    run = train(cfg, labels, device="cpu")
    export_run(run)
    return run


@pytest.fixture
def copy_run(tmp_path: Path):
    """``copy_run(run)``: a private copy of a run folder (with whatever export it holds) that a test may change."""

    def copy(run: Path) -> Path:
        out = tmp_path / run.name
        shutil.copytree(run, out)
        return out

    return copy
