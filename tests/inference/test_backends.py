"""Inference backends: the same maps and peaks as torch, auto's choices and fallbacks, clear refusals.

Tolerance: float32 maps of ONNX Runtime and OpenVINO agree with torch's to 1e-4 (absolute, maps in
[0, 1]); in practice the difference is about 1e-7, float32 rounding in another order of additions.
Peaks found from them on real frames are the same to 1e-3 pixel.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.inference import backends
from napari_posetrack.core.inference.backends import (
    BackendFallbackWarning,
    BackendUnavailable,
    GraphCache,
    OnnxRuntimeBackend,
    OpenVinoBackend,
    TorchBackend,
    candidates,
    load_backend,
    onnxruntime_providers,
)
from napari_posetrack.core.inference.export import onnx_path, read_sidecar

MAP_TOLERANCE = 1e-4
PEAK_TOLERANCE_PX = 1e-3
CPU = torch.device("cpu")


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import <module>`` fail, as on a machine where that extra is not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


# --------------------------------------------------------------------------- choosing


def test_auto_prefers_the_fast_backends_of_each_device():
    assert candidates("auto", CPU) == ["onnxruntime", "openvino", "torch"]
    assert candidates("auto", torch.device("cuda", 1)) == ["tensorrt", "torch"]
    assert candidates("auto", torch.device("mps")) == ["torch"]
    assert candidates("openvino", CPU) == ["openvino"]  # an explicit choice has no alternatives
    with pytest.raises(ConfigError, match="backend must be one of auto, torch, onnxruntime, openvino, tensorrt"):
        candidates("tflite", CPU)


def test_onnxruntime_providers_follow_the_device_and_what_is_installed(tmp_path):
    cpu_only = ["AzureExecutionProvider", "CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    cuda1 = torch.device("cuda", 1)
    assert onnxruntime_providers("onnxruntime", CPU, cpu_only) == ["CPUExecutionProvider"]
    assert onnxruntime_providers("onnxruntime", CPU, gpu) == ["CPUExecutionProvider"]  # the device decides
    assert onnxruntime_providers("onnxruntime", cuda1, gpu) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    trt = onnxruntime_providers("tensorrt", cuda1, gpu, half=True, cache_dir=tmp_path)
    assert trt[0] == (
        "TensorrtExecutionProvider",
        {"device_id": 1, "trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(tmp_path)},
    )
    assert [p if isinstance(p, str) else p[0] for p in trt[1:]] == ["CUDAExecutionProvider", "CPUExecutionProvider"]

    with pytest.raises(BackendUnavailable, match=r"onnxruntime package is CPU-only\): install onnxruntime-gpu") as err:
        onnxruntime_providers("onnxruntime", cuda1, cpu_only)
    assert err.value.missing
    with pytest.raises(BackendUnavailable, match="no TensorRT provider here: pip install onnxruntime-gpu tensorrt") as err:
        onnxruntime_providers("tensorrt", cuda1, cpu_only)
    assert err.value.missing
    with pytest.raises(BackendUnavailable, match=r"tensorrt backend needs an NVIDIA GPU \(device is cpu\)") as err:
        onnxruntime_providers("tensorrt", CPU, gpu)
    assert not err.value.missing  # installing something would not help


@pytest.mark.parametrize(
    ("machine", "platform_name", "flags", "expected"),
    [
        ("x86_64", "linux", {"avx2", "f16c"}, False),  # F16C only converts; it does no fp16 arithmetic
        ("x86_64", "linux", {"avx512f", "avx512_fp16"}, True),
        ("x86_64", "linux", {"amx_tile", "amx_fp16"}, True),
        ("aarch64", "linux", {"fp", "asimd"}, False),
        ("aarch64", "linux", {"fp", "asimd", "asimdhp", "fphp"}, True),
        ("arm64", "darwin", set(), True),
        ("AMD64", "win32", set(), False),
    ],
)
def test_cpu_half_precision_support_comes_from_its_feature_flags(monkeypatch, machine, platform_name, flags, expected):
    monkeypatch.setattr(backends.platform, "machine", lambda: machine)
    monkeypatch.setattr(backends.sys, "platform", platform_name)
    monkeypatch.setattr(backends, "_cpu_flags", lambda: flags)
    assert backends.cpu_has_fp16() is expected
    assert (backends.half_problem(CPU) is None) is expected
    assert backends.half_problem(torch.device("cuda")) is None


# --------------------------------------------------------------------------- torch


def test_torch_backend_runs_channels_last_in_inference_mode(single_instance_run):
    from napari_posetrack.core.models.runs import load_run

    _, _, reference = load_run(single_instance_run)
    _, _, model = load_backend(single_instance_run, CPU, "torch")
    assert isinstance(model, TorchBackend) and model.graphs is None  # no CUDA graphs on a CPU
    conv = next(m for m in model.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.max_stride == reference.max_stride and model.output_strides == reference.output_strides
    images = torch.rand(2, 1, 48, 40)
    out = model(images)
    with torch.no_grad():
        ref = reference(images)
    assert out["confmaps"].is_inference() and out["confmaps"].is_contiguous()
    assert (out["confmaps"] - ref["confmaps"]).abs().max() < 1e-5
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device, not cpu"):
        TorchBackend(reference, CPU, cuda_graphs=True)


def test_graph_cache_captures_each_shape_once_up_to_its_limit():
    captured, eager = [], []

    def forward(x):
        eager.append(tuple(x.shape))
        return {"maps": x * 2}

    def capture(fn, example):
        captured.append(tuple(example.shape))
        return lambda x: {"maps": x * 2 + 0}

    cache = GraphCache(forward, capture=capture, limit=2)
    for shape in [(1, 1, 8, 8), (1, 1, 8, 8), (2, 1, 8, 8), (2, 1, 8, 8), (3, 1, 8, 8), (3, 1, 8, 8)]:
        x = torch.ones(shape)
        assert torch.equal(cache(x)["maps"], x * 2)
    assert captured == [(1, 1, 8, 8), (2, 1, 8, 8)]
    assert eager == [(3, 1, 8, 8)] * 2  # past the limit a shape runs without a graph, every time


def test_a_failing_graph_capture_turns_graphs_off_with_one_warning():
    def capture(fn, example):
        raise RuntimeError("operation not permitted when stream is capturing")

    cache = GraphCache(lambda x: {"maps": x + 1}, capture=capture)
    with pytest.warns(UserWarning, match="CUDA graphs are off for this model .operation not permitted"):
        assert torch.equal(cache(torch.zeros(1, 1, 4, 4))["maps"], torch.ones(1, 1, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cache(torch.zeros(2, 1, 4, 4))["maps"], torch.ones(2, 1, 4, 4))
    assert cache.disabled and not cache.graphs


# --------------------------------------------------------------------------- same maps as torch


def _open(name: str, run: Path):
    facts = read_sidecar(onnx_path(run))
    if name == "onnxruntime":
        return OnnxRuntimeBackend(onnx_path(run), facts, ["CPUExecutionProvider"])
    return OpenVinoBackend(onnx_path(run), facts)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("run_name", ["exported_single_run", "bottomup_run"])
def test_onnx_backends_give_torchs_maps_at_any_input_size(name, run_name, request):
    """Batch, height and width are dynamic: sizes other than the export's example run too."""
    from napari_posetrack.core.models.runs import load_run

    run = request.getfixturevalue(run_name)
    _, _, reference = load_run(run)
    backend = _open(name, run)
    assert backend.max_stride == reference.max_stride == 8
    assert backend.output_strides == reference.output_strides
    generator = torch.Generator().manual_seed(1)
    for shape in [(1, 1, 128, 128), (3, 1, 96, 200), (2, 1, 8, 24)]:
        images = torch.rand(shape, generator=generator)
        out = backend(images)
        with torch.no_grad():
            ref = reference(images)
        assert set(out) == set(ref)
        for head, maps in out.items():
            assert maps.dtype == torch.float32 and maps.shape == ref[head].shape
            assert (maps - ref[head]).abs().max() < MAP_TOLERANCE, (head, shape)


