"""A small GroupNorm U-Net: the encoder-decoder behind SDNet and DepthNet."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UNet"]


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    g = max(1, min(groups, cout // 4))
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(g, cout), nn.SiLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(g, cout), nn.SiLU(inplace=True),
    )  # fmt: skip


class UNet(nn.Module):
    """Encoder-decoder with skips; GroupNorm (BatchNorm gave noisy full-image scores after crop training).

    Args:
        in_channels, out_channels: input / output channels.
        width: channels of the first level (doubles per level).
        depth: number of down-sampling levels.
        groups: GroupNorm groups (capped at channels / 4).

    Any input size works: inputs are padded to a multiple of ``2 ** depth`` and the output cropped back.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 16, depth: int = 3, groups: int = 8) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.inc = _block(in_channels, chans[0], groups)
        self.down = nn.ModuleList(_block(chans[i], chans[i + 1], groups) for i in range(depth))
        self.up = nn.ModuleList(_block(chans[i + 1] + chans[i], chans[i], groups) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_channels, H, W)``."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        x = F.pad(x, (0, (-w) % m, 0, (-h) % m), mode="replicate")
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(F.avg_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up in self.up:
            skip = skips.pop()
            y = up(torch.cat([F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        # the head (1x1 conv, negligible cost) in fp32 under bf16 autocast: its output is a log depth, which
        # a bf16 result would round by ~0.4 %, about the blur signal between neighbouring depths
        with torch.autocast(y.device.type, enabled=False):
            return self.head(y.float())[..., :h, :w]
