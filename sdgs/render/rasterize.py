"""Depth-layered Gaussian rasterizer with three backends: pure PyTorch (everywhere), Triton and gsplat (CUDA).

Compositing semantics (docs/method.md, "Depth-layered compositing"). Plain 3DGS alpha compositing of per-pixel splats is
not a defocus model (a plane comes out darker and barely blurred), so:

1. Every Gaussian i has a *normalised* 2D kernel
   ``w_i(x) = o_i exp(-q/2) / (2 pi sqrt(det Sigma_i))``, ``q = (x - mu_i)^T Sigma_i^-1 (x - mu_i)``,
   cut at ``q > support^2`` (support 3 sigma), evaluated at pixel centres ``(j + 0.5, i + 0.5)`` (gsplat's
   convention; kornia puts centres at integers).
2. Gaussians fall into K depth layers (uniform in inverse depth over each batch item's range; 0 = near).
   Within a layer, premultiplied colour and coverage add up; where coverage exceeds 1 both are divided by
   it (coverage clamped to 1, colour renormalised).
3. Layers composite front to back with the over operator.
4. Colour and depth are divided by the total coverage, which normalises image borders and the seams
   between adjacent layers of one slanted surface.

The torch and gsplat backends share steps 1-4 in PyTorch; they differ only in how (Gaussian, pixel) pairs
are enumerated: the torch backend walks each Gaussian's 3-sigma box, the gsplat backend expands gsplat's
CUDA tile intersections. The triton backend (:mod:`sdgs.render.triton_kernels`) runs steps 1-4 in fused
fp32 kernels (the layers are accumulated inside the splat kernel, the compositing is one pass per pixel) on
the torch backend's boxes; it is the torch backend's semantics, tested against it.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
from torch import Tensor

__all__ = [
    "full_precision",
    "Backend",
    "resolve_backend",
    "gsplat_available",
    "triton_available",
    "layer_ids_from_depths",
    "rasterize_gaussians",
    "composite_layers",
    "covariance_radii",
]

Backend = Literal["auto", "torch", "gsplat", "triton"]
_BACKENDS = ("auto", "torch", "gsplat", "triton")
#: Pairs processed per chunk by the torch backend: bounds peak memory, not the result.
CHUNK_PAIRS = 1 << 22


@functools.lru_cache(maxsize=1)
def gsplat_available() -> bool:
    """One-time probe: gsplat imports and its CUDA kernels load on a CUDA device.

    Never call gsplat's CUDA wrappers with CPU tensors: with nvcc on PATH they try a JIT build first
    (docs/method.md, "Backends").
    """
    if not torch.cuda.is_available():
        return False
    try:
        from gsplat.cuda._backend import _C  # noqa: F401  (triggers the lazy CUDA load)

        return _C is not None
    except Exception:  # ImportError, RuntimeError from a failed JIT build, ...
        return False


_F = TypeVar("_F", bound=Callable)
_HALF = (torch.float16, torch.bfloat16)


def full_precision(fn: _F) -> _F:
    """Run ``fn`` in float32 whatever the caller's autocast: half/bfloat16 tensor arguments are cast up and
    autocast is off inside.

    Mixed-precision training runs the networks in bf16; the renderer must not follow them: the projection's
    matmuls would round covariances to 3 significant digits, and the layer sums (hundreds of small kernel
    weights per pixel) and the coverage clamp at 1 need fp32. Gradients flow back through the casts.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), None)
        device_type = first.device.type if first is not None else "cpu"
        up = lambda a: a.float() if isinstance(a, Tensor) and a.dtype in _HALF else a  # noqa: E731
        with torch.autocast(device_type, enabled=False):
            return fn(*(up(a) for a in args), **{k: up(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


@functools.lru_cache(maxsize=2)
def triton_available(device_type: str = "cuda") -> bool:
    """One-time probe: Triton imports and can run the fused kernels on ``device_type`` tensors.

    CUDA: needs a GPU and the ``triton`` package (it ships with torch's CUDA wheels on Linux). CPU: only
    through Triton's interpreter (``TRITON_INTERPRET=1`` before the kernels are first imported), which is
    for tests, not speed.
    """
    if device_type == "cuda" and not torch.cuda.is_available():
        return False
    if device_type not in ("cuda", "cpu"):
        return False
    try:
        from sdgs.render import triton_kernels
    except Exception:  # ImportError (no triton), or a triton whose runtime cannot load
        return False
    # Kernels decorated for the interpreter only run on CPU tensors and compiled ones only on GPUs.
    return triton_kernels.INTERPRETED == (device_type == "cpu")


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"`` → ``"triton"`` on CUDA when Triton is available, else ``"torch"``; validates names.

    ``"gsplat"`` is slower than the torch backend on a GPU: gsplat's tile intersections hand every
    (Gaussian, 16x16 tile) pair to the shared kernel, many more pairs than the 3-sigma boxes of these small
    footprints. It stays selectable (CUDA only, parity-tested against torch). ``"triton"`` is the torch
    backend's boxes and semantics in fused kernels, without the torch backend's per-chunk pair tensors and
    index_add scatter; on CPU it runs only under Triton's interpreter (tests). ``make gpu-check`` times all
    three (``render_speed`` and ``fit`` in ``bench/gpu.json``); docs/gpu.md shows the figures and names the
    backends that JSON has none for.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}: use one of {_BACKENDS}")
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available("cuda") else "torch"
    if backend == "triton" and not triton_available(device.type):
        raise RuntimeError(
            "backend='triton' needs CUDA tensors and the triton package, or CPU tensors under Triton's "
            f"interpreter (TRITON_INTERPRET=1 before the first import; tensors are on {device}, "
            f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', 'unset')}); use backend='torch'"
        )
    if backend == "gsplat" and (device.type != "cuda" or not gsplat_available()):
        raise RuntimeError(
            "backend='gsplat' needs CUDA tensors and gsplat's CUDA kernels "
            f"(tensors are on {device}, kernels available: {gsplat_available()}); use backend='torch'"
        )
    return backend


def layer_ids_from_depths(depths: Tensor, num_layers: int) -> Tensor:
    """Depth layer of each Gaussian, uniform in inverse depth over each batch item's range.

    Args:
        depths: ``(B, N)`` camera-space depth (m), > 0.
        num_layers: K.

    Returns:
        ``(B, N)`` int64 in ``[0, K)``, 0 = nearest. Piecewise constant: no gradient flows through it.
    """
    inv = 1.0 / depths.detach()
    hi = inv.amax(1, keepdim=True)
    lo = inv.amin(1, keepdim=True)
    span = (hi - lo).clamp_min(1e-12)
    return ((hi - inv) / span * num_layers).floor().long().clamp_(0, num_layers - 1)


def covariance_radii(covars2d: Tensor, support: float = 3.0) -> Tensor:
    """Integer half-size (px) of the box holding ``support`` sigma along the major axis. ``(...,)``"""
    a, b, c = covars2d[..., 0, 0], covars2d[..., 0, 1], covars2d[..., 1, 1]
    lam_max = 0.5 * (a + c) + torch.sqrt((0.25 * (a - c) ** 2 + b * b).clamp_min(0))
    return torch.ceil(support * torch.sqrt(lam_max.detach())).long()


def _inverse_2x2(covars2d: Tensor) -> tuple[Tensor, Tensor]:
    """Conics ``(..., 3)`` = ``[inv00, inv01, inv11]`` and determinants ``(...)``."""
    a, b, c = covars2d[..., 0, 0], covars2d[..., 0, 1], covars2d[..., 1, 1]
    det = a * c - b * b
    return torch.stack([c / det, -b / det, a / det], -1), det


def composite_layers(acc: Tensor, num_channels: int, eps: float = 1e-8) -> dict[str, Tensor]:
    """Layer accumulators → image, coverage, depth (steps 2-4 of the module docstring).

    Args:
        acc: ``(B, K, C + 2, H, W)`` per layer: premultiplied colour (C), coverage (1), premultiplied depth (1).
        num_channels: C.

    Returns:
        ``image`` ``(B, C, H, W)``, ``alpha`` ``(B, 1, H, W)`` total coverage in [0, 1], ``depth`` ``(B, 1, H, W)``.
    """
    c = num_channels
    cover = acc[:, :, c : c + 1]
    scale = 1.0 / cover.clamp_min(1.0)  # renormalise colour where a layer's coverage exceeds 1
    alpha_k = cover * scale
    premult = torch.cat([acc[:, :, :c], acc[:, :, c + 1 :]], 2) * scale
    one_minus = 1.0 - alpha_k
    trans = torch.cumprod(torch.cat([torch.ones_like(one_minus[:, :1]), one_minus[:, :-1]], 1), 1)
    total = (trans * premult).sum(1)
    alpha = (trans * alpha_k).sum(1)  # = 1 - prod(1 - alpha_k)
    norm = alpha.clamp_min(eps)
    return {"image": total[:, :c] / norm, "alpha": alpha, "depth": total[:, c:] / norm}


# ---------------------------------------------------------------------------------------------------
# Pair enumeration (integer, no gradient): blocks of rows (Gaussian g, pixel-window origin y0, x0) that
# share one square window of ``size x size`` pixel offsets. Dense rows need no compaction: pixels out of
# the image or beyond the support get zero weight.
# ---------------------------------------------------------------------------------------------------
Block = tuple[Tensor, Tensor, Tensor, int]  # g (n,), y0 (n,), x0 (n,), size


def _blocks_torch(means2d: Tensor, radii: Tensor, height: int, width: int) -> list[Block]:
    """One block per box radius r: each Gaussian's ``(2r+1)^2`` box around its centre pixel."""
    mx = means2d.detach().reshape(-1, 2)
    r_flat = radii.reshape(-1)
    cx = torch.floor(mx[:, 0]).long()
    cy = torch.floor(mx[:, 1]).long()
    valid = (cx + r_flat >= 0) & (cx - r_flat < width) & (cy + r_flat >= 0) & (cy - r_flat < height)
    blocks = []
    for r in torch.unique(r_flat[valid]).tolist():
        g = torch.nonzero(valid & (r_flat == r), as_tuple=True)[0]
        blocks += _chunk_rows(g, cy[g] - r, cx[g] - r, 2 * r + 1)
    return blocks


def _blocks_gsplat(means2d: Tensor, radii: Tensor, depths: Tensor, height: int, width: int, tile: int = 16):
    """Rows from gsplat's CUDA tile intersections: every (Gaussian, tile) pair covers the tile's pixels."""
    from gsplat.cuda._wrapper import isect_tiles

    b, n = means2d.shape[:2]
    tw, th = math.ceil(width / tile), math.ceil(height / tile)
    radii2 = radii.clamp_min(0).to(torch.int32)[:, None, :, None].expand(b, 1, n, 2).contiguous()
    _, isect_ids, flatten_ids = isect_tiles(
        means2d.detach().float()[:, None].contiguous(),
        radii2,
        depths.detach().float()[:, None].contiguous(),
        tile,
        tw,
        th,
    )
    tile_bits = (tw * th).bit_length()
    tile_id = (isect_ids >> 32) & ((1 << tile_bits) - 1)
    return _chunk_rows(flatten_ids.long(), (tile_id // tw) * tile, (tile_id % tw) * tile, tile)


def _chunk_rows(g: Tensor, y0: Tensor, x0: Tensor, size: int) -> list[Block]:
    per = max(1, CHUNK_PAIRS // (size * size))
    return [(g[i : i + per], y0[i : i + per], x0[i : i + per], size) for i in range(0, g.numel(), per)]


def _block_kernel(block: Block, mx: Tensor, con: Tensor, height: int, width: int, s2: float):
    """Offsets ``(n, m)``, conic rows ``(n, 3)``, unnormalised kernel ``e`` ``(n, m)`` and pixel index ``(n, m)``."""
    g, y0, x0, size = block
    off = torch.arange(size, device=mx.device)
    py = y0[:, None] + off.repeat_interleave(size)[None]  # (n, m), m = size^2
    px = x0[:, None] + off.repeat(size)[None]
    m = mx[g]
    dx = px.to(mx.dtype) + 0.5 - m[:, :1]
    dy = py.to(mx.dtype) + 0.5 - m[:, 1:]
    cg = con[g]
    q = cg[:, :1] * dx * dx + 2 * cg[:, 1:2] * dx * dy + cg[:, 2:] * dy * dy
    inside = (py >= 0) & (py < height) & (px >= 0) & (px < width) & (q <= s2)
    e = torch.where(inside, torch.exp(-0.5 * q), torch.zeros_like(q))
    pix = torch.where(inside, py * width + px, torch.zeros_like(py))
    return dx, dy, cg, e, pix


class _SplatAccumulate(torch.autograd.Function):
    """Additive per-layer accumulation ``acc[layer(g), pixel] += nrm_g e(g, pixel) feat_g`` over blocks.

    The backward recomputes the kernel per block (nothing per pair is saved) and reduces each row
    densely, so memory is bounded by one chunk of pairs and no per-pair scatter is needed for the
    per-Gaussian gradients.
    """

    @staticmethod
    def forward(ctx, mx, con, nrm, feat, base, blocks, size, width, height, s2):  # noqa: D102
        acc = torch.zeros(size, feat.shape[1], dtype=feat.dtype, device=feat.device)
        for block in blocks:
            g = block[0]
            _, _, _, e, pix = _block_kernel(block, mx, con, height, width, s2)
            w = nrm[g, None] * e
            idx = (base[g, None] + pix).reshape(-1)
            acc.index_add_(0, idx, (w[..., None] * feat[g, None]).reshape(-1, feat.shape[1]))
        ctx.save_for_backward(mx, con, nrm, feat, base)
        ctx.blocks, ctx.dims = blocks, (width, height, s2)
        return acc

    @staticmethod
    def backward(ctx, grad_acc):  # noqa: D102
        mx, con, nrm, feat, base = ctx.saved_tensors
        width, height, s2 = ctx.dims
        # Per-Gaussian gradient sums: means (2), conic (3), norm (1), features (C + 2).
        grads = torch.zeros(mx.shape[0], 6 + feat.shape[1], dtype=feat.dtype, device=feat.device)
        for block in ctx.blocks:
            g = block[0]
            dx, dy, cg, e, pix = _block_kernel(block, mx, con, height, width, s2)
            w = nrm[g, None] * e
            gv = grad_acc[base[g, None] + pix]  # (n, m, C+2)
            gw = torch.einsum("nmc,nc->nm", gv, feat[g])
            gq = -0.5 * w * gw  # dL/dq
            gdx = 2 * gq * (cg[:, :1] * dx + cg[:, 1:2] * dy)
            gdy = 2 * gq * (cg[:, 1:2] * dx + cg[:, 2:] * dy)
            rows = torch.stack(
                [
                    -gdx.sum(1),
                    -gdy.sum(1),
                    (gq * dx * dx).sum(1),
                    (2 * gq * dx * dy).sum(1),
                    (gq * dy * dy).sum(1),
                    (gw * e).sum(1),
                ],
                1,
            )
            rows = torch.cat([rows, torch.einsum("nm,nmc->nc", w, gv)], 1)
            grads.index_add_(0, g, rows)
        return grads[:, 0:2], grads[:, 2:5], grads[:, 5], grads[:, 6:], None, None, None, None, None, None


# ---------------------------------------------------------------------------------------------------
# Public rasterizer
# ---------------------------------------------------------------------------------------------------
@full_precision
def rasterize_gaussians(
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
    backend: Backend = "auto",
) -> dict[str, Tensor]:
    """Splat 2D Gaussians with depth-layered additive/over compositing (module docstring).

    Args:
        means2d: ``(B, N, 2)`` centres (px, x then y; pixel centres at +0.5).
        covars2d: ``(B, N, 2, 2)`` 2D covariances (px^2), already inflated by any defocus PSF.
        colors: ``(B, N, C)`` colours.
        opacities: ``(B, N)`` weights in [0, 1] (1 = the kernel integrates to one).
        depths: ``(B, N)`` camera-space depth (m), > 0; sets layers and the composited depth.
        height, width: output size (px).
        num_layers: K depth layers (K = N is the per-Gaussian limit).
        layer_ids: optional ``(B, N)`` int64 layer per Gaussian (overrides the inverse-depth layering).
        support: kernel cut-off in standard deviations (Mahalanobis distance).
        backend: ``"torch"``, ``"gsplat"`` (CUDA), ``"triton"`` (CUDA; CPU under the interpreter) or ``"auto"``.

    Returns:
        dict with ``image`` ``(B, C, H, W)``, ``alpha`` ``(B, 1, H, W)`` (total coverage) and ``depth``
        ``(B, 1, H, W)`` (coverage-normalised expected depth). Differentiable w.r.t. means, covariances,
        colours, opacities and depths.
    """
    if means2d.ndim != 3 or means2d.shape[-1] != 2:
        raise ValueError(f"means2d must be (B, N, 2), got {tuple(means2d.shape)}")
    b, n = means2d.shape[:2]
    expected = {"covars2d": (b, n, 2, 2), "opacities": (b, n), "depths": (b, n)}
    for name, shape in expected.items():
        got = tuple(locals()[name].shape)
        if got != shape:
            raise ValueError(f"{name} must be {shape} to match means2d, got {got}")
    if colors.ndim != 3 or colors.shape[:2] != (b, n):
        raise ValueError(f"colors must be (B, N, C) = ({b}, {n}, C), got {tuple(colors.shape)}")
    for name, t in (("means2d", means2d), ("covars2d", covars2d), ("depths", depths)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} holds non-finite values")
    if (depths <= 0).any():
        raise ValueError("depths must be > 0 (Gaussians behind the camera cannot be splatted)")
    backend = resolve_backend(backend, means2d.device)

    c = colors.shape[-1]
    k = num_layers
    if layer_ids is None:
        layer_ids = layer_ids_from_depths(depths, k)
    conics, det = _inverse_2x2(covars2d)
    if (det <= 0).any():
        raise ValueError("covars2d must be positive definite")
    norm = opacities / (2.0 * math.pi * torch.sqrt(det))
    radii = covariance_radii(covars2d, support)

    # Per-Gaussian features, flattened over the batch: colour, coverage (1), depth.
    feat = torch.cat([colors, torch.ones_like(depths)[..., None], depths[..., None]], -1).reshape(b * n, c + 2)
    mx = means2d.reshape(b * n, 2)
    con = conics.reshape(b * n, 3)
    nrm = norm.reshape(b * n)
    base = ((torch.arange(b, device=means2d.device)[:, None] * k + layer_ids) * (height * width)).reshape(-1)

    if backend == "triton":
        from sdgs.render.triton_kernels import splat_composite

        out = splat_composite(mx, con, nrm, feat, base, radii.reshape(-1), b, k, height, width, support * support)
        return {"image": out[:, :c], "alpha": out[:, c : c + 1], "depth": out[:, c + 1 :]}
    if backend == "gsplat":
        blocks = _blocks_gsplat(means2d, radii, depths, height, width)
    else:
        blocks = _blocks_torch(means2d, radii, height, width)
    acc = _SplatAccumulate.apply(
        mx, con, nrm, feat, base, blocks, b * k * height * width, width, height, support * support
    )
    acc = acc.reshape(b, k, height, width, c + 2).permute(0, 1, 4, 2, 3)
    return composite_layers(acc, c)
