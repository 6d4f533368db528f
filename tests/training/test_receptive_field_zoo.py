"""Receptive field and parameter count of every architecture: measured on built models, cached."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import build_model
from napari_posetrack.core.models import model as model_module
from napari_posetrack.core.models import receptive_field as rf

SKELETON = Skeleton(
    ["head", "thorax", "abdomen", "wingL", "wingR"], [(1, 0), (1, 2), (1, 3), (1, 4)], [(3, 4)]
)


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """Measurements go to a cache folder of this module, never the user's; memory starts empty."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        rf.clear_cache()
        yield
    rf.clear_cache()


def zoo(backbone: str, top_level: int = 5, pipeline: str = "single_instance", **neck) -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.pipeline = pipeline
    cfg.model.backbone = backbone
    cfg.model.top_level = top_level
    for key, value in neck.items():
        setattr(cfg.model.neck, key, value)
    return cfg


def chain_field(layers: list[tuple[int, int]]) -> int:
    """Receptive field of a plain chain of ``(kernel, stride)`` layers: each widens it by (k - 1) x its input stride."""
    size, jump = 1, 1
    for kernel, stride in layers:
        size += (kernel - 1) * jump
        jump *= stride
    return size


# the head's 4x4 stride-2 transposed convolution from stride 8 to 4 reads two stride-8 pixels: 8 px more
HEAD_8_TO_4 = 8


def test_resnet18_top_level_3_is_its_layers_plus_the_head():
    stem = [(7, 2), (3, 2)]  # conv1, max pool
    layer1 = [(3, 1)] * 4
    layer2 = [(3, 2)] + [(3, 1)] * 3  # the 1x1 shortcut convolution does not widen it
    expected = chain_field(stem + layer1 + layer2) + HEAD_8_TO_4
    assert expected == 107
    field = rf.receptive_field(zoo("resnet18", 3))
    assert (field.input_pixels, field.at_least, field.output_stride) == (expected, False, 4)


def test_bigger_top_level_gives_a_bigger_field():
    top3 = rf.receptive_field(zoo("resnet18", 3)).input_pixels
    top5 = rf.receptive_field(zoo("resnet18", 5))
    layer4 = 435  # ResNet-18's stride-32 features alone (layer3 and layer4 add 4 + 4 convolutions)
    assert top3 < layer4 < top5.input_pixels <= layer4 + 3 * 32  # three upsamplings to stride 4
    assert not top5.at_least


def test_mobilenet_v3_small_is_its_layers_plus_the_head():
    # first convolution, then one depthwise 3x3 per inverted-residual block (their 1x1s do not widen it)
    layers = [(3, 2), (3, 2), (3, 2), (3, 1)]
    assert rf.receptive_field(zoo("mobilenet_v3_small", 3)).input_pixels == chain_field(layers) + HEAD_8_TO_4
    # squeeze-and-excitation gates average the whole image but are not counted: the field stays finite
    top5 = rf.receptive_field(zoo("mobilenet_v3_small", 5))
    assert 400 < top5.input_pixels < rf.MAX_MEASURING_INPUT and not top5.at_least


def test_fpn_brings_the_top_level_context_to_the_finest_level():
    no_neck = rf.receptive_field(zoo("resnet18", 2)).input_pixels  # the head reads stride-4 features
    fpn = rf.receptive_field(zoo("resnet18", 4, type="fpn", levels=[2, 3, 4])).input_pixels
    layer3 = 211  # ResNet-18's stride-16 features alone
    assert no_neck == 43 and fpn > layer3


@pytest.mark.parametrize(
    "unet, stride",
    [
        ({"max_stride": 16}, 4),
        ({"max_stride": 8, "up_interpolate": False, "middle_block": False}, 2),
        ({"max_stride": 16, "stem_stride": 4, "convs_per_block": 1}, 4),
    ],
)
def test_measuring_agrees_with_the_unet_formula(unet, stride):
    cfg = TrainingConfig()
    cfg.model.unet.filters = 4
    for key, value in unet.items():
        setattr(cfg.model.unet, key, value)
    cfg.model.heads.confmaps.output_stride = stride
    assert rf.has_formula(cfg)
    formula = rf.receptive_field(cfg).input_pixels
    assert rf.measure_receptive_field(cfg).pixels == formula


