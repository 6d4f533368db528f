"""``posetrack export`` and the checks that keep an export tied to its run (version, skeleton, checkpoint)."""

from __future__ import annotations

import json
import re
import sys
import warnings

import numpy as np
import pytest
import torch

from napari_posetrack.core.cli import main as posetrack
from napari_posetrack.core.inference import export
from napari_posetrack.core.inference.backends import (
    BackendFallbackWarning,
    BackendUnavailable,
    OnnxRuntimeBackend,
    load_backend,
    read_run,
)
from napari_posetrack.core.inference.export import (
    ExportError,
    ExportMismatchError,
    check_export,
    export_run,
    onnx_path,
    read_sidecar,
    sidecar_path,
)

CPU = torch.device("cpu")


def _edit_sidecar(run, **changes) -> None:
    side = sidecar_path(onnx_path(run))
    facts = json.loads(side.read_text())
    facts.update(changes)
    side.write_text(json.dumps(facts))


@pytest.mark.slow
def test_export_has_dynamic_batch_and_size_and_a_sidecar_describing_it(exported_single_run):
    import onnx

    from napari_posetrack import __version__

    path = onnx_path(exported_single_run)
    model = onnx.load(str(path))
    (image,) = model.graph.input
    dims = image.type.tensor_type.shape.dim
    assert image.name == "images" and dims[1].dim_value == 1  # grayscale input
    assert all(d.dim_param for d in (dims[0], dims[2], dims[3]))  # batch, height, width are symbolic
    assert [o.name for o in model.graph.output] == ["confmaps"]
    assert model.opset_import[0].version == export.ONNX_OPSET

    facts = read_sidecar(path)
    _, skeleton = read_run(exported_single_run)
    assert facts["posetrack_version"] == __version__ and facts["format_version"] == export.EXPORT_FORMAT_VERSION
    assert facts["pipeline"] == "single_instance" and facts["nodes"] == list(skeleton.nodes)
    assert facts["outputs"] == [{"name": "confmaps", "stride": 2, "channels": skeleton.n_nodes}]
    assert facts["input_channels"] == 1 and facts["max_stride"] == 8 and facts["half"] is False
    assert facts["exporter"] == "dynamo"
    assert facts["checkpoint_sha256"] == export.file_sha256(exported_single_run / facts["checkpoint"])


def test_stale_or_foreign_exports_are_refused_saying_why(exported_single_run, copy_run):
    run = copy_run(exported_single_run)
    config, skeleton = read_run(run)
    path = onnx_path(run)
    assert check_export(path, run, config, skeleton)["pipeline"] == "single_instance"
    again = re.escape(f"export it again with 'posetrack export {run}'")

    _edit_sidecar(run, posetrack_version="0.0.1")
    with pytest.raises(ExportMismatchError, match=r"exported by napari-posetrack 0\.0\.1 .* this is .*" + again):
        check_export(path, run, config, skeleton)

    _edit_sidecar(run, posetrack_version=read_sidecar(onnx_path(exported_single_run))["posetrack_version"], nodes=["nose", "tail"])
    with pytest.raises(ExportMismatchError, match=r"skeleton \(nose, tail\), but .* it belongs to another run"):
        check_export(path, run, config, skeleton)

    _edit_sidecar(run, nodes=list(skeleton.nodes))
    with pytest.raises(ExportMismatchError, match=r"float32 export, float16 was asked for"):
        check_export(path, run, config, skeleton, half=True)

    # retraining writes a new checkpoint: the export no longer holds the run's weights
    ckpt = run / read_sidecar(path)["checkpoint"]
    state = torch.load(ckpt, weights_only=False)
    state["retrained"] = True
    torch.save(state, ckpt)
    with pytest.raises(ExportMismatchError, match="the run was retrained or its checkpoint replaced"):
        check_export(path, run, config, skeleton)

    sidecar_path(path).unlink()
    with pytest.raises(ExportMismatchError, match=r"no model\.onnx\.json beside it"):
        check_export(path, run, config, skeleton)


@pytest.mark.slow
def test_an_explicit_backend_refuses_a_stale_export_and_auto_exports_again(exported_single_run, copy_run):
    run = copy_run(exported_single_run)
    _edit_sidecar(run, posetrack_version="0.0.1")
    with pytest.raises(ExportMismatchError, match=r"exported by napari-posetrack 0\.0\.1"):
        load_backend(run, CPU, "onnxruntime")
    with pytest.raises(ExportMismatchError):
        load_backend(run, CPU, "openvino")
    with pytest.warns(BackendFallbackWarning) as record:
        _, _, model = load_backend(run, CPU, "auto")
    assert len(record) == 1 and "exporting it again now" in str(record[0].message)
    assert isinstance(model, OnnxRuntimeBackend)
    assert read_sidecar(onnx_path(run))["posetrack_version"] != "0.0.1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fresh now: used as it is, silently
        load_backend(run, CPU, "onnxruntime")


@pytest.mark.slow
def test_an_explicit_backend_exports_on_first_use(single_instance_run, copy_run):
    run = copy_run(single_instance_run)
    assert not onnx_path(run).exists()
    _, _, model = load_backend(run, CPU, "onnxruntime")
    assert isinstance(model, OnnxRuntimeBackend)
    assert read_sidecar(onnx_path(run))["half"] is False


