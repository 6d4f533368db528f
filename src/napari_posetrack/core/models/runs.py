"""Trained run folders: their layout, their checkpoints, and loading a trained model.

Training writes run folders and inference, model comparison and export read them; this module is
what they share, below all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.labels import Skeleton

CONFIG_FILE = "training_config.yaml"
SKELETON_FILE = "skeleton.json"
LABELS_SOURCE_FILE = "labels_source.txt"
SPLIT_FILE = "split.json"


@dataclass
class ModelSet:
    """The run folders that make one predictor: one run, or ``[centroid, centered_instance]``."""

    name: str
    pipeline: str
    runs: list[Path]


def pipeline_of(run: Path) -> str:
    """The ``model.pipeline`` a run folder was trained for (read without validating the config)."""
    import yaml

    doc = yaml.safe_load((run / CONFIG_FILE).read_text()) or {}
    return str(doc.get("model", {}).get("pipeline", "unknown"))


def labels_source_of(run: Path) -> str:
    """The labels file a run was trained on (its ``labels_source.txt``), or ``""``."""
    f = run / LABELS_SOURCE_FILE
    return f.read_text().strip() if f.is_file() else ""


def find_model_sets(runs_dir: str | os.PathLike[str]) -> list[ModelSet]:
    """The predictors in a runs folder, in name order.

    A centered-instance run is paired with the centroid run trained on the same labels whose
    folder name (which starts with the training time) is closest to its own; a centroid run
    without a partner is skipped, since it finds animals but not their poses.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise MissingFileError(root, "runs folder not found")
    runs = sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file())
    kinds = {r: pipeline_of(r) for r in runs}
    centroids = [r for r in runs if kinds[r] == "centroid"]
    sets: list[ModelSet] = []
    for r in runs:
        if kinds[r] in ("single_instance", "bottomup"):
            sets.append(ModelSet(r.name, kinds[r], [r]))
        elif kinds[r] == "centered_instance":
            partners = [c for c in centroids if labels_source_of(c) == labels_source_of(r)]
            if not partners:
                continue
            # run names sort by training time; the nearest centroid run is the partner
            names = sorted([c.name for c in partners] + [r.name])
            i = names.index(r.name)
            near = [names[j] for j in (i - 1, i + 1) if 0 <= j < len(names)]
            partner = next(c for c in partners if c.name == near[0])
            sets.append(ModelSet(f"{partner.name} + {r.name}", "topdown", [partner, r]))
    return sets


def load_checkpoint_file(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint; a missing or unreadable file raises an error naming it."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "checkpoint not found")
    try:
        # our checkpoints hold numpy RNG state and plain containers, not only tensors
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged archive
        raise FileFormatError(path, f"not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise FileFormatError(path, "not a napari-posetrack checkpoint (no model weights)")
    return state


def require_run_file(path: Path) -> Path:
    """``path`` if it is a file, else :class:`MissingFileError` saying the run folder is incomplete."""
    if not path.is_file():
        raise MissingFileError(path, "run folder is incomplete: this file is missing")
    return path



def load_run(
    run_dir: str | os.PathLike[str], *, checkpoint: str = "best", device: str = "cpu"
) -> tuple[TrainingConfig, Skeleton, Any]:
    """Load a trained run for inference: ``(config, skeleton, model)`` with the model in eval mode.

    Parameters
    ----------
    run_dir
        A run folder written by :func:`~napari_posetrack.core.training.run.train`.
    checkpoint
        ``"best"`` or ``"last"`` (``"best"`` falls back to ``last.ckpt`` when only that was kept).
    device
        Where the model's weights go.

    Raises
    ------
    MissingFileError
        The folder lacks ``training_config.yaml``, ``skeleton.json`` or the checkpoint (named).
    """
    from napari_posetrack.core.io.skeleton_json import load_skeleton_json
    from napari_posetrack.core.models import build_model
    
    run_path = Path(run_dir)
    if not run_path.is_dir():
        raise MissingFileError(run_path, "run folder not found")
    config = TrainingConfig.from_file(require_run_file(run_path / CONFIG_FILE))
    skeleton = load_skeleton_json(require_run_file(run_path / SKELETON_FILE))
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', not {checkpoint!r}")
    ckpt = run_path / f"{checkpoint}.ckpt"
    if checkpoint == "best" and not ckpt.is_file() and (run_path / "last.ckpt").is_file():
        ckpt = run_path / "last.ckpt"
    state = load_checkpoint_file(require_run_file(ckpt), map_location=device)
    channels = {"grayscale": 1, "rgb": 3}.get(config.data.channels)
    model = build_model(config, skeleton, in_channels=channels)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return config, skeleton, model