def test_narrow_measuring_input_matches_a_square_one():
    """The measure reads a tall input one max stride wide; a square input gives the same rows and columns."""
    cfg = zoo("resnet18", 3)
    measured = rf.measure_receptive_field(cfg).pixels
    model = build_model(cfg, SKELETON).eval()
    rf._make_positive(model)
    model.double()
    size = 256
    image = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    with rf._linearised_mode()():
        out = model(image)["confmaps"]
    centre = out.shape[-1] // 2
    (grad,) = torch.autograd.grad(out[0, 0, centre, centre], image)
    rows = torch.nonzero(grad[0, 0].sum(dim=1)).flatten()
    cols = torch.nonzero(grad[0, 0].sum(dim=0)).flatten()
    assert int(rows.max() - rows.min() + 1) == int(cols.max() - cols.min() + 1) == measured


def test_a_field_larger_than_the_measuring_input_is_a_lower_bound():
    field = rf.measure_receptive_field(zoo("resnet18", 5), max_input=256)
    assert field.at_least and field.input_size == 256 and field.pixels <= 256


def test_cache_returns_the_same_measurement_without_building(monkeypatch):
    builds = []
    real_build = model_module.build_model

    def counting_build(*args, **kwargs):
        builds.append(args[0].model.backbone)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(model_module, "build_model", counting_build)
    cfg = zoo("mobilenet_v2", 3)
    first = rf.measure_receptive_field(cfg)
    assert builds == ["mobilenet_v2"]
    # settings that do not change the network (training, targets, heads the pipeline does not build)
    same = zoo("mobilenet_v2", 3)
    same.optimization.initial_learning_rate = 0.5
    same.model.heads.confmaps.sigma = 7.0
    same.model.heads.pafs.output_stride = 16
    same.model.unet.filters = 64
    assert rf.architecture_key(same) == rf.architecture_key(cfg)
    assert rf.receptive_field_known(same)
    assert rf.measure_receptive_field(same) is first
    assert rf.receptive_field(same).input_pixels == first.pixels
    assert builds == ["mobilenet_v2"]
    # another top level is another network
    assert not rf.receptive_field_known(zoo("mobilenet_v2", 4))
    # a new session reads the disk cache: same value, no build
    rf.clear_cache()
    assert rf.cache_file().is_file()
    assert rf.measure_receptive_field(cfg) == first
    assert builds == ["mobilenet_v2"]
    # parameter counts are cached too
    n = rf.count_parameters(cfg, 5)
    assert rf.parameter_count_known(same, 5) and rf.count_parameters(same, 5) == n
    assert builds == ["mobilenet_v2", "mobilenet_v2"]


def test_invalid_network_raises_naming_the_field_before_building():
    cfg = zoo("resnet18", 5, type="fpn", levels=[3, 5])
    with pytest.raises(ConfigError, match="model.neck.levels"):
        rf.receptive_field_known(cfg)
    with pytest.raises(ConfigError, match="model.neck.levels"):
        rf.receptive_field(cfg)
    with pytest.raises(ConfigError, match="topdown"):
        rf.receptive_field(zoo("resnet18", pipeline="topdown"))
    # settings that are not the network's do not stop a measurement
    fine = zoo("mobilenet_v3_small", 3)
    fine.optimization.batch_size = 0
    fine.data.anchor_part = "not a body part"
    assert rf.receptive_field(fine).input_pixels > 0


def _dpk_or_skip(cfg: TrainingConfig) -> None:
    try:
        build_model(cfg, SKELETON)
    except ConfigError as err:  # the DeepPoseKit backbones are another module's work in progress
        if "unknown backbone" in str(err):
            pytest.skip(f"{cfg.model.backbone} cannot be built yet: {err}")
        raise


