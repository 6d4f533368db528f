"""ResNet, EfficientNet and MobileNet backbones from torchvision, returning ``{stride: features}``.

torchvision's networks are used as they are; this module only cuts each into its stages (one per
stride 2, 4, ..., 32, as measured in ``shared/notes/torchvision-backbones.md``), keeps the stages up
to the top level, adapts the first convolution to the image's channel count, and normalises [0, 1]
images the way ImageNet weights expect. Parameter names stay torchvision's inside each stage, so an
ImageNet state dict is loaded into the torchvision model before it is cut.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from napari_posetrack.core.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_EFFICIENTNET = {1: 1, 2: 2, 3: 3, 4: 5, 5: 8}
STAGE_ENDS: dict[str, dict[int, int]] = {
    **{f"efficientnet_b{i}": _EFFICIENTNET for i in range(8)},
    "efficientnet_v2_s": {1: 1, 2: 2, 3: 3, 4: 5, 5: 7},
    "efficientnet_v2_m": _EFFICIENTNET,
    "efficientnet_v2_l": _EFFICIENTNET,
    "mobilenet_v2": {1: 1, 2: 3, 3: 6, 4: 13, 5: 18},
    "mobilenet_v3_small": {1: 0, 2: 1, 3: 3, 4: 8, 5: 12},
    "mobilenet_v3_large": {1: 1, 2: 3, 3: 6, 4: 12, 5: 16},
}
"""For networks built as ``model.features``: level -> index of the last block at stride ``2**level``."""


def _torchvision_model(name: str) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def imagenet_weights_file(name: str) -> str:
    """File name of torchvision's default ImageNet weights for backbone ``name`` (e.g. ``resnet18-f37072fd.pth``)."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    return weights.url.rsplit("/", 1)[-1]


def find_imagenet_weights(name: str, pretrained_weights: str | os.PathLike[str] | None = None) -> Path:
    """The ImageNet weights file to start ``name`` from: ``pretrained_weights``, else torch's cache.

    Nothing is downloaded: lab and cluster machines often have no internet.

    Raises
    ------
    ConfigError
        The file is not there; the message names the expected file and where to put it.
    """
    if pretrained_weights:
        path = Path(pretrained_weights)
        if not path.is_file():
            raise ConfigError(f"optimization.pretrained_weights: file {str(path)!r} not found")
        return path
    expected = imagenet_weights_file(name)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    path = cache / expected
    if not path.is_file():
        raise ConfigError(
            f"optimization.initialization: ImageNet weights for {name} not found; nothing is downloaded. "
            f"Get torchvision's file {expected} (torchvision.models.get_model_weights({name!r}).DEFAULT.url "
            f"names it) and either put it in {cache} or set optimization.pretrained_weights to its path"
        )
    return path


