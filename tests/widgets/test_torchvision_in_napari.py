"""A torchvision backbone can be built and run inside napari's process once the plugin is loaded.

Triton (shipped with CUDA builds of torch, imported by torchvision through ``torch._dynamo``) and
Mesa's OpenGL both bring an LLVM; loaded together, napari segfaults. The check runs in a child
process so that a crash fails this test instead of ending the whole test session.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import numpy, napari
viewer = napari.Viewer(show=False)
viewer.add_image(numpy.zeros((8, 16, 16), dtype=numpy.uint8))
viewer.window.add_plugin_dock_widget("napari-posetrack", "Inference and tracking")
import torch
from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.labels import Skeleton
from napari_posetrack.core.models import build_model
config = TrainingConfig()
config.model.backbone = "resnet18"
config.model.neck.type = "fpn"
model = build_model(config, Skeleton(nodes=["a", "b"], edges=[("a", "b")]), in_channels=1).eval()
with torch.inference_mode():
    out = model(torch.rand(1, 1, 64, 64))
print("maps", tuple(out["confmaps"].shape), flush=True)
viewer.close()
"""


@pytest.mark.gui
@pytest.mark.slow
def test_a_torchvision_backbone_runs_inside_napari():
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (run under xvfb-run)")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"napari's process died (code {done.returncode}):\n{done.stderr[-2000:]}"
    assert "maps (1, 2, 16, 16)" in done.stdout
