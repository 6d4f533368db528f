"""Which trained runs make a predictor: list a runs folder, or resolve one run folder / config file.

The GUI lists the predictors of a runs folder newest first; a user may also point at one run folder
or its ``training_config.yaml``. A top-down model needs two runs: given either half, the other half is
found beside it the way :func:`~napari_posetrack.core.models.runs.find_model_sets` pairs them.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_posetrack.core.errors import ConfigError, MissingFileError
from napari_posetrack.core.models.runs import CONFIG_FILE, ModelSet, find_model_sets, pipeline_of


def _newest_time(model: ModelSet) -> float:
    return max((r / CONFIG_FILE).stat().st_mtime for r in model.runs)


def models_in_folder(runs_dir: str | os.PathLike[str]) -> list[ModelSet]:
    """The predictors in a runs folder, most recently trained first.

    Raises
    ------
    MissingFileError
        The folder does not exist.
    """
    sets = find_model_sets(Path(runs_dir).expanduser())  # "~/project/models" as typed in the widget
    # folder names start with a prefix the user chose, so they do not sort by time: use the files
    return sorted(sets, key=lambda m: (_newest_time(m), m.name), reverse=True)


def run_folder_of(path: str | os.PathLike[str]) -> Path:
    """A run folder from a run folder or a file inside it (its ``training_config.yaml``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingFileError(p, "model not found")
    run = p.parent if p.is_file() else p
    if not (run / CONFIG_FILE).is_file():
        raise MissingFileError(run / CONFIG_FILE, "not a trained run folder (no training_config.yaml)")
    return run


def runs_for_path(path: str | os.PathLike[str]) -> list[Path]:
    """The run folders of the predictor a run folder or config file belongs to.

    A single-instance or bottom-up run stands alone; a centroid or centered-instance run is paired
    with its partner in the same runs folder.

    Raises
    ------
    MissingFileError
        The path is not a run folder or a file in one.
    ConfigError
        A top-down half has no partner beside it.
    """
    run = run_folder_of(path)
    pipeline = pipeline_of(run)
    if pipeline in ("single_instance", "bottomup"):
        return [run]
    for model in find_model_sets(run.parent):
        if any(r.resolve() == run.resolve() for r in model.runs):
            return list(model.runs)
    partner = "centered_instance" if pipeline == "centroid" else "centroid"
    raise ConfigError(
        f"{run}: a {pipeline} run predicts poses only with a {partner} run trained on the same labels, "
        f"and none is in {run.parent}"
    )