def _predict(run: Path, labels_path: str, backend: str, target: str, **options) -> np.ndarray:
    """Predicted points (instances, nodes, 2) of ``target`` frames with ``backend``."""
    from napari_posetrack.core.inference.api import labels_for_input, predict_labels
    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline

    pipeline = load_pipeline([run], InferenceOptions(device="cpu", backend=backend, peak_threshold=0.0, **options))
    labels = labels_for_input(labels_path, pipeline)
    assert predict_labels(labels, pipeline, target=target) > 0
    t = labels.instances
    order = np.lexsort((t.track, t.frame))
    return t.points[order]


@pytest.mark.slow
def test_backends_find_the_same_peaks_on_the_sample_video(exported_single_run, small_sample):
    reference = _predict(exported_single_run, small_sample["video"], "torch", "0-9")
    for name in ("onnxruntime", "openvino"):
        got = _predict(exported_single_run, small_sample["video"], name, "0-9")
        assert np.array_equal(np.isnan(got), np.isnan(reference))
        assert np.nanmax(np.abs(got - reference)) < PEAK_TOLERANCE_PX, name


@pytest.fixture(scope="module")
def fly_run(flies: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A single-instance run on the female fly of the real clip (two training steps, quarter scale)."""
    from napari_posetrack.core.config import baseline_profile
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.training.run import train

    truth = load_labels(flies / "clip.2node.slp")
    t = truth.instances
    female = truth.subset(np.flatnonzero((t.frame < 12) & (t.track == 0)))
    cfg = baseline_profile("single")
    cfg.data.input_scaling = 0.25
    cfg.model.unet.filters, cfg.model.unet.max_stride = 8, 16
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = cfg.optimization.min_batches_per_epoch = 2
    cfg.outputs.runs_folder = str(tmp_path_factory.mktemp("fly_runs"))
    return train(cfg, female, device="cpu")


@pytest.mark.slow
def test_backends_find_the_same_peaks_on_the_real_fly_clip(fly_run, flies):
    """Frames the model never saw, 1024 x 1024 scaled to 256 x 256, through the whole prediction path."""
    clip = str(flies / "clip.mp4")
    reference = _predict(fly_run, clip, "torch", "1400-1405", batch_size=3)
    assert np.isfinite(reference).any()
    for name in ("onnxruntime", "openvino"):  # the first one exports the run
        got = _predict(fly_run, clip, name, "1400-1405", batch_size=3)
        assert np.array_equal(np.isnan(got), np.isnan(reference)), name  # the same nodes found
        assert np.nanmax(np.abs(got - reference)) < PEAK_TOLERANCE_PX, name


# --------------------------------------------------------------------------- missing extras, fallbacks


@pytest.mark.parametrize(("name", "module", "extra"), [("onnxruntime", "onnxruntime", "[onnx]"), ("openvino", "openvino", "[openvino]")])
def test_an_explicit_backend_that_is_not_installed_names_its_extra(monkeypatch, single_instance_run, name, module, extra):
    _without(monkeypatch, module)
    with pytest.raises(BackendUnavailable, match=rf"not installed: pip install 'napari-posetrack\{extra}'"):
        load_backend(single_instance_run, CPU, name)
    assert not onnx_path(single_instance_run).exists()  # it found out before exporting anything


def test_an_explicit_tensorrt_on_a_cpu_is_refused(single_instance_run):
    with pytest.raises(BackendUnavailable, match="tensorrt backend needs an NVIDIA GPU"):
        load_backend(single_instance_run, CPU, "tensorrt")


def test_auto_falls_back_to_torch_with_one_message_naming_the_extras(monkeypatch, single_instance_run):
    _without(monkeypatch, "onnxruntime", "openvino")
    with pytest.warns(BackendFallbackWarning) as record:
        _, _, model = load_backend(single_instance_run, CPU, "auto")
    assert isinstance(model, TorchBackend)
    assert len(record) == 1
    message = str(record[0].message)
    assert "backend auto runs on torch" in message
    assert "pip install 'napari-posetrack[onnx]'" in message and "pip install 'napari-posetrack[openvino]'" in message


@pytest.mark.slow
def test_auto_takes_the_next_installed_runtime_without_a_word(monkeypatch, exported_single_run):
    _without(monkeypatch, "onnxruntime")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, model = load_backend(exported_single_run, CPU, "auto")
    assert isinstance(model, OpenVinoBackend)


def test_half_precision_on_a_cpu_without_it(monkeypatch, exported_single_run):
    monkeypatch.setattr(backends, "cpu_has_fp16", lambda: False)
    with pytest.raises(BackendUnavailable, match="half precision was asked for, but this CPU has no half-precision arithmetic"):
        load_backend(exported_single_run, CPU, "onnxruntime", half=True)
    with pytest.raises(BackendUnavailable, match="turn half precision off"):
        load_backend(exported_single_run, CPU, "torch", half=True)
    with pytest.warns(BackendFallbackWarning) as record:
        _, _, model = load_backend(exported_single_run, CPU, "auto", half=True)
    assert len(record) == 1 and "float32 instead of float16" in str(record[0].message)
    assert isinstance(model, OnnxRuntimeBackend)  # the float32 export: no fp16 one was made
    assert not onnx_path(exported_single_run, half=True).exists()


def test_inference_options_and_the_pipeline_carry_the_backend(exported_single_run):
    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline

    assert InferenceOptions().backend == "torch" and InferenceOptions().half is False
    pipeline = load_pipeline([exported_single_run], InferenceOptions(device="cpu", backend="onnxruntime"))
    assert isinstance(pipeline.model.model, OnnxRuntimeBackend)
    assert pipeline.model.max_stride == 8
