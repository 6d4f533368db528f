"""The training loop: plain PyTorch, one device or several through ``torchrun`` + DDP.

What the loop does per batch: move the uint8 batch to the device, let the pipeline augment it and
render its targets there, run the model (mixed precision on CUDA), MSE per head with loss weights
plus online hard keypoint mining, clip gradients, step. Between batches it checks the cancel flag
file, the iteration and time limits. After every epoch it validates (loss and mean pixel error),
writes ``last.ckpt`` (and ``best.ckpt`` when validation improved) atomically, and steps the
schedule. Everything a live plot needs is appended to ``metrics.jsonl`` as one JSON object a line.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from napari_posetrack.core.errors import PoseTrackError, atomic_write
from napari_posetrack.core.models.runs import load_checkpoint_file

LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
METRICS_FILE = "metrics.jsonl"
CANCEL_FILE = "CANCEL"


class TrainingError(PoseTrackError):
    """Training could not go on (the message says why and what to change)."""


class TrainingOutOfMemoryError(TrainingError):
    """The device ran out of memory; ``last.ckpt`` holds the state before the failing batch."""


# --------------------------------------------------------------------------- settings


@dataclass
class TrainerSettings:
    """Everything the loop needs, in one flat place (built from a ``TrainingConfig`` by ``run.py``).

    Schedules: ``"none"``, ``"reduce_on_plateau"`` (cut on a validation plateau), ``"multi_step"``
    (``milestones`` in epochs, factor ``gamma``), ``"one_cycle"`` (per batch, peak ``learning_rate``).
    ``batches_per_epoch`` is the number of steps per epoch (``None``: one pass over the samples).
    """

    batch_size: int = 4
    epochs: int = 100
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "reduce_on_plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    plateau_threshold: float = 1e-6
    plateau_cooldown: int = 3
    min_learning_rate: float = 1e-8
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    onecycle_initial_factor: float = 0.04
    onecycle_final_factor: float = 1e-4
    onecycle_warmup_fraction: float = 0.3
    early_stopping: bool = True
    early_stopping_patience: int = 10
    early_stopping_min_delta: float = 1e-8
    gradient_clip: float | None = None
    max_iterations: int | None = None
    max_hours: float | None = None
    batches_per_epoch: int | None = None
    validation_batches: int | None = None
    mixed_precision: bool = True
    compile: bool = False
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    ohkm: bool = False
    ohkm_hard_to_easy_ratio: float = 2.0
    ohkm_min_hard_keypoints: int = 2
    ohkm_max_hard_keypoints: int | None = None
    ohkm_loss_scale: float = 5.0
    log_every: int = 1


def resolve_device(name: str = "auto") -> Any:
    """``"auto"`` -> CUDA when available, else Apple MPS, else CPU; other names pass through."""
    import torch

    if name and name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# --------------------------------------------------------------------------- pipeline protocol


class Pipeline(Protocol):
    """What the loop needs from a model type (single instance, centroid, centered instance, bottom-up)."""

    name: str
    loss_weights: dict[str, float]
    confmap_head: str

    def prepare(self, batch: dict[str, Any], *, training: bool, generator: Any) -> tuple[Any, dict[str, Any], Any]:
        """Device batch -> ``(inputs, targets per head, keypoints (B, M, N, 2) in input pixels)``."""

    def pixel_errors(self, outputs: dict[str, Any], keypoints: Any, scale: Any = None) -> Any:
        """Distances (in original-video pixels) between decoded peaks and ground truth, 1-D tensor.

        ``scale`` ``(B, 2)``: each sample's input pixels per original pixel (the batch's ``scale``).
        """


# --------------------------------------------------------------------------- losses


def output_head(key: str) -> str:
    """The head an output belongs to: ``confmaps`` for ``confmaps``, ``confmaps@16``, ``confmaps.graph#0``."""
    for mark in (".", "@", "#"):
        key = key.split(mark, 1)[0]
    return key