def load_imagenet_weights(model: nn.Module, name: str, path: str | os.PathLike[str]) -> None:
    """Load an ImageNet state dict from ``path`` into torchvision's ``model`` (before it is cut).

    Raises
    ------
    ConfigError
        The file is not a state dict of this architecture (names the file and what does not fit).
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise ConfigError(f"optimization.pretrained_weights: cannot read {str(path)!r} as torch weights ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"optimization.pretrained_weights: {str(path)!r} holds no state dict")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        what = f"{len(missing)} tensors missing (e.g. {missing[0]!r})" if missing else ""
        if wrong:
            what += ("; " if what else "") + f"{len(wrong)} of another shape (e.g. {wrong[0]!r})"
        raise ConfigError(
            f"optimization.pretrained_weights: {str(path)!r} does not hold {name} weights ({what}); "
            f"use the file {imagenet_weights_file(name)}"
        )
    model.load_state_dict({k: state[k] for k in own})


def _first_conv_path(name: str) -> tuple[str, ...]:
    if name.startswith("resnet"):
        return ("conv1",)
    return ("features", "0", "0")


def _adapt_first_conv(model: nn.Module, name: str, in_channels: int) -> None:
    """Replace the RGB stem convolution by one for ``in_channels``; grey kernels are the RGB kernels summed.

    Summing keeps a pretrained network's response to a grey image (R = G = B) identical, without
    tripling the image.
    """
    if in_channels == 3:
        return
    path = _first_conv_path(name)
    parent = model
    for part in path[:-1]:
        parent = getattr(parent, part) if not part.isdigit() else parent[int(part)]
    last = path[-1]
    old = parent[int(last)] if last.isdigit() else getattr(parent, last)
    new = nn.Conv2d(
        in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation, old.groups,
        bias=old.bias is not None,
    )
    with torch.no_grad():
        if in_channels == 1:
            new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
        else:
            new.weight.copy_(old.weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) * 3 / in_channels)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    if last.isdigit():
        parent[int(last)] = new
    else:
        setattr(parent, last, new)


def _stages(model: nn.Module, name: str, top_level: int) -> list[nn.Module]:
    """The network cut into one module per level 1..top_level."""
    if name.startswith("resnet"):
        stages = [
            nn.Sequential(model.conv1, model.bn1, model.relu),
            nn.Sequential(model.maxpool, model.layer1),
            model.layer2,
            model.layer3,
            model.layer4,
        ]
        return stages[:top_level]
    ends = STAGE_ENDS[name]
    features = model.features
    stages, start = [], 0
    for level in range(1, top_level + 1):
        end = ends[level] + 1
        stages.append(features[start:end])
        start = end
    return stages


def _channels_of(stage: nn.Module, channels_in: int) -> int:
    """Output channels of a stage: those of the last convolution's output (or the stage's own attribute)."""
    out = channels_in
    for module in stage.modules():
        if isinstance(module, nn.Conv2d):
            out = module.out_channels
        elif isinstance(module, nn.BatchNorm2d):
            out = module.num_features
    return out


class TorchvisionBackbone(nn.Module):
    """A torchvision classification network as a pose backbone: ``x -> {stride: features}``.

    Parameters
    ----------
    name
        torchvision's model name (``resnet50``, ``efficientnet_b0``, ``mobilenet_v3_large`` ...).
    in_channels
        1 (grayscale) or 3 (RGB).
    top_level
        Deepest level kept: the network stops after its stride ``2**top_level`` stage.
    imagenet_weights
        A torchvision ImageNet state dict file to start from (``None`` = random weights).

    Attributes
    ----------
    max_stride
        ``2**top_level``; input height and width must be multiples of it.
    out_channels
        ``{stride: channels}`` for strides 2 .. ``max_stride``.
    """

    def __init__(
        self,
        name: str,
        in_channels: int = 3,
        top_level: int = 5,
        imagenet_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if not 1 <= int(top_level) <= 5:
            raise ConfigError(f"model.top_level: must be 1 to 5 for {name}, got {top_level}")
        model = _torchvision_model(name)
        if imagenet_weights is not None:
            load_imagenet_weights(model, name, imagenet_weights)
        _adapt_first_conv(model, name, int(in_channels))
        self.name = name
        self.top_level = int(top_level)
        self.max_stride = 2**self.top_level
        self.stages = nn.ModuleList(_stages(model, name, self.top_level))
        self.out_channels: dict[int, int] = {}
        channels = int(in_channels)
        for level, stage in enumerate(self.stages, start=1):
            channels = _channels_of(stage, channels)
            self.out_channels[2**level] = channels
        mean = torch.tensor(IMAGENET_MEAN)
        std = torch.tensor(IMAGENET_STD)
        if in_channels != 3:
            mean, std = mean.mean().repeat(in_channels), std.mean().repeat(in_channels)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.reshape(1, -1, 1, 1), persistent=False)

    def load_imagenet(self, path: str | os.PathLike[str]) -> None:
        """Start from torchvision's ImageNet weights in ``path`` (checked to be this architecture's).

        The weights go into a fresh torchvision network, which is adapted and cut exactly like this
        one, so every stage receives its tensors under its own names.
        """
        in_channels = int(self.mean.shape[1])
        reference = TorchvisionBackbone(self.name, in_channels, self.top_level, imagenet_weights=path)
        self.load_state_dict(reference.state_dict())

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``x`` (B, C, H, W) in [0, 1], H and W multiples of ``max_stride`` -> ``{stride: features}``."""
        h, w = x.shape[-2:]
        if h % self.max_stride or w % self.max_stride:
            raise ValueError(
                f"input size {h}x{w} is not a multiple of max_stride {self.max_stride}; pad it with pad_to_stride()"
            )
        x = (x - self.mean) / self.std
        features = {}
        for level, stage in enumerate(self.stages, start=1):
            x = stage(x)
            features[2**level] = x
        return features


def build_torchvision_backbone(config: Any, in_channels: int) -> TorchvisionBackbone:
    """The torchvision backbone ``config.model`` names, randomly initialised.

    ImageNet weights are loaded by training (:meth:`TorchvisionBackbone.load_imagenet`), not here:
    a trained model is rebuilt from its config for inference and must not need the ImageNet file.
    """
    return TorchvisionBackbone(config.model.backbone, in_channels, config.model.top_level)
