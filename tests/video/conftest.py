"""Every test here gets its own video cache, so what readers learn stays within the test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def video_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("video-cache")
    monkeypatch.setenv("POSETRACK_VIDEO_CACHE", str(folder))
    return folder
