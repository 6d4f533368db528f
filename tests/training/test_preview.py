"""Training-input preview and receptive-field sizes (core, no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.config import baseline_profile
from napari_posetrack.core.errors import ConfigError, MissingFileError
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.models.receptive_field import receptive_field
from napari_posetrack.core.sample import write_sample
from napari_posetrack.core.training.preview import model_configs, receptive_field_sizes, training_preview


@pytest.fixture(scope="module")
def sample_labels(tmp_path_factory):
    paths = write_sample(tmp_path_factory.mktemp("preview"), n_animals=2, n_frames=12, size=(96, 96))
    return load_labels(paths["labels"])


def _small(name: str):
    return baseline_profile(name, receptive_field="small")


@pytest.mark.parametrize("pipeline", ["single", "centroid", "bottomup"])
def test_whole_frame_samples_have_maps_at_the_output_stride(sample_labels, pipeline):
    config = _small(pipeline)
    preview = training_preview(config, sample_labels, n_samples=3, seed=1)
    assert preview.images.dtype == np.uint8
    assert preview.images.shape == (3, 96, 96)  # grayscale video, 96 is a multiple of the stride
    stride = preview.output_stride
    head = config.model.heads.centroids if pipeline == "centroid" else config.model.heads.confmaps
    assert stride == head.output_stride
    n_channels = 1 if pipeline == "centroid" else sample_labels.n_nodes
    assert preview.confmaps.shape == (3, n_channels, 96 // stride, 96 // stride)
    assert len(preview.channel_names) == n_channels
    assert preview.confmaps_max.shape == (3, 96 // stride, 96 // stride)
    # every sample holds at least one animal: its blobs peak near 1
    assert np.all(preview.confmaps_max.reshape(3, -1).max(axis=1) > 0.5)


def test_confmap_peaks_sit_on_the_augmented_keypoints(sample_labels):
    config = _small("single")
    config.optimization.augmentation.rotation_probability = 1.0
    config.optimization.augmentation.rotation_min_angle = -90.0
    config.optimization.augmentation.rotation_max_angle = 90.0
    preview = training_preview(config, sample_labels, n_samples=4, seed=3)
    stride = preview.output_stride
    checked = 0
    for k in range(len(preview.images)):
        for node in range(preview.confmaps.shape[1]):
            xy = preview.points[k, 0, node]
            if not np.isfinite(xy).all():
                continue
            cmap = preview.confmaps[k, node]
            y, x = np.unravel_index(np.argmax(cmap), cmap.shape)
            # the peak is the grid cell nearest the (rotated) keypoint
            assert abs(x * stride - xy[0]) <= stride and abs(y * stride - xy[1]) <= stride
            checked += 1
    assert checked > 0


def test_centered_instance_samples_are_crops(sample_labels):
    config = _small("centered_instance")
    preview = training_preview(config, sample_labels, n_samples=4, seed=0)
    k, h, w = preview.images.shape
    assert k == 4 and h == w and h % config.model.unet.max_stride == 0 and h < 96
    assert preview.points.shape[1] == 1


def test_seed_repeats_and_changes_the_samples(sample_labels):
    config = _small("single")
    a = training_preview(config, sample_labels, n_samples=2, seed=5)
    b = training_preview(config, sample_labels, n_samples=2, seed=5)
    c = training_preview(config, sample_labels, n_samples=2, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_topdown_is_previewed_one_model_at_a_time(sample_labels):
    with pytest.raises(ConfigError, match="one model"):
        training_preview(_small("topdown"), sample_labels)
    centroid, centered = model_configs(_small("topdown"))
    assert (centroid.model.pipeline, centered.model.pipeline) == ("centroid", "centered_instance")


def test_missing_video_is_named(sample_labels, tmp_path):
    labels = sample_labels.copy()
    labels.videos[0].path = str(tmp_path / "gone.mp4")
    with pytest.raises(MissingFileError, match="gone.mp4"):
        training_preview(_small("single"), labels, n_samples=2)


def test_receptive_field_sizes_follow_scaling_and_stride():
    config = _small("single")
    base = receptive_field_sizes(config)["single_instance"]
    assert base == receptive_field(config).input_pixels
    config.data.input_scaling = 0.5
    assert receptive_field_sizes(config)["single_instance"] == pytest.approx(2 * base)
    config.data.input_scaling = 1.0
    config.model.unet.max_stride = 32
    assert receptive_field_sizes(config)["single_instance"] > base
    topdown = baseline_profile("topdown", receptive_field="small")
    topdown.data.centroid_input_scaling = 0.25
    sizes = receptive_field_sizes(topdown)
    assert set(sizes) == {"centroid", "centered_instance"}
    assert sizes["centroid"] == pytest.approx(4 * sizes["centered_instance"])


@pytest.mark.slow
def test_sample_prediction_of_a_trained_run(sample_labels, tmp_path):
    from napari_posetrack.core.training.preview import sample_prediction
    from napari_posetrack.core.training.run import train
    from napari_posetrack.core.video import open_video

    config = _small("single")
    config.model.unet.filters = 4
    config.optimization.epochs = 1
    config.optimization.batches_per_epoch = 2
    config.optimization.min_batches_per_epoch = 0
    config.outputs.runs_folder = str(tmp_path)
    run_dir = train(config, sample_labels, device="cpu")
    with open_video(sample_labels.videos[0]) as reader:
        image = reader.frame(3)
    points, scores = sample_prediction([run_dir], image[..., 0], 3, peak_threshold=0.0)
    assert points.shape == (1, sample_labels.n_nodes, 2) and scores.shape == (1,)
    found = points[np.isfinite(points).all(axis=-1)]  # an undertrained model finds some parts
    assert len(found) and (found >= 0).all() and (found < 96).all()
    with pytest.raises(MissingFileError):
        sample_prediction([tmp_path / "no_run"], image, 0)
