"""Training targets rendered on the device, for whole batches at once.

Coordinates are ``x, y`` in network-input pixels (after input scaling), pixel centres at integer
coordinates. Output cell ``(row, col)`` of a map with output stride ``s`` sits at input coordinate
``(x, y) = (col * s, row * s)``, so a peak found at cell ``(r, c)`` (plus a sub-cell offset) maps back
to ``x = c * s``, ``y = r * s``.

Points arrays are ``(B, I, N, 2)``: batch, instances (padded with NaN), nodes. NaN marks a missing or
not-visible node; such nodes (and all-NaN padding instances) contribute nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

if TYPE_CHECKING:
    from napari_posetrack.core.config import AugmentationConfig, TrainingConfig

PAF_COUNT_THRESHOLD = 0.05
"""An instance counts towards the PAF average at a cell when its weight there exceeds this."""


def _grid(
    grid_shape: tuple[int, int], output_stride: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = int(grid_shape[0]), int(grid_shape[1])
    ys = torch.arange(h, device=device, dtype=torch.float32) * output_stride
    xs = torch.arange(w, device=device, dtype=torch.float32) * output_stride
    return ys, xs


def _valid(points: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    valid = torch.isfinite(points).all(dim=-1)
    if visible is not None:
        valid = valid & visible.to(device=points.device, dtype=torch.bool)
    return valid


def confidence_maps(
    points: torch.Tensor,
    grid_shape: tuple[int, int],
    output_stride: int,
    sigma: float,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gaussian confidence maps, one per node, instances combined by their maximum.

    Parameters
    ----------
    points
        ``(B, I, N, 2)`` ``x, y`` in input pixels; NaN = missing.
    grid_shape
        ``(h, w)`` of the output grid (input size divided by ``output_stride``).
    output_stride
        Input pixels per output cell.
    sigma
        Standard deviation of the Gaussian in input pixels.
    visible
        Optional ``(B, I, N)`` bool; not-visible nodes draw no peak.

    Returns
    -------
    torch.Tensor
        ``(B, N, h, w)`` float32 in [0, 1], peak value 1 exactly at a keypoint on the grid.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    b, n_inst, n_nodes, _ = points.shape
    h, w = int(grid_shape[0]), int(grid_shape[1])
    if n_inst == 0:
        return torch.zeros((b, n_nodes, h, w), dtype=torch.float32, device=points.device)
    valid = _valid(points, visible)
    pts = torch.nan_to_num(points, nan=0.0, posinf=0.0, neginf=0.0)
    ys, xs = _grid(grid_shape, output_stride, points.device)
    scale = -0.5 / float(sigma) ** 2
    # separable Gaussian: exp(-(dx^2 + dy^2) / 2s^2) = gx * gy
    gx = torch.exp((xs - pts[..., 0:1]) ** 2 * scale)  # (B, I, N, w)
    gy = torch.exp((ys - pts[..., 1:2]) ** 2 * scale)  # (B, I, N, h)
    gx = gx * valid[..., None]
    maps = gy[..., :, None] * gx[..., None, :]  # (B, I, N, h, w)
    return maps.amax(dim=1)


def class_maps(
    points: torch.Tensor,
    classes: torch.Tensor,
    n_classes: int,
    grid_shape: tuple[int, int],
    output_stride: int,
    sigma: float,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Identity maps of a bottom-up identity model: one per class, a Gaussian at every visible node of
    each instance of that class, combined by their maximum.

    Drawn by :func:`confidence_maps` in one call: every (instance, node) point becomes a point of the
    class channel its instance belongs to (NaN in the other channels), so each class map is the
    maximum over its instances' nodes.

    Parameters
    ----------
    points
        ``(B, I, N, 2)`` ``x, y`` in input pixels; NaN = missing.
    classes
        ``(B, I)`` int64 class of each instance; ``-1`` (no track, padding) draws nothing.
    n_classes
        How many maps.
    grid_shape, output_stride, sigma, visible
        As for :func:`confidence_maps`.

    Returns
    -------
    torch.Tensor
        ``(B, n_classes, h, w)`` float32 in [0, 1].
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    b, n_inst, n_nodes, _ = points.shape
    classes = torch.as_tensor(classes, dtype=torch.long, device=points.device).reshape(b, n_inst)
    valid = _valid(points, visible)  # (B, I, N)
    member = classes[..., None] == torch.arange(int(n_classes), device=points.device)  # (B, I, K)
    keep = valid[..., None] & member[:, :, None, :]  # (B, I, N, K)
    per_class = torch.where(keep[..., None], points[:, :, :, None, :], torch.full((), float("nan"), device=points.device))
    # (B, I * N, K, 2): the "instances" of confidence_maps are every node of every animal
    return confidence_maps(per_class.reshape(b, n_inst * n_nodes, int(n_classes), 2), grid_shape, output_stride, sigma)


def _segment_weights(
    points: torch.Tensor,
    edges: np.ndarray | torch.Tensor | Sequence[tuple[int, int]],
    grid_shape: tuple[int, int],
    output_stride: int,
    sigma: float,
    visible: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``exp(-d^2 / 2 sigma^2)`` of every cell's distance ``d`` to every instance's edge segment.

    Returns ``(weights (B, I, E, h, w), unit vectors along the edges (B, I, E, 2))``; missing or
    zero-length edges weigh 0 everywhere.
    """
    device = points.device
    b, n_inst, _, _ = points.shape
    h, w = int(grid_shape[0]), int(grid_shape[1])
    edge_idx = torch.as_tensor(np.asarray(edges, dtype=np.int64).reshape(-1, 2), device=device)
    n_edges = edge_idx.shape[0]
    if n_inst == 0 or n_edges == 0:
        return (
            torch.zeros((b, n_inst, n_edges, h, w), dtype=torch.float32, device=device),
            torch.zeros((b, n_inst, n_edges, 2), dtype=torch.float32, device=device),
        )
    valid_nodes = _valid(points, visible)
    pts = torch.nan_to_num(points, nan=0.0, posinf=0.0, neginf=0.0)
    src, dst = pts[:, :, edge_idx[:, 0]], pts[:, :, edge_idx[:, 1]]  # (B, I, E, 2)
    vec = dst - src
    length = torch.linalg.vector_norm(vec, dim=-1)  # (B, I, E)
    valid = valid_nodes[:, :, edge_idx[:, 0]] & valid_nodes[:, :, edge_idx[:, 1]] & (length > 1e-6)
    unit = vec / length.clamp_min(1e-6)[..., None]
    ys, xs = _grid(grid_shape, output_stride, device)
    rx = xs[None, None, None, None, :] - src[..., 0, None, None]  # (B, I, E, 1, w)
    ry = ys[None, None, None, :, None] - src[..., 1, None, None]  # (B, I, E, h, 1)
    ux, uy = unit[..., 0, None, None], unit[..., 1, None, None]
    along = rx * ux + ry * uy  # (B, I, E, h, w)
    across = rx * uy - ry * ux
    beyond = along - along.clamp(min=torch.zeros_like(along), max=length[..., None, None].expand_as(along))
    dist2 = across**2 + beyond**2
    weight = torch.exp(dist2 * (-0.5 / float(sigma) ** 2)) * valid[..., None, None]
    return weight, unit


