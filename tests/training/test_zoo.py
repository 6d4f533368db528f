"""The model zoo: torchvision backbones, FPN / BiFPN necks, heads on several levels or upsampled,
ImageNet and cross-project initialisation, and the config checks that guard them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_posetrack.core.config import TrainingConfig, baseline_profile
from napari_posetrack.core.config.model import TORCHVISION_BACKBONES, training_outputs
from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import build_model

# channels at strides 2..32, from shared/notes/torchvision-backbones.md (measured with torchvision 0.29.1)
NOTED_CHANNELS = {
    "resnet18": (64, 64, 128, 256, 512),
    "resnet34": (64, 64, 128, 256, 512),
    "resnet50": (64, 256, 512, 1024, 2048),
    "resnet101": (64, 256, 512, 1024, 2048),
    "resnet152": (64, 256, 512, 1024, 2048),
    "efficientnet_b0": (16, 24, 40, 112, 1280),
    "efficientnet_b1": (16, 24, 40, 112, 1280),
    "efficientnet_b2": (16, 24, 48, 120, 1408),
    "efficientnet_b3": (24, 32, 48, 136, 1536),
    "efficientnet_b4": (24, 32, 56, 160, 1792),
    "efficientnet_b5": (24, 40, 64, 176, 2048),
    "efficientnet_b6": (32, 40, 72, 200, 2304),
    "efficientnet_b7": (32, 48, 80, 224, 2560),
    "efficientnet_v2_s": (24, 48, 64, 160, 1280),
    "efficientnet_v2_m": (24, 48, 80, 176, 1280),
    "efficientnet_v2_l": (32, 64, 96, 224, 1280),
    "mobilenet_v2": (16, 24, 32, 96, 1280),
    "mobilenet_v3_small": (16, 16, 24, 48, 576),
    "mobilenet_v3_large": (16, 24, 40, 112, 960),
}

SKELETON = Skeleton(nodes=["head", "thorax", "abdomen", "wing"], edges=[("thorax", "head"), ("thorax", "abdomen"),
                                                                         ("thorax", "wing")])


@pytest.fixture(autouse=True)
def _few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def zoo_config(backbone: str, *, neck: str = "none", top_level: int = 5, stride: int = 4) -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.backbone = backbone
    cfg.model.top_level = top_level
    cfg.model.neck.type = neck
    cfg.model.heads.confmaps.output_stride = stride
    return cfg


def test_every_torchvision_backbone_has_its_levels_and_is_cut_at_the_top_level():
    """Each name builds, returns {stride: features} with torchvision's channels, and stops at 2**top."""
    from napari_posetrack.core.models.torchvision_backbones import TorchvisionBackbone

    assert set(NOTED_CHANNELS) == set(TORCHVISION_BACKBONES)
    image = torch.rand(1, 1, 128, 128)
    for name, channels in NOTED_CHANNELS.items():
        full = TorchvisionBackbone(name, in_channels=1, top_level=5).eval()
        with torch.inference_mode():
            feats = full(image)
        assert list(feats) == [2, 4, 8, 16, 32]
        for (stride, f), c in zip(feats.items(), channels):
            assert f.shape == (1, c, 128 // stride, 128 // stride), (name, stride)
        assert full.out_channels == dict(zip([2, 4, 8, 16, 32], channels))
        # one cut per name (building the largest networks is most of this test's time); the pose
        # models below are cut at every top level
        top = 3 if name.startswith(("efficientnet_b", "efficientnet_v2")) else 4
        cut = TorchvisionBackbone(name, in_channels=1, top_level=top).eval()
        with torch.inference_mode():
            out = cut(image)
        assert list(out) == [2**k for k in range(1, top + 1)], name
        # truncated, not just hidden: the stages past the top level are gone
        assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in full.parameters())


def test_pose_models_on_torchvision_backbones_forward_at_every_top_level():
    image = torch.rand(1, 1, 128, 128)
    for name in ("resnet18", "efficientnet_b0", "mobilenet_v3_small"):
        for top in (3, 4, 5):
            model = build_model(zoo_config(name, top_level=top), SKELETON, in_channels=1).eval()
            assert model.max_stride == 2**top
            with torch.inference_mode():
                out = model(image)
            assert out["confmaps"].shape == (1, 4, 32, 32)
            # no neck: the head reads the top level and learns its way up to stride 4
            assert model.heads["confmaps"].read_stride == 2**top
            assert model.heads["confmaps"].upsample_steps == top - 2


