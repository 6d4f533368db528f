"""DeepPoseKit's Stacked DenseNet and Stacked Hourglass: shapes per stack, options, intermediate supervision,
real training steps and prediction, and the config checks that guard them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_posetrack.core.config import TrainingConfig, baseline_profile
from napari_posetrack.core.config.model import DPK_BACKBONES, training_outputs
from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import build_model
from napari_posetrack.core.models.dpk import StackedDenseNet, StackedHourglass, build_dpk_backbone
from napari_posetrack.core.training.targets import model_targets
from napari_posetrack.core.training.trainer import head_losses

SKELETON = Skeleton(
    ["head", "thorax", "abdomen", "wingL", "wingR"], [(1, 0), (1, 2), (1, 3), (1, 4)], [(3, 4)]
)
FLY13 = Skeleton(
    [f"part{i}" for i in range(13)], [(1, 0), (1, 2), *((1, i) for i in range(3, 11)), (0, 11), (0, 12)]
)


@pytest.fixture(autouse=True)
def _few_threads():
    # the CI machine has 2 cores shared by everything: one thread avoids oversubscription
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def dpk_config(backbone: str, *, top_level: int = 5, stride: int = 4, **options) -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.backbone = backbone
    cfg.model.top_level = top_level
    cfg.model.heads.confmaps.output_stride = stride
    spec = getattr(cfg.model, backbone)
    for key, value in options.items():
        setattr(spec, key, value)
    return cfg


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("backbone", DPK_BACKBONES)
@pytest.mark.parametrize(("top_level", "stride"), [(3, 4), (4, 2), (5, 4), (5, 16)])
def test_each_stack_returns_features_at_the_head_stride(backbone, top_level, stride):
    cfg = dpk_config(backbone, top_level=top_level, stride=stride)
    torch.manual_seed(0)
    net = build_dpk_backbone(cfg, 1)
    assert net.max_stride == 2**top_level
    assert list(net.out_channels) == [stride]
    with torch.no_grad():
        out = net(torch.rand(1, 1, 128, 128))
    assert isinstance(out, list) and len(out) == 2  # default n_stacks
    channels = net.out_channels[stride]
    for stack in out:
        assert list(stack) == [stride]
        assert stack[stride].shape == (1, channels, 128 // stride, 128 // stride)
        assert torch.isfinite(stack[stride]).all()
    assert not torch.equal(out[0][stride], out[1][stride])
    with pytest.raises(ValueError, match="pad_to_stride"):
        net(torch.rand(1, 1, 128 + 2**top_level // 2, 128))


@pytest.mark.parametrize("backbone", DPK_BACKBONES)
def test_pose_model_supervises_every_stack_while_training_and_reads_the_last_at_inference(backbone):
    cfg = dpk_config(backbone, top_level=4, n_stacks=3)
    torch.manual_seed(0)
    model = build_model(cfg, SKELETON)
    images = torch.rand(2, 1, 64, 64)
    model.train()
    out = model(images)
    assert list(out) == ["confmaps#0", "confmaps#1", "confmaps"]
    assert set(out) == set(training_outputs(cfg))
    for maps in out.values():
        assert maps.shape == (2, 5, 16, 16)
    # the intermediate stacks' losses reach the weights of the stacks before them
    targets = model_targets(cfg, torch.rand(2, 1, 5, 2) * 64, (64, 64), SKELETON.edge_array())
    losses = head_losses(out, targets)
    assert set(losses) == set(out)
    losses["confmaps#0"].sum().backward()
    stacks = model.backbone.stacks if backbone == "stacked_densenet" else model.backbone.hourglasses
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stacks[0].parameters())
    assert all(p.grad is None for p in stacks[-1].parameters())  # stack #0's maps do not depend on later stacks
    model.eval()
    with torch.no_grad():
        final = model(images)
    assert list(final) == ["confmaps"] and final["confmaps"].shape == (2, 5, 16, 16)


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "selu", "separable": False, "n_stacks": 1},
        {"activation": "relu", "separable": False, "n_stacks": 3},
        {"activation": "selu", "separable": True},
        {"activation": "relu", "separable": True},
        {"growth_rate": 12, "bottleneck_factor": 4, "compression_factor": 1.0},
        {"growth_rate": 8, "compression_factor": 0.25, "n_stacks": 1},
    ],
)
def test_stacked_densenet_options(options):
    cfg = dpk_config("stacked_densenet", top_level=4, **options)
    torch.manual_seed(0)
    net = build_dpk_backbone(cfg, 3)
    spec = cfg.model.stacked_densenet
    assert isinstance(net, StackedDenseNet) and len(net.stacks) == spec.n_stacks
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bool(norms) == (spec.activation == "relu")  # SELU is self-normalising: no batch norm
    assert any(isinstance(m, nn.SELU) for m in net.modules()) == (spec.activation == "selu")
    depthwise = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert bool(depthwise) == spec.separable
    assert all(m.groups == m.in_channels == m.out_channels and m.kernel_size == (3, 3) for m in depthwise)
    # every dense layer's 1x1 bottleneck is bottleneck_factor * growth_rate wide, its 3x3 adds growth_rate
    layer = net.stacks[0].entry.layers[0]
    assert layer[0][0].out_channels == spec.bottleneck_factor * spec.growth_rate
    assert layer[1][-2 if spec.activation == "selu" else -3].out_channels == spec.growth_rate
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64))
    assert len(out) == spec.n_stacks
    assert all(o[4].shape == (1, net.out_channels[4], 16, 16) for o in out)


def test_separable_convolutions_save_parameters_and_compression_narrows_the_stacks():
    plain = build_dpk_backbone(dpk_config("stacked_densenet"), 1)
    separable = build_dpk_backbone(dpk_config("stacked_densenet", separable=True), 1)
    assert n_params(separable) < 0.8 * n_params(plain)
    narrow = build_dpk_backbone(dpk_config("stacked_densenet", compression_factor=0.25), 1)
    assert n_params(narrow) < n_params(plain)
    assert max(m.in_channels for m in narrow.modules() if isinstance(m, nn.Conv2d)) < max(
        m.in_channels for m in plain.modules() if isinstance(m, nn.Conv2d)
    )


def test_selu_initialisation_keeps_every_stack_normalised():
    """LeCun-normal weights + SELU: mean near 0, spread near 1 through the stacks, with no batch norm."""
    cfg = dpk_config("stacked_densenet", n_stacks=3)
    torch.manual_seed(0)
    net = build_dpk_backbone(cfg, 1)
    conv = net.stacks[1].entry.layers[0][1][0]
    fan_in = conv.weight[0].numel()
    assert abs(float(conv.weight.std()) * fan_in**0.5 - 1.0) < 0.05
    with torch.no_grad():
        out = net(torch.randn(2, 1, 128, 128))
    for stack in out:
        features = stack[4]
        assert abs(float(features.mean())) < 0.25
        assert 0.7 < float(features.std()) < 1.4


@pytest.mark.parametrize(
    "options",
    [
        {"filters": 32, "bottleneck_factor": 1, "n_stacks": 1},
        {"filters": 64, "bottleneck_factor": 4, "n_stacks": 3},
        {"filters": 24, "bottleneck_factor": 2},
    ],
)
def test_stacked_hourglass_options(options):
    cfg = dpk_config("stacked_hourglass", top_level=4, **options)
    torch.manual_seed(0)
    net = build_dpk_backbone(cfg, 1)
    spec = cfg.model.stacked_hourglass
    assert isinstance(net, StackedHourglass) and len(net.hourglasses) == spec.n_stacks
    assert net.out_channels == {4: spec.filters}
    middles = {m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}
    assert middles == {spec.filters // spec.bottleneck_factor}
    with torch.no_grad():
        out = net(torch.rand(1, 1, 64, 64))
    assert len(out) == spec.n_stacks
    assert all(o[4].shape == (1, spec.filters, 16, 16) for o in out)


def test_default_models_are_small():
    """DeepPoseKit's point: a few percent of a ResNet-50 DeepLabCut's ~26 M parameters."""
    cfg = dpk_config("stacked_densenet")
    densenet = n_params(build_model(cfg, FLY13))
    hourglass = n_params(build_model(dpk_config("stacked_hourglass"), FLY13))
    assert 500_000 < densenet < 2_000_000
    assert 100_000 < hourglass < 1_000_000


def test_config_checks_name_the_field():
    def error(backbone: str = "stacked_densenet", **changes) -> str:
        cfg = dpk_config(backbone)
        for key, value in changes.items():
            cfg.set(key.replace("__", "."), value)
        with pytest.raises(ConfigError) as info:
            cfg.validate(SKELETON, check_paths=False)
        return str(info.value)

    assert error(model__neck__type="fpn").startswith("model.neck.type: stacked_densenet has its own encoder-decoder")
    bottomup = error("stacked_hourglass", model__pipeline="bottomup", model__heads__pafs__output_stride="8")
    assert bottomup.startswith("model.heads.pafs.output_stride: stacked_hourglass outputs every map at one stride")
    assert "to 4" in bottomup
    assert error(model__heads__confmaps__output_stride="32").startswith(
        "model.heads.confmaps.output_stride: stacked_densenet works between stride 2"
    )
    assert error(model__heads__confmaps__output_stride="1").startswith("model.heads.confmaps.output_stride")
    assert error(model__top_level="6").startswith("model.top_level: must be 2 to 5")
    for field, value in (
        ("growth_rate", "0"),
        ("bottleneck_factor", "0"),
        ("compression_factor", "0"),
        ("compression_factor", "1.5"),
        ("n_stacks", "0"),
        ("activation", "tanh"),
    ):
        assert error(**{f"model__stacked_densenet__{field}": value}).startswith(f"model.stacked_densenet.{field}:")
    for field in ("filters", "bottleneck_factor", "n_stacks"):
        assert error("stacked_hourglass", **{f"model__stacked_hourglass__{field}": "0"}).startswith(
            f"model.stacked_hourglass.{field}:"
        )
    assert error(optimization__initialization="imagenet").startswith(
        "optimization.initialization: ImageNet weights exist only for torchvision backbones"
    )
    # a centroid model's head sets the stride when it is the only head
    centroid = dpk_config("stacked_hourglass")
    centroid.model.pipeline = "centroid"
    centroid.model.heads.centroids.output_stride = 8
    centroid.validate(SKELETON, check_paths=False)
    assert build_dpk_backbone(centroid, 1).out_channels == {8: 64}


def test_posture_graph_output_and_targets_match_for_every_stack():
    cfg = dpk_config("stacked_densenet", top_level=4, growth_rate=8)
    cfg.model.heads.confmaps.posture_graph = True
    model = build_model(cfg, SKELETON).train()
    out = model(torch.rand(1, 1, 64, 64))
    assert set(out) == {"confmaps#0", "confmaps.graph#0", "confmaps", "confmaps.graph"}
    targets = model_targets(cfg, torch.rand(1, 1, 5, 2) * 64, (64, 64), SKELETON.edge_array())
    assert {k: v.shape for k, v in targets.items()} == {k: v.shape for k, v in out.items()}
    assert list(model.eval()(torch.rand(1, 1, 64, 64))) == ["confmaps"]


def _tiny(cfg: TrainingConfig, runs) -> TrainingConfig:
    cfg.data.validation_fraction = 0.25
    cfg.optimization.batch_size = 2
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = cfg.optimization.min_batches_per_epoch = 2
    cfg.optimization.augmentation.rotation_probability = 0.0
    cfg.outputs.runs_folder = str(runs)
    return cfg


def _one_animal(small_sample):
    """The first animal of the sample's first 8 frames: a single-instance training set."""
    from napari_posetrack.core.io import load_labels

    labels = load_labels(small_sample["labels"])
    return labels.subset(np.flatnonzero((labels.instances.track == 0) & (labels.instances.frame < 8)))


