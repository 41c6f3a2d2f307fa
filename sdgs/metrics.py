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

The building blocks are small functions, used by :class:`DepthMetrics` and by every benchmark: per-pixel
primitives (:func:`relative_error`, :func:`log_ratio`, :func:`delta_ratio`), the protocol's valid pixels
(:func:`valid_mask`) and scored depths (:func:`protocol_depths`), the per-pixel error maps of a protocol
(:func:`error_maps`), per-image means over valid pixels (:func:`image_mean`) and δ accuracy as a fraction
(:func:`delta_fraction`). δ is a fraction everywhere inside; :data:`DELTA_UNIT_SCALE` is the one place where
a protocol's reporting unit (DFV percent) is applied, in :func:`per_image_depth_errors`.

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
    "DFV_CLIP_M", "DFV_KEYS", "EIGEN_KEYS", "EIGEN_CROP", "EIGEN_FRAME", "DELTA_BASE", "DELTA_UNIT_SCALE",
    "Protocol", "relative_error", "log_ratio", "delta_ratio", "valid_mask", "protocol_depths", "error_maps",
    "image_mean", "delta_fraction", "per_image_depth_errors", "DepthMetrics",
]  # fmt: skip

Protocol = Literal["dfv", "eigen"]
DFV_KEYS = ("mse", "rmse", "log_rmse", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "bumpiness")
EIGEN_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
#: Eigen crop (Eigen et al., NeurIPS 2014): rows ``[top, bottom)`` and columns ``[left, right)`` of a
#: 480x640 NYUv2 frame, as ``(top, bottom, left, right)``; other sizes scale it (docs/protocols.md).
EIGEN_CROP = (45, 471, 41, 601)
EIGEN_FRAME = (480, 640)
#: δ_k counts pixels with ``max(pred / gt, gt / pred) < DELTA_BASE ** k``
DELTA_BASE = 1.25
#: the unit each protocol reports δ in, as a factor on the fraction: DFV's evaluation script prints percent,
#: the Eigen-protocol papers fractions. Applied in one place (:func:`per_image_depth_errors`).
DELTA_UNIT_SCALE: dict[str, float] = {"dfv": 100.0, "eigen": 1.0}


