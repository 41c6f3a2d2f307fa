"""SDNet (Siamese Defocus Network) and DepthNet: plain ``nn.Module``s, no Lightning inside."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdgs.models.unet import UNet
from sdgs.optics import (
    Camera,
    bounded_inverse_depth,
    gaussian_psf_blur,
    inverse_depth_logit,
    normalized_log_inverse_depth,
    signed_coc_from_inverse_depth,
)
from sdgs.render.rasterize import full_precision

__all__ = ["SDNet", "DepthNet", "blur_features", "bounded_inverse_depth", "focus_plane", "reblur_features", "row_plane"]

#: channels of :func:`blur_features`
BLUR_CHANNELS = 4
#: Gaussian σ (px) of the re-blurs in :func:`reblur_features`
REBLUR_SIGMAS_PX = (0.7, 1.4, 2.8)


@full_precision
def blur_features(image: Tensor, window: int = 7, eps: float = 1e-4) -> Tensor:
    """Local blur cues of ``image`` (B,3,H,W) in [0,1] → (B, 4, H, W), roughly zero-mean.

    Log local energy of the Laplacian (the top octave, where defocus removes detail) and of the gradient,
    each at the pixel and over a ``window`` box, against the log local contrast. Their differences are a
    contrast-normalised sharpness, i.e. blur independent of texture strength; the network gets the raw
    logs and learns the ratio. Pure kornia filters (reflect borders), differentiable, no parameters.
    Always fp32, also under bf16 autocast: the local contrast is a difference of two box means (a variance),
    which bf16's 3 digits would cancel to noise.
    """
    import kornia

    grey = image.mean(1, keepdim=True)
    box = lambda t: kornia.filters.box_blur(t, (window, window), border_type="reflect")  # noqa: E731
    lap = kornia.filters.laplacian(grey, 3, border_type="reflect")
    grad = kornia.filters.spatial_gradient(grey, mode="sobel").pow(2).sum(2)
    contrast = (box(grey**2) - box(grey) ** 2).clamp_min(0)
    feats = [box(lap**2), box(grad), kornia.filters.box_blur(lap**2, (3, 3), border_type="reflect"), contrast]
    # log compresses the many decades of energy; the offsets centre typical values of natural images
    return torch.cat([(f + eps).log() / 4.0 + 2.2 for f in feats], 1)


@full_precision
def reblur_features(image: Tensor, sigmas_px: tuple[float, ...] = REBLUR_SIGMAS_PX, window: int = 9) -> Tensor:
    """Gradient-energy ratios after re-blurring ``image`` (B,3,H,W) in [0,1] → (B, len(sigmas_px), H, W).

    Zhuo & Sim's (2011) cue, densely: an edge blurred by σ_b and re-blurred by σ_r keeps about the share
    σ_b / √(σ_b² + σ_r²) of its squared gradient summed over a ``window`` box, whatever its contrast (the
    test checks the law). One ratio per re-blur σ, as ``log(ratio) / 2 + 1`` (near 1 where the image is already
    blurred, lower the sharper it is; on flat areas the ratio is noise).
    Several σ bracket the CoC range of a real lens (a few px), so the network reads an absolute blur
    calibrated by the lens instead of learning it from texture statistics alone (on real DSLR photos it
    is what moves far rooms off the training-depth prior; docs/results.md).
    """
    import kornia

    grey = image.mean(1, keepdim=True)

    def energy(t: Tensor) -> Tensor:
        grad = kornia.filters.spatial_gradient(t, mode="sobel").pow(2).sum(2)
        return kornia.filters.box_blur(grad, (window, window), border_type="reflect") + 1e-6

    sharp = energy(grey)
    ratios = []
    for sigma in sigmas_px:
        blurred = gaussian_psf_blur(grey, sigma)
        ratios.append((energy(blurred) / sharp).clamp(1e-3, 1.0).log() / 2 + 1)
    return torch.cat(ratios, 1)


def focus_plane(focus_m: Tensor, like: Tensor, near_m: float, far_m: float) -> Tensor:
    """Constant input plane ``(B, 1, H, W)``: the focus distance as normalised log inverse depth in [0, 1]."""
    value = normalized_log_inverse_depth(1.0 / focus_m, near_m, far_m)
    return value.view(-1, 1, 1, 1).expand(like.shape[0], 1, *like.shape[-2:]).to(like)


def row_plane(like: Tensor) -> Tensor:
    """Input plane ``(B, 1, H, W)``: the image row in [-1, 1] (top to bottom), for a position prior.

    Indoor scenes put the floor at the bottom and walls far at the top; a network of full-image input can
    use the row itself (a coordinate channel, as CoordConv). Meaningful for full images only: with random
    crops the row is relative to the crop.
    """
    b, _, h, w = like.shape
    return torch.linspace(-1.0, 1.0, h, dtype=like.dtype, device=like.device).view(1, 1, h, 1).expand(b, 1, h, w)


def _pool(x: Tensor, stride: int) -> Tensor:
    """Average-pool by ``stride`` (``ceil_mode``: an odd border still gets its pixel)."""
    return x if stride == 1 else F.avg_pool2d(x, stride, ceil_mode=True)


def _upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class SDNet(nn.Module):
    """Siamese Defocus Network: one shared-weight encoder-decoder applied to each image of a stack.

    Input: one defocused image, its focus distance (a constant plane) and, with ``blur_inputs``, its
    :func:`blur_features`. Output: a signed CoC map (px)
    produced from a *bounded* log inverse depth through the thin lens, so it never leaves the depth
    range the renderer and the dataset use. The defocus map is ``|signed_coc|``. The Siamese pairing is
    the training (two images of one stack through the same weights), not the architecture.

    Args:
        width, depth: U-Net size (width 16 / depth 3 is the CPU quickstart; width 32 / depth 4 for GPUs).
        blur_inputs: also feed :func:`blur_features` (local sharpness vs contrast), so the network starts
            from the blur cue instead of having to discover the top-octave energy itself.
        stride: the U-Net runs at ``1/stride`` of the input resolution. The blur features are computed at
            full resolution first and then average-pooled, so the cue (a few pixels of blur) survives while
            the network sees a whole photo at a cost it can afford; the output is upsampled bilinearly.
        row_input: also feed :func:`row_plane` (a position prior for full-image training on real scenes).
        reblur_inputs: also feed :func:`reblur_features` (gradient ratios after re-blurring, at full resolution).
    """

    def __init__(
        self,
        width: int = 16,
        depth: int = 3,
        blur_inputs: bool = True,
        stride: int = 1,
        row_input: bool = False,
        reblur_inputs: bool = False,
    ) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.blur_inputs, self.reblur_inputs = blur_inputs, reblur_inputs
        self.stride, self.row_input = stride, row_input
        channels = 4 + BLUR_CHANNELS * blur_inputs + row_input + len(REBLUR_SIGMAS_PX) * reblur_inputs
        self.net = UNet(channels, 1, width, depth)

    def forward(self, image: Tensor, focus_m: Tensor, camera: Camera) -> dict[str, Tensor]:
        """Args: ``image`` (B,3,H,W) in [0,1]; ``focus_m`` (B,); ``camera`` batched (fields (B,1,1,1)).

        Returns: ``signed_coc`` (B,1,H,W) px, ``defocus`` = |signed_coc|, ``inv_depth`` (B,1,H,W) 1/m,
        ``depth`` (B,1,H,W) m.
        """
        near, far = camera.depth_range_m
        x = [image * 2 - 1, focus_plane(focus_m, image, near, far) * 2 - 1]
        if self.blur_inputs:
            x.append(blur_features(image))
        if self.reblur_inputs:
            x.append(reblur_features(image))
        if self.row_input:
            x.append(row_plane(image))
        # the U-Net may run in bf16 (autocast); the bounded depth and the thin lens stay fp32: bf16's 3 digits
        # would quantise depth by ~0.4 %, a sizeable share of the blur signal
        logit = _upsample(self.net(_pool(torch.cat(x, 1), self.stride)).float(), image.shape[-2:])
        inv = bounded_inverse_depth(logit, near, far)
        coc = signed_coc_from_inverse_depth(inv, focus_m.view(-1, 1, 1, 1), camera)
        return {"signed_coc": coc, "defocus": coc.abs(), "inv_depth": inv, "depth": 1.0 / inv}


class DepthNet(nn.Module):
    """Refines depth from one defocused image, its defocus map, its focus distance and the initial depth z0.

    Predicts a bounded residual on z0 in (logit) log-inverse-depth space, so the output stays within the
    dataset's depth range. The residual head starts at zero: DepthNet begins as the identity on z0.

    Args:
        width, depth: U-Net size.
        coc_scale_px: defocus maps are divided by this before entering the network.
        stride, row_input: as :class:`SDNet` (the residual is predicted at ``1/stride`` and upsampled).
    """

    def __init__(
        self, width: int = 16, depth: int = 3, coc_scale_px: float = 4.0, stride: int = 1, row_input: bool = False
    ) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.net = UNet(6 + row_input, 1, width, depth)
        nn.init.zeros_(self.net.head.weight)
        nn.init.zeros_(self.net.head.bias)
        self.coc_scale_px, self.stride, self.row_input = coc_scale_px, stride, row_input

    def forward(
        self, image: Tensor, defocus: Tensor, focus_m: Tensor, depth0: Tensor, camera: Camera
    ) -> dict[str, Tensor]:
        """Args: ``image`` (B,3,H,W), ``defocus`` (B,1,H,W) px, ``focus_m`` (B,), ``depth0`` (B,1,H,W) m.

        Returns: ``inv_depth`` and ``depth`` (B,1,H,W).
        """
        near, far = camera.depth_range_m
        logit0 = inverse_depth_logit(1.0 / depth0, near, far)
        z0_norm = normalized_log_inverse_depth(1.0 / depth0, near, far)
        plane = focus_plane(focus_m, image, near, far)
        x = [image * 2 - 1, defocus / self.coc_scale_px, plane * 2 - 1, z0_norm * 2 - 1]
        if self.row_input:
            x.append(row_plane(image))
        residual = _upsample(self.net(_pool(torch.cat(x, 1), self.stride)).float(), image.shape[-2:])  # fp32 head
        inv = bounded_inverse_depth(logit0 + residual, near, far)
        return {"inv_depth": inv, "depth": 1.0 / inv}