def _predict(run_dir, small_sample) -> np.ndarray:
    from napari_posetrack.core.inference.api import predict_labels
    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.labels import PREDICTED

    # two steps teach little: no threshold keeps the best peak of every part
    predictor = load_pipeline([run_dir], InferenceOptions(peak_threshold=float("-inf"), device="cpu"))
    target = load_labels(small_sample["labels"])
    added = predict_labels(target, predictor, target="0-2")
    assert added == 3  # one animal per frame
    points = target.instances.points[target.instances.kind == PREDICTED]
    assert np.isfinite(points).all()
    # mapped back into the 128 x 128 frame; sub-cell refinement may move a border peak half a cell (2 px) out
    assert points.min() >= -2 and points.max() <= 130
    return points


def test_cli_trains_stacked_densenet_with_posture_graph_and_the_run_predicts(small_sample, tmp_path, capsys):
    from napari_posetrack.core.io import save_labels
    from napari_posetrack.core.training.cli import main
    from napari_posetrack.core.training.run import load_run
    from napari_posetrack.core.training.trainer import read_metrics

    labels = _one_animal(small_sample)
    path = tmp_path / "one.slp"
    save_labels(labels, path)
    code = main(
        ["train", "--profile", "single", str(path),
         "--set", "model.backbone=stacked_densenet", "--set", "model.top_level=4",
         "--set", "model.stacked_densenet.growth_rate=16", "--set", "model.heads.confmaps.output_stride=4",
         "--set", "model.heads.confmaps.posture_graph=true", "--set", "optimization.max_iterations=2",
         "--set", "optimization.batch_size=2", "--set", "optimization.epochs=1",
         "--set", "optimization.batches_per_epoch=2", "--set", "optimization.min_batches_per_epoch=2",
         "--set", "outputs.run_name=dense", "--runs-folder", str(tmp_path / "runs"), "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    run_dir = tmp_path / "runs" / "dense"
    batches = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["event"] == "batch"]
    assert len(batches) == 2 and all(np.isfinite(r["loss"]) for r in batches)
    config, _, model = load_run(run_dir)
    assert config.model.heads.confmaps.posture_graph
    assert isinstance(model.backbone, StackedDenseNet) and len(model.backbone.stacks) == 2
    _predict(run_dir, small_sample)


def test_stacked_hourglass_trains_and_predicts(small_sample, tmp_path):
    from napari_posetrack.core.training.run import load_run, train

    labels = _one_animal(small_sample)
    cfg = _tiny(baseline_profile("single"), tmp_path / "runs")
    cfg.model.backbone = "stacked_hourglass"
    cfg.model.top_level = 4
    cfg.model.stacked_hourglass.filters = 16
    cfg.model.stacked_hourglass.n_stacks = 3
    cfg.model.heads.confmaps.output_stride = 4
    run_dir = train(cfg, labels, device="cpu")
    _, _, model = load_run(run_dir)
    assert isinstance(model.backbone, StackedHourglass) and len(model.backbone.hourglasses) == 3
    _predict(run_dir, small_sample)
