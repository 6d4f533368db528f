"""The training config schema: YAML/JSON round trips, --set conversion, validation, SLEAP import."""

from __future__ import annotations

import dataclasses
import json

import pytest

from napari_posetrack.core.config import (
    FIELD_HELP,
    TrainingConfig,
    baseline_profile,
    topdown_configs,
)
from napari_posetrack.core.errors import ConfigError, FileFormatError, MissingFileError
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models.receptive_field import count_parameters, receptive_field


def _leaf_names(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaf_names(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def _edited() -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.pipeline = "bottomup"
    cfg.model.unet.filters = 8
    cfg.data.crop_size = 96
    cfg.data.anchor_part = "thorax"
    cfg.optimization.schedule.kind = "multi_step"
    cfg.optimization.schedule.milestones = [10, 20]
    cfg.optimization.gradient_clip_norm = 1.5
    cfg.optimization.augmentation.flip_probability = 0.5
    cfg.outputs.run_name = "fly run"
    return cfg


def test_defaults_are_valid_and_every_field_has_help():
    cfg = TrainingConfig().validate()
    names = list(_leaf_names(cfg))
    assert len(names) > 60
    missing = [n for n in names if n not in FIELD_HELP]
    assert missing == []
    extra = [n for n in FIELD_HELP if n not in names]
    assert extra == []
    assert all(len(text) > 20 for text in FIELD_HELP.values())


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_round_trip(tmp_path, suffix):
    cfg = _edited()
    path = tmp_path / f"config{suffix}"
    cfg.save(path)
    back = TrainingConfig.from_file(path)
    assert back == cfg
    assert back.optimization.schedule.milestones == [10, 20]
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_fills_defaults_and_rejects_unknown_fields():
    cfg = TrainingConfig.from_dict({"optimization": {"batch_size": 16}})
    assert cfg.optimization.batch_size == 16
    assert cfg.optimization.epochs == TrainingConfig().optimization.epochs
    with pytest.raises(ConfigError, match="optimization.batch_sise"):
        TrainingConfig.from_dict({"optimization": {"batch_sise": 16}})
    with pytest.raises(ConfigError, match="optimization.batch_size"):
        TrainingConfig.from_dict({"optimization": {"batch_size": "many"}})


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(MissingFileError):
        TrainingConfig.from_file(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(FileFormatError, match="broken.yaml"):
        TrainingConfig.from_file(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"model": {"filters": 3}}))
    with pytest.raises(FileFormatError, match="model.filters"):
        TrainingConfig.from_file(wrong)


def test_set_converts_command_line_strings():
    cfg = TrainingConfig()
    cfg.set("optimization.batch_size", "8")
    cfg.set("optimization.initial_learning_rate", "3e-4")
    cfg.set("optimization.gradient_clip_norm", "none")
    cfg.set("optimization.mixed_precision", "true")
    cfg.set("optimization.schedule.milestones", "50,80")
    cfg.set("data.crop_size", "128")
    cfg.set("outputs.run_name", "007")
    cfg.set("model.heads.pafs.sigma", "20")
    assert cfg.optimization.batch_size == 8
    assert cfg.optimization.initial_learning_rate == pytest.approx(3e-4)
    assert cfg.optimization.gradient_clip_norm is None
    assert cfg.optimization.mixed_precision is True
    assert cfg.optimization.schedule.milestones == [50, 80]
    assert cfg.data.crop_size == 128
    assert cfg.outputs.run_name == "007"
    assert cfg.model.heads.pafs.sigma == 20.0
    assert cfg.get("optimization.batch_size") == 8
    with pytest.raises(ConfigError, match="optimization.batchsize"):
        cfg.set("optimization.batchsize", "8")
    with pytest.raises(ConfigError, match="optimization.epochs"):
        cfg.set("optimization.epochs", "1.5")
    with pytest.raises(ConfigError, match="section"):
        cfg.set("optimization.schedule", "none")


FLY = Skeleton(["head", "thorax", "abdomen"], [(1, 0), (1, 2)])


@pytest.mark.parametrize(
    "key, value, field",
    [
        ("data.crop_size", 100, "data.crop_size"),
        ("data.anchor_part", "tail", "data.anchor_part"),
        ("model.heads.confmaps.sigma", 0.0, "model.heads.confmaps.sigma"),
        ("model.heads.pafs.sigma", -1.0, "model.heads.pafs.sigma"),
        ("optimization.initial_learning_rate", -1e-4, "optimization.initial_learning_rate"),
        ("model.pipeline", "sideways", "model.pipeline"),
        ("optimization.optimizer", "lion", "optimization.optimizer"),
        ("model.heads.confmaps.output_stride", 32, "model.heads.confmaps.output_stride"),
        ("model.heads.confmaps.output_stride", 3, "model.heads.confmaps.output_stride"),
        ("model.unet.max_stride", 12, "model.unet.max_stride"),
        ("optimization.schedule.kind", "cosine", "optimization.schedule.kind"),
        (
            "optimization.augmentation.rotation_probability",
            1.5,
            "optimization.augmentation.rotation_probability",
        ),
        ("optimization.augmentation.scale_min", 2.0, "optimization.augmentation.scale_min"),
        ("optimization.augmentation.flip_direction", "diagonal", "optimization.augmentation.flip_direction"),
        ("optimization.gradient_clip_norm", 0.0, "optimization.gradient_clip_norm"),
        ("optimization.initialization", "/no/such/checkpoint.pt", "optimization.initialization"),
        ("outputs.keep", "all", "outputs.keep"),
        ("data.validation_fraction", 1.0, "data.validation_fraction"),
    ],
)
def test_validation_names_the_field(key, value, field):
    cfg = TrainingConfig()
    cfg.set(key, value)
    with pytest.raises(ConfigError) as info:
        cfg.validate(skeleton=FLY)
    assert str(info.value).startswith(field)


def test_valid_anchor_and_crop_pass():
    cfg = TrainingConfig()
    cfg.data.anchor_part = "thorax"
    cfg.data.crop_size = 128
    cfg.validate(skeleton=FLY)
    cfg.model.pipeline = "bottomup"
    cfg.data.anchor_part = None
    with pytest.raises(ConfigError, match="edge"):
        cfg.validate(skeleton=Skeleton(["a", "b"]))


def _sleap_training_config() -> dict:
    """A SLEAP training_config.json for a centered-instance model, with SLEAP's field names."""
    return {
        "data": {
            "labels": {"validation_fraction": 0.15, "skeletons": []},
            "preprocessing": {
                "ensure_rgb": False,
                "ensure_grayscale": True,
                "input_scaling": 0.5,
                "pad_to_stride": None,
            },
            "instance_cropping": {
                "center_on_part": "thorax",
                "crop_size": 144,
                "crop_size_detection_padding": 24,
            },
        },
        "model": {
            "backbone": {
                "leap": None,
                "unet": {
                    "stem_stride": None,
                    "max_stride": 16,
                    "output_stride": 2,
                    "filters": 24,
                    "filters_rate": 1.5,
                    "middle_block": True,
                    "up_interpolate": False,
                    "stacks": 1,
                    "convs_per_block": 2,
                },
                "hourglass": None,
                "resnet": None,
                "pretrained_encoder": None,
            },
            "heads": {
                "single_instance": None,
                "centroid": None,
                "centered_instance": {
                    "anchor_part": "thorax",
                    "part_names": None,
                    "sigma": 1.5,
                    "output_stride": 2,
                },
                "multi_instance": None,
            },
        },
        "optimization": {
            "augmentation_config": {
                "rotate": True,
                "rotation_min_angle": -180.0,
                "rotation_max_angle": 180.0,
                "scale": True,
                "scale_min": 0.8,
                "scale_max": 1.2,
                "uniform_noise": False,
                "gaussian_noise": True,
                "gaussian_noise_mean": 2.0,
                "gaussian_noise_stddev": 3.0,
                "contrast": False,
                "brightness": True,
                "brightness_min_val": 1.0,
                "brightness_max_val": 9.0,
                "random_flip": True,
                "flip_horizontal": False,
            },
            "batch_size": 8,
            "batches_per_epoch": None,
            "min_batches_per_epoch": 100,
            "epochs": 150,
            "optimizer": "adam",
            "initial_learning_rate": 0.0002,
            "learning_rate_schedule": {
                "reduce_on_plateau": True,
                "reduction_factor": 0.25,
                "plateau_min_delta": 1e-08,
                "plateau_patience": 7,
                "plateau_cooldown": 2,
                "min_learning_rate": 1e-08,
            },
            "hard_keypoint_mining": {
                "online_mining": True,
                "hard_to_easy_ratio": 3.0,
                "min_hard_keypoints": 1,
                "max_hard_keypoints": None,
                "loss_scale": 4.0,
            },
            "early_stopping": {
                "stop_training_on_plateau": True,
                "plateau_min_delta": 1e-08,
                "plateau_patience": 12,
            },
        },
        "outputs": {
            "run_name": "flies.centered_instance",
            "run_name_prefix": "",
            "runs_folder": "models",
            "checkpointing": {"best_model": True, "latest_model": True},
        },
    }


def test_sleap_training_config_import(tmp_path):
    path = tmp_path / "training_config.json"
    path.write_text(json.dumps(_sleap_training_config()))
    cfg = TrainingConfig.from_sleap_json(path)
    assert TrainingConfig.from_file(path) == cfg  # detected automatically
    assert cfg.model.pipeline == "centered_instance"
    assert cfg.data.validation_fraction == 0.15
    assert cfg.data.input_scaling == 0.5
    assert cfg.data.channels == "grayscale"
    assert cfg.data.crop_size == 144 and cfg.data.crop_padding == 24
    assert cfg.data.anchor_part == "thorax"
    u = cfg.model.unet
    assert (u.stem_stride, u.max_stride, u.filters, u.filters_rate) == (None, 16, 24, 1.5)
    assert (u.middle_block, u.up_interpolate, u.convs_per_block) == (True, False, 2)
    assert cfg.model.heads.confmaps.sigma == 1.5 and cfg.model.heads.confmaps.output_stride == 2
    o = cfg.optimization
    assert (o.batch_size, o.epochs, o.initial_learning_rate, o.min_batches_per_epoch) == (8, 150, 2e-4, 100)
    assert o.schedule.kind == "reduce_on_plateau" and o.schedule.factor == 0.25 and o.schedule.patience == 7
    assert o.early_stopping.patience == 12
    assert o.hard_keypoint_mining.enabled and o.hard_keypoint_mining.hard_to_easy_ratio == 3.0
    a = o.augmentation
    assert a.rotation_probability == 1.0 and a.rotation_min_angle == -180.0
    assert a.scale_probability == 1.0 and a.scale_max == 1.2
    assert a.uniform_noise_probability == 0.0 and a.gaussian_noise_std == 3.0
    assert a.brightness_probability == 1.0 and a.brightness_max == 9.0
    assert a.flip_probability == 0.5 and a.flip_direction == "vertical"
    assert cfg.outputs.run_name == "flies.centered_instance" and cfg.outputs.keep == "both"
    cfg.validate(skeleton=FLY)


def test_sleap_bottomup_and_unsupported_backbone(tmp_path):
    raw = _sleap_training_config()
    raw["model"]["heads"] = {
        "centered_instance": None,
        "multi_instance": {
            "confmaps": {"part_names": None, "sigma": 2.5, "output_stride": 4, "loss_weight": 1.0},
            "pafs": {"edges": None, "sigma": 75.0, "output_stride": 8, "loss_weight": 2.0},
        },
    }
    path = tmp_path / "bu.json"
    path.write_text(json.dumps(raw))
    cfg = TrainingConfig.from_sleap_json(path)
    assert cfg.model.pipeline == "bottomup"
    assert cfg.model.heads.pafs.sigma == 75.0 and cfg.model.heads.pafs.loss_weight == 2.0
    assert cfg.model.heads.pafs.output_stride == 8
    raw["model"]["backbone"] = {"unet": None, "leap": {"max_stride": 8}}
    path.write_text(json.dumps(raw))
    with pytest.raises(FileFormatError, match="leap.*no counterpart"):
        TrainingConfig.from_sleap_json(path)


def test_sleap_resnet_encoder_and_hourglass_backbones_map_onto_the_zoo(tmp_path):
    raw = _sleap_training_config()
    path = tmp_path / "zoo.json"
    raw["model"]["backbone"] = {
        "unet": None,
        "resnet": {"version": "ResNet50", "weights": "frozen", "max_stride": 32, "output_stride": 4,
                   "upsampling": {"method": "interpolation", "skip_connections": "add", "filters": 64}},
    }
    path.write_text(json.dumps(raw))
    cfg = TrainingConfig.from_sleap_json(path)
    head_level = cfg.model.heads.confmaps.output_stride.bit_length() - 1
    assert (cfg.model.backbone, cfg.model.top_level, cfg.model.neck.type) == ("resnet50", 5, "fpn")
    assert cfg.model.neck.levels == list(range(head_level, 6)) and cfg.model.neck.channels == 64
    assert cfg.optimization.initialization == "imagenet"
    with pytest.raises(ConfigError, match="data.crop_size: 144 is not a multiple of the model's max stride"):
        cfg.validate(skeleton=FLY, check_paths=False)  # SLEAP's crop fitted its UNet's stride of 16
    cfg.data.crop_size = 160
    cfg.validate(skeleton=FLY, check_paths=False)

    raw["model"]["backbone"] = {"pretrained_encoder": {"encoder": "efficientnetb0", "pretrained": False}}
    path.write_text(json.dumps(raw))
    cfg = TrainingConfig.from_sleap_json(path)
    assert cfg.model.backbone == "efficientnet_b0" and cfg.optimization.initialization == "random"
    cfg.data.crop_size = 160
    cfg.validate(skeleton=FLY, check_paths=False)
    raw["model"]["backbone"] = {"pretrained_encoder": {"encoder": "densenet121"}}
    path.write_text(json.dumps(raw))
    with pytest.raises(FileFormatError, match="densenet121.*no torchvision counterpart"):
        TrainingConfig.from_sleap_json(path)

    raw["model"]["backbone"] = {"hourglass": {"max_stride": 32, "stacks": 3, "filters": 32}}
    path.write_text(json.dumps(raw))
    cfg = TrainingConfig.from_sleap_json(path)
    assert cfg.model.backbone == "stacked_hourglass" and cfg.model.stacked_hourglass.n_stacks == 3
    assert cfg.model.stacked_hourglass.filters == 32 and cfg.model.top_level == 5


@pytest.mark.parametrize("name", ["single", "topdown", "bottomup"])
def test_baseline_profiles(name):
    small = baseline_profile(name, receptive_field="small", frame_size=(1024, 1024)).validate()
    large = baseline_profile(name, receptive_field="large", frame_size=(1024, 1024)).validate()
    if name == "topdown":
        centroid, centered = topdown_configs(large)
        assert centroid.model.pipeline == "centroid" and centered.model.pipeline == "centered_instance"
        assert centroid.data.input_scaling == 0.5 and centered.data.input_scaling == 1.0
        assert centroid.outputs.run_name_prefix.startswith("centroid")
        small = topdown_configs(small)[1]
        large = centered
    else:
        assert large.data.input_scaling == 0.5
    assert receptive_field(large).input_pixels > receptive_field(small).input_pixels
    assert (
        receptive_field(large).image_pixels == receptive_field(large).input_pixels / large.data.input_scaling
    )
    assert 1e5 < count_parameters(large, n_nodes=13, n_edges=12) < 1e8
