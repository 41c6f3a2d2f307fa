"""Occlusion-aware defocus synthesis: one function renders a focal stack from a sharp image and depth.

Two methods behind one entry point, :func:`synthesize_focal_stack`:

* ``"layered"`` (default): image-space layers, as D3-Net's MATLAB synthesis (Carvalho et al.,
  Hasinoff & Kutulakos occlusion term). Depth is cut into ``num_layers`` slabs uniform in inverse depth;
  each slab's premultiplied colour and its mask are blurred with the Gaussian PSF of the slab's CoC
  (kornia ``gaussian_blur2d``), slabs are composited front to back with the over operator using the
  blurred mask as alpha, and the result is divided by the accumulated coverage. Without that division
  the seams between adjacent slabs of one slanted surface come out dark (both slabs are partially
  transparent there).
* ``"splat"``: the Gaussian-splatting defocus renderer of :mod:`sdgs.render` (one Gaussian per pixel,
  per-Gaussian CoC). Slower on CPU, exact per-pixel CoC, the same model the method trains with.

Zero padding at the image border plus the coverage division is a normalised convolution: borders are
not darkened and no reflected content is invented.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import kornia
import numpy as np
import torch
from torch import Tensor

from sdgs.io import atomic_path
from sdgs.optics import SIGMA_PER_COC, Camera, coc_px, coc_to_sigma_px
from sdgs.render.rasterize import layer_ids_from_depths

__all__ = ["synthesize_focal_stack", "synthesize_stack_cached", "depth_layers"]

_MIN_SIGMA_PX = 1e-3  # kornia needs sigma > 0; at 1e-3 px the kernel is an exact delta in float32


def depth_layers(depth_m: Tensor, num_layers: int) -> tuple[Tensor, Tensor]:
    """Split depth into slabs uniform in inverse depth, per batch item, nearest first.

    Args:
        depth_m: ``(B, 1, H, W)`` metres, > 0.
        num_layers: K.

    Returns:
        ``layer`` ``(B, 1, H, W)`` int64 in ``[0, K)`` (0 = nearest) and ``mean_inv_depth`` ``(B, K)``, the
        mean inverse depth (1/m) of each slab's pixels (NaN for an empty slab). Using the slab mean, not
        its centre, makes a single plane blur with exactly its own CoC.
    """
    b = depth_m.shape[0]
    flat = 1.0 / depth_m.reshape(b, -1)
    # the renderer's binning, so the layered synthesis and the splatting renderer cut depth alike
    layer = layer_ids_from_depths(depth_m.reshape(b, -1), num_layers).view_as(depth_m)
    one_hot = torch.zeros(b, num_layers, flat.shape[1], dtype=flat.dtype, device=flat.device)
    one_hot.scatter_(1, layer.reshape(b, 1, -1), 1.0)
    count = one_hot.sum(-1)
    mean_inv = (one_hot * flat[:, None]).sum(-1) / count
    return layer, mean_inv


def synthesize_focal_stack(
    rgb: Tensor,
    depth_m: Tensor,
    focus_distances_m: Tensor,
    camera: Camera,
    *,
    num_layers: int = 32,
    sigma_per_coc: float = SIGMA_PER_COC,
    method: Literal["layered", "splat"] = "layered",
) -> Tensor:
    """Render a defocused focal stack from a sharp image and metric depth.

    Args:
        rgb: ``(B, 3, H, W)`` sharp (all-in-focus) colours in [0, 1].
        depth_m: ``(B, 1, H, W)`` depth (m), finite and > 0.
        focus_distances_m: ``(S,)`` or ``(B, S)`` focus distances (m).
        camera: thin-lens optics (scalar camera; CoC uses f, N and the pixel pitch).
        num_layers: depth slabs of the layered method.
        sigma_per_coc: PSF sigma per CoC diameter (see :data:`sdgs.optics.SIGMA_PER_COC`).
        method: ``"layered"`` (kornia, default) or ``"splat"`` (sdgs Gaussian-splatting renderer).

    Returns:
        ``(B, S, 3, H, W)`` defocused images in [0, 1].
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be (B, 3, H, W), got {tuple(rgb.shape)}")
    if depth_m.shape != (rgb.shape[0], 1, *rgb.shape[2:]):
        raise ValueError(
            f"depth must be (B, 1, H, W) = {(rgb.shape[0], 1, *rgb.shape[2:])}, got {tuple(depth_m.shape)}"
        )
    if not torch.isfinite(depth_m).all() or (depth_m <= 0).any():
        raise ValueError("depth must be finite and > 0 everywhere; fill or mask invalid pixels first")
    b = rgb.shape[0]
    focus = torch.as_tensor(focus_distances_m, dtype=rgb.dtype, device=rgb.device)
    if focus.ndim == 1:
        focus = focus.expand(b, -1)
    if focus.ndim != 2 or focus.shape[0] != b:
        raise ValueError(f"focus distances must be (S,) or (B, S) with B = {b}, got {tuple(focus.shape)}")

    if method == "splat":
        from sdgs.render import render_defocus

        out = render_defocus(rgb, depth_m, focus, camera, sigma_per_coc=sigma_per_coc, num_layers=num_layers)
        return out["image"].clamp(0, 1)
    if method != "layered":
        raise ValueError(f"unknown synthesis method {method!r}: use 'layered' or 'splat'")
    return _layered(rgb, depth_m, focus, camera, num_layers, sigma_per_coc)