def relative_error(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-pixel relative error ``|pred - gt| / gt`` (the summand of AbsRel), any shape; no mask, no clip."""
    return (pred - gt).abs() / gt


def log_ratio(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-pixel ``ln(pred / gt) = ln pred - ln gt`` (> 0: too far), any shape; no mask, no clip."""
    return torch.log(pred) - torch.log(gt)


def delta_ratio(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-pixel ``max(pred / gt, gt / pred)`` (>= 1; δ_k counts it below ``1.25 ** k``), any shape."""
    return torch.maximum(pred / gt, gt / pred)


def valid_mask(
    gt: Tensor,
    protocol: Protocol = "dfv",
    *,
    near_max: float | None = None,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
    eigen_crop: bool = False,
) -> Tensor:
    """The pixels a protocol scores: bool, the shape of ``gt`` (``(..., H, W)``, depth in m).

    DFV: finite ``gt > 0`` (and ``gt < near_max`` when given; GT beyond the clip is clipped, not masked).
    Eigen: finite ``min_depth < gt < max_depth``, within the Eigen crop when ``eigen_crop`` (scaled to H x W).
    """
    finite = torch.isfinite(gt)
    if protocol == "dfv":
        valid = (gt > 0) & finite
        if near_max is not None:
            valid &= gt < near_max
        return valid
    if protocol == "eigen":
        valid = (gt > min_depth) & (gt < max_depth) & finite
        if eigen_crop:
            (h, w), (fh, fw) = gt.shape[-2:], EIGEN_FRAME
            top, bottom, left, right = EIGEN_CROP
            crop = torch.zeros_like(valid)
            crop[..., round(top * h / fh) : round(bottom * h / fh), round(left * w / fw) : round(right * w / fw)] = True
            valid &= crop
        return valid
    raise ValueError(f"unknown metric protocol {protocol!r}: use 'dfv' or 'eigen'")


def protocol_depths(
    pred: Tensor,
    gt: Tensor,
    valid: Tensor,
    protocol: Protocol = "dfv",
    *,
    clip_max: float = DFV_CLIP_M,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
) -> tuple[Tensor, Tensor]:
    """The depths (m) a protocol compares, ``(pred, gt)`` of the input shape; 1 at invalid pixels (finite maps).

    DFV: both clipped to ``[0, clip_max]``, the prediction floored at 1e-6 m (the log of a zero prediction).
    Eigen: the prediction clamped to ``[min_depth, max_depth]``, GT as it is (``valid`` bounds it).
    """
    one = torch.ones_like(gt)
    if protocol == "dfv":
        g = torch.where(valid, gt.clamp(0, clip_max), one)
        p = torch.where(valid, pred.clamp(0, clip_max), torch.ones_like(pred)).clamp_min(1e-6)
        return p, g
    if protocol == "eigen":
        return torch.where(valid, pred.clamp(min_depth, max_depth), torch.ones_like(pred)), torch.where(valid, gt, one)
    raise ValueError(f"unknown metric protocol {protocol!r}: use 'dfv' or 'eigen'")


def error_maps(
    pred: Tensor,
    gt: Tensor,
    protocol: Protocol = "dfv",
    *,
    near_max: float | None = None,
    clip_max: float = DFV_CLIP_M,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
    eigen_crop: bool = False,
) -> dict[str, Tensor]:
    """Per-pixel errors of one protocol, each the shape of ``pred`` / ``gt`` (``(..., H, W)``, depth in m).

    Keys: ``valid`` (bool, :func:`valid_mask`), ``pred`` and ``gt`` (the scored depths, :func:`protocol_depths`),
    ``abs_rel`` (``|p - g| / g``), ``sq_err`` (``(p - g)^2``, m²), ``log_ratio`` (``ln(p / g)``) and
    ``delta_ratio`` (``max(p / g, g / p)``). Values at invalid pixels are finite but meaningless: mask them
    with ``valid`` (:func:`image_mean` does). Computed in the inputs' dtype.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have one shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    valid = valid_mask(gt, protocol, near_max=near_max, min_depth=min_depth, max_depth=max_depth, eigen_crop=eigen_crop)
    p, g = protocol_depths(pred, gt, valid, protocol, clip_max=clip_max, min_depth=min_depth, max_depth=max_depth)
    return {
        "valid": valid,
        "pred": p,
        "gt": g,
        "abs_rel": relative_error(p, g),
        "sq_err": (p - g) ** 2,
        "log_ratio": log_ratio(p, g),
        "delta_ratio": delta_ratio(p, g),
    }


def image_mean(x: Tensor, valid: Tensor) -> Tensor:
    """Per-image mean ``(B,)`` of ``x`` over the ``valid`` pixels of ``(B, C, H, W)`` maps (0 where none)."""
    v = valid.to(x.dtype)
    return (x * v).sum((1, 2, 3)) / v.sum((1, 2, 3)).clamp_min(1)


def delta_fraction(ratio: Tensor, valid: Tensor, k: int = 1) -> Tensor:
    """Per-image δ_k ``(B,)`` as a **fraction**: the share of valid pixels with ``ratio < 1.25 ** k``."""
    return image_mean((ratio < DELTA_BASE**k).to(ratio.dtype), valid)


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
    protocol: Protocol = "dfv",
    *,
    near_max: float | None = None,
    clip_max: float = DFV_CLIP_M,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
    log10: bool = False,
    eigen_crop: bool = False,
) -> tuple[dict[str, Tensor], Tensor]:
    """Per-image metrics ``{name: (B,)}`` and a ``(B,)`` bool of images with at least one valid pixel.

    The protocol's :func:`error_maps` in float64, averaged per image (:func:`image_mean`); δ in the protocol's
    unit (:data:`DELTA_UNIT_SCALE`: DFV percent, Eigen fractions).

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
    if protocol not in DELTA_UNIT_SCALE:
        raise ValueError(f"unknown metric protocol {protocol!r}: use 'dfv' or 'eigen'")
    maps = error_maps(
        pred.double(), gt.double(), protocol, near_max=near_max if protocol == "dfv" else None, clip_max=clip_max,
        min_depth=min_depth, max_depth=max_depth, eigen_crop=eigen_crop and protocol == "eigen",
    )  # fmt: skip
    valid, p, g = maps["valid"], maps["pred"], maps["gt"]
    has = valid.sum((1, 2, 3)) > 0
    mean = lambda t: image_mean(t, valid)  # noqa: E731
    out = {
        "abs_rel": mean(maps["abs_rel"]),
        "sq_rel": mean(maps["sq_err"] / g),
        "rmse": mean(maps["sq_err"]).sqrt(),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = DELTA_UNIT_SCALE[protocol] * delta_fraction(maps["delta_ratio"], valid, k)
    if protocol == "dfv":
        out["mse"] = mean(maps["sq_err"])
        out["log_rmse"] = mean(maps["log_ratio"] ** 2).sqrt()
        out["bumpiness"] = _bumpiness(p, g, valid.double())
    else:
        log_err = torch.log10(p) - torch.log10(g) if log10 else maps["log_ratio"]
        out["rmse_log"] = mean(log_err**2).sqrt()
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