def part_affinity_fields(
    points: torch.Tensor,
    edges: np.ndarray | torch.Tensor | Sequence[tuple[int, int]],
    grid_shape: tuple[int, int],
    output_stride: int,
    sigma: float,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Part affinity fields: the unit vector along each edge, near the edge's segment.

    At each cell the field of one instance's edge is ``u * exp(-d^2 / (2 sigma^2))``, where ``u`` is the
    unit vector from the edge's source node to its destination node and ``d`` the distance from the cell
    to the segment between them. Where several instances' edges overlap, their fields are averaged over
    the instances whose weight exceeds :data:`PAF_COUNT_THRESHOLD`.

    Parameters
    ----------
    points
        ``(B, I, N, 2)`` ``x, y`` in input pixels; NaN = missing.
    edges
        ``(E, 2)`` ``(source, destination)`` node indices.
    grid_shape, output_stride
        As for :func:`confidence_maps`.
    sigma
        Width of the band around each segment, in input pixels.
    visible
        Optional ``(B, I, N)`` bool.

    Returns
    -------
    torch.Tensor
        ``(B, 2 * E, h, w)`` float32; channel ``2e`` is the x component of edge ``e``, ``2e + 1`` its y.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    b = points.shape[0]
    h, w = int(grid_shape[0]), int(grid_shape[1])
    weight, unit = _segment_weights(points, edges, grid_shape, output_stride, sigma, visible)
    n_edges = weight.shape[2]
    if weight.shape[1] == 0 or n_edges == 0:
        return torch.zeros((b, 2 * n_edges, h, w), dtype=torch.float32, device=points.device)
    ux, uy = unit[..., 0, None, None], unit[..., 1, None, None]
    count = (weight > PAF_COUNT_THRESHOLD).sum(dim=1).clamp_min(1)  # (B, E, h, w)
    fx = (weight * ux).sum(dim=1) / count
    fy = (weight * uy).sum(dim=1) / count
    return torch.stack([fx, fy], dim=2).reshape(b, 2 * n_edges, h, w)


def posture_graph_maps(
    points: torch.Tensor,
    edges: np.ndarray | torch.Tensor | Sequence[tuple[int, int]],
    grid_shape: tuple[int, int],
    output_stride: int,
    sigma: float,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """DeepPoseKit's posture-graph targets: edges, limbs, the whole graph, the graph plus every peak.

    Each edge is drawn as a line blurred like the keypoint peaks (``exp(-d^2 / 2 sigma^2)`` of the
    distance to the segment), instances combined by their maximum. A limb map is the maximum of its
    edges' maps (limbs as :func:`~napari_posetrack.core.models.posture_graph.skeleton_limbs` finds
    them); the graph map the maximum over all edges; the last map adds the body-part peaks.

    Returns
    -------
    torch.Tensor
        ``(B, E + L + 2, h, w)`` float32 in [0, 1], channels in the order above.
    """
    from napari_posetrack.core.models.posture_graph import skeleton_limbs

    points = torch.as_tensor(points, dtype=torch.float32)
    b, _, n_nodes, _ = points.shape
    h, w = int(grid_shape[0]), int(grid_shape[1])
    edge_array = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    weight, _ = _segment_weights(points, edge_array, grid_shape, output_stride, sigma, visible)
    edge_maps = weight.amax(dim=1) if weight.shape[1] else weight.sum(dim=1)  # (B, E, h, w)
    index = {(int(s), int(d)): i for i, (s, d) in enumerate(edge_array)}
    limbs = skeleton_limbs(edge_array, n_nodes)
    limb_maps = [
        edge_maps[:, [index[(a, c)] for a, c in itertools.pairwise(limb)]].amax(dim=1) for limb in limbs
    ]
    zeros = torch.zeros((b, 1, h, w), dtype=torch.float32, device=points.device)
    graph = edge_maps.amax(dim=1, keepdim=True) if len(edge_array) else zeros
    peaks = confidence_maps(points, grid_shape, output_stride, sigma, visible).amax(dim=1, keepdim=True)
    limb_stack = torch.stack(limb_maps, dim=1) if limb_maps else zeros[:, :0]
    return torch.cat([edge_maps, limb_stack, graph, torch.maximum(graph, peaks)], dim=1)


def instance_centroids(
    points: torch.Tensor, anchor: int | None = None, visible: torch.Tensor | None = None
) -> torch.Tensor:
    """Centre of each instance: the anchor node where present, else the mean of its present nodes.

    Parameters
    ----------
    points
        ``(..., N, 2)``; NaN = missing.
    anchor
        Anchor node index, or ``None`` for the mean of present nodes.

    Returns
    -------
    torch.Tensor
        ``(..., 2)``; NaN for instances with no present node.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    valid = _valid(points, visible)
    pts = torch.where(valid[..., None], points, torch.zeros((), dtype=points.dtype, device=points.device))
    count = valid.sum(dim=-1, keepdim=True)
    mean = pts.sum(dim=-2) / count.clamp_min(1)
    mean = torch.where(count > 0, mean, torch.full_like(mean, float("nan")))
    if anchor is None:
        return mean
    anchor_pt = points[..., anchor, :]
    anchor_ok = valid[..., anchor, None]
    return torch.where(anchor_ok, anchor_pt, mean)


def centroid_maps(
    points: torch.Tensor,
    grid_shape: tuple[int, int],
    output_stride: int,
    sigma: float,
    anchor: int | None = None,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """One confidence map of instance centres (see :func:`instance_centroids`): ``(B, 1, h, w)``."""
    centers = instance_centroids(points, anchor, visible)  # (B, I, 2)
    return confidence_maps(centers[:, None], grid_shape, output_stride, sigma).amax(dim=1, keepdim=True)


class InstanceCrops(NamedTuple):
    """Crops centred on instances (top-down second stage).

    Attributes
    ----------
    images
        ``(K, C, crop_h, crop_w)`` crops (zero outside the image).
    points
        ``(K, N, 2)`` the cropped instance's own points in crop coordinates.
    sample
        ``(K,)`` batch index of each crop.
    instance
        ``(K,)`` instance index of each crop.
    offsets
        ``(K, 2)`` ``x, y`` of the crop's top-left pixel in the image: image coords = crop coords + offset.
    """

    images: torch.Tensor
    points: torch.Tensor
    sample: torch.Tensor
    instance: torch.Tensor
    offsets: torch.Tensor


def crop_instances(
    images: torch.Tensor,
    points: torch.Tensor,
    centers: torch.Tensor,
    crop_size: int | tuple[int, int],
) -> InstanceCrops:
    """Cut a ``crop_size`` box around every instance with a finite centre.

    The crop's pixel ``(crop_h // 2, crop_w // 2)`` is the centre rounded to the nearest pixel; the offset
    is an integer, so no resampling happens and coordinates shift exactly.

    Parameters
    ----------
    images
        ``(B, C, H, W)``.
    points
        ``(B, I, N, 2)`` in image pixels.
    centers
        ``(B, I, 2)`` crop centres (e.g. :func:`instance_centroids`); NaN = no crop for that instance.
    crop_size
        Side of a square crop, or ``(height, width)``.
    """
    ch, cw = (
        (crop_size, crop_size)
        if isinstance(crop_size, (int, np.integer))
        else (int(crop_size[0]), int(crop_size[1]))
    )
    device = images.device
    centers = torch.as_tensor(centers, dtype=torch.float32, device=device)
    points = torch.as_tensor(points, dtype=torch.float32, device=device)
    ok = torch.isfinite(centers).all(dim=-1)  # (B, I)
    sample, instance = torch.nonzero(ok, as_tuple=True)
    c = centers[sample, instance]  # (K, 2)
    offsets = torch.floor(c + 0.5) - torch.tensor([cw // 2, ch // 2], device=device, dtype=torch.float32)
    off = offsets.to(torch.long)
    height, width = images.shape[-2:]
    rows = off[:, 1, None] + torch.arange(ch, device=device)  # (K, ch)
    cols = off[:, 0, None] + torch.arange(cw, device=device)  # (K, cw)
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    rows_c = rows.clamp(0, height - 1)
    cols_c = cols.clamp(0, width - 1)
    # advanced indices around a slice: the result is (K, ch, cw, C)
    crops = images[sample[:, None, None], :, rows_c[:, :, None], cols_c[:, None, :]]
    crops = crops * inside[..., None].to(crops.dtype)
    crops = crops.permute(0, 3, 1, 2).contiguous()
    crop_points = points[sample, instance] - offsets[:, None, :]
    return InstanceCrops(crops, crop_points, sample, instance, offsets)


def auto_crop_size(
    points: np.ndarray | torch.Tensor,
    max_stride: int,
    padding: int = 16,
    augmentation: AugmentationConfig | None = None,
) -> int:
    """Automatic top-down crop size: the largest instance plus padding, rounded up to ``max_stride``.

    Parameters
    ----------
    points
        ``(..., N, 2)`` instances in network-input pixels (already scaled); NaN = missing.
    max_stride
        The crop side is rounded up to a multiple of this.
    padding
        Pixels added on each side of the largest instance box.
    augmentation
        When rotation can happen the box's diagonal is used (a box rotated by any angle fits in it); when
        scaling can happen the size is multiplied by ``scale_max``.
    """
    pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    pts = pts.reshape(-1, pts.shape[-2], 2)
    present = np.isfinite(pts).all(axis=-1).any(axis=-1)
    pts = pts[present]
    if len(pts) == 0:
        size = 0.0
    else:
        span = np.nanmax(pts, axis=1) - np.nanmin(pts, axis=1)  # (n, 2)
        if (
            augmentation is not None
            and augmentation.rotation_probability > 0
            and (augmentation.rotation_min_angle != 0 or augmentation.rotation_max_angle != 0)
        ):
            size = float(np.max(np.hypot(span[:, 0], span[:, 1])))
        else:
            size = float(np.max(span))
        if augmentation is not None and augmentation.scale_probability > 0:
            size *= max(1.0, augmentation.scale_max)
    size += 2 * padding
    return max(int(max_stride), math.ceil(size / max_stride) * int(max_stride))


def model_targets(
    config: TrainingConfig,
    points: torch.Tensor,
    image_size: tuple[int, int],
    edges: Any = (),
    anchor: int | None = None,
    visible: torch.Tensor | None = None,
    classes: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The targets of every output the model trains (main and extra), keyed like the model's outputs.

    Keys are those of :func:`~napari_posetrack.core.config.model.training_outputs`: the heads' main
    outputs plus other levels (``confmaps@16``), intermediate stacks (``confmaps#0``) and posture-graph
    maps (``confmaps.graph``). Each (kind, stride) is drawn once.

    Parameters
    ----------
    config
        Training config (heads' sigma and output stride).
    points
        ``(B, I, N, 2)`` in network-input pixels: whole frames, or for ``centered_instance`` the crop's
        own instance as ``(K, 1, N, 2)``.
    image_size
        ``(H, W)`` of the network input (a multiple of the max stride).
    edges
        Skeleton edges (bottom-up PAFs).
    anchor
        Anchor node index for centroids (``None`` = mean of present nodes).
    visible
        Optional ``(B, I, N)`` bool; not-visible nodes draw nothing.
    classes
        ``(B, I)`` int64 identity class of each instance (``-1`` = none): needed by a bottom-up identity
        model's ``class_maps``.
    """
    from napari_posetrack.core.config import head_configs
    from napari_posetrack.core.config.model import training_outputs

    height, width = int(image_size[0]), int(image_size[1])
    heads = head_configs(config)
    rendered: dict[tuple[str, int], torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for key, (kind, stride) in training_outputs(config).items():
        if (kind, stride) not in rendered:
            grid = (height // stride, width // stride)
            if kind == "confmaps":
                maps = confidence_maps(points, grid, stride, heads["confmaps"].sigma, visible)
            elif kind == "centroids":
                maps = centroid_maps(points, grid, stride, heads["centroids"].sigma, anchor, visible)
            elif kind == "pafs":
                maps = part_affinity_fields(points, edges, grid, stride, heads["pafs"].sigma, visible)
            elif kind == "class_maps":
                if classes is None:
                    raise ValueError("class maps need each instance's class (FrameCache.classes)")
                head = heads["class_maps"]
                maps = class_maps(points, classes, len(head.classes), grid, stride, head.sigma, visible)
            else:
                maps = posture_graph_maps(points, edges, grid, stride, heads["confmaps"].sigma, visible)
            rendered[(kind, stride)] = maps
        out[key] = rendered[(kind, stride)]
    return out
