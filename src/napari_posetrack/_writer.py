"""npe2 writers: the selected ``poses:`` Points layers back to a labels file.

The Points layers are turned into one :class:`~napari_posetrack.core.labels.Labels` with
:func:`napari_posetrack.layers.points_layers_to_labels` and written with
:func:`napari_posetrack.core.io.save_labels` (atomic: a failed save leaves the old file intact).
Other selected layers (the video, skeleton vectors, tracks) are accepted and ignored, except
that a video layer names the video of Points layers that know none (made from a skeleton).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LayerDataTuple = tuple[Any, dict[str, Any], str]


def layers_to_store(layer_data: Sequence[LayerDataTuple]) -> Any:
    """The store held by the Points layers of ``layer_data`` (napari ``(data, attributes, type)`` tuples).

    Raises
    ------
    ValueError
        No Points layer among them.
    """
    from napari_posetrack.core.labels import Video
    from napari_posetrack.layers import points_layers_to_labels

    points = [
        (d, a.get("features", {}), a.get("metadata", {}) or {})
        for d, a, kind in layer_data
        if kind == "points"
    ]
    if not points:
        raise ValueError("select at least one Points layer (poses) to save")
    # a layer labelled from a skeleton alone knows no video: a selected video layer is its video
    paths = [a.get("metadata", {}).get("path") for _, a, kind in layer_data if kind == "image"]
    paths = [p for p in paths if p]
    return points_layers_to_labels(points, video=Video(paths[0]) if paths else None)


def _write(path: str, layer_data: Sequence[LayerDataTuple], fmt: str) -> list[str]:
    from napari_posetrack.core.io import save_labels

    labels = layers_to_store(layer_data)
    save_labels(labels, path, format=fmt)
    return [path]


def write_slp(path: str, layer_data: Sequence[LayerDataTuple]) -> list[str]:
    """Write the selected Points layers as a SLEAP ``.slp`` file; returns the written path."""
    return _write(path, layer_data, "slp")


def write_dlc_csv(path: str, layer_data: Sequence[LayerDataTuple]) -> list[str]:
    """Write the user instances of the selected Points layers as a DeepLabCut ``CollectedData`` CSV."""
    return _write(path, layer_data, "dlc")