def head_losses(outputs: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
    """Per-channel MSE of every output the model made: ``{output: (C,) tensor}``.

    An output whose target is an integer tensor is an identity head's logits ``(B, n_classes)``
    against class indices ``(B,)``: its loss is :func:`class_loss`, as a ``(1,)`` tensor.

    In training mode a model also makes extra outputs (other levels, intermediate stacks, posture
    graph); in eval mode only the main ones. Every output needs its target.
    """
    losses = {}
    for head, pred in outputs.items():
        if head not in targets:
            raise TrainingError(f"the model makes output {head!r} but no target was drawn for it")
        target = targets[head]
        pred = pred.float()
        if not target.is_floating_point():
            losses[head] = class_loss(pred, target).reshape(1)
            continue
        if pred.shape != target.shape:
            raise TrainingError(
                f"head {head!r} outputs shape {tuple(pred.shape)} but its targets have {tuple(target.shape)}; "
                "the model's output stride and the target stride disagree"
            )
        losses[head] = ((pred - target) ** 2).mean(dim=(0, 2, 3))
    return losses


def class_loss(logits: Any, classes: Any) -> Any:
    """Mean cross-entropy of identity ``logits`` ``(B, K)`` against ``classes`` ``(B,)`` int64.

    Samples with class ``-1`` (an animal without a track) are ignored; a batch with none known gives
    zero (still connected to the graph, so every parameter gets a gradient of zero).
    """
    import torch

    known = classes >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits[known], classes[known])


def hard_keypoint_loss(
    channel_loss: Any, ratio: float, min_hard: int, max_hard: int | None, scale: float
) -> Any:
    """Online hard keypoint mining: extra loss on the channels much worse than the best one.

    Channels whose loss is at least ``ratio`` times the smallest are "hard"; between ``min_hard`` and
    ``max_hard`` of the worst channels are kept and their mean loss, times ``scale``, is returned.
    """
    import torch

    n = channel_loss.numel()
    best = channel_loss.detach().min().clamp_min(1e-12)
    n_hard = int((channel_loss.detach() / best >= ratio).sum())
    upper = n if max_hard is None else min(max_hard, n)
    n_hard = max(min(n_hard, upper), min(min_hard, n))
    if n_hard == 0:
        return channel_loss.sum() * 0.0
    top = torch.topk(channel_loss, n_hard).values
    return scale * top.mean()


# --------------------------------------------------------------------------- metrics log


