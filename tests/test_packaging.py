"""The package a user installs: the sdist and wheel build, pass ``twine check`` and hold what napari needs.

The build runs without isolation (the test environment already has setuptools) so that it takes
seconds; ``.ci/run`` builds with isolation, installs the wheel into a fresh environment and opens
every dock widget (``.ci/check_wheel.py``).
"""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_posetrack"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from it (``python -m build`` builds the wheel from the sdist)."""
    pytest.importorskip("build")
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,  # the assertion below shows the build's output
    )
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_twine_check_passes(dists):
    pytest.importorskip("twine")
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists["wheel"]), str(dists["sdist"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_holds_the_manifest_templates_and_every_module(dists):
    names = _wheel_names(dists["wheel"])
    # every source file and every data file of the package is in the wheel
    expected = {
        str(p.relative_to(PACKAGE.parent)).replace("\\", "/")
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix in {".py", ".yaml", ".json"} and "__pycache__" not in p.parts
    }
    assert "napari_posetrack/napari.yaml" in expected
    assert {n for n in expected if n.startswith("napari_posetrack/templates/")}, "no templates in the source?"
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    # nothing of the repository that a user must not get (tests, real data, benchmarks)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "shared/", "screenshots/"))]
    assert not [n for n in names if n.endswith((".mp4", ".slp", ".ckpt"))]


def test_wheel_metadata_is_what_napari_reads(dists):
    names = _wheel_names(dists["wheel"])
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(dists["wheel"]) as zf:
        meta = email.message_from_bytes(zf.read(f"{dist_info}/METADATA"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    classifiers = meta.get_all("Classifier")
    for needed in (
        "Framework :: napari",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3.11",
    ):
        assert needed in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Topic :: Scientific/Engineering") for c in classifiers)
    assert meta["Name"] == "napari-posetrack"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert meta.get_content_type() == "text/plain" and meta["Description-Content-Type"] == "text/markdown"
    assert "## Install" in meta.get_payload()  # the README is the long description
    # napari finds the plugin through this entry point
    assert "[napari.manifest]" in entry_points
    assert "napari-posetrack = napari_posetrack:napari.yaml" in entry_points
    assert "posetrack = napari_posetrack.core.cli:main" in entry_points
    extras = meta.get_all("Provides-Extra")
    assert {"all", "testing", "onnx", "openvino"} <= set(extras)


def test_every_manifest_command_points_at_a_module_in_the_wheel(dists):
    with zipfile.ZipFile(dists["wheel"]) as zf:
        manifest = yaml.safe_load(zf.read("napari_posetrack/napari.yaml"))
    names = _wheel_names(dists["wheel"])
    commands = manifest["contributions"]["commands"]
    assert commands
    for command in commands:
        module = command["python_name"].split(":")[0]
        as_path = module.replace(".", "/")
        assert f"{as_path}.py" in names or f"{as_path}/__init__.py" in names, command["python_name"]
    widgets = manifest["contributions"]["widgets"]
    assert len(widgets) >= 6


def test_sdist_rebuilds_everything(dists):
    with tarfile.open(dists["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "src/napari_posetrack/napari.yaml"):
        assert needed in names
    templates = {p.name for p in (PACKAGE / "templates").glob("*.json")}
    assert {f"src/napari_posetrack/templates/{t}" for t in templates} <= names