def test_grey_stem_sums_pretrained_rgb_kernels(tmp_path):
    """A grey image through the one-channel stem gives what the RGB network gives on R = G = B."""
    import torchvision

    from napari_posetrack.core.models.torchvision_backbones import TorchvisionBackbone

    torch.manual_seed(0)
    weights = tmp_path / "resnet18-random.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    grey = TorchvisionBackbone("resnet18", 1, 3, imagenet_weights=weights).eval()
    rgb = TorchvisionBackbone("resnet18", 3, 3, imagenet_weights=weights).eval()
    assert grey.stages[0][0].weight.shape[1] == 1
    image = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        a = grey(image)[8]
        # the grey model's normalisation uses the mean of ImageNet's per-channel statistics
        mean, std = grey.mean.flatten()[0], grey.std.flatten()[0]
        rgb.mean.fill_(float(mean))
        rgb.std.fill_(float(std))
        b = rgb(image.repeat(1, 3, 1, 1))[8]
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_imagenet_weights_load_from_a_local_file_and_a_missing_file_is_named(tmp_path, monkeypatch):
    import torchvision

    from napari_posetrack.core.models.torchvision_backbones import (
        TorchvisionBackbone,
        find_imagenet_weights,
        imagenet_weights_file,
    )

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match=r"mobilenet_v3_small-[0-9a-f]+\.pth.*nothing is downloaded|nothing is "
                       r"downloaded.*mobilenet_v3_small-[0-9a-f]+\.pth"):
        find_imagenet_weights("mobilenet_v3_small")
    cached = tmp_path / "hub" / "checkpoints" / imagenet_weights_file("mobilenet_v3_small")
    cached.parent.mkdir(parents=True)
    reference = torchvision.models.mobilenet_v3_small()
    torch.save(reference.state_dict(), cached)
    assert find_imagenet_weights("mobilenet_v3_small") == cached

    backbone = TorchvisionBackbone("mobilenet_v3_small", 3, 5)
    backbone.load_imagenet(cached)
    torch.testing.assert_close(backbone.stages[2][0].block[0][0].weight, reference.features[2].block[0][0].weight)

    # a weights file of another architecture is refused, naming the file and the right one
    other = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    with pytest.raises(ConfigError, match=r"resnet18\.pth.*does not hold mobilenet_v3_small weights"):
        backbone.load_imagenet(other)
    with pytest.raises(ConfigError, match="pretrained_weights.*not found"):
        find_imagenet_weights("mobilenet_v3_small", tmp_path / "nope.pth")