@pytest.mark.parametrize(
    "make",
    [
        lambda: zoo("mobilenet_v3_small", 3),
        lambda: zoo("resnet18", 4, pipeline="bottomup", type="fpn", levels=[3, 4]),
        lambda: zoo("mobilenet_v3_small", 4, pipeline="centroid", type="bifpn", levels=[3, 4, 5], layers=2),
        lambda: zoo("unet", type="fpn", levels=[2, 3, 4]),
        lambda: zoo("stacked_hourglass", 4),
    ],
    ids=["mobilenet", "resnet-fpn-bottomup", "bifpn-centroid", "unet-fpn", "stacked-hourglass"],
)
def test_parameter_count_of_built_architectures(make):
    cfg = make()
    assert not rf.has_formula(cfg)
    if cfg.model.backbone == "stacked_hourglass":
        cfg.model.heads.confmaps.output_stride = 4
        _dpk_or_skip(cfg)
    model = build_model(cfg, SKELETON)
    expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert rf.count_parameters(cfg, SKELETON.n_nodes, len(SKELETON.edges)) == expected
    assert rf.count_parameters(cfg, 0, skeleton=SKELETON) == expected


def test_posture_graph_counts_follow_the_skeleton():
    # the formula (UNet) and a built model (ResNet) both count the posture graph's maps of this skeleton
    for cfg in (zoo("unet"), zoo("resnet18", 3)):
        cfg.model.unet.filters = 8
        cfg.model.heads.confmaps.posture_graph = True
        model = build_model(cfg, SKELETON)
        assert rf.count_parameters(cfg, 0, skeleton=SKELETON) == sum(p.numel() for p in model.parameters())


def test_letterbox_scale_comes_from_the_frame_size():
    cfg = TrainingConfig()
    cfg.data.input_size = [256, 256]
    cfg.data.input_scaling = 0.5  # not used by a letterboxing model
    field = rf.receptive_field(cfg, frame_size=(512, 1024))  # fits at a quarter of its size
    assert field.image_pixels == pytest.approx(field.input_pixels / 0.25)
    assert rf.receptive_field(cfg).image_pixels == pytest.approx(field.input_pixels / 0.5)
    crops = cfg.copy()
    crops.model.pipeline = "centered_instance"  # crops keep the input scaling
    assert rf.receptive_field(crops, frame_size=(512, 1024)).image_pixels == pytest.approx(field.input_pixels / 0.5)


def test_child_process_computes_and_this_process_remembers():
    counted = zoo("mobilenet_v3_small", 2, pipeline="bottomup", type="fpn", levels=[2, 3])
    measured = zoo("resnet34", 2)
    broken = zoo("resnet18", 2)
    broken.model.heads.confmaps.output_stride = 64  # coarser than the network goes: the child answers why
    requests = [
        rf.Request("parameters", counted, SKELETON),
        rf.Request("receptive_field", measured),
        rf.Request("receptive_field", broken),
    ]
    assert not rf.parameter_count_known(counted, 0, skeleton=SKELETON) and not rf.receptive_field_known(measured)
    results = list(rf.ChildMeasurement(requests).results())
    assert [index for index, _ in results] == [0, 1, 2]
    assert results[0][1] is None and results[1][1] is None
    assert "output_stride" in results[2][1]  # the child's error, naming the field
    # the values are known here now, and are what this process would compute itself
    assert rf.parameter_count_known(counted, 0, skeleton=SKELETON) and rf.receptive_field_known(measured)
    model = build_model(counted, SKELETON)
    assert rf.count_parameters(counted, 0, skeleton=SKELETON) == sum(p.numel() for p in model.parameters())
    remembered = rf.receptive_field(measured).input_pixels
    rf.clear_cache()
    assert rf.measure_receptive_field(measured).pixels == remembered  # from the disk cache the child wrote


def test_a_stopped_child_says_nothing_more():
    measurement = rf.ChildMeasurement([rf.Request("receptive_field", zoo("resnet50", 5))])
    results = measurement.results()
    measurement.stop()  # before it even starts
    assert list(results) == [] and measurement.stopped


def test_unet_answers_without_torch():
    code = (
        "import sys\n"
        "from napari_posetrack.core.config import TrainingConfig\n"
        "from napari_posetrack.core.models import receptive_field as rf\n"
        "cfg = TrainingConfig()\n"
        "cfg.model.heads.confmaps.posture_graph = True\n"
        "assert rf.receptive_field_known(cfg) and rf.parameter_count_known(cfg, 5, 4)\n"
        "print(rf.receptive_field(cfg).input_pixels, rf.count_parameters(cfg, 5, 4))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    size, count = (int(v) for v in done.stdout.split())
    assert size == rf.receptive_field(TrainingConfig()).input_pixels and count > 0
