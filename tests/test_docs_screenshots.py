"""docs/make_screenshots.py still makes every picture of the user guide (not pixel by pixel)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _script():
    spec = importlib.util.spec_from_file_location("make_screenshots", ROOT / "docs" / "make_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_user_guide_pictures_are_made_from_the_fly_clip(make_napari_viewer, data, tmp_path):
    from PIL import Image

    script = _script()
    start = time.perf_counter()
    written = script.make_screenshots(tmp_path / "images", data, viewer=make_napari_viewer(),
                                      work_dir=tmp_path / "home", train_steps=4)
    print(f"\n{len(written)} pictures in {time.perf_counter() - start:.1f} s")
    assert [p.name for p in written] == list(script.EXPECTED)
    for path in written:
        assert path.is_file(), f"{path.name} was not written"
        min_w, max_w, min_h, max_h = script.EXPECTED[path.name]
        with Image.open(path) as image:
            w, h = image.size
            pixels = np.asarray(image.convert("RGB"))
        assert min_w <= w <= max_w and min_h <= h <= max_h, f"{path.name} is {w} x {h}"
        assert 2_000 < path.stat().st_size < 600_000, f"{path.name}: {path.stat().st_size} bytes"
        colours = np.unique(pixels.reshape(-1, 3), axis=0)
        assert len(colours) > 8, f"{path.name} is (nearly) one flat colour"
    # every picture the user guide shows is one the script makes
    guide = (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8")
    import re

    shown = set(re.findall(r"\]\(images/([^)]+)\)", guide))
    assert shown and shown <= set(script.EXPECTED), shown - set(script.EXPECTED)