@pytest.mark.parametrize("neck", ["fpn", "bifpn"])
def test_necks_make_extra_levels_with_equal_channels(neck):
    """levels 3-7 on a backbone with levels 1-5: 6 and 7 come from stride-2 convolutions."""
    cfg = zoo_config("resnet18", neck=neck, stride=8)
    cfg.model.neck.levels = [3, 4, 5, 6, 7]
    cfg.model.neck.channels = 32
    cfg.model.neck.layers = 2
    model = build_model(cfg, SKELETON, in_channels=1).eval()
    assert model.max_stride == 128
    with torch.inference_mode():
        feats = model.neck(model.backbone(torch.rand(1, 1, 256, 256)))
    assert {s: tuple(f.shape) for s, f in feats.items()} == {
        s: (1, 32, 256 // s, 256 // s) for s in (8, 16, 32, 64, 128)
    }
    if neck == "fpn":
        from torchvision.ops import FeaturePyramidNetwork

        assert isinstance(model.neck.fpn, FeaturePyramidNetwork)
    else:
        assert len(model.neck.layers) == 2


def test_bifpn_fusion_is_fast_normalised():
    from napari_posetrack.core.models.necks import FastFusion

    fusion = FastFusion(3, 4)
    fusion.conv = torch.nn.Identity()
    with torch.no_grad():
        fusion.weights.copy_(torch.tensor([1.0, 3.0, -2.0]))  # a negative weight counts as 0
    a, b, c = (torch.full((1, 4, 2, 2), v) for v in (1.0, 5.0, 100.0))
    out = fusion([a, b, c])
    torch.testing.assert_close(out, torch.full((1, 4, 2, 2), (1.0 + 15.0) / (4.0 + fusion.eps)))


def test_a_head_on_several_levels_shares_its_weights_and_trains_on_each():
    cfg = zoo_config("mobilenet_v3_small", neck="fpn", stride=8)
    cfg.model.neck.channels = 16
    cfg.model.heads.confmaps.levels = [3, 4, 5]
    model = build_model(cfg, SKELETON, in_channels=1)
    assert set(training_outputs(cfg)) == {"confmaps", "confmaps@16", "confmaps@32"}
    model.train()
    out = model(torch.rand(2, 1, 128, 128))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {
        "confmaps": (16, 16), "confmaps@16": (8, 8), "confmaps@32": (4, 4)
    }
    feats = model.neck(model.backbone(torch.rand(1, 1, 128, 128)))
    head = model.heads["confmaps"]
    torch.testing.assert_close(head.at(feats[16]), head.conv(feats[16]))
    model.eval()
    with torch.inference_mode():
        assert list(model(torch.rand(1, 1, 128, 128))) == ["confmaps"]  # inference reads the finest level


def test_head_finer_than_the_neck_upsamples_and_targets_follow():
    from napari_posetrack.core.training.targets import model_targets

    cfg = zoo_config("resnet18", neck="bifpn", stride=2)
    cfg.model.neck.channels = 16
    model = build_model(cfg, SKELETON, in_channels=1).eval()
    head = model.heads["confmaps"]
    assert (head.read_stride, head.upsample_steps) == (8, 2)
    with torch.inference_mode():
        out = model(torch.rand(1, 1, 64, 64))
    points = torch.tensor([[[[10.0, 12.0], [20.0, 20.0], [30.0, 40.0], [float("nan"), float("nan")]]]])
    targets = model_targets(cfg, points, (64, 64))
    assert out["confmaps"].shape == targets["confmaps"].shape == (1, 4, 32, 32)


def test_config_errors_name_the_field_and_the_fix():
    def error(**changes) -> str:
        cfg = zoo_config("resnet18", neck="fpn", stride=8)
        for key, value in changes.items():
            cfg.set(key.replace("__", "."), value)
        with pytest.raises(ConfigError) as info:
            cfg.validate(SKELETON, check_paths=False)
        return str(info.value)

    assert "model.backbone: unknown backbone 'resnet19'" in error(model__backbone="resnet19")
    assert "model.neck.type: unknown neck 'fpm'" in error(model__neck__type="fpm")
    msg = error(model__neck__levels="[3, 4, 5, 6, 7, 8]")
    assert msg.startswith("model.neck.levels: level 8 is above what the backbone and neck can make")
    assert "model.neck.levels: must be consecutive" in error(model__neck__levels="[3, 5]")
    assert "model.top_level: must be 2 to 5" in error(model__top_level="6")
    assert "model.heads.confmaps.levels: level 6 is not one the neck makes" in error(
        model__heads__confmaps__levels="[3, 6]"
    )
    assert "set it to 8" in error(model__heads__confmaps__levels="[3, 4]", model__heads__confmaps__output_stride="16")
    no_neck = error(model__neck__type="none", model__heads__confmaps__levels="[3, 4]")
    assert "model.heads.confmaps.levels" in no_neck and "fpn or bifpn" in no_neck
    assert "model.heads.confmaps.output_stride" in error(model__heads__confmaps__output_stride="64")
    assert "data.input_size: [200, 256] is not a multiple of the model's max stride (32); use [224, 256]" in error(
        data__input_size="[200, 256]"
    )
    assert "ImageNet weights exist only for torchvision backbones" in error(
        model__backbone="unet", model__neck__type="none", optimization__initialization="imagenet"
    )


def test_config_round_trips_the_zoo_fields(tmp_path):
    cfg = zoo_config("efficientnet_b0", neck="bifpn", stride=8)
    cfg.model.neck.levels = [3, 4, 5, 6]
    cfg.model.heads.confmaps.levels = [3, 4]
    cfg.model.heads.confmaps.posture_graph = True
    cfg.optimization.initialization = "imagenet"
    cfg.optimization.pretrained_weights = "/weights/efficientnet_b0.pth"
    cfg.data.input_size = [256, 320]
    cfg.save(tmp_path / "zoo.yaml")
    assert TrainingConfig.from_file(tmp_path / "zoo.yaml") == cfg


def tiny_zoo_config(pipeline: str, backbone: str, neck: str, runs) -> TrainingConfig:
    cfg = baseline_profile(pipeline)
    cfg.model.backbone = backbone
    cfg.model.top_level = 4
    cfg.model.neck.type = neck
    cfg.model.neck.channels = 16
    cfg.model.neck.levels = [2, 3, 4]
    cfg.model.heads.confmaps.output_stride = 4
    cfg.model.heads.centroids.output_stride = 4
    cfg.model.heads.pafs.output_stride = 4
    cfg.data.validation_fraction = 0.25
    cfg.optimization.batch_size = 2
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = cfg.optimization.min_batches_per_epoch = 2
    cfg.optimization.augmentation.rotation_probability = 0.0
    cfg.outputs.runs_folder = str(runs)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pipeline", "backbone", "neck"),
    [
        ("single_instance", "resnet18", "fpn"),
        ("bottomup", "efficientnet_b0", "bifpn"),
        ("topdown", "mobilenet_v3_small", "none"),
    ],
)
def test_zoo_models_train_and_predict_through_every_pipeline(pipeline, backbone, neck, small_sample, tmp_path):
    """A few real steps per family and neck, then prediction on the sample video with the trained runs."""
    from napari_posetrack.core.inference.api import predict_labels
    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.labels import PREDICTED
    from napari_posetrack.core.training.run import train, train_topdown

    labels = load_labels(small_sample["labels"])
    labels = labels.subset(labels.rows()[labels.instances.frame < 12])
    cfg = tiny_zoo_config(pipeline, backbone, neck, tmp_path / "runs")
    if pipeline == "bottomup":
        cfg.model.heads.pafs.levels = [2, 3]
    if pipeline == "topdown":
        cfg.data.crop_size = 48
        runs = list(train_topdown(cfg, labels, device="cpu"))
    else:
        if pipeline == "single_instance":
            labels = labels.subset(labels.rows(track=0))
        runs = [train(cfg, labels, device="cpu")]
    # two steps teach little: a threshold of 0 keeps every peak, so each stage of the pipeline runs
    predictor = load_pipeline(runs, InferenceOptions(peak_threshold=0.0, device="cpu"))
    target = load_labels(small_sample["labels"])
    before = target.n_instances
    added = predict_labels(target, predictor, target="0-3")
    assert added > 0 and target.n_instances == before + added
    new = target.instances.kind == PREDICTED
    assert set(target.instances.frame[new].tolist()) <= {0, 1, 2, 3}
    assert np.isfinite(target.instances.points[new]).any()


