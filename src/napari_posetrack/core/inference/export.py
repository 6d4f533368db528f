"""Export a trained run to ONNX, and check that an export still belongs to its run.

``posetrack export RUN_DIR`` writes ``RUN_DIR/model.onnx`` (``model.fp16.onnx`` with ``--half``) and a
JSON sidecar beside it (``model.onnx.json``). The graph takes the same input the torch model takes,
``images`` ``(B, C, H, W)`` float32 in [0, 1] with H and W multiples of the model's max stride, and
batch, height and width are dynamic; everything the network does to its input (a torchvision
backbone's ImageNet normalisation, grey-stem handling) is inside the graph. Its outputs are the
heads' main outputs, named as the torch model names them (``confmaps``, ``centroids``, ``pafs``),
float32 even in a half-precision export (the casts are inside the graph), so callers never see fp16.

The sidecar records what the export was made from: the package version, the export format version,
the pipeline, the skeleton's nodes, the outputs' strides and channels, the input channels, the
precision and a SHA-256 of the checkpoint. :func:`check_export` compares it with the run folder, so
an export made by another version, for another skeleton, or before the run was retrained is refused
with a message saying what differs and how to export again.

Peak finding stays outside the graph: the backends return the maps on the model's device and the
pipelines find peaks there with torch, so nothing is copied to the host that would not be anyway.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_posetrack import __version__
from napari_posetrack.core.errors import FileFormatError, PoseTrackError, atomic_write

if TYPE_CHECKING:
    import torch

    from napari_posetrack.core.config import TrainingConfig
    from napari_posetrack.core.labels import Skeleton

EXPORT_FORMAT_VERSION = 1
"""Bumped whenever the graph's inputs, outputs or the sidecar change meaning."""

ONNX_OPSET = 18
"""The ONNX opset of exports: the dynamo exporter's own, and read by ONNX Runtime and OpenVINO alike."""

TORCHSCRIPT_OPSET = 17
"""The TorchScript exporter's opset (its newest well-tested one), used only when the dynamo exporter fails."""

INPUT_NAME = "images"
SIDECAR_SUFFIX = ".json"


class ExportError(PoseTrackError, RuntimeError):
    """The model could not be exported (the message says which exporter failed and why)."""


class ExportMismatchError(PoseTrackError, ValueError):
    """An exported model does not belong to the run it sits in (another version, skeleton or checkpoint)."""


def onnx_path(run_dir: str | os.PathLike[str], half: bool = False) -> Path:
    """Where :func:`export_run` writes a run's ONNX model by default."""
    return Path(run_dir) / ("model.fp16.onnx" if half else "model.onnx")


