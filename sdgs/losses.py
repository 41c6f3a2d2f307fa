"""Losses of the splatting stage and the networks. Each returns a scalar (or per-sample values).

Conventions: images in [0, 1]; ``(1 - SSIM)`` is computed from kornia's SSIM map (``kornia.losses.ssim_loss``
returns ``(1 - SSIM) / 2``, which would halve the weight). Confidence-weighted terms divide by the total
confidence, so their scale does not depend on how much of the image is confident.
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

__all__ = [
    "photometric",
    "confidence_l1",
    "log_depth_l1",
    "abs_rel_l1",
    "DEPTH_LOSSES",
    "siamese_consistency",
    "smoothness",
]


def photometric(pred: Tensor, target: Tensor, ssim_weight: float = 0.85, reduce: bool = True) -> Tensor:
    """``w (1 - SSIM) + (1 - w) L1`` (Monodepth/3DGS form); ``(..., 3, H, W)`` → scalar, or per image."""
    shape = pred.shape[:-3]
    p = pred.reshape(-1, *pred.shape[-3:])
    t = target.reshape(-1, *target.shape[-3:])
    ssim = kornia.metrics.ssim(p, t, 11, max_val=1.0, padding="same").mean((1, 2, 3))
    l1 = (p - t).abs().mean((1, 2, 3))
    per_image = (ssim_weight * (1 - ssim) + (1 - ssim_weight) * l1).reshape(shape)
    return per_image.mean() if reduce else per_image


def confidence_l1(pred: Tensor, target: Tensor, confidence: Tensor, eps: float = 1e-6) -> Tensor:
    """Confidence-weighted L1: ``sum(c |pred - target|) / sum(c)``; all broadcastable ``(B, 1, H, W)``."""
    c = confidence.expand_as(pred)
    return (c * (pred - target).abs()).sum() / c.sum().clamp_min(eps)


def _clip_far(inv_depth: Tensor, far_m: float | None, eps: float) -> Tensor:
    """Inverse depth (1/m) with depths beyond ``far_m`` (and non-positive values) clipped, for the depth losses."""
    return inv_depth.clamp_min(max(eps, 1.0 / far_m) if far_m else eps)


def log_depth_l1(
    pred_inv: Tensor, target_inv: Tensor, confidence: Tensor, far_m: float | None = None, eps: float = 1e-6
) -> Tensor:
    """Confidence-weighted L1 between log inverse depths ``(B, 1, H, W)`` (1/m), i.e. |log z - log z*|.

    Scale-aware like AbsRel and δ: a 10 % error costs the same near and far, whereas CoC-space L1 hardly
    moves for far-field errors (the CoC saturates with depth). ``far_m`` clips both depths there first, as
    a protocol that clips does (DFV: 1.5 m): a pixel beyond it only has to come out beyond it.
    """
    pred_inv, target_inv = _clip_far(pred_inv, far_m, eps), _clip_far(target_inv, far_m, eps)
    return confidence_l1(pred_inv.log(), target_inv.log(), confidence)


def abs_rel_l1(
    pred_inv: Tensor, target_inv: Tensor, confidence: Tensor, far_m: float | None = None, eps: float = 1e-6
) -> Tensor:
    """Confidence-weighted ``|z - z*| / z*`` from inverse depths ``(B, 1, H, W)`` (1/m): AbsRel itself.

    Its minimiser under an uncertain target is the 1/z*-weighted median, below the median that
    :func:`log_depth_l1` gives: the AbsRel-optimal point prediction. ``far_m`` clips both depths first.
    """
    pred, target = 1.0 / _clip_far(pred_inv, far_m, eps), 1.0 / _clip_far(target_inv, far_m, eps)
    return confidence_l1(pred / target, torch.ones_like(target), confidence)


#: ``model.target_space`` -> the depth loss of SDNet's and DepthNet's terms (inverse depths ``(B, 1, H, W)``)
DEPTH_LOSSES = {"log_depth": log_depth_l1, "abs_rel": abs_rel_l1}


def siamese_consistency(inv_a: Tensor, inv_b: Tensor) -> Tensor:
    """The inverse depths two branches imply for one scene should agree (relative L1 in inverse depth)."""
    return ((inv_a - inv_b).abs() / (0.5 * (inv_a + inv_b)).clamp_min(1e-6)).mean()


def smoothness(inv_depth: Tensor, image: Tensor) -> Tensor:
    """Edge-aware smoothness of mean-normalised inverse depth (kornia)."""
    norm = inv_depth / inv_depth.mean((2, 3), keepdim=True).clamp_min(1e-6)
    return kornia.losses.inverse_depth_smoothness_loss(norm, image)
