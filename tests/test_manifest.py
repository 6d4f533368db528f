"""The npe2 manifest is valid, and loading it (or importing the package) stays light."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "av", "cv2", "PyQt5", "PyQt6", "PySide2", "PySide6", "qtpy", "napari")

_PROBE = """
import json, sys
import napari_posetrack
from napari_posetrack import layers, _reader, _writer, _sample_data
from napari_posetrack.core import io, labels, cli
from npe2 import PluginManifest
manifest = PluginManifest.from_distribution("napari-posetrack")
cli.build_parser()  # every registered subcommand is imported: `posetrack --help` must stay light too
heavy = {heavy!r}
print(json.dumps({{
    "loaded": sorted(m for m in heavy if m in sys.modules),
    "readers": [r.command for r in manifest.contributions.readers],
    "writers": [w.command for w in manifest.contributions.writers],
    "samples": [s.key for s in manifest.contributions.sample_data],
    "widgets": [w.display_name for w in manifest.contributions.widgets or []],
}}))
"""


def test_manifest_loads_without_heavy_imports():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["loaded"] == [], f"importing the plugin pulled in {facts['loaded']}"
    assert facts["readers"] == [
        "napari-posetrack.get_labels_reader",
        "napari-posetrack.get_video_reader",
        "napari-posetrack.get_skeleton_reader",
    ]
    assert facts["writers"] == ["napari-posetrack.write_slp", "napari-posetrack.write_dlc_csv"]
    assert facts["samples"] == ["generated"]
    assert facts["widgets"] == [
        "Labelling", "Skeleton", "Suggestions", "Training", "Inference and tracking", "Tools", "Proofread identities"
    ]


def test_npe2_validate():
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-posetrack"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_every_command_resolves_to_a_callable():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-posetrack")
    for command in manifest.contributions.commands:
        module, _, name = command.python_name.partition(":")
        obj = __import__(module, fromlist=[name])
        assert callable(getattr(obj, name)), command.id


def test_opening_the_widgets_imports_no_torch_av_or_cv2():
    """The dock widgets import the engine's heavy libraries only when a job needs them."""
    probe = (
        "import sys\n"
        "from napari_posetrack.demo_viewer import WIDGETS\n"
        "import importlib\n"
        "for module, cls, _ in WIDGETS:\n"
        "    getattr(importlib.import_module(f'napari_posetrack._widgets.{module}'), cls)\n"
        "print(sorted(m for m in ('torch', 'av', 'cv2', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"
