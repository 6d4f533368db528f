"""Model comparison over a runs folder: every trained model scored on its own validation frames.

This is the "model comparison" users of SLEAP do in a notebook: for each run (and each top-down
pair of a centroid and a centered-instance run), predict the validation frames recorded in its
``split.json`` and score them against the user labels with :func:`evaluate_poses`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.config.model import describe_architecture
from napari_posetrack.core.errors import MissingFileError, PoseTrackError
from napari_posetrack.core.labels import PREDICTED, USER, Labels
from napari_posetrack.core.models.runs import CONFIG_FILE, find_model_sets, labels_source_of


def validation_frames(run: Path) -> np.ndarray:
    """The ``(video, frame)`` validation pairs recorded in a run's ``split.json``."""
    path = run / "split.json"
    if not path.is_file():
        raise MissingFileError(path, "run folder has no split.json")
    doc = json.loads(path.read_text())
    return np.asarray(doc.get("validation", []), dtype=np.int64).reshape(-1, 2)


def _best_val_loss(run: Path) -> float | None:
    f = run / "metrics.jsonl"
    if not f.is_file():
        return None
    best = None
    for line in f.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "epoch" and rec.get("val_loss") is not None:
            best = rec["val_loss"] if best is None else min(best, rec["val_loss"])
    return best


def compare_models(
    runs_dir: str | os.PathLike[str],
    labels: Labels | str | os.PathLike[str] | None = None,
    options: Any = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every predictor in ``runs_dir`` on its validation frames.

    Parameters
    ----------
    labels
        The labelled project; by default each run's ``labels_source.txt``.
    options
        :class:`~napari_posetrack.core.inference.pipelines.InferenceOptions` for prediction.

    Returns
    -------
    One dict per predictor: ``model``, ``pipeline``, ``architecture`` (backbone, top level, neck, per
    run), ``validation_frames``, ``best_val_loss`` and the full :func:`evaluate_poses` result under
    ``metrics``.
    """
    from napari_posetrack.core.evaluation import evaluate_poses
    from napari_posetrack.core.inference.api import predict_labels
    from napari_posetrack.core.inference.pipelines import load_pipeline
    from napari_posetrack.core.io import load_labels

    cache: dict[str, Labels] = {}

    def project_for(run: Path) -> Labels:
        if isinstance(labels, Labels):
            return labels
        source = str(labels) if labels is not None else labels_source_of(run)
        if not source or not Path(source).is_file():
            raise MissingFileError(
                source or run / "labels_source.txt", "labels used for training not found; pass the labels file"
            )
        if source not in cache:
            cache[source] = load_labels(source)
        return cache[source]

    rows = []
    for model_set in find_model_sets(runs_dir):
        if progress is not None:
            progress(model_set.name)
        project = project_for(model_set.runs[-1])
        pairs = validation_frames(model_set.runs[-1])
        if len(pairs) == 0:
            raise PoseTrackError(f"{model_set.runs[-1]}: the run has no validation frames to score")
        t = project.instances
        on_val = np.zeros(len(t), dtype=bool)
        for v, f in pairs:
            on_val |= (t.video == v) & (t.frame == f)
        truth = project.subset(np.flatnonzero(on_val & (t.kind == USER)))
        scored = truth.copy()
        pipeline = load_pipeline(model_set.runs, options)
        for v in np.unique(pairs[:, 0]):
            predict_labels(scored, pipeline, target="labelled", videos=[int(v)])
        # only the model's output is scored: a model that finds nothing must not be judged on the
        # ground truth the predictions were added beside
        predicted = scored.subset(np.flatnonzero(scored.instances.kind == PREDICTED))
        rows.append({
            "model": model_set.name,
            "pipeline": model_set.pipeline,
            "architecture": "; ".join(describe_architecture(TrainingConfig.from_file(r / CONFIG_FILE))
                                      for r in model_set.runs),
            "validation_frames": len(pairs),
            "predicted_instances": int(predicted.n_instances),
            "best_val_loss": _best_val_loss(model_set.runs[-1]),
            "metrics": evaluate_poses(truth, predicted),
        })
    return rows


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: one line per model with the headline numbers."""
    header = (f"{'model':48s} {'architecture':34s} {'pipeline':10s} {'frames':>6s} {'median px':>9s} {'p90 px':>7s} "
              f"{'OKS mAP':>7s}")
    lines = [header, "-" * len(header)]
    for r in rows:
        d = r["metrics"]["distance"]["all"]
        lines.append(
            f"{r['model'][:48]:48s} {r['architecture'][:34]:34s} {r['pipeline']:10s} {r['validation_frames']:6d} "
            f"{d['median']:9.2f} {d['p90']:7.2f} {r['metrics']['oks']['mAP']:7.3f}"
        )
    return "\n".join(lines)