class MetricsLog:
    """Append-only JSON lines; every record carries ``event`` and ``time`` (Unix seconds)."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self._fh = open(path, "a", encoding="utf-8") if enabled else None  # noqa: SIM115

    def write(self, event: str, **values: Any) -> None:
        if self._fh is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **values}
        self._fh.write(json.dumps(record, default=_json_default) + "\n")
        # flushed per line so the GUI tailing the file sees progress as it happens
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to metrics")


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a partly written last line is ignored)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


# --------------------------------------------------------------------------- result


@dataclass
class TrainResult:
    """How a ``fit`` ended. ``reason``: completed, early_stopping, max_iterations, max_time, cancelled."""

    reason: str
    epochs_done: int
    global_step: int
    best_val_loss: float
    last_checkpoint: Path
    best_checkpoint: Path | None


# --------------------------------------------------------------------------- trainer


class Trainer:
    """Train ``model`` with a pipeline on frame batches, writing into ``run_dir``.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` whose forward returns ``{head: tensor}``.
    pipeline
        Turns device batches into inputs and targets (see :class:`Pipeline`).
    train_dataset, val_dataset
        :class:`~napari_posetrack.core.training.data.FrameBatchDataset` objects.
    run_dir
        Where checkpoints, ``metrics.jsonl`` and the cancel flag live.
    settings
        :class:`TrainerSettings`.
    checkpoint_extra
        Stored in every checkpoint under ``"extra"`` (the run's config and skeleton, so a checkpoint
        alone can rebuild the model).
    progress
        Optional ``callable(record: dict)`` called with every metrics record (rank 0).
    start_info
        Extra fields of the ``start`` record (e.g. how the weights were initialised).
    """

    def __init__(
        self,
        model: Any,
        pipeline: Pipeline,
        train_dataset: Any,
        val_dataset: Any,
        run_dir: str | os.PathLike[str],
        settings: TrainerSettings,
        *,
        checkpoint_extra: dict[str, Any] | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        start_info: dict[str, Any] | None = None,
    ) -> None:
        import torch

        from napari_posetrack.core.training.data import EpochBatchSampler, make_loader

        self.settings = settings
        self.pipeline = pipeline
        self.run_dir = Path(run_dir)
        self.checkpoint_extra = checkpoint_extra or {}
        self.progress = progress
        self.start_info = dict(start_info or {})

        # distributed: torchrun sets WORLD_SIZE/RANK/LOCAL_RANK
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world_size > 1
        self.device = resolve_device(settings.device)
        if self.distributed and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.is_main = self.rank == 0

        _seed_everything(settings.seed + self.rank)
        self.model = model.to(self.device)
        self.train_model = self.model
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        if settings.compile:
            self.train_model = torch.compile(self.train_model)

        self.train_sampler = EpochBatchSampler(
            len(train_dataset), settings.batch_size, shuffle=True, seed=settings.seed,
            drop_last=True, rank=self.rank, world_size=self.world_size,
            batches_per_epoch=settings.batches_per_epoch,
        )
        self.val_sampler = EpochBatchSampler(
            len(val_dataset), settings.batch_size, shuffle=False, rank=self.rank, world_size=self.world_size
        )
        self.train_loader = make_loader(train_dataset, self.train_sampler, device=self.device, workers=settings.workers)
        self.val_loader = make_loader(val_dataset, self.val_sampler, device=self.device, workers=0)
        self.steps_per_epoch = self.train_sampler.n_batches()

        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.amp_dtype = None
        if settings.mixed_precision and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.generator = torch.Generator(device=self.device if self.device.type != "mps" else "cpu")
        self.generator.manual_seed(settings.seed * 1000 + self.rank)

        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.best_val_loss = math.inf
        self.epochs_without_improvement = 0
        self.elapsed_before = 0.0
        self._t0 = time.monotonic()
        self.metrics: MetricsLog | None = None
        self.val_class_accuracy: float | None = None

    # -- construction ---------------------------------------------------------------
    def _make_optimizer(self) -> Any:
        import torch

        s = self.settings
        params = [p for p in self.model.parameters() if p.requires_grad]
        name = s.optimizer.lower()
        if name == "adam":
            return torch.optim.Adam(params, lr=s.learning_rate, weight_decay=s.weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=s.weight_decay)
        if name == "sgd":
            return torch.optim.SGD(params, lr=s.learning_rate, momentum=s.momentum, weight_decay=s.weight_decay)
        raise TrainingError(f"unknown optimizer {s.optimizer!r}; use adam, adamw or sgd")

    def _make_scheduler(self) -> Any:
        import torch

        s = self.settings
        name = (s.schedule or "none").lower()
        sched = torch.optim.lr_scheduler
        if name in ("none", "constant"):
            return None
        if name in ("plateau", "reduce_on_plateau"):
            return sched.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=s.plateau_factor, patience=s.plateau_patience,
                threshold=s.plateau_threshold, threshold_mode="abs", cooldown=s.plateau_cooldown,
                min_lr=s.min_learning_rate,
            )
        if name in ("multistep", "multi_step"):
            return sched.MultiStepLR(self.optimizer, milestones=list(s.milestones), gamma=s.gamma)
        if name in ("onecycle", "one_cycle"):
            total = s.epochs * max(self.steps_per_epoch, 1)
            if s.max_iterations:
                total = min(total, s.max_iterations)
            return sched.OneCycleLR(
                self.optimizer, max_lr=s.learning_rate, total_steps=max(total, 1),
                pct_start=s.onecycle_warmup_fraction, div_factor=1.0 / s.onecycle_initial_factor,
                final_div_factor=s.onecycle_initial_factor / s.onecycle_final_factor,
            )
        raise TrainingError(f"unknown schedule {s.schedule!r}; use none, plateau, multistep or onecycle")

    # -- checkpoints ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: model, optimizer, schedule, scaler, position and RNG."""
        import torch

        rng = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "generator": self.generator.get_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": "napari-posetrack checkpoint 1",
            "pipeline": self.pipeline.name,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "batch": self.batch_in_epoch,
            "global_step": self.global_step,
            "best_val_loss": self.best_val_loss,
            "epochs_without_improvement": self.epochs_without_improvement,
            "elapsed_s": self.elapsed(),
            "rng": rng,
            "settings": asdict(self.settings),
            "extra": self.checkpoint_extra,
        }

    def save_checkpoint(self, name: str) -> Path:
        """Write a checkpoint atomically (rank 0 only); returns its path."""
        import torch

        path = self.run_dir / name
        if self.is_main:
            with atomic_write(path) as tmp:
                torch.save(self.state_dict(), tmp)
        return path

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` to continue training."""
        import torch

        state = load_checkpoint_file(path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state["batch"])
        self.global_step = int(state["global_step"])
        self.best_val_loss = float(state["best_val_loss"])
        self.epochs_without_improvement = int(state["epochs_without_improvement"])
        self.elapsed_before = float(state["elapsed_s"])
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"].cpu())
        self.generator.set_state(rng["generator"].cpu())
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])

    # -- bookkeeping ---------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self._t0)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log(self, event: str, **values: Any) -> None:
        if not self.is_main:
            return
        if self.metrics is not None:
            self.metrics.write(event, **values)
        if self.progress is not None:
            self.progress({"event": event, **values})

    def _stop_requested(self) -> str | None:
        """The reason to stop before the next batch (agreed by all ranks), or ``None``."""
        import torch

        s = self.settings
        code = 0
        if self.is_main:
            if (self.run_dir / CANCEL_FILE).exists():
                code = 1
            elif s.max_iterations is not None and self.global_step >= s.max_iterations:
                code = 2
            elif s.max_hours is not None and self.elapsed() >= s.max_hours * 3600.0:
                code = 3
        if self.distributed:
            flag = torch.tensor([code], dtype=torch.int64, device=self.device)
            torch.distributed.broadcast(flag, src=0)
            code = int(flag.item())
        return {0: None, 1: "cancelled", 2: "max_iterations", 3: "max_time"}[code]

    # -- steps -----------------------------------------------------------------------
    def _loss(self, outputs: dict[str, Any], targets: dict[str, Any]) -> tuple[Any, dict[str, float]]:
        s = self.settings
        per_channel = head_losses(outputs, targets)
        total = 0.0
        parts = {}
        for key, channel_loss in per_channel.items():
            # extra outputs (levels, stacks, posture graph) add to their head's part, at its weight
            head = output_head(key)
            weight = float(self.pipeline.loss_weights.get(head, 1.0))
            loss = channel_loss.mean()
            if s.ohkm and key == self.pipeline.confmap_head and channel_loss.numel() > 1:
                loss = loss + hard_keypoint_loss(
                    channel_loss, s.ohkm_hard_to_easy_ratio, s.ohkm_min_hard_keypoints,
                    s.ohkm_max_hard_keypoints, s.ohkm_loss_scale,
                )
            parts[head] = parts.get(head, 0.0) + float(loss.detach())
            total = total + weight * loss
        return total, parts

    def _forward(self, model: Any, inputs: Any) -> dict[str, Any]:
        import torch

        if self.amp_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                return model(inputs)
        return model(inputs)

    def train_step(self, batch: dict[str, Any]) -> tuple[float, dict[str, float]]:
        """One optimisation step on a host batch; returns the loss and its parts per head."""
        import torch

        from napari_posetrack.core.training.data import to_device

        s = self.settings
        self.train_model.train()
        dev = to_device(batch, self.device)
        inputs, targets, _ = self.pipeline.prepare(dev, training=True, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        self.step_lr = self.lr()  # the rate this step uses (schedules change it after the step)
        outputs = self._forward(self.train_model, inputs)
        loss, parts = self._loss(outputs, targets)
        self.scaler.scale(loss).backward()
        if s.gradient_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.gradient_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        one_cycle = self.scheduler is not None and (s.schedule or "").lower() in ("onecycle", "one_cycle")
        # OneCycleLR raises once past its total steps (max_iterations reached exactly): stay at the end
        if one_cycle and self.scheduler.last_epoch < self.scheduler.total_steps - 1:
            self.scheduler.step()
        if self.distributed:
            # log the loss of the whole distributed batch, not only rank 0's share
            mean = loss.detach().reshape(1).clone()
            torch.distributed.all_reduce(mean)
            return float(mean) / self.world_size, parts
        return float(loss.detach()), parts

    def validate(self) -> tuple[float, float]:
        """Mean validation loss and mean pixel error (original-video pixels), over all ranks.

        An identity model's share of validation crops whose animal got its own class is kept in
        ``val_class_accuracy`` (``None`` without an identity head or known classes).
        """
        import torch

        from napari_posetrack.core.training.data import to_device

        self.train_model.eval()
        self.val_sampler.set_epoch(0)
        # loss * n, n, pixel error sum, pixel errors, identities right, identities counted
        loss_sum = torch.zeros(6, dtype=torch.float64, device=self.device)
        class_counts = getattr(self.pipeline, "class_counts", None)
        with torch.no_grad():
            for i, batch in enumerate(self.val_loader):
                if self.settings.validation_batches and i >= self.settings.validation_batches:
                    break
                dev = to_device(batch, self.device)
                inputs, targets, keypoints = self.pipeline.prepare(dev, training=False, generator=None)
                # the unwrapped model: DDP forward in eval would still sync buffers it does not need to
                outputs = self._forward(self.model, inputs)
                loss, _ = self._loss(outputs, targets)
                n = inputs.shape[0]
                errors = self.pipeline.pixel_errors(outputs, keypoints, dev.get("scale"))
                loss_sum[0] += float(loss) * n
                loss_sum[1] += n
                loss_sum[2] += float(errors.sum()) if errors.numel() else 0.0
                loss_sum[3] += errors.numel()
                if class_counts is not None:
                    right, counted = class_counts(outputs, targets)
                    loss_sum[4] += right
                    loss_sum[5] += counted
        if self.distributed:
            torch.distributed.all_reduce(loss_sum)
        val_loss = float(loss_sum[0] / loss_sum[1]) if loss_sum[1] > 0 else math.nan
        pixel_error = float(loss_sum[2] / loss_sum[3]) if loss_sum[3] > 0 else math.nan
        self.val_class_accuracy = float(loss_sum[4] / loss_sum[5]) if loss_sum[5] > 0 else None
        return val_loss, pixel_error

    # -- the loop --------------------------------------------------------------------
    def fit(self, resume_from: str | os.PathLike[str] | None = None) -> TrainResult:
        """Train until the epochs run out or a stop condition holds; returns how it ended.

        Raises
        ------
        TrainingOutOfMemoryError
            When the device runs out of memory (``last.ckpt`` is written first).
        """
        import torch

        s = self.settings
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        self._t0 = time.monotonic()
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE, enabled=self.is_main)
        self._log("start", epoch=self.epoch, batch=self.batch_in_epoch, step=self.global_step,
                  resumed=resume_from is not None, device=str(self.device), world_size=self.world_size,
                  pipeline=self.pipeline.name, steps_per_epoch=self.steps_per_epoch,
                  run_dir=str(self.run_dir), **self.start_info)
        reason = "completed"
        try:
            while self.epoch < s.epochs:
                reason = self._train_epoch()
                if reason == "cancelled" or (reason != "completed" and self._epoch_batches == 0):
                    break
                # epoch finished (or cut short by a limit): validate, checkpoint, schedule, early stopping
                finished = reason == "completed"
                val_loss, pixel_error = self.validate()
                train_loss = self._epoch_loss_sum / max(self._epoch_batches, 1)
                improved = val_loss < self.best_val_loss - s.early_stopping_min_delta
                if improved:
                    self.best_val_loss = val_loss
                    self.epochs_without_improvement = 0
                elif finished:
                    self.epochs_without_improvement += 1
                lr = self.lr()
                if finished:
                    self._step_epoch_schedule(val_loss)
                    self.epoch += 1
                    self.batch_in_epoch = 0
                if improved:
                    self.save_checkpoint(BEST_CHECKPOINT)
                self.save_checkpoint(LAST_CHECKPOINT)
                self._log("epoch", epoch=self.epoch - 1 if finished else self.epoch, step=self.global_step,
                          train_loss=train_loss, val_loss=val_loss, val_mean_pixel_error=pixel_error, lr=lr,
                          elapsed=round(self.elapsed(), 3), best=improved, partial=not finished,
                          **({"val_class_accuracy": self.val_class_accuracy}
                             if self.val_class_accuracy is not None else {}))
                if not finished:
                    break
                if s.early_stopping and self.epochs_without_improvement >= s.early_stopping_patience:
                    reason = "early_stopping"
                    break
                stop = self._stop_requested()
                if stop is not None:
                    reason = stop
                    break
            if reason in ("cancelled", "max_iterations", "max_time"):
                self.save_checkpoint(LAST_CHECKPOINT)
            if not (self.run_dir / BEST_CHECKPOINT).exists() and self.is_main:
                # stopped before a whole epoch: the only weights there are count as the best so far
                self.save_checkpoint(BEST_CHECKPOINT)
        except torch.cuda.OutOfMemoryError as exc:
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.save_checkpoint(LAST_CHECKPOINT)
            message = (
                f"the {self.device.type.upper()} device ran out of memory at epoch {self.epoch}, batch "
                f"{self.batch_in_epoch} with batch size {s.batch_size}; use a smaller batch size "
                "(optimization.batch_size) or a smaller input scaling, then resume from "
                f"{self.run_dir / LAST_CHECKPOINT}"
            )
            self._log("error", kind="out_of_memory", message=message, epoch=self.epoch, batch=self.batch_in_epoch)
            reason = "out_of_memory"
            raise TrainingOutOfMemoryError(message) from exc
        except BaseException as exc:
            # anything else (a crash, Ctrl-C): last.ckpt stays as the last finished epoch left it
            reason = f"error: {type(exc).__name__}"
            raise
        finally:
            if self.metrics is not None:
                self._log("end", reason=reason, epoch=self.epoch, step=self.global_step,
                          elapsed=round(self.elapsed(), 3), best_val_loss=self.best_val_loss)
                self.metrics.close()
        best = self.run_dir / BEST_CHECKPOINT
        return TrainResult(reason, self.epoch, self.global_step, self.best_val_loss,
                           self.run_dir / LAST_CHECKPOINT, best if best.exists() else None)

    def _train_epoch(self) -> str:
        """Train the rest of the current epoch; returns ``"completed"`` or the reason it stopped."""
        s = self.settings
        self._epoch_loss_sum = 0.0
        self._epoch_batches = 0
        self.train_sampler.set_epoch(self.epoch, skip_batches=self.batch_in_epoch)
        if self.batch_in_epoch >= self.steps_per_epoch:
            return "completed"
        for batch in self.train_loader:
            stop = self._stop_requested()
            if stop is not None:
                return stop
            loss, parts = self.train_step(batch)
            if not math.isfinite(loss):
                raise TrainingError(
                    f"training loss became {loss} at epoch {self.epoch}, batch {self.batch_in_epoch}; "
                    "lower the learning rate or enable gradient clipping"
                )
            self.batch_in_epoch += 1
            self.global_step += 1
            self._epoch_loss_sum += loss
            self._epoch_batches += 1
            if self.global_step % max(s.log_every, 1) == 0:
                self._log("batch", epoch=self.epoch, batch=self.batch_in_epoch - 1, step=self.global_step,
                          loss=loss, losses=parts, lr=self.step_lr, elapsed=round(self.elapsed(), 3))
            if self.batch_in_epoch >= self.steps_per_epoch:
                break
        # the step limit may fall exactly on the epoch's end: it is checked again before the next batch
        return "completed"

    def _step_epoch_schedule(self, val_loss: float) -> None:
        name = (self.settings.schedule or "none").lower()
        if self.scheduler is None or name in ("onecycle", "one_cycle"):
            return
        if name in ("plateau", "reduce_on_plateau"):
            self.scheduler.step(val_loss if math.isfinite(val_loss) else math.inf)
        else:
            self.scheduler.step()


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
