"""Reading SLEAP's ``training_config.json`` (and its baseline profiles) into a :class:`TrainingConfig`."""

from __future__ import annotations

import os
from typing import Any

from napari_posetrack.core.config.coerce import _coerce
from napari_posetrack.core.config.model import ConfmapHeadConfig, PAFHeadConfig, head_configs
from napari_posetrack.core.config.optimization import AugmentationConfig
from napari_posetrack.core.config.training import TrainingConfig
from napari_posetrack.core.errors import ConfigError, FileFormatError


def _looks_like_sleap(raw: dict[str, Any]) -> bool:
    model = raw.get("model")
    return isinstance(model, dict) and isinstance(model.get("backbone"), dict) and "heads" in model


def _from_sleap_dict(raw: dict[str, Any], path: str | os.PathLike[str]) -> TrainingConfig:
    """Map the fields of SLEAP's training config onto ours (fields with no counterpart are ignored)."""
    try:
        return _convert_sleap(raw)
    except ConfigError as exc:
        raise FileFormatError(path, f"SLEAP training config: {exc}") from exc
    except (TypeError, AttributeError, ValueError) as exc:
        raise FileFormatError(path, f"SLEAP training config has an unexpected structure ({exc})") from exc


def _section(d: Any, *keys: str) -> dict[str, Any]:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d if isinstance(d, dict) else {}


