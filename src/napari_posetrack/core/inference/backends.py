"""Inference backends: torch, ONNX Runtime, OpenVINO and TensorRT behind one interface.

A backend is a callable ``images (B, C, H, W) float tensor in [0, 1] -> {head name: maps}`` with
``max_stride`` and ``output_strides``, like the torch :class:`~napari_posetrack.core.models.model.PoseModel`
itself, so :class:`~napari_posetrack.core.inference.pipelines.LoadedModel` holds either and the
pipelines do not know which runs. Maps come back as float32 tensors on the device the images were
on, so peak finding runs there with torch whatever the backend.

``torch``
    The run's model in ``channels_last`` memory format under ``torch.inference_mode``; on a CUDA GPU
    each input shape is captured once as a CUDA graph and replayed (no per-layer launch cost), and
    ``half`` runs it in float16.
``onnxruntime``
    The run's ONNX export (:mod:`.export`, made on first use) in ONNX Runtime: the CPU provider with
    torch's thread count on a CPU, the CUDA provider on a GPU (with ``onnxruntime-gpu``), inputs and
    outputs bound to torch's GPU memory so nothing goes through the host.
``openvino``
    The same export compiled by OpenVINO for the CPU.
``tensorrt``
    The export in ONNX Runtime's TensorRT provider (NVIDIA GPUs; engines cached in the run folder).
``auto``
    The fastest one installed for the device: on a CPU ONNX Runtime, then OpenVINO, then torch; on a
    CUDA GPU TensorRT, then torch with CUDA graphs (ONNX Runtime's CUDA provider runs the same cuDNN
    kernels torch does, without CUDA graphs, so it is not preferred); elsewhere torch. When a choice
    cannot be used (not installed, export failed, stale export) ``auto`` moves on to the next one and
    says why in one :class:`BackendFallbackWarning`; an explicitly chosen backend raises instead.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from napari_posetrack.core.errors import ConfigError, PoseTrackError

if TYPE_CHECKING:
    import torch

    from napari_posetrack.core.config import TrainingConfig
    from napari_posetrack.core.labels import Skeleton

BackendName = Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")

INSTALL_HINTS = {
    "onnxruntime": "pip install 'napari-posetrack[onnx]'",
    "openvino": "pip install 'napari-posetrack[openvino]'",
    "tensorrt": "pip install onnxruntime-gpu tensorrt (in place of onnxruntime)",
}

GRAPH_LIMIT = 8
"""At most this many input shapes get a CUDA graph each; further shapes run eagerly (top-down crop
batches vary in size, and every graph holds its own copy of the activations)."""


class BackendUnavailable(PoseTrackError, RuntimeError):
    """A backend cannot run here: not installed, no suitable device, or an unsupported precision.

    ``missing`` is True when the cause is only that an optional package is not installed.
    """

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class BackendFallbackWarning(UserWarning):
    """``backend="auto"`` could not use its first choice and runs on another backend (the message says why)."""


# --------------------------------------------------------------------------- what is installed


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or :class:`BackendUnavailable` naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(
            f"ONNX Runtime is not installed: {INSTALL_HINTS['onnxruntime']}", missing=True
        ) from exc
    return onnxruntime


def import_openvino() -> Any:
    """The ``openvino`` module, or :class:`BackendUnavailable` naming the extra to install."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(f"OpenVINO is not installed: {INSTALL_HINTS['openvino']}", missing=True) from exc
    return openvino


def _cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (``flags`` on x86, ``Features`` on ARM); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass  # not Linux: no flags to read, the platform checks below decide
    return set()


def cpu_has_fp16() -> bool:
    """Whether this CPU does float16 arithmetic natively (otherwise float16 is emulated, slower than float32).

    x86 needs AVX512-FP16 or AMX-FP16; ARM needs the FP16 extension (every Apple silicon CPU has it).
    """
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return sys.platform == "darwin" or bool({"asimdhp", "fphp"} & _cpu_flags())
    return bool({"avx512_fp16", "amx_fp16"} & _cpu_flags())


