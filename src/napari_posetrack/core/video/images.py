"""Image folders and image lists (DeepLabCut ``labeled-data``) read as videos."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, MissingFileError
from .base import N_GRAYSCALE_SAMPLES, VideoReader

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def natural_sort_key(name: str) -> list[Any]:
    """Sort key that orders ``img2`` before ``img10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(name))]


def list_images(folder: str | os.PathLike[str]) -> list[str]:
    """Image files of ``folder`` (by extension), in natural order of their names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(folder, "no such image folder")
    names = [p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return [str(folder / name) for name in sorted(names, key=natural_sort_key)]


class ImageSequenceReader(VideoReader):
    """A folder or list of image files read as a video (one image per frame).

    Parameters
    ----------
    images
        A folder (its images in natural order of file names) or a list of image paths (kept
        in the given order: a labels file's frame indices refer to it).
    """

    backend = "images"

    def __init__(
        self,
        images: str | os.PathLike[str] | Sequence[str],
        *,
        rgb: bool = False,
        cache_size: int = 16,
        fps: float | None = None,
    ) -> None:
        super().__init__(cache_size)
        if isinstance(images, (str, os.PathLike)):
            self.paths = list_images(images)
            self.path = os.fspath(images)
        else:
            self.paths = [os.fspath(p) for p in images]
            self.path = str(Path(self.paths[0]).parent) if self.paths else ""
        if not self.paths:
            raise FileFormatError(
                self.path or "<empty image list>", "no image files (png, jpg, bmp, tif) to read"
            )
        missing = [p for p in self.paths if not os.path.isfile(p)]
        if missing:
            raise MissingFileError(
                missing[0], f"image file missing ({len(missing)} of {len(self.paths)} images are missing)"
            )
        self.rgb = bool(rgb)
        self.fps = fps
        self.n_frames = len(self.paths)
        first = self._read_image(0)
        self._height, self._width = first.shape[:2]
        samples = np.unique(
            np.linspace(0, self.n_frames - 1, num=min(N_GRAYSCALE_SAMPLES, self.n_frames)).round().astype(int)
        )
        self.grayscale = self._detect_grayscale(samples.tolist())

    def _read_rgb(self, index: int) -> np.ndarray:
        image = self._read_image(index)
        if image.shape[:2] != (self._height, self._width):
            raise FileFormatError(
                self.paths[index],
                f"image is {image.shape[1]}x{image.shape[0]}, but the sequence's first image is "
                f"{self._width}x{self._height}; every frame of an image sequence needs the same size",
            )
        return image

    def _read_image(self, index: int) -> np.ndarray:
        import cv2

        path = self.paths[index]
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise FileFormatError(path, "not a readable image (corrupt or unsupported format)")
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)  # keep the high byte: 16-bit images as 8-bit
        elif image.dtype != np.uint8:
            raise FileFormatError(path, f"unsupported image sample type {image.dtype}")
        if image.ndim == 2:
            return image[:, :, None]
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        if image.shape[2] == 3:
            return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        raise FileFormatError(path, f"unsupported number of channels {image.shape[2]}")
