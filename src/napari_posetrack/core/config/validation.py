"""Checking a config field by field: the first problem raises :class:`ConfigError` naming the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_posetrack.core.config.data import CHANNELS
from napari_posetrack.core.config.model import (
    ACTIVATIONS,
    BACKBONES,
    CLASS_PIPELINES,
    DPK_BACKBONES,
    MAX_EXTRA_NECK_LEVELS,
    NECKS,
    PIPELINES,
    TORCHVISION_BACKBONES,
    head_configs,
    head_inputs,
    model_max_stride,
)
from napari_posetrack.core.config.optimization import (
    FLIP_DIRECTIONS,
    OPTIMIZERS,
    SCHEDULES,
    AugmentationConfig,
)
from napari_posetrack.core.config.outputs import KEEP_CHECKPOINTS
from napari_posetrack.core.errors import ConfigError

if TYPE_CHECKING:
    from napari_posetrack.core.config.training import TrainingConfig


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _check(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {problem}")


def _validate(cfg: TrainingConfig, skeleton: Any, check_paths: bool) -> None:
    d, m, o, out = cfg.data, cfg.model, cfg.optimization, cfg.outputs
    # model first: other checks use max_stride
    _check(
        m.pipeline in PIPELINES,
        "model.pipeline",
        f"unknown pipeline {m.pipeline!r}; use one of {', '.join(PIPELINES)}",
    )
    _validate_model(cfg)
    max_stride = model_max_stride(cfg)

    _check(
        0 <= d.validation_fraction < 1,
        "data.validation_fraction",
        f"must be in [0, 1), got {d.validation_fraction}",
    )
    _check(d.input_scaling > 0, "data.input_scaling", f"must be positive, got {d.input_scaling}")
    if d.centroid_input_scaling is not None:
        _check(
            d.centroid_input_scaling > 0,
            "data.centroid_input_scaling",
            f"must be positive, got {d.centroid_input_scaling}",
        )
    if d.crop_size is not None:
        _check(d.crop_size > 0, "data.crop_size", f"must be positive, got {d.crop_size}")
        _check(
            d.crop_size % max_stride == 0,
            "data.crop_size",
            f"{d.crop_size} is not a multiple of the model's max stride ({max_stride}); "
            f"use {-(-d.crop_size // max_stride) * max_stride}",
        )
    if d.input_size is not None:
        _check(
            len(d.input_size) == 2 and all(s > 0 for s in d.input_size),
            "data.input_size",
            f"must be [height, width] with positive sizes, got {d.input_size}",
        )
        _check(
            all(s % max_stride == 0 for s in d.input_size),
            "data.input_size",
            f"{d.input_size} is not a multiple of the model's max stride ({max_stride}); use "
            f"{[-(-s // max_stride) * max_stride for s in d.input_size]}",
        )
    _check(d.crop_padding >= 0, "data.crop_padding", f"must not be negative, got {d.crop_padding}")
    _check(
        d.channels in CHANNELS,
        "data.channels",
        f"unknown value {d.channels!r}; use one of {', '.join(CHANNELS)}",
    )
    if skeleton is not None:
        if d.anchor_part is not None:
            _check(
                d.anchor_part in skeleton.nodes,
                "data.anchor_part",
                f"unknown body part {d.anchor_part!r}; the skeleton has {', '.join(skeleton.nodes)}",
            )
        if m.pipeline == "bottomup" and not m.heads.class_maps.enabled:
            # part affinity fields follow the edges (a bottom-up identity model groups by class instead)
            _check(
                len(skeleton.edges) > 0, "model.pipeline", "bottomup needs a skeleton with at least one edge"
            )

    _check(o.batch_size >= 1, "optimization.batch_size", f"must be at least 1, got {o.batch_size}")
    _check(o.epochs >= 1, "optimization.epochs", f"must be at least 1, got {o.epochs}")
    if o.batches_per_epoch is not None:
        _check(
            o.batches_per_epoch >= 1,
            "optimization.batches_per_epoch",
            f"must be at least 1, got {o.batches_per_epoch}",
        )
    _check(
        o.min_batches_per_epoch >= 0,
        "optimization.min_batches_per_epoch",
        f"must not be negative, got {o.min_batches_per_epoch}",
    )
    _check(
        o.initial_learning_rate > 0,
        "optimization.initial_learning_rate",
        f"must be positive, got {o.initial_learning_rate}",
    )
    _check(
        o.optimizer in OPTIMIZERS,
        "optimization.optimizer",
        f"unknown optimizer {o.optimizer!r}; use one of {', '.join(OPTIMIZERS)}",
    )
    _check(0 <= o.momentum < 1, "optimization.momentum", f"must be in [0, 1), got {o.momentum}")
    _check(o.weight_decay >= 0, "optimization.weight_decay", f"must not be negative, got {o.weight_decay}")
    s = o.schedule
    _check(
        s.kind in SCHEDULES,
        "optimization.schedule.kind",
        f"unknown schedule {s.kind!r}; use one of {', '.join(SCHEDULES)}",
    )
    _check(0 < s.factor < 1, "optimization.schedule.factor", f"must be in (0, 1), got {s.factor}")
    _check(s.patience >= 0, "optimization.schedule.patience", f"must not be negative, got {s.patience}")
    _check(s.cooldown >= 0, "optimization.schedule.cooldown", f"must not be negative, got {s.cooldown}")
    _check(s.min_delta >= 0, "optimization.schedule.min_delta", f"must not be negative, got {s.min_delta}")
    _check(
        s.min_learning_rate >= 0,
        "optimization.schedule.min_learning_rate",
        f"must not be negative, got {s.min_learning_rate}",
    )
    _check(
        all(x >= 1 for x in s.milestones) and all(a < b for a, b in zip(s.milestones, s.milestones[1:])),
        "optimization.schedule.milestones",
        f"must be increasing positive epochs, got {s.milestones}",
    )
    if s.kind == "multi_step":
        _check(
            bool(s.milestones), "optimization.schedule.milestones", "multi_step needs at least one milestone"
        )
    _check(
        s.initial_factor > 0,
        "optimization.schedule.initial_factor",
        f"must be positive, got {s.initial_factor}",
    )
    _check(
        s.final_factor > 0, "optimization.schedule.final_factor", f"must be positive, got {s.final_factor}"
    )
    _check(
        0 <= s.warmup_fraction < 1,
        "optimization.schedule.warmup_fraction",
        f"must be in [0, 1), got {s.warmup_fraction}",
    )
    es = o.early_stopping
    _check(
        es.patience >= 0, "optimization.early_stopping.patience", f"must not be negative, got {es.patience}"
    )
    _check(
        es.min_delta >= 0,
        "optimization.early_stopping.min_delta",
        f"must not be negative, got {es.min_delta}",
    )
    if o.gradient_clip_norm is not None:
        _check(
            o.gradient_clip_norm > 0,
            "optimization.gradient_clip_norm",
            f"must be positive (or empty for off), got {o.gradient_clip_norm}",
        )
    if o.max_iterations is not None:
        _check(
            o.max_iterations >= 1,
            "optimization.max_iterations",
            f"must be at least 1, got {o.max_iterations}",
        )
    if o.max_training_hours is not None:
        _check(
            o.max_training_hours > 0,
            "optimization.max_training_hours",
            f"must be positive, got {o.max_training_hours}",
        )
    hk = o.hard_keypoint_mining
    _check(
        hk.hard_to_easy_ratio >= 1,
        "optimization.hard_keypoint_mining.hard_to_easy_ratio",
        f"must be at least 1, got {hk.hard_to_easy_ratio}",
    )
    _check(
        hk.min_hard_keypoints >= 0,
        "optimization.hard_keypoint_mining.min_hard_keypoints",
        f"must not be negative, got {hk.min_hard_keypoints}",
    )
    if hk.max_hard_keypoints is not None:
        _check(
            hk.max_hard_keypoints >= max(1, hk.min_hard_keypoints),
            "optimization.hard_keypoint_mining.max_hard_keypoints",
            f"must be at least min_hard_keypoints ({hk.min_hard_keypoints}), got {hk.max_hard_keypoints}",
        )
    _check(
        hk.loss_scale > 0,
        "optimization.hard_keypoint_mining.loss_scale",
        f"must be positive, got {hk.loss_scale}",
    )
    _validate_augmentation(o.augmentation)
    if o.initialization == "imagenet":
        _check(
            m.backbone in TORCHVISION_BACKBONES,
            "optimization.initialization",
            f"ImageNet weights exist only for torchvision backbones, not {m.backbone!r}; use 'random' or a run",
        )
    elif o.initialization != "random" and check_paths:
        _check(
            Path(o.initialization).exists(),
            "optimization.initialization",
            f"{o.initialization!r} not found (use 'random', 'imagenet', or an existing run folder or checkpoint)",
        )
    if o.pretrained_weights is not None and check_paths:
        _check(
            Path(o.pretrained_weights).is_file(),
            "optimization.pretrained_weights",
            f"file {o.pretrained_weights!r} not found",
        )

    _check(
        out.keep in KEEP_CHECKPOINTS,
        "outputs.keep",
        f"unknown value {out.keep!r}; use one of {', '.join(KEEP_CHECKPOINTS)}",
    )
    _check(bool(out.runs_folder), "outputs.runs_folder", "must not be empty")
    if out.run_name is not None:
        _check(
            out.run_name.strip() != "" and "/" not in out.run_name and "\\" not in out.run_name,
            "outputs.run_name",
            f"must be a folder name without slashes, got {out.run_name!r}",
        )


def _validate_augmentation(a: AugmentationConfig) -> None:
    prefix = "optimization.augmentation."
    for f in dataclasses.fields(a):
        if f.name.endswith("_probability"):
            p = getattr(a, f.name)
            _check(0 <= p <= 1, prefix + f.name, f"must be in [0, 1], got {p}")
    for lo, hi in (
        ("rotation_min_angle", "rotation_max_angle"),
        ("scale_min", "scale_max"),
        ("translate_min", "translate_max"),
        ("uniform_noise_min", "uniform_noise_max"),
        ("contrast_min_gamma", "contrast_max_gamma"),
        ("brightness_min", "brightness_max"),
    ):
        _check(
            getattr(a, lo) <= getattr(a, hi),
            prefix + lo,
            f"must not exceed {hi} ({getattr(a, hi)}), got {getattr(a, lo)}",
        )
    _check(a.scale_min > 0, prefix + "scale_min", f"must be positive, got {a.scale_min}")
    _check(
        a.contrast_min_gamma > 0,
        prefix + "contrast_min_gamma",
        f"must be positive, got {a.contrast_min_gamma}",
    )
    _check(
        a.gaussian_noise_std >= 0,
        prefix + "gaussian_noise_std",
        f"must not be negative, got {a.gaussian_noise_std}",
    )
    _check(
        a.flip_direction in FLIP_DIRECTIONS,
        prefix + "flip_direction",
        f"unknown value {a.flip_direction!r}; use horizontal or vertical",
    )


def _validate_class_head(cfg: TrainingConfig) -> None:
    """The identity head: on a centered-instance model only, sensible sizes, distinct class names."""
    c = cfg.model.heads.class_vectors
    prefix = "model.heads.class_vectors"
    if not c.enabled:
        return
    _check(
        cfg.model.pipeline in CLASS_PIPELINES,
        f"{prefix}.enabled",
        f"an identity head belongs to a centered_instance (or topdown) model, not {cfg.model.pipeline}"
        + (" (a bottom-up identity model uses model.heads.class_maps)" if cfg.model.pipeline == "bottomup" else ""),
    )
    _check(c.num_fc_layers >= 0, f"{prefix}.num_fc_layers", f"must not be negative, got {c.num_fc_layers}")
    _check(c.num_fc_units >= 1, f"{prefix}.num_fc_units", f"must be at least 1, got {c.num_fc_units}")
    _check(c.loss_weight >= 0, f"{prefix}.loss_weight", f"must not be negative, got {c.loss_weight}")
    names = [str(n) for n in c.classes]
    _check(len(set(names)) == len(names), f"{prefix}.classes", f"class names must differ, got {names}")
    _check(
        len(names) != 1,
        f"{prefix}.classes",
        f"an identity model needs at least two classes, got {names} (leave it empty to use the labels' tracks)",
    )


def _validate_class_maps(cfg: TrainingConfig) -> None:
    """The bottom-up identity head: on a bottom-up model only, distinct class names (maps are checked
    with the other heads)."""
    c = cfg.model.heads.class_maps
    prefix = "model.heads.class_maps"
    if not c.enabled:
        return
    _check(
        cfg.model.pipeline == "bottomup",
        f"{prefix}.enabled",
        f"class maps belong to a bottomup model, not {cfg.model.pipeline}"
        + (" (a top-down identity model uses model.heads.class_vectors)"
           if cfg.model.pipeline in CLASS_PIPELINES else ""),
    )
    names = [str(n) for n in c.classes]
    _check(len(set(names)) == len(names), f"{prefix}.classes", f"class names must differ, got {names}")
    _check(
        len(names) != 1,
        f"{prefix}.classes",
        f"an identity model needs at least two classes, got {names} (leave it empty to use the labels' tracks)",
    )


def _validate_model(cfg: TrainingConfig) -> None:
    """The backbone, neck and heads fit together: every head can read or upsample to its strides."""
    m = cfg.model
    _validate_class_head(cfg)
    _validate_class_maps(cfg)
    _check(
        m.backbone in BACKBONES,
        "model.backbone",
        f"unknown backbone {m.backbone!r}; use one of {', '.join(BACKBONES)}",
    )
    _check(m.neck.type in NECKS, "model.neck.type", f"unknown neck {m.neck.type!r}; use one of {', '.join(NECKS)}")
    if m.backbone == "unet":
        _validate_unet(m.unet)
        top = m.unet.max_stride.bit_length() - 1
    else:
        _check(
            2 <= m.top_level <= 5,
            "model.top_level",
            f"must be 2 to 5 (strides 4 to 32), got {m.top_level}",
        )
        top = m.top_level
    if m.backbone == "stacked_densenet":
        s = m.stacked_densenet
        prefix = "model.stacked_densenet"
        _check(s.growth_rate >= 1, f"{prefix}.growth_rate", f"must be at least 1, got {s.growth_rate}")
        _check(
            s.bottleneck_factor >= 1, f"{prefix}.bottleneck_factor", f"must be at least 1, got {s.bottleneck_factor}"
        )
        _check(
            0 < s.compression_factor <= 1,
            f"{prefix}.compression_factor",
            f"must be in (0, 1], got {s.compression_factor}",
        )
        _check(s.n_stacks >= 1, f"{prefix}.n_stacks", f"must be at least 1, got {s.n_stacks}")
        _check(
            s.activation in ACTIVATIONS,
            f"{prefix}.activation",
            f"unknown activation {s.activation!r}; use one of {', '.join(ACTIVATIONS)}",
        )
    if m.backbone == "stacked_hourglass":
        s = m.stacked_hourglass
        prefix = "model.stacked_hourglass"
        _check(s.filters >= 1, f"{prefix}.filters", f"must be at least 1, got {s.filters}")
        _check(
            s.bottleneck_factor >= 1, f"{prefix}.bottleneck_factor", f"must be at least 1, got {s.bottleneck_factor}"
        )
        _check(s.n_stacks >= 1, f"{prefix}.n_stacks", f"must be at least 1, got {s.n_stacks}")
    if m.neck.type != "none":
        _check(
            m.backbone not in DPK_BACKBONES,
            "model.neck.type",
            f"{m.backbone} has its own encoder-decoder and takes no neck; use 'none'",
        )
        levels = [int(level) for level in m.neck.levels]
        _check(bool(levels), "model.neck.levels", "needs at least one level, e.g. [3, 4, 5]")
        _check(
            levels == list(range(min(levels), max(levels) + 1)),
            "model.neck.levels",
            f"must be consecutive levels in increasing order, e.g. [3, 4, 5], got {m.neck.levels}",
        )
        _check(min(levels) >= 1, "model.neck.levels", f"levels start at 1 (stride 2), got {min(levels)}")
        _check(
            min(levels) <= top,
            "model.neck.levels",
            f"the finest level {min(levels)} is above the backbone's top level {top}; the neck needs at least "
            "one level from the backbone",
        )
        highest = top + MAX_EXTRA_NECK_LEVELS
        _check(
            max(levels) <= highest,
            "model.neck.levels",
            f"level {max(levels)} is above what the backbone and neck can make (at most {highest}: the "
            f"backbone's top level {top} plus {MAX_EXTRA_NECK_LEVELS} made by the neck)",
        )
        _check(m.neck.channels >= 1, "model.neck.channels", f"must be at least 1, got {m.neck.channels}")
        _check(m.neck.layers >= 1, "model.neck.layers", f"must be at least 1, got {m.neck.layers}")
    if m.pipeline == "topdown":
        from napari_posetrack.core.config.training import topdown_configs

        for split in topdown_configs(cfg):
            _validate_heads(split, top)
    else:
        _validate_heads(cfg, top)


def _validate_heads(cfg: TrainingConfig, top: int) -> None:
    m = cfg.model
    used = head_configs(cfg)
    for head_name, h in (
        ("confmaps", m.heads.confmaps),
        ("centroids", m.heads.centroids),
        ("pafs", m.heads.pafs),
        ("class_maps", m.heads.class_maps),
    ):
        prefix = f"model.heads.{head_name}"
        _check(h.sigma > 0, f"{prefix}.sigma", f"must be positive, got {h.sigma}")
        _check(h.loss_weight >= 0, f"{prefix}.loss_weight", f"must not be negative, got {h.loss_weight}")
        if head_name not in used:
            continue  # heads this pipeline does not build do not constrain the backbone
        _check(
            _is_power_of_two(h.output_stride),
            f"{prefix}.output_stride",
            f"must be a power of two, got {h.output_stride}",
        )
        if h.levels is not None:
            _check(
                bool(h.levels) and all(int(level) >= 0 for level in h.levels),
                f"{prefix}.levels",
                f"must be a list of levels such as [3, 4, 5] (or empty for one level), got {h.levels}",
            )
        if getattr(h, "posture_graph", False):
            _check(
                head_name == "confmaps" and m.pipeline in ("single_instance", "centered_instance"),
                f"{prefix}.posture_graph",
                "posture-graph targets are for the body-part maps of single-instance and centered-instance "
                "models",
            )
        if m.backbone == "unet":
            u = m.unet
            _check(
                u.max_stride % h.output_stride == 0,
                f"{prefix}.output_stride",
                f"{h.output_stride} does not divide model.unet.max_stride ({u.max_stride})",
            )
            _check(
                h.output_stride >= (u.stem_stride or 1),
                f"{prefix}.output_stride",
                f"{h.output_stride} is finer than model.unet.stem_stride ({u.stem_stride})",
            )
        if m.backbone in DPK_BACKBONES:
            _check(
                h.output_stride == cfg.output_stride and not h.levels,
                f"{prefix}.output_stride",
                f"{m.backbone} outputs every map at one stride; set every head's output stride to "
                f"{cfg.output_stride} and leave levels empty",
            )
            _check(
                2 <= h.output_stride < 2**top,
                f"{prefix}.output_stride",
                f"{m.backbone} works between stride 2 (its stem) and its top level's stride {2**top}, "
                f"got {h.output_stride}",
            )
        head_inputs(cfg, head_name)




def _validate_unet(u: Any) -> None:
    _check(
        _is_power_of_two(u.max_stride) and u.max_stride >= 2,
        "model.unet.max_stride",
        f"must be a power of two >= 2, got {u.max_stride}",
    )
    if u.stem_stride is not None:
        _check(
            _is_power_of_two(u.stem_stride),
            "model.unet.stem_stride",
            f"must be a power of two, got {u.stem_stride}",
        )
        _check(
            u.stem_stride < u.max_stride,
            "model.unet.stem_stride",
            f"must be smaller than max_stride ({u.max_stride}), got {u.stem_stride}",
        )
    _check(u.filters >= 1, "model.unet.filters", f"must be at least 1, got {u.filters}")
    _check(u.filters_rate > 0, "model.unet.filters_rate", f"must be positive, got {u.filters_rate}")
    _check(
        u.convs_per_block >= 1, "model.unet.convs_per_block", f"must be at least 1, got {u.convs_per_block}"
    )