def half_problem(device: torch.device) -> str | None:
    """Why float16 cannot run well on ``device``, or ``None`` when it can."""
    if device.type == "cpu" and not cpu_has_fp16():
        return (
            "this CPU has no half-precision arithmetic (x86 needs AVX512-FP16 or AMX-FP16, ARM the FP16 "
            "extension), so float16 would be emulated and slower than float32"
        )
    return None


def candidates(backend: str, device: torch.device) -> list[str]:
    """The backends to try in order: the one asked for, or ``auto``'s preference for the device."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "auto":
        return [backend]
    if device.type == "cpu":
        return ["onnxruntime", "openvino", "torch"]
    if device.type == "cuda":
        return ["tensorrt", "torch"]
    return ["torch"]


def onnxruntime_providers(
    backend: str, device: torch.device, available: Sequence[str], half: bool = False, cache_dir: str | os.PathLike[str] = ""
) -> list[Any]:
    """ONNX Runtime execution providers (with options) for ``backend`` on ``device``.

    Parameters
    ----------
    backend
        ``"onnxruntime"`` or ``"tensorrt"``.
    device
        The torch device the pipeline runs on: a CUDA device selects the GPU providers.
    available
        ``onnxruntime.get_available_providers()``.
    half
        TensorRT builds float16 engines.
    cache_dir
        Where TensorRT keeps its built engines (building one takes minutes).

    Raises
    ------
    BackendUnavailable
        TensorRT without a CUDA device or without its provider, or a CUDA device with an ONNX Runtime
        that has no CUDA provider (the CPU-only ``onnxruntime`` package).
    """
    gpu = {"device_id": device.index or 0} if device.type == "cuda" else {}
    if backend == "tensorrt":
        if device.type != "cuda":
            raise BackendUnavailable(f"the tensorrt backend needs an NVIDIA GPU (device is {device})")
        if "TensorrtExecutionProvider" not in available:
            raise BackendUnavailable(
                f"ONNX Runtime has no TensorRT provider here: {INSTALL_HINTS['tensorrt']}", missing=True
            )
        trt = dict(gpu, trt_fp16_enable=bool(half), trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
        return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", gpu), "CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(
                "ONNX Runtime has no CUDA provider here (the onnxruntime package is CPU-only): install "
                "onnxruntime-gpu in its place, or predict with device cpu", missing=True,
            )
        return [("CUDAExecutionProvider", gpu), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


# --------------------------------------------------------------------------- torch


class GraphCache:
    """Run ``forward`` through one captured graph per input shape (CUDA graphs on a GPU).

    Parameters
    ----------
    forward
        ``images -> {name: maps}``.
    capture
        ``(forward, example images) -> replay`` where ``replay(images)`` returns fresh outputs;
        default :func:`capture_cuda_graph`.
    limit
        Shapes beyond this many run ``forward`` directly.

    A capture that fails (an operation CUDA graphs cannot record) switches graphs off for good, with
    one warning, and the model runs eagerly.
    """

    def __init__(self, forward: Callable[[Any], dict[str, Any]], capture: Callable[..., Callable] | None = None, limit: int = GRAPH_LIMIT) -> None:
        self.forward = forward
        self.capture = capture or capture_cuda_graph
        self.limit = limit
        self.graphs: dict[tuple, Callable] = {}
        self.disabled = False

    def __call__(self, images: Any) -> dict[str, Any]:
        key = (tuple(images.shape), images.dtype, str(images.device))
        replay = self.graphs.get(key)
        if replay is None:
            if self.disabled or len(self.graphs) >= self.limit:
                return self.forward(images)
            try:
                replay = self.capture(self.forward, images)
            except Exception as exc:  # noqa: BLE001 - capture errors come from deep in CUDA; eager always works
                self.disabled = True
                warnings.warn(f"CUDA graphs are off for this model ({exc}); it runs without them", stacklevel=2)
                return self.forward(images)
            self.graphs[key] = replay
        return replay(images)


def capture_cuda_graph(forward: Callable[[Any], dict[str, Any]], example: torch.Tensor) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """Record ``forward`` on ``example``'s shape as a CUDA graph; returns ``replay(images) -> outputs``.

    The outputs are copied out of the graph's buffers: the predictor reads a batch's maps while the
    next batch already runs, and a replay overwrites the buffers.
    """
    import torch

    static_in = example.clone()
    stream = torch.cuda.Stream(device=example.device)
    stream.wait_stream(torch.cuda.current_stream(example.device))
    with torch.cuda.stream(stream):
        for _ in range(2):  # cuDNN picks its algorithms and the allocator warms up outside the graph
            forward(static_in)
    torch.cuda.current_stream(example.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = forward(static_in)

    def replay(images: torch.Tensor) -> dict[str, torch.Tensor]:
        static_in.copy_(images)
        graph.replay()
        return {k: v.clone() for k, v in static_out.items()}

    return replay


class TorchBackend:
    """The run's torch model: ``channels_last``, ``inference_mode``, optional float16 and CUDA graphs.

    Parameters
    ----------
    model
        A :class:`~napari_posetrack.core.models.model.PoseModel` in eval mode.
    device
        Where it runs.
    half
        Run in float16 (inputs are cast; outputs come back float32).
    cuda_graphs
        Replay one CUDA graph per input shape (CUDA devices only).
    """

    name = "torch"

    def __init__(self, model: Any, device: torch.device, half: bool = False, cuda_graphs: bool = False) -> None:
        import torch

        if cuda_graphs and device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {device}")
        # convolutions read NHWC without reordering it first (the layout cuDNN and oneDNN prefer)
        model = model.to(device=device, memory_format=torch.channels_last).eval()
        self.model = model.half() if half else model
        self.device, self.half = device, bool(half)
        self.dtype = torch.float16 if half else torch.float32
        self.max_stride = int(model.max_stride)
        self.output_strides = dict(model.output_strides)
        self.graphs = GraphCache(self._forward) if cuda_graphs else None

    def _forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        x = images.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        return {k: v.float() for k, v in self.model(x).items()}

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        with torch.inference_mode():
            out = self.graphs(images) if self.graphs is not None else self._forward(images)
            # callers get plain NCHW tensors, whatever layout the convolutions left them in
            return {k: v.contiguous() for k, v in out.items()}


# --------------------------------------------------------------------------- ONNX-based


class OnnxRuntimeBackend:
    """An exported run in an ONNX Runtime session.

    Parameters
    ----------
    path
        The ``.onnx`` file.
    facts
        Its sidecar (:func:`~napari_posetrack.core.inference.export.read_sidecar`): input name, outputs
        with strides and channels, max stride.
    providers
        From :func:`onnxruntime_providers`.
    name
        ``"onnxruntime"`` or ``"tensorrt"`` (which backend this session stands for).
    """

    def __init__(self, path: str | os.PathLike[str], facts: dict[str, Any], providers: list[Any], name: str = "onnxruntime") -> None:
        import torch

        ort = import_onnxruntime()
        options = ort.SessionOptions()
        # the same thread budget as torch, so switching backends does not change the machine's load
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # ONNX Runtime's own warnings are about its internals, not the user's input
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.providers = self.session.get_providers()
        wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        if wanted not in self.providers:
            # ONNX Runtime quietly drops a provider whose libraries fail to load
            hint = INSTALL_HINTS["tensorrt"] if name == "tensorrt" else "check the CUDA libraries"
            raise BackendUnavailable(f"ONNX Runtime could not start its {wanted} ({hint})")
        self.name = name
        self.input_name = facts["input_name"]
        self.outputs = [(o["name"], int(o["stride"]), int(o["channels"])) for o in facts["outputs"]]
        self.max_stride = int(facts["max_stride"])
        self.output_strides = {n: s for n, s, _ in self.outputs}
        self.on_gpu = wanted != "CPUExecutionProvider"

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        if self.on_gpu and images.is_cuda:
            return self._run_on_gpu(images)
        x = images.detach().to("cpu", torch.float32).contiguous().numpy()
        got = self.session.run([n for n, _, _ in self.outputs], {self.input_name: x})
        return {n: torch.from_numpy(g).to(images.device) for (n, _, _), g in zip(self.outputs, got)}

    def _run_on_gpu(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Bind the input and preallocated outputs to torch's GPU memory: no copies through the host."""
        import numpy as np
        import torch

        x = images.detach().to(torch.float32).contiguous()
        b, _, h, w = x.shape
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        out = {}
        for name, stride, channels in self.outputs:
            t = torch.empty((b, channels, h // stride, w // stride), device=x.device, dtype=torch.float32)
            binding.bind_output(name, "cuda", index, np.float32, tuple(t.shape), t.data_ptr())
            out[name] = t
        torch.cuda.current_stream(x.device).synchronize()  # ONNX Runtime works on its own stream
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out


class OpenVinoBackend:
    """An exported run compiled by OpenVINO for the CPU.

    Parameters
    ----------
    path, facts
        The ``.onnx`` file and its sidecar.
    half
        Ask OpenVINO for float16 inference (only where the CPU has it; see :func:`half_problem`).
    """

    name = "openvino"

    def __init__(self, path: str | os.PathLike[str], facts: dict[str, Any], half: bool = False) -> None:
        import torch

        ov = import_openvino()
        config = {
            # without a hint OpenVINO may pick bf16 on CPUs that have it, which moves peaks
            "INFERENCE_PRECISION_HINT": "f16" if half else "f32",
            "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.input_name = facts["input_name"]
        self.outputs = [o["name"] for o in facts["outputs"]]
        self.max_stride = int(facts["max_stride"])
        self.output_strides = {o["name"]: int(o["stride"]) for o in facts["outputs"]}
        self.ports = {n: self.compiled.output(n) for n in self.outputs}

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        x = images.detach().to("cpu", torch.float32).contiguous().numpy()
        result = self.compiled({self.input_name: x})  # fresh arrays: the next call cannot overwrite them
        return {n: torch.from_numpy(result[p]).to(images.device) for n, p in self.ports.items()}


# --------------------------------------------------------------------------- loading


def read_run(run_dir: str | os.PathLike[str]) -> tuple[TrainingConfig, Skeleton]:
    """A run's config and skeleton without building its torch model (the ONNX backends need no torch model)."""
    from napari_posetrack.core.config import TrainingConfig
    from napari_posetrack.core.errors import MissingFileError
    from napari_posetrack.core.io.skeleton_json import load_skeleton_json
    from napari_posetrack.core.models.runs import CONFIG_FILE, SKELETON_FILE, require_run_file

    run = Path(run_dir)
    if not run.is_dir():
        raise MissingFileError(run, "run folder not found")
    config = TrainingConfig.from_file(require_run_file(run / CONFIG_FILE))
    return config, load_skeleton_json(require_run_file(run / SKELETON_FILE))


def ensure_export(
    run_dir: str | os.PathLike[str], config: TrainingConfig, skeleton: Skeleton, half: bool, refresh: bool
) -> tuple[Path, dict[str, Any]]:
    """The run's ONNX export and its sidecar, exported now when there is none.

    A stale or foreign export raises :class:`~.export.ExportMismatchError`, unless ``refresh``
    (``auto``), when it is exported again with a warning.
    """
    from napari_posetrack.core.inference.export import (
        ExportMismatchError,
        check_export,
        export_run,
        onnx_path,
        read_sidecar,
    )

    path = onnx_path(run_dir, half)
    if path.is_file():
        try:
            return path, check_export(path, run_dir, config, skeleton, half)
        except ExportMismatchError as exc:
            if not refresh:
                raise
            warnings.warn(f"{exc} (backend auto: exporting it again now)", BackendFallbackWarning, stacklevel=3)
    export_run(run_dir, half=half, out=path)
    return path, read_sidecar(path)


def _open(name: str, run_dir: str | os.PathLike[str], config: TrainingConfig, skeleton: Skeleton,
          device: torch.device, half: bool, auto: bool) -> Any:
    """One backend for the run, or an exception saying why it cannot run."""
    if name == "torch":
        from napari_posetrack.core.models.runs import load_run

        _, _, model = load_run(run_dir, device=str(device))
        return TorchBackend(model, device, half=half, cuda_graphs=device.type == "cuda")
    if name == "openvino":
        import_openvino()  # before exporting: a missing runtime should not cost an export
        path, facts = ensure_export(run_dir, config, skeleton, False, refresh=auto)
        return OpenVinoBackend(path, facts, half=half)
    ort = import_onnxruntime()
    providers = onnxruntime_providers(name, device, ort.get_available_providers(), half, Path(run_dir) / "tensorrt_cache")
    # TensorRT makes its own float16 engine from the float32 graph; the other providers run the fp16 export
    path, facts = ensure_export(run_dir, config, skeleton, half and name != "tensorrt", refresh=auto)
    return OnnxRuntimeBackend(path, facts, providers, name=name)


def load_backend(
    run_dir: str | os.PathLike[str], device: torch.device, backend: str = "torch", half: bool = False
) -> tuple[TrainingConfig, Skeleton, Any]:
    """A run's config, skeleton and the model to call, on the backend asked for.

    Parameters
    ----------
    run_dir
        A trained run folder.
    device
        Where inputs live and outputs are returned.
    backend
        One of :data:`BACKENDS`.
    half
        Float16 inference.

    Raises
    ------
    BackendUnavailable
        An explicitly chosen backend is not installed (the message names the extra) or cannot run on
        ``device``, or ``half`` on a CPU without float16 arithmetic. ``auto`` never raises this: it
        falls back (to float32, to the next backend) with one :class:`BackendFallbackWarning`.
    ExportMismatchError
        An explicitly chosen ONNX backend found an export of another version, skeleton or checkpoint.
    """
    from napari_posetrack.core.inference.export import ExportError, ExportMismatchError

    auto = backend == "auto"
    order = candidates(backend, device)
    config, skeleton = read_run(run_dir)
    notes: list[str] = []
    problem = half_problem(device) if half else None
    if problem is not None:
        if not auto:
            raise BackendUnavailable(
                f"half precision was asked for, but {problem}: turn half precision off "
                "(or choose backend auto, which then uses float32)"
            )
        notes.append(f"float32 instead of float16: {problem}")
        half = False
    missing: list[str] = []

    def chosen(name: str, model: Any) -> tuple[TrainingConfig, Skeleton, Any]:
        # a missing optional runtime is worth a word only where it leaves the slow path on a CPU
        if missing and name == "torch" and device.type == "cpu":
            notes.append("not installed: " + "; ".join(missing))
        if notes:
            warnings.warn(
                f"{run_dir}: backend auto runs on {name}. " + " ".join(f"{n}." for n in notes),
                BackendFallbackWarning, stacklevel=3,
            )
        return config, skeleton, model

    # an explicit backend is alone in the list and its errors reach the caller; auto's last choice
    # (torch) fails only for a broken run folder, which the caller must hear about too
    *fallible, last = order
    for name in fallible:
        try:
            return chosen(name, _open(name, run_dir, config, skeleton, device, half, auto))
        except (BackendUnavailable, ExportError, ExportMismatchError, OSError) as exc:
            if isinstance(exc, BackendUnavailable) and exc.missing:
                missing.append(f"{name} ({exc})")
            else:
                notes.append(f"{name} failed: {exc}")
    return chosen(last, _open(last, run_dir, config, skeleton, device, half, auto))