def sidecar_path(model_path: str | os.PathLike[str]) -> Path:
    """The JSON description written beside an exported model."""
    p = Path(model_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def checkpoint_file(run_dir: str | os.PathLike[str]) -> Path:
    """The checkpoint :func:`~napari_posetrack.core.models.runs.load_run` loads: ``best.ckpt``, else ``last.ckpt``."""
    from napari_posetrack.core.errors import MissingFileError

    run = Path(run_dir)
    for name in ("best.ckpt", "last.ckpt"):
        if (run / name).is_file():
            return run / name
    raise MissingFileError(run / "best.ckpt", "run folder is incomplete: no checkpoint to export")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (checkpoints can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_facts(run_dir: str | os.PathLike[str], config: TrainingConfig, skeleton: Skeleton) -> dict[str, Any]:
    """What an export of this run must match: version, pipeline, skeleton and checkpoint."""
    ckpt = checkpoint_file(run_dir)
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "posetrack_version": __version__,
        "pipeline": config.model.pipeline,
        "nodes": list(skeleton.nodes),
        "checkpoint": ckpt.name,
        "checkpoint_sha256": file_sha256(ckpt),
    }


def _export_module(model: torch.nn.Module, names: list[str], half: bool) -> torch.nn.Module:
    """The module that is exported: the pose model with its outputs as a tuple in a fixed order (ONNX
    outputs are positional) and, for half precision, casts at both ends so callers see float32 only."""
    from torch import nn

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.half() if half else model

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = self.model(images.half() if half else images)
            return tuple(out[n].float() for n in names)

    return Exported().eval()


def _export_dynamo(module: torch.nn.Module, example: torch.Tensor, max_stride: int, names: list[str], path: Path) -> None:
    """The ``torch.export``-based exporter (needs ``onnxscript``); height and width are multiples of the stride."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    rows = torch.export.Dim("rows", min=1, max=65536 // max_stride)
    cols = torch.export.Dim("cols", min=1, max=65536 // max_stride)
    shapes = {"images": {0: batch, 2: max_stride * rows, 3: max_stride * cols}}
    # the exporter reports its stages with print(); a CLI or a widget only wants our own messages
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example,), None, input_names=[INPUT_NAME], output_names=names,
            dynamic_shapes=shapes, dynamo=True, opset_version=ONNX_OPSET, external_data=False,
        )
        program.save(str(path), external_data=False)


def _export_torchscript(module: torch.nn.Module, example: torch.Tensor, names: list[str], path: Path) -> None:
    """The older TorchScript-tracing exporter: a fallback for models ``torch.export`` cannot capture."""
    import torch

    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    axes.update({n: {0: "batch", 2: f"{n}_height", 3: f"{n}_width"} for n in names})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation and tracer warnings say nothing about our model
        torch.onnx.export(
            module, (example,), str(path), input_names=[INPUT_NAME], output_names=names,
            dynamic_axes=axes, dynamo=False, opset_version=TORCHSCRIPT_OPSET,
        )


def export_run(
    run_dir: str | os.PathLike[str],
    format: str = "onnx",
    half: bool = False,
    out: str | os.PathLike[str] | None = None,
) -> Path:
    """Export a trained run to ONNX; returns the model's path (its sidecar is written beside it).

    Parameters
    ----------
    run_dir
        A run folder written by training.
    format
        ``"onnx"`` (the one format; OpenVINO reads ONNX directly).
    half
        Store the weights and compute in float16 (for GPUs); input and outputs stay float32.
    out
        Where to write; default ``RUN_DIR/model.onnx`` (``model.fp16.onnx`` when ``half``).

    Raises
    ------
    ExportError
        Neither the dynamo exporter nor the TorchScript exporter could export the model (both
        reasons are given), or ``onnx``/``onnxscript`` are missing (the message names the extra).
    """
    import torch

    from napari_posetrack.core.models.runs import load_run

    if format != "onnx":
        raise ValueError(f"export format must be 'onnx', not {format!r}")
    path = Path(out) if out is not None else onnx_path(run_dir, half)
    config, skeleton, model = load_run(run_dir, device="cpu")
    from napari_posetrack.core.config import class_head_config

    if class_head_config(config) is not None:
        # its (batch, classes) output has no place among the exported maps, nor in the backends' buffers
        raise ExportError(
            f"{run_dir}: identity models (model.heads.class_vectors) cannot be exported to ONNX yet; "
            "predict with the torch backend"
        )
    facts = run_facts(run_dir, config, skeleton)
    stride = int(model.max_stride)
    from napari_posetrack.core.models.receptive_field import input_channels

    channels = int(input_channels(config))
    # not 1: torch.export would specialise a size-1 dimension to a constant
    example = torch.rand(2, channels, 3 * stride, 4 * stride)
    with torch.inference_mode():
        reference = model(example)
    names = list(reference)
    strides = model.output_strides
    facts.update(
        input_name=INPUT_NAME,
        input_channels=channels,
        max_stride=stride,
        half=bool(half),
        outputs=[{"name": n, "stride": int(strides[n]), "channels": int(reference[n].shape[1])} for n in names],
        opset=ONNX_OPSET,
        torch_version=torch.__version__,
    )
    module = _export_module(model, names, half)
    errors = []
    with atomic_write(path) as tmp:
        try:
            import onnxscript  # noqa: F401  (the dynamo exporter needs it; say so rather than fail deep inside)

            _export_dynamo(module, example, stride, names, tmp)
            facts["exporter"] = "dynamo"
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types; TorchScript may still work
            errors.append(f"dynamo exporter: {_first_line(exc)}")
            try:
                import onnx  # noqa: F401
            except ImportError as imp:
                raise ExportError(
                    "exporting to ONNX needs the onnx packages: pip install 'napari-posetrack[onnx]'"
                ) from imp
            try:
                _export_torchscript(module, example, names, tmp)
                facts.update(exporter="torchscript", opset=TORCHSCRIPT_OPSET)
            except Exception as exc2:
                errors.append(f"TorchScript exporter: {_first_line(exc2)}")
                raise ExportError(f"{run_dir}: the model could not be exported to ONNX ({'; '.join(errors)})") from exc2
        if facts["exporter"] == "torchscript":
            facts["dynamo_error"] = errors[0]
    # the sidecar goes last: a model with a sidecar is a finished export
    with atomic_write(sidecar_path(path)) as tmp:
        tmp.write_text(json.dumps(facts, indent=2))
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def read_sidecar(model_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar of an exported model; a missing or unreadable one is an :class:`ExportMismatchError`."""
    side = sidecar_path(model_path)
    if not side.is_file():
        raise ExportMismatchError(
            f"{model_path}: no {side.name} beside it, so nothing tells which model it holds; "
            "export the run again with 'posetrack export RUN_DIR'"
        )
    try:
        facts = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise FileFormatError(side, f"not a readable export description ({exc})") from exc
    if not isinstance(facts, dict) or "outputs" not in facts:
        raise FileFormatError(side, "not a napari-posetrack export description")
    return facts


def check_export(
    model_path: str | os.PathLike[str], run_dir: str | os.PathLike[str], config: TrainingConfig,
    skeleton: Skeleton, half: bool = False,
) -> dict[str, Any]:
    """The sidecar of ``model_path`` when the export belongs to ``run_dir`` as it is now.

    Raises
    ------
    ExportMismatchError
        The export was made by another package version or export format, for another pipeline or
        skeleton, in another precision, or from another checkpoint (the run was retrained); the
        message says which and how to export again.
    """
    facts = read_sidecar(model_path)
    want = run_facts(run_dir, config, skeleton)
    again = f"export it again with 'posetrack export {run_dir}{' --half' if half else ''}'"
    if facts.get("format_version") != want["format_version"] or facts.get("posetrack_version") != want["posetrack_version"]:
        raise ExportMismatchError(
            f"{model_path} was exported by napari-posetrack {facts.get('posetrack_version', '?')} "
            f"(export format {facts.get('format_version', '?')}); this is {want['posetrack_version']} "
            f"(format {want['format_version']}): {again}"
        )
    if facts.get("nodes") != want["nodes"] or facts.get("pipeline") != want["pipeline"]:
        raise ExportMismatchError(
            f"{model_path} was exported for a {facts.get('pipeline')} model of the skeleton "
            f"({', '.join(facts.get('nodes') or [])}), but {run_dir} is a {want['pipeline']} model of "
            f"({', '.join(want['nodes'])}): it belongs to another run; {again}"
        )
    if bool(facts.get("half")) != bool(half):
        raise ExportMismatchError(
            f"{model_path} is a {'float16' if facts.get('half') else 'float32'} export, "
            f"{'float16' if half else 'float32'} was asked for: {again}"
        )
    if facts.get("checkpoint_sha256") != want["checkpoint_sha256"]:
        raise ExportMismatchError(
            f"{model_path} was exported from another {want['checkpoint']} than the one in {run_dir} now "
            f"(the run was retrained or its checkpoint replaced): {again}"
        )
    return facts


def verify_export(
    model_path: str | os.PathLike[str], run_dir: str | os.PathLike[str], size: tuple[int, int] | None = None
) -> float:
    """Largest absolute difference between the ONNX Runtime and torch outputs on one random input.

    ``size`` is the input's (height, width), default a non-square multiple of the max stride.
    Needs ``onnxruntime`` (raises :class:`~napari_posetrack.core.inference.backends.BackendUnavailable`).
    """
    import numpy as np
    import torch

    from napari_posetrack.core.inference.backends import import_onnxruntime
    from napari_posetrack.core.models.runs import load_run

    ort = import_onnxruntime()
    facts = read_sidecar(model_path)
    _, _, model = load_run(run_dir, device="cpu")
    s = int(facts["max_stride"])
    h, w = size or (5 * s, 7 * s)
    images = torch.rand(1, int(facts["input_channels"]), h, w, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {facts["input_name"]: images.numpy()})
    with torch.inference_mode():
        ref = model(images)
    return max(float(np.abs(g - ref[o["name"]].numpy()).max()) for g, o in zip(got, facts["outputs"]))


# --------------------------------------------------------------------------- CLI


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="export a trained run to ONNX (for the onnxruntime, openvino and tensorrt backends)",
        description=(
            "Export a trained run to ONNX: RUN_DIR/model.onnx (model.fp16.onnx with --half) and a JSON "
            "description beside it, which 'posetrack predict --backend' checks before using the export."
        ),
    )
    p.add_argument("run_dir", help="a trained run folder")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx: read by ONNX Runtime and OpenVINO)")
    p.add_argument("--half", action="store_true", help="float16 weights and arithmetic (for GPUs)")
    p.add_argument("-o", "--output", default=None, help="where to write (default: inside the run folder)")
    p.add_argument(
        "--no-verify", dest="verify", action="store_false",
        help="skip comparing the export with the torch model on a random input",
    )
    p.set_defaults(func=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    """``posetrack export RUN_DIR``."""
    import time

    from napari_posetrack.core.inference.backends import BackendUnavailable

    start = time.perf_counter()
    path = export_run(args.run_dir, args.format, half=args.half, out=args.output)
    facts = read_sidecar(path)
    print(f"exported {path} in {time.perf_counter() - start:.1f} s ({facts['exporter']} exporter, opset {facts['opset']})")
    if args.verify:
        try:
            diff = verify_export(path, args.run_dir)
        except BackendUnavailable as exc:
            print(f"not verified: {exc}")
        else:
            print(f"max |onnxruntime - torch| on a random input: {diff:.2g}")
    return 0
