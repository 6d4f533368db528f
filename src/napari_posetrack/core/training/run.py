"""Run folders and the training API the GUI and the CLI call.

A run folder ``<runs_folder>/<prefix><YYMMDD_HHMMSS>.<pipeline>/`` holds::

    training_config.yaml   the config as trained, automatic values resolved (channels, crop size)
    skeleton.json          the skeleton (SLEAP template format)
    split.json             the (video, frame) pairs of the training and validation sides
    labels_source.txt      where the labels came from
    best.ckpt, last.ckpt   checkpoints (see trainer.py; both always written while training)
    metrics.jsonl          one JSON record a line, tailed by the GUI
    CANCEL                 written by the GUI's Stop button; the trainer stops at the next batch

``train(config, labels)`` returns the run folder; ``load_run(run_dir)`` gives inference what it needs.
"""

from __future__ import annotations

import datetime
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.config import TrainingConfig, identity_head, topdown_configs
from napari_posetrack.core.config.model import model_max_stride
from napari_posetrack.core.errors import ConfigError, MissingFileError, atomic_write
from napari_posetrack.core.labels import Labels, Skeleton
from napari_posetrack.core.models.runs import (
    CONFIG_FILE,
    LABELS_SOURCE_FILE,
    SKELETON_FILE,
    SPLIT_FILE,
    load_run,  # noqa: F401  (importable from here, where earlier releases had it)
    require_run_file,
)

Progress = Callable[[dict[str, Any]], None]


# --------------------------------------------------------------------------- run folders


def run_folder_name(config: TrainingConfig, now: datetime.datetime | None = None) -> str:
    """``outputs.run_name`` when set, else ``<prefix><YYMMDD_HHMMSS>.<pipeline>``."""
    if config.outputs.run_name:
        return config.outputs.run_name
    now = now or datetime.datetime.now()
    return f"{config.outputs.run_name_prefix}{now:%y%m%d_%H%M%S}.{config.model.pipeline}"


def new_run_dir(config: TrainingConfig, base: str | os.PathLike[str] | None = None) -> Path:
    """Create a fresh run folder under ``outputs.runs_folder`` (or ``base``); never reuses one."""
    root = Path(base if base is not None else config.outputs.runs_folder)
    name = run_folder_name(config)
    path = root / name
    n = 1
    while path.exists():
        path = root / f"{name}_{n}"
        n += 1
    path.mkdir(parents=True)
    return path


def _distributed_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _init_distributed() -> None:
    """Under ``torchrun``: start the process group early, so ranks can agree on the run folder."""
    import torch

    _, world = _distributed_info()
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)