@pytest.mark.slow
def test_cli_trains_each_family_compares_them_and_reports_initialisation(small_sample, tmp_path, capsys):
    """`posetrack train --set model.backbone=NAME` per family, `posetrack evaluate --runs` compares them,
    and a run of another model type starts from one of them."""
    from napari_posetrack.core.cli import main as posetrack
    from napari_posetrack.core.io import load_labels, save_labels
    from napari_posetrack.core.training.run import load_run

    labels = load_labels(small_sample["labels"])
    labels = labels.subset(labels.rows()[(labels.instances.frame < 8) & (labels.instances.track == 0)])
    path = tmp_path / "few.slp"
    save_labels(labels, path)
    runs = tmp_path / "runs"
    common = ["--set", "optimization.batches_per_epoch=1", "--set", "optimization.min_batches_per_epoch=1",
              "--set", "optimization.epochs=1", "--set", "optimization.batch_size=2",
              "--set", "data.validation_fraction=0.25", "--set", "model.top_level=4",
              "--set", "model.neck.levels=[2,3,4]", "--set", "model.neck.channels=16",
              "--set", "model.heads.confmaps.output_stride=4", "--set", "model.heads.centroids.output_stride=4",
              "--runs-folder", str(runs), "--quiet"]
    families = (("resnet18", "fpn"), ("efficientnet_b0", "bifpn"), ("mobilenet_v3_small", "none"))
    for name, neck in families:
        code = posetrack(["train", "--profile", "single", str(path), "--set", f"model.backbone={name}",
                          "--set", f"model.neck.type={neck}", "--set", f"outputs.run_name={name}", *common])
        assert code == 0, capsys.readouterr().err
        config, _, model = load_run(runs / name)
        assert config.model.backbone == name and type(model.backbone).__name__ == "TorchvisionBackbone"

    capsys.readouterr()
    assert posetrack(["evaluate", "--runs", str(runs), "--labels", str(path), "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    for architecture in ("resnet18/4 + fpn 2-4", "efficientnet_b0/4 + bifpn 2-4", "mobilenet_v3_small/4"):
        assert architecture in table

    # a centroid model (other heads) starts from the single-instance resnet18 run: backbone and neck load
    code = posetrack(["train", "--profile", "centroid", str(path), "--set", "model.backbone=resnet18",
                      "--set", "model.neck.type=fpn", "--set", f"optimization.initialization={runs / 'resnet18'}",
                      "--set", "outputs.run_name=from_other", *[a for a in common if a != "--quiet"]])
    err = capsys.readouterr().err
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("initialised from"))
    assert "left random: heads.centroids" in line
    assert "backbone" not in line.split("left random:")[1]
