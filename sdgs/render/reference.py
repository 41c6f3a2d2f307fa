"""Slow, obviously-correct references for the rasterizer (tests and benchmarks only).

* :func:`rasterize_dense` evaluates every Gaussian at every pixel (O(N x P) memory) and composites the
  layers with an explicit loop: the brute force the fast backends are tested against.
* :func:`naive_alpha_splatter` is the issue's "reference to beat": a plain-autograd pair-list splatter
  with one global sort by (pixel, depth) and a segmented log-transmittance cumsum in float64 (ordinary
  3DGS alpha compositing). Benchmarks time it beside the torch backend.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sdgs.render.rasterize import covariance_radii, layer_ids_from_depths


def _kernel_dense(means2d: Tensor, covars2d: Tensor, height: int, width: int, support: float) -> Tensor:
    """Normalised kernel of every Gaussian at every pixel centre, cut beyond ``support``. ``(B, N, P)``"""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means2d.dtype) + 0.5, torch.arange(width, dtype=means2d.dtype) + 0.5, indexing="ij"
    )
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # (P,2)
    d = centres[None, None] - means2d[:, :, None]  # (B,N,P,2)
    inv = torch.linalg.inv(covars2d)  # (B,N,2,2)
    q = torch.einsum("bnpi,bnij,bnpj->bnp", d, inv, d)
    det = torch.linalg.det(covars2d)
    w = torch.exp(-0.5 * q) / (2 * math.pi * torch.sqrt(det))[..., None]
    return torch.where(q <= support * support, w, torch.zeros_like(w))


def rasterize_dense(
    means2d: Tensor,
    covars2d: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    height: int,
    width: int,
    *,
    num_layers: int = 32,
    layer_ids: Tensor | None = None,
    support: float = 3.0,
) -> dict[str, Tensor]:
    """Brute-force depth-layered compositing; same arguments and outputs as ``rasterize_gaussians``."""
    b, n = means2d.shape[:2]
    if layer_ids is None:
        layer_ids = layer_ids_from_depths(depths, num_layers)
    w = _kernel_dense(means2d, covars2d, height, width, support) * opacities[..., None]  # (B,N,P)
    image = torch.zeros(b, colors.shape[-1], height * width, dtype=colors.dtype)
    depth = torch.zeros(b, 1, height * width, dtype=colors.dtype)
    trans = torch.ones(b, 1, height * width, dtype=colors.dtype)
    for k in range(num_layers):  # near to far
        in_k = (layer_ids == k).to(w.dtype)[..., None]  # (B,N,1)
        cover = (w * in_k).sum(1)[:, None]  # (B,1,P)
        col = torch.einsum("bnp,bnc->bcp", w * in_k, colors)
        dep = torch.einsum("bnp,bn->bp", w * in_k, depths)[:, None]
        over = torch.clamp(cover, min=1.0)
        a = cover / over
        image = image + trans * col / over
        depth = depth + trans * dep / over
        trans = trans * (1 - a)
    alpha = 1 - trans
    norm = alpha.clamp_min(1e-8)
    shape = (b, -1, height, width)
    return {
        "image": (image / norm).reshape(shape),
        "alpha": alpha.reshape(shape),
        "depth": (depth / norm).reshape(shape),
    }


def naive_alpha_splatter(
    means2d: Tensor, covars2d: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor, height: int, width: int
) -> Tensor:
    """Plain 3DGS alpha compositing over an explicit pair list (batch 1). Returns ``(C, H, W)``.

    Every Gaussian x every pixel in its 3-sigma box; one global sort by (pixel, depth); transmittance
    as an exclusive segmented cumsum of ``log(1 - alpha)`` in float64; all through autograd.
    """
    m, cov, col, op, dep = means2d[0], covars2d[0], colors[0], opacities[0], depths[0]
    radii = covariance_radii(cov)
    inv = torch.linalg.inv(cov)
    gid_list, pix_list = [], []
    for r in torch.unique(radii).tolist():
        g = torch.nonzero(radii == r, as_tuple=True)[0]
        off = torch.arange(-r, r + 1)
        oy, ox = torch.meshgrid(off, off, indexing="ij")
        py = torch.floor(m[g, 1].detach()).long()[:, None] + oy.reshape(-1)
        px = torch.floor(m[g, 0].detach()).long()[:, None] + ox.reshape(-1)
        ok = (py >= 0) & (py < height) & (px >= 0) & (px < width)
        gi, k = torch.nonzero(ok, as_tuple=True)
        gid_list.append(g[gi])
        pix_list.append(py[gi, k] * width + px[gi, k])
    gid, pix = torch.cat(gid_list), torch.cat(pix_list)
    order = torch.argsort(pix * (dep.numel() + 1) + torch.argsort(torch.argsort(dep))[gid])
    gid, pix = gid[order], pix[order]
    d = torch.stack([(pix % width).to(m.dtype) + 0.5, (pix // width).to(m.dtype) + 0.5], -1) - m[gid]
    q = torch.einsum("pi,pij,pj->p", d, inv[gid], d)
    alpha = (op[gid] * torch.exp(-0.5 * q)).clamp(max=0.999) * (q <= 9)
    log_t = torch.log1p(-alpha.double())
    csum = torch.cumsum(log_t, 0)
    seg_start = torch.ones_like(pix, dtype=torch.bool)
    seg_start[1:] = pix[1:] != pix[:-1]
    start_idx = torch.cummax(torch.where(seg_start, torch.arange(pix.numel()), 0), 0).values
    excl = csum - log_t - (csum[start_idx] - log_t[start_idx])
    weight = (alpha.double() * torch.exp(excl)).to(col.dtype)
    out = torch.zeros(height * width, col.shape[-1], dtype=col.dtype)
    out = out.index_add(0, pix, weight[:, None] * col[gid])
    return out.T.reshape(-1, height, width)