def _agree(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (identity when not distributed)."""
    import torch

    _, world = _distributed_info()
    if world <= 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


# --------------------------------------------------------------------------- config -> settings


def trainer_settings(config: TrainingConfig, n_train_samples: int, *, device: str = "auto", workers: int = 0) -> Any:
    """Translate the ``optimization`` section into :class:`~napari_posetrack.core.training.trainer.TrainerSettings`.

    Steps per epoch: ``batches_per_epoch`` when set, else one pass over the training samples but at
    least ``min_batches_per_epoch``.
    """
    from napari_posetrack.core.training.trainer import TrainerSettings

    o = config.optimization
    _, world = _distributed_info()
    per_rank = math.ceil(n_train_samples / max(world, 1))
    one_pass = max(per_rank // o.batch_size, 1)
    batches = o.batches_per_epoch if o.batches_per_epoch is not None else max(one_pass, o.min_batches_per_epoch)
    s, hk = o.schedule, o.hard_keypoint_mining
    return TrainerSettings(
        batch_size=o.batch_size,
        epochs=o.epochs,
        learning_rate=o.initial_learning_rate,
        optimizer=o.optimizer,
        weight_decay=o.weight_decay,
        momentum=o.momentum,
        schedule=s.kind,
        plateau_factor=s.factor,
        plateau_patience=s.patience,
        plateau_threshold=s.min_delta,
        plateau_cooldown=s.cooldown,
        min_learning_rate=s.min_learning_rate,
        milestones=list(s.milestones),
        gamma=s.factor,
        onecycle_initial_factor=s.initial_factor,
        onecycle_final_factor=s.final_factor,
        onecycle_warmup_fraction=s.warmup_fraction,
        early_stopping=o.early_stopping.enabled,
        early_stopping_patience=o.early_stopping.patience,
        early_stopping_min_delta=o.early_stopping.min_delta,
        gradient_clip=o.gradient_clip_norm,
        max_iterations=o.max_iterations,
        max_hours=o.max_training_hours,
        batches_per_epoch=int(batches),
        mixed_precision=o.mixed_precision,
        compile=o.compile,
        workers=workers,
        seed=config.data.seed,
        device=device,
        ohkm=hk.enabled,
        ohkm_hard_to_easy_ratio=hk.hard_to_easy_ratio,
        ohkm_min_hard_keypoints=hk.min_hard_keypoints,
        ohkm_max_hard_keypoints=hk.max_hard_keypoints,
        ohkm_loss_scale=hk.loss_scale,
    )


# --------------------------------------------------------------------------- data preparation


def _load_labels(labels_path_or_labels: str | os.PathLike[str] | Labels) -> tuple[Labels, str]:
    if isinstance(labels_path_or_labels, Labels):
        lab = labels_path_or_labels
        return lab, str(lab.provenance.get("filename") or lab.provenance.get("source") or "<labels in memory>")
    path = Path(labels_path_or_labels)
    if not path.exists():
        raise MissingFileError(path, "labels file not found")
    try:
        from napari_posetrack.core.io import load_labels
    except ImportError:  # the dispatcher is optional; .slp is the native format
        load_labels = None
    if load_labels is not None:
        return load_labels(path), str(path.resolve())
    from napari_posetrack.core.io.slp import load_slp

    return load_slp(path), str(path.resolve())


def resolve_automatic(config: TrainingConfig, frames: Any, skeleton: Skeleton, image_channels: int) -> TrainingConfig:
    """A copy of ``config`` with automatic values filled in: channels and (top-down) crop size.

    The crop size is :func:`~napari_posetrack.core.training.targets.auto_crop_size` of the labelled
    instances in scaled pixels (largest animal, room for rotation, plus padding, rounded to the stride).
    """
    cfg = config.copy()
    if cfg.data.channels == "auto":
        cfg.data.channels = "rgb" if image_channels == 3 else "grayscale"
    if cfg.model.pipeline == "centered_instance" and cfg.data.crop_size is None:
        from napari_posetrack.core.training.targets import auto_crop_size

        cfg.data.crop_size = auto_crop_size(
            frames.points * cfg.data.input_scaling, model_max_stride(cfg), cfg.data.crop_padding,
            cfg.optimization.augmentation,
        )
    cfg.validate(skeleton, check_paths=False)
    return cfg


def identity_classes(labels: Labels, frames: Any, config: TrainingConfig) -> list[str]:
    """The classes an identity model learns: its head's ``classes`` (``model.heads.class_vectors`` of a
    top-down identity model, ``model.heads.class_maps`` of a bottom-up one) when given, else the
    names of the tracks of the labelled (user) instances, in the labels' track order.

    Raises
    ------
    ConfigError
        Fewer than two of those tracks among the labelled instances (the message says where to name
        them), or given classes that are not tracks of the labelled instances.
    """
    found = identity_head(config)
    prefix, head = found if found is not None else ("model.heads.class_vectors", config.model.heads.class_vectors)
    profile = "bottomup-id" if prefix.endswith("class_maps") else "topdown-id"
    used = np.unique(frames.tracks[frames.tracks >= 0])
    names = list(dict.fromkeys(labels.tracks[int(i)].name for i in used))
    given = [str(n) for n in head.classes]
    if given:
        missing = [n for n in given if n not in names]
        if len([n for n in given if n in names]) < 2 or missing:
            raise ConfigError(
                f"{prefix}.classes: {missing or given} are not tracks of the labelled instances "
                f"(their tracks: {names or 'none'}); leave it empty to use those"
            )
        return given
    if len(names) < 2:
        raise ConfigError(
            f"{prefix}: {profile} needs at least two named tracks among labelled instances "
            f"(found {names or 'none'}); name them in the Labelling widget"
        )
    untracked = int(((frames.tracks < 0) & (np.arange(frames.tracks.shape[1]) < frames.n_instances[:, None])).sum())
    if untracked:
        warnings.warn(
            f"identity model: {untracked} labelled instances have no track; they train the body-part maps "
            "but not the identity head",
            UserWarning, stacklevel=3,
        )
    return names


# --------------------------------------------------------------------------- training


def train(
    config: TrainingConfig,
    labels_path_or_labels: str | os.PathLike[str] | Labels,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    device: str = "auto",
    workers: int = 0,
    resume: bool = False,
    memory_limit: int | None = None,
) -> Path:
    """Train one model; returns its run folder.

    Parameters
    ----------
    config
        A training config for one pipeline (a ``topdown`` config goes to :func:`train_topdown`).
    labels_path_or_labels
        A labels file or an in-memory :class:`Labels`; only USER instances are trained on.
    run_dir
        The run folder; default: a fresh folder under ``outputs.runs_folder``.
    progress
        ``callable(record)`` receiving every ``metrics.jsonl`` record as it is written.
    device
        ``"auto"`` (CUDA, then MPS, then CPU) or a torch device name.
    workers
        DataLoader worker processes (0 = batches assembled in the training process).
    resume
        Continue the run in ``run_dir`` from its ``last.ckpt``, with its saved config and split.
    memory_limit
        Frame caches above this many bytes go to ``frames.npy`` in the run folder (memmap).

    Raises
    ------
    ConfigError
        Invalid config, or a pipeline the labels cannot train (e.g. no labelled frames).
    MissingFileError, FileFormatError
        Labels or a video cannot be read (the message names the file).
    TrainingOutOfMemoryError
        The device ran out of memory; ``last.ckpt`` is kept.
    """
    if config.model.pipeline == "topdown":
        raise ConfigError("model.pipeline: 'topdown' trains two models; call train_topdown()")
    from napari_posetrack.core.io.skeleton_json import save_skeleton_json
    from napari_posetrack.core.models import build_model
    from napari_posetrack.core.training import data as tdata
    from napari_posetrack.core.training.pipelines import make_pipeline
    from napari_posetrack.core.training.trainer import LAST_CHECKPOINT, Trainer

    if resume and run_dir is None:
        raise ConfigError("resume needs the run folder to continue")
    config.validate(check_paths=not resume)
    labels, source = _load_labels(labels_path_or_labels)
    config.validate(labels.skeleton, check_paths=False)
    _init_distributed()
    rank, _ = _distributed_info()

    imagenet_weights = None
    if config.optimization.initialization == "imagenet" and not resume:
        from napari_posetrack.core.models.torchvision_backbones import find_imagenet_weights

        # before any frame is decoded: a missing weights file fails at once
        imagenet_weights = find_imagenet_weights(config.model.backbone, config.optimization.pretrained_weights)

    frames = tdata.labelled_frames(labels)
    if len(frames) == 0:
        raise ConfigError("the labels hold no user-labelled frames to train on")
    if config.model.pipeline == "single_instance" and int(frames.n_instances.max()) > 1:
        # more than one animal on a frame cannot be a single-instance target; keep the first
        warnings.warn(
            f"single_instance training: {int((frames.n_instances > 1).sum())} frames hold several animals; "
            "only the first instance of each is used (top-down or bottom-up models handle several)",
            UserWarning, stacklevel=2,
        )
        frames.points = frames.points[:, :1]
        frames.n_instances = np.minimum(frames.n_instances, 1)

    if identity_head(config) is not None and not resume:
        classes = identity_classes(labels, frames, config)
        config = config.copy()
        identity_head(config)[1].classes = classes

    if run_dir is None:
        run_path = Path(_agree(str(new_run_dir(config)) if rank == 0 else None))
    else:
        run_path = Path(run_dir)
        run_path.mkdir(parents=True, exist_ok=True)

    if resume:
        resumed = TrainingConfig.from_file(run_path / CONFIG_FILE)
        split = tdata.load_split(run_path / SPLIT_FILE, frames)
        config = resumed
    else:
        split = tdata.split_frames(len(frames), config.data.validation_fraction, config.data.seed)

    stride = model_max_stride(config)
    channels = {"grayscale": 1, "rgb": 3}.get(config.data.channels)
    cache_name = tdata.FRAME_CACHE_FILE if rank == 0 else f"frames.rank{rank}.npy"
    input_scaling, input_size = tdata.frame_scaling(config)
    cache = tdata.build_frame_cache(
        labels, frames, input_scaling=input_scaling, input_size=input_size, channels=channels, stride=stride,
        cache_dir=run_path, memory_limit=memory_limit if memory_limit is not None else tdata.DEFAULT_MEMORY_LIMIT,
        cache_name=cache_name,
    )
    found = identity_head(config)
    if found is not None:
        cache.classes = frames.classes([t.name for t in labels.tracks], found[1].classes)
    try:
        if not resume:
            config = resolve_automatic(config, frames, labels.skeleton, cache.image_shape[2])
        if rank == 0 and not resume:
            config.to_yaml(run_path / CONFIG_FILE)
            save_skeleton_json(labels.skeleton, run_path / SKELETON_FILE)
            tdata.save_split(run_path / SPLIT_FILE, frames, split, labels)
            with atomic_write(run_path / LABELS_SOURCE_FILE) as tmp:
                tmp.write_text(source + "\n", encoding="utf-8")

        pipeline = make_pipeline(config, labels.skeleton)
        per_instance = pipeline.per_instance
        train_ds = tdata.FrameBatchDataset(cache, split.train, per_instance=per_instance)
        val_ds = tdata.FrameBatchDataset(cache, split.validation, per_instance=per_instance)
        if len(train_ds) == 0:
            raise ConfigError("no training samples after the split; label more frames")
        settings = trainer_settings(config, len(train_ds), device=device, workers=workers)
        import torch

        # same seed, same initial weights: a run can be repeated exactly
        torch.manual_seed(config.data.seed)
        model = build_model(config, labels.skeleton, in_channels=cache.image_shape[2])
        init = config.optimization.initialization
        report = None
        if imagenet_weights is not None:
            model.backbone.load_imagenet(imagenet_weights)
            report = initialisation_report(model, [f"backbone.{k}" for k in model.backbone.state_dict()], "imagenet")
        elif init != "random" and not resume:
            report = initialisation_report(model, initialise_from(model, init), init)
        trainer = Trainer(
            model, pipeline, train_ds, val_ds, run_path, settings,
            checkpoint_extra={"config": config.to_dict(), "skeleton": labels.skeleton.nodes},
            progress=progress,
            start_info={"initialization": report} if report is not None else None,
        )
        trainer.fit(resume_from=run_path / LAST_CHECKPOINT if resume else None)
        _apply_keep(config, run_path, rank)
    finally:
        if cache.path is not None:
            # the frame cache is only needed while training (a resume rebuilds it)
            try:
                cache.path.unlink()
            except OSError:  # still mapped (Windows): leave it, it is rebuilt and overwritten next time
                pass
    return run_path


def initialise_from(model: Any, source: str | os.PathLike[str]) -> list[str]:
    """Copy a previous run's weights into ``model`` wherever names and shapes match.

    ``source`` is a run folder (its ``best.ckpt``, else ``last.ckpt``) or a checkpoint file, of this
    project or any other. Heads that differ (another skeleton, another pipeline) keep their fresh
    weights, so a backbone and neck trained on one project can start another. Returns the names of
    the tensors copied (:func:`initialisation_report` summarises them).
    """
    from napari_posetrack.core.models.runs import load_checkpoint_file

    path = Path(source)
    if path.is_dir():
        path = next((path / n for n in ("best.ckpt", "last.ckpt") if (path / n).is_file()), path / "best.ckpt")
    state = load_checkpoint_file(require_run_file(path))["model"]
    own = model.state_dict()
    copied = [k for k, v in state.items() if k in own and own[k].shape == v.shape]
    if not copied:
        raise ConfigError(f"optimization.initialization: no weights in {path} fit this model")
    own.update({k: state[k] for k in copied})
    model.load_state_dict(own)
    return copied


def initialisation_report(model: Any, loaded: list[str], source: str) -> dict[str, Any]:
    """What an initialisation loaded: counts, and the parts (e.g. ``heads.confmaps``) left random.

    Parts are the first two levels of the tensor names; a part counts as not loaded when none of its
    tensors were.
    """
    names = list(model.state_dict())
    loaded_set = set(loaded)

    def part(name: str) -> str:
        return ".".join(name.split(".")[:2])

    parts = list(dict.fromkeys(part(n) for n in names))
    loaded_parts = {part(n) for n in loaded_set}
    return {
        "source": str(source),
        "loaded": len(loaded_set & set(names)),
        "total": len(names),
        "not_loaded": [p for p in parts if p not in loaded_parts],
        "partly_loaded": [
            p for p in parts if p in loaded_parts and any(part(n) == p and n not in loaded_set for n in names)
        ],
    }


def _apply_keep(config: TrainingConfig, run_path: Path, rank: int) -> None:
    """``outputs.keep``: both checkpoints are written while training; ``"last"`` drops ``best.ckpt``
    afterwards. ``last.ckpt`` is always kept because resuming needs it.
    """
    if rank != 0:
        return
    keep = config.outputs.keep
    if keep == "last":
        best = run_path / "best.ckpt"
        if best.exists() and (run_path / "last.ckpt").exists():
            best.unlink()


def train_topdown(
    config: TrainingConfig,
    labels_path_or_labels: str | os.PathLike[str] | Labels,
    *,
    progress: Progress | None = None,
    device: str = "auto",
    workers: int = 0,
) -> tuple[Path, Path]:
    """Train a top-down job: the centroid model, then the centered-instance model.

    Returns ``(centroid_run_dir, centered_instance_run_dir)``.
    """
    # a path is handed on as is (not loaded here), so both run folders record where the labels came from
    labels = labels_path_or_labels
    base = config.copy()
    if base.model.pipeline != "topdown":
        base.model.pipeline = "topdown"
    centroid_cfg, centered_cfg = topdown_configs(base)
    centroid_dir = train(centroid_cfg, labels, progress=progress, device=device, workers=workers)
    centered_dir = train(centered_cfg, labels, progress=progress, device=device, workers=workers)
    return centroid_dir, centered_dir


def resume(
    run_dir: str | os.PathLike[str],
    labels_path_or_labels: str | os.PathLike[str] | Labels | None = None,
    *,
    progress: Progress | None = None,
    device: str = "auto",
    workers: int = 0,
) -> Path:
    """Continue an interrupted run from its ``last.ckpt`` (labels default to ``labels_source.txt``)."""
    run_path = Path(run_dir)
    config = TrainingConfig.from_file(require_run_file(run_path / CONFIG_FILE))
    if labels_path_or_labels is None:
        source = require_run_file(run_path / LABELS_SOURCE_FILE).read_text(encoding="utf-8").strip()
        labels_path_or_labels = source
    require_run_file(run_path / "last.ckpt")
    # the Stop that ended the previous session must not end this one at its first batch
    (run_path / "CANCEL").unlink(missing_ok=True)
    return train(config, labels_path_or_labels, run_dir=run_path, progress=progress, device=device,
                 workers=workers, resume=True)


# --------------------------------------------------------------------------- loading for inference