def synthesize_stack_cached(
    rgb: Tensor, depth_m: Tensor, camera: Camera, num_layers: int, cache_file: Path | None = None
) -> Tensor:
    """One sample's 8-bit-quantised focal stack at ``camera.focus_distances_m``, cached on disk if asked.

    The datasets' one synthesis path (NYUv2, DFD-indoor). Depth below the camera's near bound is clamped
    to it; a cache entry (uint8 ``.npy``, written atomically) is reused when it loads and has the image's
    size, and re-synthesised otherwise (a corrupt entry is never trusted).

    Args:
        rgb: ``(3, H, W)`` sharp colours in [0, 1].
        depth_m: ``(1, H, W)`` depth (m), > 0 (fill invalid pixels first).
        camera: synthesis optics; its focus distances make the stack.
        num_layers: depth slabs of the layered synthesis.
        cache_file: ``.npy`` path, or None for no cache.

    Returns:
        ``(S, 3, H, W)`` float32 in [0, 1], multiples of 1/255.
    """
    if cache_file is not None and cache_file.is_file():
        try:
            stack = torch.from_numpy(np.load(cache_file)).float() / 255.0
        except Exception:  # a corrupt cache entry is re-synthesised, never trusted
            stack = None
        if stack is not None and stack.shape[-2:] == rgb.shape[-2:]:
            return stack
    focus = torch.tensor(camera.focus_distances_m)
    near = camera.depth_range_m[0]
    stack = synthesize_focal_stack(rgb[None], depth_m.clamp_min(near)[None], focus, camera, num_layers=num_layers)
    stack = torch.round(stack[0] * 255) / 255  # what an 8-bit camera would store
    if cache_file is not None:
        with atomic_path(cache_file) as tmp:
            np.save(tmp, (stack * 255).round().to(torch.uint8).numpy())
    return stack


def _layered(rgb: Tensor, depth_m: Tensor, focus: Tensor, camera: Camera, k: int, sigma_per_coc: float) -> Tensor:
    b, _, h, w = rgb.shape
    s = focus.shape[1]
    layer, mean_inv = depth_layers(depth_m, k)  # (B,1,H,W), (B,K)
    colour = torch.zeros(b, s, 3, h, w, dtype=rgb.dtype, device=rgb.device)
    cover = torch.zeros(b, s, 1, h, w, dtype=rgb.dtype, device=rgb.device)
    trans = torch.ones(b, s, 1, h, w, dtype=rgb.dtype, device=rgb.device)
    for i in range(b):
        slabs = torch.isfinite(mean_inv[i]).nonzero(as_tuple=True)[0].tolist()  # near to far, empty skipped
        rep_depth = 1.0 / mean_inv[i, slabs]
        sigma = coc_to_sigma_px(coc_px(rep_depth[:, None], focus[i], camera), sigma_per_coc)  # (L,S)
        sigma = sigma.clamp_min(_MIN_SIGMA_PX)
        for j, slab in enumerate(slabs):
            mask = (layer[i, 0] == slab).to(rgb.dtype)
            # Blur and composite only inside the slab's bounding box grown by the kernel radius
            # (support 3 sigma, as the renderer): cost follows the slab's area, not the frame's.
            r = max(1, math.ceil(3.0 * float(sigma[j].max())))
            rows = mask.any(1).nonzero(as_tuple=True)[0]
            cols = mask.any(0).nonzero(as_tuple=True)[0]
            y0, y1 = max(0, int(rows[0]) - r), min(h, int(rows[-1]) + r + 1)
            x0, x1 = max(0, int(cols[0]) - r), min(w, int(cols[-1]) + r + 1)
            m = mask[y0:y1, x0:x1][None]
            premult = torch.cat([rgb[i, :, y0:y1, x0:x1] * m, m], 0)  # (4,h',w')
            src = premult[None].expand(s, -1, -1, -1)
            sig = sigma[j, :, None].expand(-1, 2).contiguous()
            blurred = kornia.filters.gaussian_blur2d(src, (2 * r + 1,) * 2, sig, border_type="constant")
            t = trans[i, :, :, y0:y1, x0:x1]
            a = blurred[:, 3:].clamp(0, 1)
            colour[i, :, :, y0:y1, x0:x1] += t * blurred[:, :3]
            cover[i, :, :, y0:y1, x0:x1] += t * a
            trans[i, :, :, y0:y1, x0:x1] = t * (1 - a)
    return (colour / cover.clamp_min(1e-6)).clamp(0, 1)
