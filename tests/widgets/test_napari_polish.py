"""napari polish: one time slider named "frame", frame time in the status bar, overlays beside it."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")

from napari_posetrack._widgets._project import STATUS_SEP, project_for

pytestmark = pytest.mark.gui


def _sliders(viewer) -> list[int]:
    """The dimensions napari shows a slider for (not displayed, more than one step)."""
    return [axis for axis in viewer.dims.not_displayed if viewer.dims.nsteps[axis] > 1]


def test_one_frame_slider_with_every_widget_and_both_receptive_fields(
    make_napari_viewer, dock_every_widget, flies, qtbot
):
    viewer = make_napari_viewer()
    widgets = dock_every_widget(viewer)
    assert widgets["Labelling"].open_path(flies / "clip.slp")
    project = project_for(viewer)
    training = widgets["Training"]
    training.set_pipeline("topdown")
    training.rf_check.setChecked(True)
    qtbot.waitUntil(lambda: "receptive field" in viewer.layers and len(viewer.layers["receptive field"].data) == 2,
                    timeout=60_000)
    overlay = viewer.layers["receptive field"]
    assert overlay.ndim == 2 and overlay.visible
    # the overlay and every other layer leave the frame axis alone: one slider, named "frame"
    assert _sliders(viewer) == [0]
    assert viewer.dims.axis_labels[0] == "frame"
    assert all(layer.axis_labels[0] == "frame" for layer in viewer.layers if layer.ndim == 3)
    # one caption (a legend naming both boxes), so captions cannot overlap
    captions = [c for c in overlay.text.values if c]
    assert len(captions) == 1
    assert "centroid" in captions[0] and "centered instance" in captions[0]
    assert "yellow" in captions[0] and "cyan" in captions[0]

    # the status bar: frame number and time in seconds from the video's timestamps
    project.go_to(25)
    video = project.video_layer
    seconds = float(video.metadata["timestamps"][25])
    assert seconds == pytest.approx(25 / project.video.fps, rel=1e-3)
    status = viewer.status if isinstance(viewer.status, str) else viewer.status["coordinates"]
    assert status.endswith(f"{STATUS_SEP}frame 25/{project.video.n_frames} · {seconds:.3f} s")
    viewer.status = {"layer_base": "poses", "source_type": "", "plugin": "", "coordinates": " [25 10 10]: 3"}
    assert viewer.status["coordinates"] == f" [25 10 10]: 3{STATUS_SEP}frame 25/{project.video.n_frames} · {seconds:.3f} s"
