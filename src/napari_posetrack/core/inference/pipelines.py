"""Inference pipelines: frames in, instances out (single-instance, top-down, bottom-up).

Every pipeline takes a batch of decoded frames ``(B, H, W, C)`` uint8 (numpy, as the video reader
returns them), prepares them exactly as training did (the same resize or letterbox and channel
conversion), runs the network and peak finding on the model's device, and returns per-frame instances
in original video pixels: every point goes back through the inverse of the
:class:`~napari_posetrack.core.training.data.FrameGeometry` that placed its frame in the input.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.inference.overlap import suppress_overlaps
from napari_posetrack.core.inference.paf_grouping import GroupingOptions, group_instances

if TYPE_CHECKING:
    import torch

    from napari_posetrack.core.config import TrainingConfig
    from napari_posetrack.core.labels import Skeleton
    from napari_posetrack.core.training.data import FrameGeometry


@dataclass
class InferenceOptions:
    """What users tune at prediction time (SLEAP's inference dialog).

    Parameters
    ----------
    peak_threshold
        Confidence-map peaks below this are treated as not found.
    max_instances
        At most this many instances per frame (highest scores kept); ``None`` = no limit.
    min_visible_nodes
        Instances with fewer found nodes are dropped.
    overlap
        Duplicate suppression: ``"oks"``, ``"iou"`` or ``"none"``; ``overlap_threshold`` is the similarity
        above which the weaker of two instances is dropped.
    refinement
        Subpixel peak refinement: ``"gaussian"`` (matched filter + log-parabola), ``"integral"`` or ``"none"``.
    batch_size
        Frames per network call.
    device
        ``"auto"`` (CUDA, then MPS, then CPU), or a torch device string.
    backend
        Auto falls back to the next choice, with a note, where a chosen backend stops with an error.
        The first use of the ONNX-based ones takes a few seconds per model, to save an ONNX copy in
        the run folder (see the inference backends module).
    half
        Most CPUs can only imitate it, slower than normal precision, so it is refused there.
    """

    peak_threshold: float = 0.2
    max_instances: int | None = None
    min_visible_nodes: int = 1
    overlap: Literal["oks", "iou", "none"] = "oks"
    overlap_threshold: float = 0.8
    refinement: Literal["gaussian", "integral", "none"] = "gaussian"
    batch_size: int = 4
    device: str = "auto"
    # torch by default: the ONNX backends export into the run folder on first use (seconds per model),
    # so they are something a user chooses, and results stay those of the trained model as it is
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "torch"
    half: bool = False
    grouping: GroupingOptions = field(default_factory=GroupingOptions)


@dataclass
class FramePredictions:
    """Instances found on one frame, in original video pixels."""

    frame: int
    points: np.ndarray  # (n, nodes, 2), NaN = not found
    point_scores: np.ndarray  # (n, nodes)
    scores: np.ndarray  # (n,)
    class_probs: np.ndarray | None = None  # (n, classes) of an identity model, else None


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when available, then Apple MPS, else CPU; an explicit name is used as given."""
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class LoadedModel:
    """A trained network ready for inference: model, config, and the preprocessing it was trained with.

    Parameters
    ----------
    config, skeleton, model
        What :func:`~napari_posetrack.core.training.run.load_run` returns; ``model`` maps
        ``(B, C, H, W)`` images in [0, 1] to ``{head name: maps}`` and has ``max_stride``.
    device
        Where inputs are sent.
    run_dir
        The run folder it came from (for messages).

    A model trained with ``data.input_size`` (whole-frame models) letterboxes every frame into that
    size when ``data.resize_input`` is on, and otherwise runs on frames at their own size, only padded
    to the max stride; other models scale frames by ``data.input_scaling``.
    """

    def __init__(self, config: TrainingConfig, skeleton: Skeleton, model: Any, device: torch.device, run_dir: str = "") -> None:
        from napari_posetrack.core.models.receptive_field import input_channels

        self.config, self.skeleton, self.model = config, skeleton, model
        self.run_dir = str(run_dir)
        self.pipeline = config.model.pipeline
        from napari_posetrack.core.training.data import letterbox_size

        self.scaling = float(config.data.input_scaling)  # not used when letterboxing
        self.letterbox = letterbox_size(config)
        self.resize_input = bool(config.data.resize_input)
        self.channels = input_channels(config)
        self.device = device
        self.max_stride = int(model.max_stride)

    @classmethod
    def from_run(
        cls, run_dir: str | os.PathLike[str], device: torch.device, backend: str = "torch", half: bool = False
    ) -> LoadedModel:
        """Load a run folder written by training, its network on ``backend`` (see :class:`InferenceOptions`)."""
        from napari_posetrack.core.inference.backends import load_backend

        config, skeleton, model = load_backend(run_dir, device, backend, half)
        return cls(config, skeleton, model, device, str(run_dir))

    def head(self, name: str) -> tuple[int, float]:
        """``(output stride, sigma in grid cells)`` of a head."""
        h = self.config.head_configs[name]
        return int(h.output_stride), float(h.sigma) / float(h.output_stride)

    def geometry(self, height: int, width: int) -> FrameGeometry:
        """How a ``height`` x ``width`` frame is placed in this model's input (and how points go back)."""
        from napari_posetrack.core.training.data import frame_geometry

        if self.letterbox is not None and not self.resize_input:
            return frame_geometry(height, width)  # own resolution: only the stride padding below
        return frame_geometry(height, width, input_scaling=self.scaling, input_size=self.letterbox)

    def prepare(self, frames: np.ndarray) -> torch.Tensor:
        """``(B, H, W, C)`` uint8 frames -> the padded float tensor the network was trained on."""
        import torch

        from napari_posetrack.core.models.model import pad_to_stride
        from napari_posetrack.core.training.data import convert_channels, resize_frame

        g = self.geometry(frames.shape[1], frames.shape[2])
        batch = g.place(np.stack([convert_channels(resize_frame(f, g.size), self.channels) for f in frames]))
        tensor = torch.from_numpy(batch).to(self.device, non_blocking=True)
        tensor = tensor.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        return pad_to_stride(tensor, self.max_stride)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch

        with torch.inference_mode():
            return {k: v.float() for k, v in self.model(images).items()}


class Pipeline(abc.ABC):
    """Frames in, instances out, in two stages that a predictor can overlap.

    :meth:`run_network` does the device work (preprocessing, network, peak finding) and returns
    tensors that may still be on the device; :meth:`assemble` does the host work (copies, grouping,
    overlap suppression) and returns one :class:`FramePredictions` per frame. :meth:`predict` runs
    both in turn.
    """

    skeleton: Skeleton
    options: InferenceOptions
    class_names: list[str] | None = None
    """An identity model's classes (track names), in the order of ``FramePredictions.class_probs``."""

    @abc.abstractmethod
    def run_network(self, frames: np.ndarray, frame_indices: Sequence[int]) -> dict[str, Any]:
        """Device stage for ``frames`` (``(B, H, W, C)`` uint8); the result goes to :meth:`assemble`."""

    @abc.abstractmethod
    def assemble(self, raw: dict[str, Any]) -> list[FramePredictions]:
        """Host stage: instances of each frame from :meth:`run_network`'s result."""

    def predict(self, frames: np.ndarray, frame_indices: Sequence[int]) -> list[FramePredictions]:
        """Instances on each of ``frames``, one result per frame index."""
        return self.assemble(self.run_network(frames, frame_indices))

    def _finish(
        self, frame: int, points: np.ndarray, point_scores: np.ndarray, scores: np.ndarray,
        class_probs: np.ndarray | None = None,
    ) -> FramePredictions:
        """Apply minimum nodes, overlap suppression and the instance limit to one frame's instances."""
        o = self.options
        enough = (~np.isnan(points).any(axis=-1)).sum(axis=1) >= o.min_visible_nodes
        points, point_scores, scores = points[enough], point_scores[enough], scores[enough]
        keep = suppress_overlaps(points, scores, o.overlap, o.overlap_threshold, self.skeleton.node_sigmas)
        if o.max_instances is not None:
            keep = keep[: o.max_instances]
        probs = None if class_probs is None else class_probs[enough][keep]
        return FramePredictions(frame, points[keep], point_scores[keep], scores[keep], probs)


class SingleInstancePipeline(Pipeline):
    """One animal per frame: the global peak of every node's map."""

    def __init__(self, model: LoadedModel, options: InferenceOptions) -> None:
        self.model, self.options, self.skeleton = model, options, model.skeleton

    def run_network(self, frames: np.ndarray, frame_indices: Sequence[int]) -> dict[str, Any]:
        from napari_posetrack.core.inference.peaks import find_global_peaks

        out = self.model(self.model.prepare(frames))
        stride, sigma = self.model.head("confmaps")
        xy, values = find_global_peaks(out["confmaps"], self.options.peak_threshold, self.options.refinement, sigma)
        back = self.model.geometry(frames.shape[1], frames.shape[2]).to_original(xy * stride)
        return {"frames": list(frame_indices), "xy": back, "values": values}

    def assemble(self, raw: dict[str, Any]) -> list[FramePredictions]:
        pts = raw["xy"].cpu().numpy().astype(np.float64)
        vals = raw["values"].cpu().numpy()
        results = []
        for i, f in enumerate(raw["frames"]):
            found = ~np.isnan(pts[i, :, 0])
            ps = np.where(found, vals[i], np.nan)
            score = np.array([np.clip(vals[i][found], 0, 1).sum() / self.skeleton.n_nodes])
            results.append(self._finish(int(f), pts[i][None], ps[None], score))
        return results


def strongest_per_sample(sample: torch.Tensor, values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest ``values`` of each sample (peaks are grouped by ``sample``)."""
    import torch

    order = torch.argsort(values, descending=True, stable=True)
    order = order[torch.argsort(sample[order], stable=True)]  # by sample, strongest first within it
    s = sample[order]
    first = torch.searchsorted(s, s, right=False)  # where each sample's run starts
    rank = torch.arange(len(s), device=s.device) - first
    return torch.sort(order[rank < k]).values


class TopDownPipeline(Pipeline):
    """Centroid model on the (scaled or letterboxed) frame, then a centered-instance model on a crop around each
    centroid, cut from the frame scaled by the centered-instance model's input scaling.

    When the centered-instance model has an identity head (top-down ID model), every instance also gets
    its class probabilities (softmax of the head's logits); :attr:`class_names` names the classes.
    """

    def __init__(self, centroid: LoadedModel | None, centered: LoadedModel, options: InferenceOptions) -> None:
        """``centroid`` may be ``None`` only to call :meth:`run_at_centres` with known centres."""
        from napari_posetrack.core.config import class_head_config

        self.centroid, self.centered, self.options, self.skeleton = centroid, centered, options, centered.skeleton
        crop = centered.config.data.crop_size
        if not crop:
            raise ConfigError(f"{centered.run_dir}: the centered-instance run has no data.crop_size")
        self.crop_size = int(crop)
        head = class_head_config(centered.config)
        if head is not None:
            if len(head.classes) < 2:
                raise ConfigError(
                    f"{centered.run_dir}: model.heads.class_vectors.classes of this identity model lists "
                    f"{list(head.classes)}; it needs the two or more classes it was trained with"
                )
            self.class_names = [str(c) for c in head.classes]

    def run_network(self, frames: np.ndarray, frame_indices: Sequence[int]) -> dict[str, Any]:
        from napari_posetrack.core.inference.peaks import find_local_peaks

        o = self.options
        if self.centroid is None:
            raise ConfigError("top-down prediction needs a centroid model (this pipeline was built without one)")
        c_stride, c_sigma = self.centroid.head("centroids")
        maps = self.centroid(self.centroid.prepare(frames))["centroids"]
        sample, _, xy, values = find_local_peaks(maps, o.peak_threshold, o.refinement, c_sigma)
        if o.max_instances is not None and len(sample):
            keep = strongest_per_sample(sample, values, o.max_instances)
            sample, xy = sample[keep], xy[keep]
        if len(sample) == 0:
            return {"frames": list(frame_indices), "n_frames": len(frames)}
        centres = self.centroid.geometry(frames.shape[1], frames.shape[2]).to_original(xy * c_stride)
        return self.run_at_centres(frames, frame_indices, sample, centres)

    def run_at_centres(
        self, frames: np.ndarray, frame_indices: Sequence[int], sample: torch.Tensor, centres: torch.Tensor
    ) -> dict[str, Any]:
        """The second stage alone: the centered-instance model on crops around given animal centres.

        ``sample`` ``(K,)`` is the frame (row of ``frames``) of each centre, ``centres`` ``(K, 2)`` its
        ``x, y`` in original video pixels. :meth:`run_network` calls it with the centroid model's
        peaks; it also serves to judge the second stage on known centres. The result goes to
        :meth:`assemble`.
        """
        import torch

        from napari_posetrack.core.inference.peaks import find_global_peaks
        from napari_posetrack.core.training.targets import crop_instances

        o = self.options
        raw: dict[str, Any] = {"frames": list(frame_indices), "n_frames": len(frames)}
        if len(sample) == 0:
            return raw
        frame_h, frame_w = frames.shape[1], frames.shape[2]
        # the crops come from the frame as the centered-instance model saw frames in training
        crop_frame = self.centered.geometry(frame_h, frame_w)
        n_frames, n_nodes = len(frames), self.skeleton.n_nodes
        # one crop per centroid, all frames of the batch at once
        counts = torch.bincount(sample, minlength=n_frames)
        width = int(counts.max())
        slot = torch.cat([torch.arange(int(c), device=sample.device) for c in counts])
        order = torch.argsort(sample, stable=True)
        grid = torch.full((n_frames, width, 2), float("nan"), device=centres.device)
        grid[sample[order], slot] = crop_frame.to_input(centres[order])
        images = self.centered.prepare(frames)
        dummy = torch.zeros((n_frames, width, n_nodes, 2), device=images.device)
        crops = crop_instances(images, dummy, grid.to(images.device), self.crop_size)
        out = self.centered(crops.images)
        cm = out["confmaps"]
        i_stride, i_sigma = self.centered.head("confmaps")
        pxy, pval = find_global_peaks(cm, o.peak_threshold, o.refinement, i_sigma)
        back = crop_frame.to_original(pxy * i_stride + crops.offsets[:, None, :])
        raw.update(xy=back, values=pval, sample=crops.sample)
        if self.class_names is not None:
            from napari_posetrack.core.config import CLASS_HEAD

            if CLASS_HEAD not in out:
                raise ConfigError(
                    f"{self.centered.run_dir}: the model gives no {CLASS_HEAD} output; an exported (ONNX) copy "
                    "of an identity model has none: predict with the torch backend"
                )
            raw["class_probs"] = torch.softmax(out[CLASS_HEAD].float(), dim=-1)
        return raw

    def assemble(self, raw: dict[str, Any]) -> list[FramePredictions]:
        n_nodes = self.skeleton.n_nodes
        n_classes = len(self.class_names or ())
        if "xy" in raw:
            pts = raw["xy"].cpu().numpy().astype(np.float64)
            vals = raw["values"].cpu().numpy()
            crop_sample = raw["sample"].cpu().numpy()
        else:
            pts, vals, crop_sample = np.zeros((0, n_nodes, 2)), np.zeros((0, n_nodes)), np.zeros(0, dtype=np.int64)
        probs = None
        if self.class_names is not None:
            probs = raw["class_probs"].cpu().numpy() if "class_probs" in raw else np.zeros((0, n_classes))
        out = []
        for f, idx in enumerate(raw["frames"]):
            sel = crop_sample == f
            ps = np.where(np.isnan(pts[sel][..., 0]), np.nan, vals[sel])
            scores = np.nansum(np.clip(ps, 0, 1), axis=1) / n_nodes
            out.append(self._finish(int(idx), pts[sel], ps, scores, None if probs is None else probs[sel]))
        return out


class BottomUpPipeline(Pipeline):
    """Confidence maps and part affinity fields of the whole frame, grouped into instances.

    A bottom-up identity model (``model.heads.class_maps``) has class maps instead of part affinity
    fields: the peaks are grouped into one instance per class and frame by
    :func:`~napari_posetrack.core.inference.class_grouping.group_by_class`, every instance gets its
    class probabilities, and :attr:`class_names` names the classes.
    """

    def __init__(self, model: LoadedModel, options: InferenceOptions) -> None:
        from napari_posetrack.core.config import class_maps_config

        self.model, self.options, self.skeleton = model, options, model.skeleton
        head = class_maps_config(model.config)
        if head is not None:
            if len(head.classes) < 2:
                raise ConfigError(
                    f"{model.run_dir}: model.heads.class_maps.classes of this identity model lists "
                    f"{list(head.classes)}; it needs the two or more classes it was trained with"
                )
            self.class_names = [str(c) for c in head.classes]

    def run_network(self, frames: np.ndarray, frame_indices: Sequence[int]) -> dict[str, Any]:
        from napari_posetrack.core.inference.peaks import find_local_peaks

        o = self.options
        out = self.model(self.model.prepare(frames))
        stride, sigma = self.model.head("confmaps")
        sample, node, xy, values = find_local_peaks(out["confmaps"], o.peak_threshold, o.refinement, sigma)
        h, w = out["confmaps"].shape[-2:]
        raw = {
            "frames": list(frame_indices), "sample": sample, "node": node, "xy": xy * stride, "values": values,
            "input_size": (int(h) * stride, int(w) * stride),
            "geometry": self.model.geometry(frames.shape[1], frames.shape[2]),
        }
        if self.class_names is not None:
            raw["class_values"] = self._class_values(out, raw["sample"], raw["xy"])
        else:
            raw["pafs"] = out["pafs"]
        return raw

    def _class_values(self, out: dict[str, Any], sample: Any, xy: Any) -> Any:
        """``(P, K)`` every class map's value at each peak (``xy`` in input pixels), nearest cell."""
        import torch

        from napari_posetrack.core.config import CLASS_MAPS_HEAD

        if CLASS_MAPS_HEAD not in out:
            raise ConfigError(f"{self.model.run_dir}: the model gives no {CLASS_MAPS_HEAD} output")
        maps = out[CLASS_MAPS_HEAD]
        c_stride, _ = self.model.head(CLASS_MAPS_HEAD)
        rows = torch.round(xy[:, 1] / c_stride).long().clamp(0, maps.shape[-2] - 1)
        cols = torch.round(xy[:, 0] / c_stride).long().clamp(0, maps.shape[-1] - 1)
        return maps[sample.long(), :, rows, cols]

    def assemble(self, raw: dict[str, Any]) -> list[FramePredictions]:
        if self.class_names is not None:
            return self._assemble_by_class(raw)
        o = self.options
        paf_stride, _ = self.model.head("pafs")
        scaled_xy = raw["xy"].cpu().numpy().astype(np.float64)  # network-input pixels
        sample, node, values = raw["sample"].cpu().numpy(), raw["node"].cpu().numpy(), raw["values"].cpu().numpy()
        pafs = raw["pafs"].cpu().numpy()
        edges = self.skeleton.edge_array()
        results = []
        for i, f in enumerate(raw["frames"]):
            sel = sample == i
            pts, ps, scores = group_instances(
                scaled_xy[sel], node[sel], values[sel], pafs[i], edges, self.skeleton.n_nodes,
                paf_stride, raw["input_size"], o.grouping,
            )
            results.append(self._finish(int(f), raw["geometry"].to_original(pts), ps, scores))
        return results

    def _assemble_by_class(self, raw: dict[str, Any]) -> list[FramePredictions]:
        """One instance per class and frame (bottom-up identity model), with its class probabilities."""
        from napari_posetrack.core.inference.class_grouping import group_by_class

        n_nodes = self.skeleton.n_nodes
        groups = group_by_class(
            raw["sample"].cpu().numpy(), raw["node"].cpu().numpy(), raw["xy"].cpu().numpy(),
            raw["values"].cpu().numpy(), raw["class_values"].cpu().numpy(), len(raw["frames"]), n_nodes,
        )
        results = []
        for i, f in enumerate(raw["frames"]):
            ps = groups.point_scores[i]
            scores = np.nansum(np.clip(ps, 0, 1), axis=1) / n_nodes
            pts = raw["geometry"].to_original(groups.points[i])
            results.append(self._finish(int(f), pts, ps, scores, groups.class_probs[i]))
        return results


def load_pipeline(
    run_dirs: Sequence[str | os.PathLike[str]], options: InferenceOptions | None = None
) -> Pipeline:
    """The pipeline for trained runs: one single-instance or bottom-up run, or a centroid run plus a
    centered-instance run (top-down, in either order)."""
    options = options or InferenceOptions()
    device = resolve_device(options.device)
    models = [LoadedModel.from_run(d, device, options.backend, options.half) for d in run_dirs]
    kinds = {m.pipeline: m for m in models}
    if len(models) == 1 and models[0].pipeline == "single_instance":
        return SingleInstancePipeline(models[0], options)
    if len(models) == 1 and models[0].pipeline == "bottomup":
        return BottomUpPipeline(models[0], options)
    if len(models) == 2 and set(kinds) == {"centroid", "centered_instance"}:
        centroid, centered = kinds["centroid"], kinds["centered_instance"]
        if centroid.skeleton.nodes != centered.skeleton.nodes:
            raise ConfigError(
                f"{centroid.run_dir} and {centered.run_dir} were trained on different skeletons"
            )
        return TopDownPipeline(centroid, centered, options)
    found = ", ".join(f"{m.run_dir} ({m.pipeline})" for m in models)
    raise ConfigError(
        "models: give one single_instance or bottomup run, or a centroid run and a centered_instance run; "
        f"got {found or 'none'}"
    )


def pipeline_skeleton_check(pipeline: Pipeline, skeleton: Skeleton, labels_path: str) -> None:
    """Raise when a labels file's skeleton is not the one the model predicts."""
    if sorted(pipeline.skeleton.nodes) != sorted(skeleton.nodes):
        raise ConfigError(
            f"{labels_path}: its skeleton ({', '.join(skeleton.nodes)}) is not the model's "
            f"({', '.join(pipeline.skeleton.nodes)})"
        )