def _convert_sleap(raw: dict[str, Any]) -> TrainingConfig:
    cfg = TrainingConfig()
    data = cfg.data
    labels = _section(raw, "data", "labels")
    prep = _section(raw, "data", "preprocessing")
    crop = _section(raw, "data", "instance_cropping")
    if labels.get("validation_fraction") is not None:
        data.validation_fraction = _coerce(labels["validation_fraction"], float, "data.validation_fraction")
    if prep.get("input_scaling") is not None:
        data.input_scaling = _coerce(prep["input_scaling"], float, "data.input_scaling")
    if prep.get("ensure_rgb"):
        data.channels = "rgb"
    elif prep.get("ensure_grayscale"):
        data.channels = "grayscale"
    if crop.get("crop_size") is not None:
        data.crop_size = _coerce(crop["crop_size"], int, "data.crop_size")
    if crop.get("crop_size_detection_padding") is not None:
        data.crop_padding = _coerce(crop["crop_size_detection_padding"], int, "data.crop_padding")
    if crop.get("center_on_part") is not None:
        data.anchor_part = str(crop["center_on_part"])

    heads = _section(raw, "model", "heads")
    kinds = [
        k
        for k in (
            "single_instance", "centroid", "centered_instance", "multi_instance", "multi_class_topdown",
            "multi_class_bottomup",
        )
        if heads.get(k)
    ]
    if not kinds:
        others = [k for k, v in heads.items() if v]
        raise ConfigError(f"model.heads: no supported head (this file uses {others or 'none'})")
    kind = kinds[0]
    head = heads[kind]
    if kind == "multi_class_topdown":
        # SLEAP's top-down identity model: centered-instance maps plus a class-vector head
        cfg.model.pipeline = "centered_instance"
        confmaps = head.get("confmaps") or {}
        _sleap_head(confmaps, cfg.model.heads.confmaps, "model.heads.confmaps")
        _sleap_class_vectors(head.get("class_vectors") or {}, cfg)
        head = confmaps
    elif kind == "multi_class_bottomup":
        # SLEAP's bottom-up identity model: body-part maps plus one map per class, no PAFs
        cfg.model.pipeline = "bottomup"
        _sleap_head(head.get("confmaps") or {}, cfg.model.heads.confmaps, "model.heads.confmaps")
        _sleap_class_maps(head.get("class_maps") or {}, cfg)
    elif kind == "multi_instance":
        cfg.model.pipeline = "bottomup"
        _sleap_head(head.get("confmaps") or {}, cfg.model.heads.confmaps, "model.heads.confmaps")
        _sleap_head(head.get("pafs") or {}, cfg.model.heads.pafs, "model.heads.pafs")
    elif kind == "centroid":
        cfg.model.pipeline = "centroid"
        _sleap_head(head, cfg.model.heads.centroids, "model.heads.centroids")
    else:
        cfg.model.pipeline = kind
        _sleap_head(head, cfg.model.heads.confmaps, "model.heads.confmaps")
    if isinstance(head, dict) and head.get("anchor_part") is not None:
        data.anchor_part = str(head["anchor_part"])
    # after the heads: the neck's finest level follows the heads' output stride
    _convert_sleap_backbone(_section(raw, "model", "backbone"), cfg)

    opt = _section(raw, "optimization")
    o = cfg.optimization
    for key, hint in (("batch_size", int), ("epochs", int), ("initial_learning_rate", float)):
        if opt.get(key) is not None:
            setattr(o, key, _coerce(opt[key], hint, f"optimization.{key}"))
    if opt.get("batches_per_epoch") is not None:
        o.batches_per_epoch = _coerce(opt["batches_per_epoch"], int, "optimization.batches_per_epoch")
    if opt.get("min_batches_per_epoch") is not None:
        o.min_batches_per_epoch = _coerce(
            opt["min_batches_per_epoch"], int, "optimization.min_batches_per_epoch"
        )
    if opt.get("optimizer") is not None:
        o.optimizer = str(opt["optimizer"]).lower()

    lr = _section(opt, "learning_rate_schedule")
    if lr:
        if lr.get("reduce_on_plateau") is False:
            o.schedule.kind = "none"
        for ours, theirs, hint in (
            ("factor", "reduction_factor", float),
            ("patience", "plateau_patience", int),
            ("min_delta", "plateau_min_delta", float),
            ("cooldown", "plateau_cooldown", int),
            ("min_learning_rate", "min_learning_rate", float),
        ):
            if lr.get(theirs) is not None:
                setattr(o.schedule, ours, _coerce(lr[theirs], hint, f"optimization.schedule.{ours}"))

    es = _section(opt, "early_stopping")
    if es:
        o.early_stopping.enabled = bool(es.get("stop_training_on_plateau", True))
        if es.get("plateau_min_delta") is not None:
            o.early_stopping.min_delta = _coerce(
                es["plateau_min_delta"], float, "optimization.early_stopping.min_delta"
            )
        if es.get("plateau_patience") is not None:
            o.early_stopping.patience = _coerce(
                es["plateau_patience"], int, "optimization.early_stopping.patience"
            )

    hk = _section(opt, "hard_keypoint_mining")
    if hk:
        m = o.hard_keypoint_mining
        m.enabled = bool(hk.get("online_mining", False))
        for key, hint in (("hard_to_easy_ratio", float), ("min_hard_keypoints", int), ("loss_scale", float)):
            if hk.get(key) is not None:
                setattr(m, key, _coerce(hk[key], hint, f"optimization.hard_keypoint_mining.{key}"))
        m.max_hard_keypoints = (
            None
            if hk.get("max_hard_keypoints") is None
            else _coerce(
                hk["max_hard_keypoints"], int, "optimization.hard_keypoint_mining.max_hard_keypoints"
            )
        )

    aug = _section(opt, "augmentation_config")
    if aug:
        _convert_sleap_augmentation(aug, o.augmentation)

    out = _section(raw, "outputs")
    for key in ("runs_folder", "run_name_prefix", "run_name"):
        if out.get(key) is not None:
            setattr(cfg.outputs, key, str(out[key]))
    ckpt = _section(out, "checkpointing")
    if ckpt:
        best, last = (
            bool(ckpt.get("best_model", True)),
            bool(ckpt.get("latest_model") or ckpt.get("final_model")),
        )
        cfg.outputs.keep = "both" if best and last else ("last" if last else "best")
    return cfg


def _sleap_head(src: dict[str, Any], dst: ConfmapHeadConfig | PAFHeadConfig, prefix: str) -> None:
    for key, hint in (("sigma", float), ("output_stride", int), ("loss_weight", float)):
        if src.get(key) is not None:
            setattr(dst, key, _coerce(src[key], hint, f"{prefix}.{key}"))


