"""What the network will see: augmented training samples and their targets, before training starts.

The training widget's "view training inputs" shows these so a user can check, in a few seconds,
that the augmentation is sensible (rotations not too wild, flips swap left and right), that the
crops of a top-down model hold whole animals and that the Gaussian blobs are neither tiny nor
smeared over several body parts. The samples go through the very code the trainer runs
(:class:`~napari_posetrack.core.training.pipelines.TrainingPipeline.prepare` with ``training=True``),
so what is shown is what is trained on.

:func:`receptive_field_sizes` gives the side of the receptive field of each model of a job in
original-image pixels, for the overlay drawn over the current frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from napari_posetrack.core.config import TrainingConfig, topdown_configs
from napari_posetrack.core.config.model import model_max_stride
from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.labels import Labels


@dataclass
class TrainingPreview:
    """A batch of augmented training samples of one model.

    Attributes
    ----------
    pipeline
        The model type (``single_instance``, ``centroid``, ``centered_instance``, ``bottomup``).
    images
        ``(K, H, W)`` (grayscale) or ``(K, H, W, 3)`` uint8: the network inputs after augmentation
        (whole scaled or letterboxed frames, or crops for ``centered_instance``).
    confmaps
        ``(K, C, h, w)`` float32 in [0, 1]: the confidence-map targets (body parts, or animal centres
        for ``centroid``); ``h, w = H / output_stride, W / output_stride``.
    points
        ``(K, I, N, 2)`` float32 ``x, y`` keypoints in input pixels after augmentation (NaN = missing).
    output_stride
        Input pixels per confidence-map pixel.
    channel_names
        One name per confidence-map channel (body parts, or ``["centroid"]``).
    """

    pipeline: str
    images: np.ndarray
    confmaps: np.ndarray
    points: np.ndarray
    output_stride: int
    channel_names: list[str]

    @property
    def confmaps_max(self) -> np.ndarray:
        """``(K, h, w)``: the maximum over channels, the usual way to look at all maps at once."""
        return self.confmaps.max(axis=1) if self.confmaps.shape[1] else self.confmaps[:, 0]


def model_configs(config: TrainingConfig) -> list[TrainingConfig]:
    """The single-model configs of a job: a ``topdown`` config gives its centroid and centered-instance
    configs, any other config is returned as the only element."""
    if config.model.pipeline == "topdown":
        return list(topdown_configs(config))
    return [config]


def receptive_field_sizes(config: TrainingConfig) -> dict[str, float]:
    """Side of each model's receptive field in original-image pixels, keyed by pipeline.

    One value for single-model configs, two for ``topdown`` (``centroid``, ``centered_instance``).
    The receptive field is how far around a pixel the network can look when deciding whether a body
    part is there; it should cover the animal (or at least the body part and its neighbours).

    Raises
    ------
    ConfigError
        The network settings are inconsistent (e.g. an output stride that does not divide the max stride).
    """
    from napari_posetrack.core.models.receptive_field import receptive_field

    return {c.model.pipeline: float(receptive_field(c).image_pixels) for c in model_configs(config)}


def training_preview(
    config: TrainingConfig,
    labels: Labels,
    *,
    n_samples: int = 8,
    seed: int = 0,
) -> TrainingPreview:
    """Augment ``n_samples`` labelled samples the way training would and render their targets.

    Parameters
    ----------
    config
        A single-model config (split a ``topdown`` job with :func:`model_configs` first).
    labels
        The project; only user-labelled frames are used (as in training). Their videos must be readable.
    n_samples
        How many samples (frames, or animals for ``centered_instance``) to show.
    seed
        Random seed of the frame choice and the augmentation (another seed gives other samples).

    Raises
    ------
    ConfigError
        Invalid config, ``topdown`` (two models), or no user-labelled frames.
    MissingFileError, FileFormatError
        A video cannot be read (the message names the file).
    """
    import torch

    from napari_posetrack.core.config import identity_head
    from napari_posetrack.core.training import data as tdata
    from napari_posetrack.core.training.pipelines import make_pipeline
    from napari_posetrack.core.training.run import identity_classes, resolve_automatic

    if config.model.pipeline == "topdown":
        raise ConfigError("model.pipeline: preview one model of a top-down job at a time (centroid or centered_instance)")
    config.validate(labels.skeleton, check_paths=False)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    frames = tdata.labelled_frames(labels)
    if len(frames) == 0:
        raise ConfigError("the labels hold no user-labelled frames to train on")
    if config.model.pipeline == "single_instance":
        frames.points = frames.points[:, :1]
        frames.n_instances = np.minimum(frames.n_instances, 1)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(frames), size=min(n_samples, len(frames)), replace=False))
    subset = frames.take(chosen)
    channels = {"grayscale": 1, "rgb": 3}.get(config.data.channels)
    input_scaling, input_size = tdata.frame_scaling(config)
    cache = tdata.build_frame_cache(
        labels, subset, input_scaling=input_scaling, input_size=input_size, channels=channels,
        stride=model_max_stride(config),
    )
    # automatic values (channels, crop size) from ALL labelled frames, as training resolves them
    resolved = resolve_automatic(config, frames, labels.skeleton, cache.image_shape[2])
    found = identity_head(resolved)
    if found is not None:
        # an identity model's targets need each animal's class, as training resolves them
        found[1].classes = identity_classes(labels, frames, resolved)
        cache.classes = subset.classes([t.name for t in labels.tracks], found[1].classes)
    pipeline = make_pipeline(resolved, labels.skeleton)
    dataset = tdata.FrameBatchDataset(cache, np.arange(len(subset)), per_instance=pipeline.per_instance)
    samples = rng.choice(len(dataset), size=min(n_samples, len(dataset)), replace=False)
    batch = tdata.to_device(dataset[np.sort(samples)], "cpu")
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        inputs, targets, points = pipeline.prepare(batch, training=True, generator=generator)
    images = (inputs.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    images = images[..., 0] if images.shape[-1] == 1 else images
    head = pipeline.confmap_head
    names = ["centroid"] if head == "centroids" else list(labels.skeleton.nodes)
    return TrainingPreview(
        pipeline=resolved.model.pipeline,
        images=np.ascontiguousarray(images),
        confmaps=targets[head].float().numpy().astype(np.float32),
        points=points.float().numpy().astype(np.float32),
        output_stride=int(pipeline.heads[head].output_stride),
        channel_names=names,
    )


def sample_prediction(
    run_dirs: list[str | os.PathLike[str]], image: np.ndarray, frame: int = 0, *, peak_threshold: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Predict one frame with the best checkpoint(s) so far, on the CPU: how training is going, in a picture.

    Parameters
    ----------
    run_dirs
        One single-instance or bottom-up run folder, or a centroid and a centered-instance run folder.
    image
        The frame, ``(H, W)`` or ``(H, W, C)`` uint8.
    frame
        Its index (only recorded).
    peak_threshold
        Body parts found with a lower confidence are left out.

    Returns
    -------
    points, scores
        ``(n_instances, n_nodes, 2)`` ``x, y`` in the frame's pixels (NaN = not found) and the
        ``(n_instances,)`` instance scores.

    Raises
    ------
    MissingFileError
        A run folder has no checkpoint yet.
    """
    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline

    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    options = InferenceOptions(device="cpu", peak_threshold=peak_threshold, batch_size=1)
    pipeline = load_pipeline(list(run_dirs), options)
    (result,) = pipeline.predict(pixels[None], [int(frame)])
    return np.asarray(result.points, dtype=np.float32), np.asarray(result.scores, dtype=np.float32)


__all__ = ["TrainingPreview", "model_configs", "receptive_field_sizes", "sample_prediction", "training_preview"]
