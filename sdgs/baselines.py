"""No-learning baselines, reported beside every result: depth from focus, depth from one image's blur
(:func:`defocus_depth_one_image`) and the constant.

One definition each, used by the results table (:mod:`sdgs.cli.report`) and the benchmarks (``bench/``).
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

from sdgs.optics import SIGMA_PER_COC, Camera, batched_camera, gaussian_psf_blur, inverse_depth_from_signed_coc

__all__ = ["constant_depth", "depth_from_focus", "median_depth", "blur_sigma_one_image", "defocus_depth_one_image"]


def median_depth(depths: torch.Tensor, clip_max: float | None = None) -> float:
    """Median of the valid (> 0, finite) values of ground-truth depths of any shape (m), after clipping them
    at ``clip_max`` (m) if given (the DFV protocol scores depth clipped at 1.5 m)."""
    valid = depths[(depths > 0) & torch.isfinite(depths)]
    if valid.numel() == 0:
        raise ValueError("no valid ground-truth depth to take the median of")
    return float(valid.clamp(max=clip_max).median() if clip_max is not None else valid.median())


def constant_depth(train_dataset, max_samples: int = 64, clip_max: float | None = None) -> float:
    """The constant baseline (m): the median valid ground-truth depth of the TRAINING split.

    Never the test split's own median, which would tune the baseline on the data it is scored on.
    ``clip_max``: take the median of the depth the protocol scores (DFV: clipped at 1.5 m), which gives the
    stronger constant there (the clipped median lowers its AbsRel under that protocol).
    ``train_dataset`` needs ``len`` and ``load(i) -> {"depth": (1, H, W)}``; the first ``max_samples`` are used.
    """
    n = min(len(train_dataset), max_samples)
    if n == 0:
        raise ValueError("constant_depth needs a non-empty training split")
    return median_depth(torch.cat([train_dataset.load(i)["depth"].flatten() for i in range(n)]), clip_max)


def depth_from_focus(stack: torch.Tensor, focus: torch.Tensor) -> torch.Tensor:
    """Classic depth from focus: per pixel the focus distance of the sharpest slice ``(B, 1, H, W)``.

    Focus measure: :func:`sdgs.splatting.fit.focus_measure` over 9x9 (Nayar & Nakagawa style).
    """
    from sdgs.splatting.fit import focus_measure

    b, s, _, h, w = stack.shape
    best = focus_measure(stack, window=9, border_type="reflect").squeeze(2).argmax(1, keepdim=True)  # (B,1,H,W)
    return torch.gather(focus.view(b, s, 1, 1).expand(b, s, h, w), 1, best)


def blur_sigma_one_image(
    image: Tensor, reblur_sigma_px: float = 1.0, spread_sigma_px: float = 24.0, eps: float = 1e-6
) -> Tensor:
    """Gaussian blur sigma (px) of ONE image, per pixel ``(B, 1, H, W)`` (Zhuo & Sim, Pattern Recognition 2011).

    Re-blur the image with a known Gaussian ``reblur_sigma_px`` (s0); at an edge blurred by an unknown sigma s,
    the ratio of gradient magnitudes before and after is ``R = sqrt(s^2 + s0^2) / s``, so
    ``s = s0 / sqrt(R^2 - 1)`` (less the central difference's own 1/3 px^2). Edges: kornia's Canny. The sparse
    estimates are spread to every pixel by a
    normalised Gaussian convolution of ``spread_sigma_px`` (the paper uses the matting Laplacian; this is the
    cheaper, edge-unaware form). No parameters, no training.

    Args:
        image: ``(B, 3, H, W)`` in [0, 1].
    """
    grey = image.mean(1, keepdim=True)
    grad = lambda x: kornia.filters.spatial_gradient(x, mode="sobel").pow(2).sum(2).add(eps).sqrt()  # noqa: E731
    s0 = reblur_sigma_px
    ratio = grad(grey) / grad(gaussian_psf_blur(grey, s0))
    _, edges = kornia.filters.canny(grey)
    valid = (edges > 0) & (ratio > 1.01)  # R <= 1: noise, not a blurred edge
    # the central-difference derivative itself widens an edge by a variance of 1/3 px^2 (a 2-px box): remove it
    var = s0**2 / (ratio.clamp_min(1.01) ** 2 - 1) - 1.0 / 3.0
    sigma = torch.where(valid, var.clamp_min(0).sqrt(), torch.zeros_like(ratio)).clamp(max=50)
    spread = lambda x: gaussian_psf_blur(x, spread_sigma_px)  # noqa: E731
    weight = valid.to(image.dtype)
    return spread(sigma * weight) / spread(weight).clamp_min(1e-6)


def defocus_depth_one_image(image: Tensor, focus_m: Tensor, camera: Camera | dict, **kw) -> Tensor:
    """Depth (m) from one image's blur through the thin lens, every pixel assumed beyond the focus plane.

    One image cannot tell a near blur from a far one; "far of focus" is the classic single-image
    defocus assumption (Zhuo & Sim 2011). CoC diameter = sigma / ``SIGMA_PER_COC``; a blur beyond what
    infinity produces gives the camera's far bound. ``image`` ``(B, 3, H, W)``, ``focus_m`` ``(B,)``;
    ``kw`` go to :func:`blur_sigma_one_image`. Returns ``(B, 1, H, W)`` within ``camera.depth_range_m``.
    """
    cam = batched_camera(camera, 4)
    near, far = cam.depth_range_m
    coc = blur_sigma_one_image(image, **kw) / SIGMA_PER_COC
    inv = inverse_depth_from_signed_coc(coc, focus_m.view(-1, 1, 1, 1).to(image), cam)
    return 1.0 / inv.clamp(1.0 / far, 1.0 / near)
