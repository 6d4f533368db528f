"""Networks: backbones, necks, heads, and what a config's model looks like (receptive field, size).

Imports are lazy so that ``receptive_field`` and ``count_parameters`` (which need no torch) can be
used by the GUI without importing torch. ``receptive_field`` is the submodule; its function is
``napari_posetrack.core.models.receptive_field.receptive_field``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UNet": "unet",
    "conv_block": "unet",
    "Head": "heads",
    "ConfidenceMapHead": "heads",
    "CenteredInstanceHead": "heads",
    "CentroidHead": "heads",
    "PAFHead": "heads",
    "PoseModel": "model",
    "IdentityNeck": "model",
    "build_model": "model",
    "pad_to_stride": "model",
    "ReceptiveField": "receptive_field",
    "UNetPlan": "receptive_field",
    "count_parameters": "receptive_field",
    "unet_plan": "receptive_field",
}

__all__ = [
    "CenteredInstanceHead",
    "CentroidHead",
    "ConfidenceMapHead",
    "Head",
    "IdentityNeck",
    "PAFHead",
    "PoseModel",
    "ReceptiveField",
    "UNet",
    "UNetPlan",
    "build_model",
    "conv_block",
    "count_parameters",
    "pad_to_stride",
    "unet_plan",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
