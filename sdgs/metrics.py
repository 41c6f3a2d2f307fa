"""Depth metrics: the DFV/FoD500 set and the Eigen/NYUv2 set, per-image means averaged over images.

Protocols (docs/protocols.md, "Metric protocols"):

* ``"dfv"`` (``fuy34/DFV:eval_FoD500.py``): prediction and ground truth clipped to [0, 1.5] m (GT beyond
  1.5 m is clipped, not masked), valid = gt > 0; MSE, RMSE, log RMSE (ln), AbsRel, SqRel, delta_k in
  **percent**, Bumpiness (100 x mean of the clipped Frobenius norm of the Hessian of pred - gt, Scharr
  derivatives twice, clip 0.05). ``near_max`` restricts pixels to gt < near_max before clipping (the far
  field is nearly unobservable with FoD500 optics).
* ``"eigen"`` (GLPDepth / Marigold / DEReD): valid = min_depth < gt < max_depth, prediction clamped to
  [min_depth, max_depth]; AbsRel, SqRel, RMSE, RMSE-log (ln; ``log10=True`` gives DEReD's log10 variant),
  delta_1..3 as **fractions**; optional Eigen crop [45:471, 41:601] (scaled to the image size).

No median scaling anywhere. :class:`DepthMetrics` keeps float64 sums of per-image values plus an image
count (``dist_reduce_fx="sum"``), so multi-process (DDP) results equal single-process ones exactly.
"""

from __future__ import annotations

from typing import Literal

import kornia
import torch
from torch import Tensor
from torchmetrics import Metric

#: the DFV protocol's clip (m): prediction and ground truth are clipped to [0, DFV_CLIP_M]; its "near" pixels
#: are those with GT below it. Configs repeat the value as ``model.loss_far_m`` / ``model.near_max``.
DFV_CLIP_M = 1.5

__all__ = [
    "DFV_CLIP_M", "DFV_KEYS", "EIGEN_KEYS", "EIGEN_CROP", "EIGEN_FRAME", "per_image_depth_errors", "DepthMetrics",
]  # fmt: skip

DFV_KEYS = ("mse", "rmse", "log_rmse", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "bumpiness")
EIGEN_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
#: Eigen crop (Eigen et al., NeurIPS 2014): rows ``[top, bottom)`` and columns ``[left, right)`` of a
#: 480x640 NYUv2 frame, as ``(top, bottom, left, right)``; other sizes scale it (docs/protocols.md).
EIGEN_CROP = (45, 471, 41, 601)
EIGEN_FRAME = (480, 640)


def _bumpiness(pred: Tensor, gt: Tensor, valid: Tensor) -> Tensor:
    """Per-image DFV bumpiness ``(B,)``: 100 * mean over valid of clip(||Hessian(pred - gt)||_F, 0, 0.05)."""
    diff = (pred - gt) * valid
    # Scharr kernels normalised like skimage.filters.scharr_{h,v} (sum of |weights| = 1 per side: /32)
    d = kornia.filters.spatial_gradient(diff, mode="sobel", normalized=True)  # (B,1,2,H,W): dx, dy
    dx, dy = d[:, :, 0], d[:, :, 1]
    dxx_dxy = kornia.filters.spatial_gradient(dx, mode="sobel", normalized=True)
    dyx_dyy = kornia.filters.spatial_gradient(dy, mode="sobel", normalized=True)
    hess = torch.sqrt(
        dxx_dxy[:, :, 0] ** 2 + dxx_dxy[:, :, 1] ** 2 + dyx_dyy[:, :, 0] ** 2 + dyx_dyy[:, :, 1] ** 2
    ).clamp(0, 0.05)
    n = valid.sum((1, 2, 3)).clamp_min(1)
    return 100.0 * (hess * valid).sum((1, 2, 3)) / n


