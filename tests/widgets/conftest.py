"""Fixtures of the widget tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MANIFEST = Path(__file__).resolve().parents[2] / "src" / "napari_posetrack" / "napari.yaml"


@pytest.fixture
def dock_every_widget() -> Callable[[Any], dict[str, Any]]:
    """Dock every widget the plugin's manifest contributes, tabbed, as napari's Plugins menu does.

    Returns a function of the viewer giving ``{display name: widget}`` (new widgets are covered
    as soon as they are in ``napari.yaml``).
    """
    import npe2

    names = [w.display_name for w in npe2.PluginManifest.from_file(MANIFEST).contributions.widgets]

    def dock(viewer: Any) -> dict[str, Any]:
        docked = {}
        for i, name in enumerate(names):
            _, widget = viewer.window.add_plugin_dock_widget("napari-posetrack", name, tabify=i > 0)
            docked[name] = widget
        return docked

    return dock