@pytest.mark.slow
def test_the_torchscript_exporter_takes_over_when_the_dynamo_exporter_fails(single_instance_run, tmp_path, monkeypatch):
    from napari_posetrack.core.models.runs import load_run

    def refuse(*args, **kwargs):
        raise RuntimeError("torch.export could not trace this model")

    monkeypatch.setattr(export, "_export_dynamo", refuse)
    path = export_run(single_instance_run, out=tmp_path / "fallback.onnx")
    facts = read_sidecar(path)
    assert facts["exporter"] == "torchscript" and facts["opset"] == export.TORCHSCRIPT_OPSET
    assert "torch.export could not trace this model" in facts["dynamo_error"]
    backend = OnnxRuntimeBackend(path, facts, ["CPUExecutionProvider"])
    _, _, reference = load_run(single_instance_run)
    images = torch.rand(2, 1, 40, 72)
    with torch.no_grad():
        assert (backend(images)["confmaps"] - reference(images)["confmaps"]).abs().max() < 1e-4


def test_export_without_the_onnx_packages_names_the_extra(single_instance_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ExportError, match=r"pip install 'napari-posetrack\[onnx\]'"):
        export_run(single_instance_run, out=tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists() and not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.slow
def test_half_export_keeps_float32_inputs_and_outputs(single_instance_run, tmp_path):
    from napari_posetrack.core.models.runs import load_run

    path = export_run(single_instance_run, half=True, out=tmp_path / "model.fp16.onnx")
    facts = read_sidecar(path)
    assert facts["half"] is True
    # ONNX Runtime runs float16 graphs on any CPU (slowly where it has no fp16 arithmetic)
    backend = OnnxRuntimeBackend(path, facts, ["CPUExecutionProvider"])
    _, _, reference = load_run(single_instance_run)
    images = torch.rand(1, 1, 64, 64)
    out = backend(images)["confmaps"]
    with torch.no_grad():
        ref = reference(images)["confmaps"]
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 1e-2  # float16 keeps about 3 significant digits


def test_export_format_other_than_onnx_is_refused(single_instance_run):
    with pytest.raises(ValueError, match="export format must be 'onnx', not 'tflite'"):
        export_run(single_instance_run, format="tflite")


# --------------------------------------------------------------------------- command line


@pytest.mark.slow
def test_posetrack_export_writes_the_model_and_checks_it_against_torch(single_instance_run, tmp_path, capsys):
    out = tmp_path / "exports" / "fly.onnx"
    assert posetrack(["export", str(single_instance_run), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"exported {out} in " in printed and "(dynamo exporter, opset 18)" in printed
    diff = float(re.search(r"max \|onnxruntime - torch\| on a random input: (\S+)", printed).group(1))
    assert diff < 1e-4
    assert out.is_file() and sidecar_path(out).is_file()
    assert not onnx_path(single_instance_run).exists()  # -o: nothing written into the run


@pytest.mark.slow
def test_posetrack_predict_with_each_backend_gives_the_same_predictions(exported_single_run, small_sample, tmp_path, capsys):
    from napari_posetrack.core.io import load_labels

    points = {}
    for backend in ("torch", "onnxruntime", "openvino"):
        out = tmp_path / f"{backend}.slp"
        argv = ["predict", small_sample["video"], "-m", str(exported_single_run), "-o", str(out), "--frames", "0-5",
                "--peak-threshold", "0", "--device", "cpu", "--backend", backend, "--quiet"]
        assert posetrack(argv) == 0
        points[backend] = load_labels(out).instances.points
    assert len(points["torch"]) == 6
    for backend in ("onnxruntime", "openvino"):
        assert np.array_equal(np.isnan(points[backend]), np.isnan(points["torch"]))
        assert np.nanmax(np.abs(points[backend] - points["torch"])) < 1e-3


def test_posetrack_predict_with_a_missing_backend_says_which_extra_to_install(single_instance_run, small_sample, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    argv = ["predict", small_sample["video"], "-m", str(single_instance_run), "-o", str(tmp_path / "p.slp"),
            "--device", "cpu", "--backend", "openvino", "--quiet"]
    assert posetrack(argv) == 1
    err = capsys.readouterr().err
    assert "posetrack predict: error: OpenVINO is not installed: pip install 'napari-posetrack[openvino]'" in err


def test_posetrack_predict_auto_prints_its_fallback_as_one_line(single_instance_run, small_sample, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "openvino", None)
    argv = ["predict", small_sample["video"], "-m", str(single_instance_run), "-o", str(tmp_path / "p.slp"),
            "--frames", "0-1", "--device", "cpu", "--backend", "auto", "--quiet"]
    assert posetrack(argv) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "backend auto" in line]
    assert len(lines) == 1 and lines[0].startswith("posetrack predict: ")
    assert "runs on torch" in lines[0] and "napari-posetrack[onnx]" in lines[0]


def test_posetrack_predict_half_on_a_cpu_without_it_is_an_error(single_instance_run, small_sample, tmp_path, capsys, monkeypatch):
    from napari_posetrack.core.inference import backends

    monkeypatch.setattr(backends, "cpu_has_fp16", lambda: False)
    argv = ["predict", small_sample["video"], "-m", str(single_instance_run), "-o", str(tmp_path / "p.slp"),
            "--device", "cpu", "--half", "--quiet"]
    assert posetrack(argv) == 1
    assert "half precision was asked for, but this CPU has no half-precision arithmetic" in capsys.readouterr().err
    with pytest.raises(BackendUnavailable):
        load_backend(single_instance_run, CPU, "torch", half=True)