def per_image_depth_errors(
    pred: Tensor,
    gt: Tensor,
    protocol: Literal["dfv", "eigen"] = "dfv",
    *,
    near_max: float | None = None,
    clip_max: float = DFV_CLIP_M,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
    log10: bool = False,
    eigen_crop: bool = False,
) -> tuple[dict[str, Tensor], Tensor]:
    """Per-image metrics ``{name: (B,)}`` and a ``(B,)`` bool of images with at least one valid pixel.

    Args:
        pred, gt: ``(B, 1, H, W)`` depth (m); gt = 0 is invalid.
        protocol: ``"dfv"`` or ``"eigen"`` (module docstring).
        near_max: DFV only: keep pixels with gt < near_max (before clipping).
        clip_max: DFV clip (1.5 m).
        min_depth, max_depth: Eigen validity range and prediction clamp.
        log10: Eigen RMSE-log in log10 (DEReD) instead of ln.
        eigen_crop: Eigen crop on the valid mask.
    """
    if pred.shape != gt.shape or pred.ndim != 4:
        raise ValueError(f"pred and gt must both be (B, 1, H, W), got {tuple(pred.shape)} and {tuple(gt.shape)}")
    pred, gt = pred.double(), gt.double()
    if protocol == "dfv":
        valid = (gt > 0) & torch.isfinite(gt)
        if near_max is not None:
            valid &= gt < near_max
        gt_c = torch.where(valid, gt.clamp(0, clip_max), torch.ones_like(gt))
        p = torch.where(valid, pred.clamp(0, clip_max), torch.ones_like(pred))
        p = p.clamp_min(1e-6)  # ln of a zero prediction
    elif protocol == "eigen":
        valid = (gt > min_depth) & (gt < max_depth) & torch.isfinite(gt)
        if eigen_crop:
            (h, w), (fh, fw) = gt.shape[-2:], EIGEN_FRAME
            top, bottom, left, right = EIGEN_CROP
            crop = torch.zeros_like(valid)
            crop[..., round(top * h / fh) : round(bottom * h / fh), round(left * w / fw) : round(right * w / fw)] = True
            valid &= crop
        gt_c = torch.where(valid, gt, torch.ones_like(gt))
        p = torch.where(valid, pred.clamp(min_depth, max_depth), torch.ones_like(pred))
    else:
        raise ValueError(f"unknown metric protocol {protocol!r}: use 'dfv' or 'eigen'")
    v = valid.double()
    n = v.sum((1, 2, 3))
    has = n > 0
    n = n.clamp_min(1)
    mean = lambda t: (t * v).sum((1, 2, 3)) / n  # noqa: E731
    err = p - gt_c
    ratio = torch.maximum(p / gt_c, gt_c / p)
    out = {
        "abs_rel": mean(err.abs() / gt_c),
        "sq_rel": mean(err**2 / gt_c),
        "rmse": mean(err**2).sqrt(),
    }
    scale = 100.0 if protocol == "dfv" else 1.0
    for k in (1, 2, 3):
        out[f"delta{k}"] = scale * mean((ratio < 1.25**k).double())
    if protocol == "dfv":
        out["mse"] = mean(err**2)
        out["log_rmse"] = mean((p.log() - gt_c.log()) ** 2).sqrt()
        out["bumpiness"] = _bumpiness(p, gt_c, v)
    else:
        log = torch.log10 if log10 else torch.log
        out["rmse_log"] = mean((log(p) - log(gt_c)) ** 2).sqrt()
    return out, has


class DepthMetrics(Metric):
    """torchmetrics wrapper of :func:`per_image_depth_errors`: mean over images of per-image values.

    Args:
        protocol, near_max, clip_max, min_depth, max_depth, log10, eigen_crop: see
            :func:`per_image_depth_errors`.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(
        self,
        protocol: Literal["dfv", "eigen"] = "dfv",
        near_max: float | None = None,
        clip_max: float = DFV_CLIP_M,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        log10: bool = False,
        eigen_crop: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.protocol = protocol
        self.options = dict(
            near_max=near_max, clip_max=clip_max, min_depth=min_depth, max_depth=max_depth,
            log10=log10, eigen_crop=eigen_crop,
        )  # fmt: skip
        self.keys = DFV_KEYS if protocol == "dfv" else EIGEN_KEYS
        for key in self.keys:
            self.add_state(key, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor) -> None:
        values, has = per_image_depth_errors(pred, gt, self.protocol, **self.options)
        for key in self.keys:
            setattr(self, key, getattr(self, key) + values[key][has].sum())
        self.images += has.sum()

    def compute(self) -> dict[str, Tensor]:
        n = self.images.clamp_min(1)
        return {key: (getattr(self, key) / n).float() for key in self.keys}
