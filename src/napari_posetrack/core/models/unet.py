"""UNet backbone: an encoder that halves the image down to ``max_stride`` and a decoder back up.

The backbone returns a ``{stride: features}`` dict holding the deepest map and every decoder level,
so heads at different output strides (e.g. confidence maps at 4, PAFs at 8) read the level they
need. Layout (one block = ``convs_per_block`` 3x3 convolutions + ReLU):

- optional stem: a 7x7 convolution + ReLU, then max pooling by ``stem_stride``;
- encoder level ``i`` (stride ``stem_stride * 2**i``): a block with ``filters * filters_rate**i``
  channels (kept as the skip connection), then 2x2 max pooling;
- optional middle block at ``max_stride``;
- decoder levels from ``max_stride / 2`` to ``output_stride``: upsample x2 (bilinear, or a learned
  2x2 transposed convolution + ReLU), concatenate the skip of that stride, then a block.
"""

from __future__ import annotations

import torch
from torch import nn

from napari_posetrack.core.config import UNetConfig
from napari_posetrack.core.models.receptive_field import KERNEL, STEM_KERNEL, UNetPlan, unet_plan


def conv_block(in_channels: int, out_channels: int, n_convs: int) -> nn.Sequential:
    """``n_convs`` 3x3 convolutions (same padding), each followed by ReLU."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers.append(
            nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, KERNEL, padding=KERNEL // 2)
        )
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """UNet backbone built from a :class:`~napari_posetrack.core.models.receptive_field.UNetPlan`.

    Parameters
    ----------
    plan
        Channel plan (see :func:`from_config`).

    Attributes
    ----------
    max_stride
        Input height and width must be multiples of it (see ``pad_to_stride``).
    out_channels
        ``{stride: channels}`` of the returned feature maps.
    """

    def __init__(self, plan: UNetPlan) -> None:
        super().__init__()
        self.plan = plan
        self.max_stride = plan.max_stride
        self.out_channels = plan.out_channels
        cpb = plan.convs_per_block
        prev = plan.in_channels
        if plan.stem_stride > 1:
            self.stem: nn.Module = nn.Sequential(
                nn.Conv2d(prev, plan.stem_filters, STEM_KERNEL, padding=STEM_KERNEL // 2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(plan.stem_stride, plan.stem_stride),
            )
            prev = plan.stem_filters
        else:
            self.stem = nn.Identity()
        self.encoder = nn.ModuleList()
        for f in plan.encoder:
            self.encoder.append(conv_block(prev, f, cpb))
            prev = f
        self.pools = nn.ModuleList([nn.MaxPool2d(2, 2) for _ in plan.encoder])
        self.middle = conv_block(prev, plan.middle, cpb) if plan.middle is not None else nn.Identity()
        self.upsamplers = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for lvl in plan.decoder:
            if plan.up_interpolate:
                self.upsamplers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            else:
                self.upsamplers.append(
                    nn.Sequential(
                        nn.ConvTranspose2d(lvl.up_in, lvl.up_out, 2, stride=2), nn.ReLU(inplace=True)
                    )
                )
            self.decoder.append(conv_block(lvl.up_out + lvl.skip, lvl.out, cpb))

    @classmethod
    def from_config(cls, unet: UNetConfig, in_channels: int, output_stride: int) -> UNet:
        """A UNet per ``unet`` whose decoder goes up to ``output_stride``."""
        return cls(unet_plan(unet, in_channels, output_stride))

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``x`` (B, C, H, W) with H, W multiples of ``max_stride`` -> ``{stride: (B, C_s, H/s, W/s)}``."""
        h, w = x.shape[-2:]
        if h % self.max_stride or w % self.max_stride:
            raise ValueError(
                f"input size {h}x{w} is not a multiple of max_stride {self.max_stride}; pad it with pad_to_stride()"
            )
        x = self.stem(x)
        skips = {}
        for i, (block, pool) in enumerate(zip(self.encoder, self.pools)):
            x = block(x)
            skips[self.plan.stride_of_level(i)] = x
            x = pool(x)
        x = self.middle(x)
        features = {self.max_stride: x}
        for lvl, up, block in zip(self.plan.decoder, self.upsamplers, self.decoder):
            x = block(torch.cat([up(x), skips[lvl.stride]], dim=1))
            features[lvl.stride] = x
        return features