def _sleap_classes(src: dict[str, Any], prefix: str) -> list[str] | None:
    """The ``classes`` list of a SLEAP identity head (``None`` when not given)."""
    if src.get("classes") is None:
        return None
    classes = src["classes"]
    if not isinstance(classes, (list, tuple)):
        raise ConfigError(f"{prefix}.classes: expected a list of names, got {classes!r}")
    return [str(name) for name in classes]


def _sleap_class_maps(src: dict[str, Any], cfg: TrainingConfig) -> None:
    """SLEAP's ``class_maps`` head (classes, sigma, output stride, loss weight).

    ``offset_refinement`` has no counterpart (peaks are refined from the body-part maps).
    """
    c = cfg.model.heads.class_maps
    c.enabled = True
    prefix = "model.heads.class_maps"
    classes = _sleap_classes(src, prefix)
    if classes is not None:
        c.classes = classes
    for key, hint in (("sigma", float), ("output_stride", int), ("loss_weight", float)):
        if src.get(key) is not None:
            setattr(c, key, _coerce(src[key], hint, f"{prefix}.{key}"))


def _sleap_class_vectors(src: dict[str, Any], cfg: TrainingConfig) -> None:
    """SLEAP's ``class_vectors`` head (classes, fully connected layers and units, loss weight).

    SLEAP reads it from the encoder at its ``output_stride`` with global pooling; here it always pools
    the backbone's deepest features, so ``output_stride`` and ``global_pool`` have no counterpart.
    """
    c = cfg.model.heads.class_vectors
    c.enabled = True
    prefix = "model.heads.class_vectors"
    classes = _sleap_classes(src, prefix)
    if classes is not None:
        c.classes = classes
    for key, hint in (("num_fc_layers", int), ("num_fc_units", int), ("loss_weight", float)):
        if src.get(key) is not None:
            setattr(c, key, _coerce(src[key], hint, f"{prefix}.{key}"))


def _convert_sleap_augmentation(aug: dict[str, Any], a: AugmentationConfig) -> None:
    def prob(flag: str, on: float = 1.0) -> float:
        return on if aug.get(flag) else 0.0

    a.rotation_probability = prob("rotate")
    a.scale_probability = prob("scale")
    a.translate_probability = prob("translate")
    a.flip_probability = prob("random_flip", 0.5)
    a.uniform_noise_probability = prob("uniform_noise")
    a.gaussian_noise_probability = prob("gaussian_noise")
    a.contrast_probability = prob("contrast")
    a.brightness_probability = prob("brightness")
    if "flip_horizontal" in aug:
        a.flip_direction = "horizontal" if aug["flip_horizontal"] else "vertical"
    for ours, theirs in (
        ("rotation_min_angle", "rotation_min_angle"),
        ("rotation_max_angle", "rotation_max_angle"),
        ("scale_min", "scale_min"),
        ("scale_max", "scale_max"),
        ("translate_min", "translate_min"),
        ("translate_max", "translate_max"),
        ("uniform_noise_min", "uniform_noise_min_val"),
        ("uniform_noise_max", "uniform_noise_max_val"),
        ("gaussian_noise_mean", "gaussian_noise_mean"),
        ("gaussian_noise_std", "gaussian_noise_stddev"),
        ("contrast_min_gamma", "contrast_min_gamma"),
        ("contrast_max_gamma", "contrast_max_gamma"),
        ("brightness_min", "brightness_min_val"),
        ("brightness_max", "brightness_max_val"),
    ):
        if aug.get(theirs) is not None:
            setattr(a, ours, _coerce(aug[theirs], float, f"optimization.augmentation.{ours}"))


SLEAP_ENCODERS = {
    **{f"efficientnetb{i}": f"efficientnet_b{i}" for i in range(8)},
    **{f"resnet{d}": f"resnet{d}" for d in (18, 34, 50, 101, 152)},
    "mobilenetv2": "mobilenet_v2",
}
"""SLEAP's ``pretrained_encoder`` names (segmentation_models) that have a torchvision counterpart here."""


