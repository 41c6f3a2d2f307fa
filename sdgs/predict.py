"""Depth from one photo with a trained model: the one code path from an image to depth (``sdgs predict
--input`` and the benchmarks call it)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from sdgs.optics import gaussian_psf_blur

__all__ = ["predict_photo"]


def predict_photo(
    model,
    rgb: np.ndarray,
    focus_m: float,
    camera,
    device: str | torch.device = "cpu",
    flip_average: bool = True,
    smooth_px: float | None = None,
) -> np.ndarray:
    """Depth (m) ``(H, W)`` of one photo ``rgb`` ``(H, W, 3)`` in [0, 1], as ``sdgs predict`` computes it.

    The photo is resized (aspect kept) to the camera's width, whose pixel pitch the optics refer to,
    predicted by ``model`` (an :class:`~sdgs.lit.module.SDGSModule` in eval mode) and the depth resized back.
    With ``flip_average`` the mirrored photo is predicted too and the two depths are averaged in log depth
    (the usual test-time flip of monocular depth; defocus is mirror-symmetric, the principal point centred).
    ``smooth_px``: Gaussian σ (px at the camera's width) applied to log depth before resizing back; None = the
    model's own ``predict_smooth_px`` (0 for a model without one). A single photo's blur says little at the
    scale of texture; the real-photo model's value and how it was chosen: ``lightning_configs/dfd_indoor.yaml``.
    """
    if smooth_px is None:
        smooth_px = float(getattr(model, "hparams", {}).get("predict_smooth_px", 0.0))
    if smooth_px < 0:
        raise ValueError(f"smooth_px must be >= 0 (a Gaussian sigma in px), got {smooth_px}")
    h, w = rgb.shape[:2]
    img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device)
    cw = camera.width_px
    ch = max(8, round(h * cw / w))
    cam = replace(camera, width_px=cw, height_px=ch, cx_px=None, cy_px=None, fx_px=None, fy_px=None)
    small = img if (ch, cw) == (h, w) else F.interpolate(img, size=(ch, cw), mode="bilinear", antialias=True)
    cam_batch = {k: v[None].to(device) for k, v in cam.to_tensors().items()}
    with torch.no_grad():
        focus = torch.tensor([focus_m], device=device)
        depth = model.predict_depth(small, focus, cam_batch)["depth"]
        if flip_average:
            mirrored = model.predict_depth(small.flip(-1), focus, cam_batch)["depth"].flip(-1)
            depth = torch.exp(0.5 * (depth.log() + mirrored.log()))
        if smooth_px > 0:
            depth = gaussian_psf_blur(depth.log(), smooth_px).exp()
    if depth.shape[-2:] != (h, w):
        depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=False)
    return depth[0, 0].cpu().numpy()
