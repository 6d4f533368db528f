"""Models: output shapes per pipeline, parameter count and receptive field computed from the config."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_posetrack.core.config import TrainingConfig, topdown_configs
from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import (
    CentroidHead,
    ConfidenceMapHead,
    PoseModel,
    UNet,
    build_model,
    count_parameters,
    pad_to_stride,
)
from napari_posetrack.core.models.receptive_field import plan_for, receptive_field, receptive_interval

SKELETON = Skeleton(
    ["head", "thorax", "abdomen", "wingL", "wingR"], [(1, 0), (1, 2), (1, 3), (1, 4)], [(3, 4)]
)


def tiny(pipeline: str, **unet) -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.pipeline = pipeline
    cfg.model.unet.filters = 8
    cfg.model.unet.max_stride = 16
    for k, v in unet.items():
        setattr(cfg.model.unet, k, v)
    return cfg


@pytest.mark.parametrize(
    "pipeline, unet",
    [
        ("single_instance", {}),
        ("centroid", {"up_interpolate": False}),
        ("centered_instance", {"middle_block": False, "convs_per_block": 1}),
        ("bottomup", {"stem_stride": 2, "filters_rate": 1.5}),
    ],
)
def test_output_shapes_and_parameter_count(pipeline, unet):
    cfg = tiny(pipeline, **unet)
    torch.manual_seed(0)
    model = build_model(cfg, SKELETON)
    images = pad_to_stride(torch.rand(2, 1, 61, 75), model.max_stride)
    assert images.shape[-2:] == (64, 80)
    assert torch.all(images[..., 61:, :] == 0) and torch.all(images[..., :, 75:] == 0)
    with torch.no_grad():
        out = model(images)
    expected = {
        "single_instance": {"confmaps": (5, 4)},
        "centroid": {"centroids": (1, 2)},
        "centered_instance": {"confmaps": (5, 4)},
        "bottomup": {"confmaps": (5, 4), "pafs": (8, 8)},
    }[pipeline]
    assert set(out) == set(expected)
    for name, (channels, stride) in expected.items():
        assert out[name].shape == (2, channels, 64 // stride, 80 // stride)
        assert torch.isfinite(out[name]).all()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_params == count_parameters(cfg, SKELETON.n_nodes, len(SKELETON.edges))
    assert model.pipeline == pipeline


def test_rgb_input_channels_count():
    cfg = tiny("single_instance")
    cfg.data.channels = "rgb"
    model = build_model(cfg, SKELETON)
    assert model.backbone.plan.in_channels == 3
    assert sum(p.numel() for p in model.parameters()) == count_parameters(cfg, SKELETON.n_nodes)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32))["confmaps"].shape == (1, 5, 8, 8)


def test_unpadded_input_and_topdown_job_are_refused():
    model = build_model(tiny("single_instance"), SKELETON)
    with pytest.raises(ValueError, match="pad_to_stride"):
        model(torch.rand(1, 1, 40, 48))
    job = tiny("topdown")
    with pytest.raises(ConfigError, match="topdown_configs"):
        build_model(job, SKELETON)
    centroid, centered = topdown_configs(job)
    assert set(build_model(centroid, SKELETON).heads) == {"centroids"}
    assert set(build_model(centered, SKELETON).heads) == {"confmaps"}


def test_head_stride_checked_against_backbone():
    backbone = UNet.from_config(tiny("single_instance").model.unet, 1, output_stride=4)
    assert set(backbone.out_channels) == {16, 8, 4}
    with pytest.raises(ConfigError, match="stride 2"):
        PoseModel(
            backbone, None, {"confmaps": ConfidenceMapHead(5, backbone.out_channels[4], output_stride=2)}
        )
    with pytest.raises(ConfigError, match="channels"):
        PoseModel(backbone, None, {"centroids": CentroidHead(3, output_stride=8)})
    model = PoseModel(backbone, None, {"centroids": CentroidHead(backbone.out_channels[8], output_stride=8)})
    assert model(torch.rand(1, 1, 32, 32))["centroids"].shape == (1, 1, 4, 4)


def _make_linear_positive(model: nn.Module) -> None:
    """Positive weights, average instead of max pooling: every path then carries a positive gradient,
    so the support of the input gradient is exactly the theoretical receptive field."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.fill_(0.01)


@pytest.mark.parametrize(
    "unet, stride",
    [
        ({"max_stride": 16}, 4),
        ({"max_stride": 8, "up_interpolate": False, "middle_block": False}, 2),
        ({"max_stride": 16, "stem_stride": 4, "convs_per_block": 1}, 4),
    ],
)
def test_receptive_field_matches_gradient(unet, stride):
    cfg = tiny("single_instance", **unet)
    cfg.model.unet.filters = 2
    cfg.model.unet.filters_rate = 1.0
    cfg.model.heads.confmaps.output_stride = stride
    cfg.data.input_scaling = 0.5
    model = build_model(cfg, Skeleton(["a"])).double()
    _make_linear_positive(model)
    plan = plan_for(cfg)
    max_stride = cfg.model.unet.max_stride
    # smallest image that holds the receptive field away from the zero-padded border
    size = -(-(receptive_field(cfg).input_pixels + 2 * max_stride) // max_stride) * max_stride
    image = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = model(image)["confmaps"]
    centre = size // stride // 2 - max_stride // stride // 2
    widths = []
    for offset in range(max_stride // stride):
        image.grad = None
        out[0, 0, centre + offset, centre + offset].backward(retain_graph=True)
        grad = image.grad[0, 0]
        cols = torch.nonzero(grad.abs().sum(dim=0) > 0).flatten()
        rows = torch.nonzero(grad.abs().sum(dim=1) > 0).flatten()
        expected = receptive_interval(plan, centre + offset)
        assert 0 < expected[0] and expected[1] < size - 1, "test image too small for this receptive field"
        assert (int(cols.min()), int(cols.max())) == expected
        assert (int(rows.min()), int(rows.max())) == expected
        widths.append(expected[1] - expected[0] + 1)
    rf = receptive_field(cfg)
    assert rf.input_pixels == max(widths)
    assert rf.image_pixels == rf.input_pixels / 0.5