def _log2_level(stride: Any, name: str) -> int:
    value = _coerce(stride, int, name)
    if value < 1 or value & (value - 1):
        raise ConfigError(f"{name}: must be a power of two, got {value}")
    return value.bit_length() - 1


def _convert_sleap_backbone(backbone: dict[str, Any], cfg: TrainingConfig) -> None:
    """SLEAP's UNet, ResNet, pretrained encoder and hourglass backbones, mapped onto ours.

    SLEAP's ResNet and pretrained encoders decode with skip connections up to the output stride; here
    that is an FPN neck over the same levels. Their ImageNet weights become ``initialization:
    imagenet`` (the weights file is then looked up locally when training starts).
    """
    m = cfg.model
    if isinstance(backbone.get("unet"), dict):
        unet = backbone["unet"]
        u = m.unet
        if unet.get("stem_stride") is not None:
            u.stem_stride = _coerce(unet["stem_stride"], int, "model.unet.stem_stride")
        for key, hint in (
            ("max_stride", int),
            ("filters", int),
            ("filters_rate", float),
            ("middle_block", bool),
            ("up_interpolate", bool),
            ("convs_per_block", int),
        ):
            if unet.get(key) is not None:
                setattr(u, key, _coerce(unet[key], hint, f"model.unet.{key}"))
        return
    finest = min(int(h.output_stride) for h in head_configs(cfg).values()).bit_length() - 1
    if isinstance(backbone.get("resnet"), dict):
        resnet = backbone["resnet"]
        version = str(resnet.get("version", "ResNet50")).lower()
        if version not in SLEAP_ENCODERS.values():
            raise ConfigError(f"model.backbone.resnet.version: {resnet.get('version')!r} is not a ResNet we have")
        m.backbone = version
        m.top_level = min(5, _log2_level(resnet.get("max_stride", 32), "model.backbone.resnet.max_stride"))
        if str(resnet.get("weights", "random")).lower() != "random":
            cfg.optimization.initialization = "imagenet"
        upsampling = resnet.get("upsampling")
        if isinstance(upsampling, dict) and finest < m.top_level:
            m.neck.type = "fpn"
            m.neck.levels = list(range(max(finest, 1), m.top_level + 1))
            if upsampling.get("filters") is not None:
                m.neck.channels = _coerce(upsampling["filters"], int, "model.neck.channels")
        return
    if isinstance(backbone.get("pretrained_encoder"), dict):
        enc = backbone["pretrained_encoder"]
        name = str(enc.get("encoder", "")).lower()
        if name not in SLEAP_ENCODERS:
            raise ConfigError(
                f"model.backbone.pretrained_encoder.encoder: {enc.get('encoder')!r} has no torchvision "
                f"counterpart here; supported: {', '.join(SLEAP_ENCODERS)}"
            )
        m.backbone = SLEAP_ENCODERS[name]
        m.top_level = 5
        if enc.get("pretrained", True):
            cfg.optimization.initialization = "imagenet"
        if finest < m.top_level:
            m.neck.type = "fpn"
            m.neck.levels = list(range(max(finest, 1), m.top_level + 1))
            if enc.get("decoder_filters") is not None:
                m.neck.channels = _coerce(enc["decoder_filters"], int, "model.neck.channels")
        return
    if isinstance(backbone.get("hourglass"), dict):
        hg = backbone["hourglass"]
        m.backbone = "stacked_hourglass"
        m.top_level = min(5, _log2_level(hg.get("max_stride", 64), "model.backbone.hourglass.max_stride"))
        if hg.get("stacks") is not None:
            m.stacked_hourglass.n_stacks = _coerce(hg["stacks"], int, "model.stacked_hourglass.n_stacks")
        if hg.get("filters") is not None:
            m.stacked_hourglass.filters = _coerce(hg["filters"], int, "model.stacked_hourglass.filters")
        return
    others = [k for k, v in backbone.items() if v]
    raise ConfigError(
        f"model.backbone: {others or 'no backbone'} has no counterpart here; SLEAP's unet, resnet, "
        "pretrained_encoder and hourglass backbones are read"
    )
