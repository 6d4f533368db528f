"""npe2 sample data: a procedurally generated multi-animal clip with its ground-truth poses."""

from __future__ import annotations

from typing import Any

LayerDataTuple = tuple[Any, dict[str, Any], str]


def make_sample_data() -> list[LayerDataTuple]:
    """Video, tracks, skeleton and poses layers of :func:`napari_posetrack.core.sample.generate_sample`.

    The frames are made in memory (no file is written), so the ``video:`` layer holds a numpy array.
    """
    from napari_posetrack.core.sample import generate_sample
    from napari_posetrack.layers import labels_to_layers

    frames, labels = generate_sample()
    # the generated video is not a file: its frames are handed over instead of read
    layers, _ = labels_to_layers(labels, frames={0: frames})
    return layers
