"""Check an installed napari-posetrack wheel the way a user meets it: napari lists it and opens its widgets.

Run with the Python of a fresh virtual environment into which only the wheel (with ``[all]``) and
the torch pair were installed, from a folder outside the repository (so that nothing is imported
from ``src/``), under a display (``xvfb-run``)::

    cd /tmp && QT_QPA_PLATFORM=xcb xvfb-run -a /tmp/wheelcheck/bin/python /path/to/.ci/check_wheel.py

Exits non-zero with a message naming what is wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN = "napari-posetrack"


def fail(message: str) -> None:
    print(f"check_wheel: FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def check_installed_copy() -> Path:
    """The package comes from site-packages (the wheel), not from a source checkout."""
    import napari_posetrack

    where = Path(napari_posetrack.__file__).resolve().parent
    if "site-packages" not in where.parts:
        fail(f"napari_posetrack was imported from {where}, not from the installed wheel")
    for needed in ("napari.yaml", "templates"):
        if not (where / needed).exists():
            fail(f"{needed} is not in the installed package ({where})")
    from napari_posetrack.core.skeleton_edit import list_templates, load_template

    templates = list_templates()
    if not templates:
        fail(f"no skeleton templates found in {where / 'templates'}")
    for name in templates:
        load_template(name)
    print(f"installed package: {where} ({len(templates)} skeleton templates)")
    return where


def check_plugin_and_widgets() -> None:
    """napari's plugin manager knows the plugin, and each dock widget of its manifest opens."""
    import napari
    from npe2 import PluginManager
    from qtpy.QtWidgets import QWidget

    pm = PluginManager.instance()
    pm.discover()
    names = sorted(m.name for m in pm.iter_manifests())
    if PLUGIN not in names:
        fail(f"{PLUGIN} is not among napari's plugins: {names}")
    manifest = pm.get_manifest(PLUGIN)
    widgets = list(manifest.contributions.widgets or [])
    if not widgets:
        fail(f"the {PLUGIN} manifest lists no dock widgets")
    viewer = napari.Viewer(show=False)
    try:
        for contribution in widgets:
            _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, contribution.display_name)
            if not isinstance(widget, QWidget):
                fail(f"{contribution.display_name}: got {type(widget).__name__}, not a Qt widget")
            print(f"opened dock widget: {contribution.display_name} ({type(widget).__name__})")
        readers = [r.command for r in manifest.contributions.readers or []]
        print(f"{PLUGIN} {manifest.package_version}: {len(widgets)} dock widgets, readers {readers}")
    finally:
        viewer.close()


def main() -> None:
    check_installed_copy()
    check_plugin_and_widgets()
    print("check_wheel: OK")


if __name__ == "__main__":
    main()
