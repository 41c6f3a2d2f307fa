"""Fused Triton kernels of the depth-layered rasterizer (``backend="triton"``).

Same semantics as the torch backend (:mod:`sdgs.render.rasterize`, steps 1-4 of its docstring), in three
kernels that never hold a list of (Gaussian, pixel) pairs in memory:

* ``_splat_fwd``: each program takes a block of Gaussians (sorted by box radius, so a block shares one box
  size), walks the box offsets in chunks, evaluates the normalised kernel at pixel centres, cuts it at the
  support and atomically adds ``w * [colour, 1, depth]`` into the layer accumulator
  ``acc[(b K + layer) H W + pixel, :]``: the layers are accumulated by the kernel itself.
* ``_composite_fwd`` / ``_composite_bwd``: one lane per pixel walks the K layers front to back (over
  operator, coverage clamp, normalisation by total coverage) in fp32; the backward recomputes the
  transmittances and runs the over operator's adjoint back to front without dividing by ``1 - alpha_k``
  (layers with coverage >= 1 have ``alpha_k = 1`` exactly, so that division would be 0/0).
* ``_splat_bwd``: per Gaussian block again, gathers the accumulator gradient over the same box and reduces
  it per Gaussian in registers: no atomics, no per-pair storage.

Everything runs in float32 whatever the input dtype (the accumulation must stay fp32 under bf16 autocast).

Import this module only after deciding on the interpreter: ``triton.jit`` reads ``TRITON_INTERPRET`` when
the kernels are decorated, i.e. at import. With ``TRITON_INTERPRET=1`` the kernels run on CPU tensors
(numpy), which is how the tests check them without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["INTERPRETED", "splat_composite"]

#: True when the kernels were built for Triton's CPU interpreter (``TRITON_INTERPRET=1`` at import).
INTERPRETED: bool = bool(triton.knobs.runtime.interpret)

#: Gaussians per program and box offsets per inner step. On a GPU a 32 x 64 tile keeps registers modest;
#: the interpreter pays a fixed Python cost per op and program whatever the tile, so there big tiles (one
#: program, one or two steps for test-sized inputs) are much faster.
BLOCK_G, BLOCK_P = (128, 1024) if INTERPRETED else (32, 64)
#: Pixels per program of the compositing kernels.
BLOCK_PIX = 4096 if INTERPRETED else 256


@triton.jit
def _pair_weights(
    mx_ptr,
    con_ptr,
    nrm_ptr,
    order_ptr,
    base_ptr,
    g_lo,
    n_gauss,
    o0,
    rmax,
    height,
    width,
    s2,
    BLOCK_G: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Kernel weights of one (Gaussian block) x (offset chunk) tile and the accumulator rows they hit."""
    gi = g_lo + tl.arange(0, BLOCK_G)
    gmask = gi < n_gauss
    g = tl.load(order_ptr + gi, mask=gmask, other=0)
    mxx = tl.load(mx_ptr + 2 * g, mask=gmask, other=0.0)
    mxy = tl.load(mx_ptr + 2 * g + 1, mask=gmask, other=0.0)
    c0 = tl.load(con_ptr + 3 * g, mask=gmask, other=0.0)
    c1 = tl.load(con_ptr + 3 * g + 1, mask=gmask, other=0.0)
    c2 = tl.load(con_ptr + 3 * g + 2, mask=gmask, other=0.0)
    nrm = tl.load(nrm_ptr + g, mask=gmask, other=0.0)
    base = tl.load(base_ptr + g, mask=gmask, other=0)
    side = 2 * rmax + 1
    offs = o0 + tl.arange(0, BLOCK_P)
    oy = offs // side - rmax
    ox = offs % side - rmax
    # Box origin: the pixel holding the centre (the torch backend's choice; any box holding the support
    # gives the same sum, the cut below decides).
    py = tl.floor(mxy).to(tl.int32)[:, None] + oy[None, :]
    px = tl.floor(mxx).to(tl.int32)[:, None] + ox[None, :]
    dx = px.to(tl.float32) + 0.5 - mxx[:, None]
    dy = py.to(tl.float32) + 0.5 - mxy[:, None]
    q = c0[:, None] * dx * dx + 2.0 * c1[:, None] * dx * dy + c2[:, None] * dy * dy
    inside = (py >= 0) & (py < height) & (px >= 0) & (px < width) & (q <= s2)
    inside = inside & gmask[:, None] & (offs < side * side)[None, :]
    e = tl.where(inside, tl.exp(-0.5 * q), 0.0)
    row = base[:, None] + (py * width + px).to(tl.int64)
    row = tl.where(inside, row, 0)
    return g, gmask, inside, dx, dy, c0, c1, c2, nrm, e, row


@triton.jit
def _splat_fwd(
    mx_ptr,
    con_ptr,
    nrm_ptr,
    feat_ptr,
    rad_ptr,
    order_ptr,
    base_ptr,
    acc_ptr,
    n_gauss,
    height,
    width,
    s2,
    NC: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    g_lo = tl.program_id(0) * BLOCK_G
    gi = g_lo + tl.arange(0, BLOCK_G)
    gmask = gi < n_gauss
    rmax = tl.max(tl.load(rad_ptr + tl.load(order_ptr + gi, mask=gmask, other=0), mask=gmask, other=0), 0)
    n_off = (2 * rmax + 1) * (2 * rmax + 1)
    for o0 in range(0, n_off, BLOCK_P):
        g, gmask, inside, dx, dy, c0, c1, c2, nrm, e, row = _pair_weights(
            mx_ptr,
            con_ptr,
            nrm_ptr,
            order_ptr,
            base_ptr,
            g_lo,
            n_gauss,
            o0,
            rmax,
            height,
            width,
            s2,
            BLOCK_G,
            BLOCK_P,
        )
        w = nrm[:, None] * e
        for c in tl.static_range(NC):
            f = tl.load(feat_ptr + g * NC + c, mask=gmask, other=0.0)
            tl.atomic_add(acc_ptr + row * NC + c, w * f[:, None], mask=inside)


@triton.jit
def _splat_bwd(
    mx_ptr,
    con_ptr,
    nrm_ptr,
    feat_ptr,
    rad_ptr,
    order_ptr,
    base_ptr,
    gacc_ptr,
    grad_ptr,
    n_gauss,
    height,
    width,
    s2,
    NC: tl.constexpr,
    BLOCK_G: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """Per-Gaussian gradients, rows ``[d mean x, d mean y, d conic (3), d norm, d features (NC)]``."""
    g_lo = tl.program_id(0) * BLOCK_G
    gi = g_lo + tl.arange(0, BLOCK_G)
    gmask0 = gi < n_gauss
    g0 = tl.load(order_ptr + gi, mask=gmask0, other=0)
    rmax = tl.max(tl.load(rad_ptr + g0, mask=gmask0, other=0), 0)
    n_off = (2 * rmax + 1) * (2 * rmax + 1)
    s_mx = tl.zeros([BLOCK_G], dtype=tl.float32)
    s_my = tl.zeros([BLOCK_G], dtype=tl.float32)
    s_c0 = tl.zeros([BLOCK_G], dtype=tl.float32)
    s_c1 = tl.zeros([BLOCK_G], dtype=tl.float32)
    s_c2 = tl.zeros([BLOCK_G], dtype=tl.float32)
    s_nrm = tl.zeros([BLOCK_G], dtype=tl.float32)
    for o0 in range(0, n_off, BLOCK_P):
        g, gmask, inside, dx, dy, c0, c1, c2, nrm, e, row = _pair_weights(
            mx_ptr,
            con_ptr,
            nrm_ptr,
            order_ptr,
            base_ptr,
            g_lo,
            n_gauss,
            o0,
            rmax,
            height,
            width,
            s2,
            BLOCK_G,
            BLOCK_P,
        )
        w = nrm[:, None] * e
        gw = tl.zeros([BLOCK_G, BLOCK_P], dtype=tl.float32)
        for c in tl.static_range(NC):
            f = tl.load(feat_ptr + g * NC + c, mask=gmask, other=0.0)
            gv = tl.load(gacc_ptr + row * NC + c, mask=inside, other=0.0)
            gw += gv * f[:, None]
            # d feature_c = sum over pixels of w * dL/dacc_c; one Gaussian lives in one program: plain add
            old = tl.load(grad_ptr + g * (6 + NC) + 6 + c, mask=gmask, other=0.0)
            tl.store(grad_ptr + g * (6 + NC) + 6 + c, old + tl.sum(w * gv, 1), mask=gmask)
        gq = -0.5 * w * gw  # dL/dq
        gdx = 2.0 * gq * (c0[:, None] * dx + c1[:, None] * dy)
        gdy = 2.0 * gq * (c1[:, None] * dx + c2[:, None] * dy)
        s_mx -= tl.sum(gdx, 1)
        s_my -= tl.sum(gdy, 1)
        s_c0 += tl.sum(gq * dx * dx, 1)
        s_c1 += tl.sum(2.0 * gq * dx * dy, 1)
        s_c2 += tl.sum(gq * dy * dy, 1)
        s_nrm += tl.sum(gw * e, 1)
    out = grad_ptr + g0 * (6 + NC)
    tl.store(out, s_mx, mask=gmask0)
    tl.store(out + 1, s_my, mask=gmask0)
    tl.store(out + 2, s_c0, mask=gmask0)
    tl.store(out + 3, s_c1, mask=gmask0)
    tl.store(out + 4, s_c2, mask=gmask0)
    tl.store(out + 5, s_nrm, mask=gmask0)


@triton.jit
def _composite_fwd(
    acc_ptr,
    out_ptr,
    n_pix,
    hw,
    eps,
    K: tl.constexpr,
    NC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """``acc`` ``(B, K, HW, NC)`` -> ``out`` ``(B, NC, HW)`` rows ``[image (NC - 2), alpha, depth]``."""
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    pmask = p < n_pix
    b = (p // hw).to(tl.int64)
    pix = (p % hw).to(tl.int64)
    trans = tl.full([BLOCK], 1.0, tl.float32)
    tot0 = tl.zeros([BLOCK], dtype=tl.float32)
    tot1 = tl.zeros([BLOCK], dtype=tl.float32)
    tot2 = tl.zeros([BLOCK], dtype=tl.float32)
    totd = tl.zeros([BLOCK], dtype=tl.float32)
    for k in range(K):
        row = ((b * K + k) * hw + pix) * NC
        cover = tl.load(acc_ptr + row + NC - 2, mask=pmask, other=0.0)
        scale = 1.0 / tl.maximum(cover, 1.0)
        ts = trans * scale
        # NC = C + 2 with C <= 3 colour channels unrolled by hand (the wrapper checks C <= 3)
        if NC >= 3:
            tot0 += ts * tl.load(acc_ptr + row, mask=pmask, other=0.0)
        if NC >= 4:
            tot1 += ts * tl.load(acc_ptr + row + 1, mask=pmask, other=0.0)
        if NC >= 5:
            tot2 += ts * tl.load(acc_ptr + row + 2, mask=pmask, other=0.0)
        totd += ts * tl.load(acc_ptr + row + NC - 1, mask=pmask, other=0.0)
        trans = trans * (1.0 - cover * scale)
    alpha = 1.0 - trans
    inv = 1.0 / tl.maximum(alpha, eps)
    orow = b * NC * hw + pix
    if NC >= 3:
        tl.store(out_ptr + orow, tot0 * inv, mask=pmask)
    if NC >= 4:
        tl.store(out_ptr + orow + hw, tot1 * inv, mask=pmask)
    if NC >= 5:
        tl.store(out_ptr + orow + 2 * hw, tot2 * inv, mask=pmask)
    tl.store(out_ptr + orow + (NC - 2) * hw, alpha, mask=pmask)
    tl.store(out_ptr + orow + (NC - 1) * hw, totd * inv, mask=pmask)


@triton.jit
def _composite_bwd(
    acc_ptr,
    out_ptr,
    gout_ptr,
    gacc_ptr,
    n_pix,
    hw,
    eps,
    K: tl.constexpr,
    NC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Adjoint of ``_composite_fwd``: ``gout`` ``(B, NC, HW)`` -> ``gacc`` ``(B, K, HW, NC)``.

    With ``T_0 = 1``, ``T_{k+1} = T_k (1 - a_k)``, ``total = sum_k T_k p_k``, ``alpha = 1 - T_K``, the
    loss restricted to the pixel is ``L = B_0`` with ``B_k = G.p_k + g_a a_k + (1 - a_k) B_{k+1}``,
    ``B_K = 0``; hence ``dL/dp_k = T_k G`` and ``dL/da_k = T_k (g_a - B_{k+1})``. Pass 1 stores ``T_k`` in
    the coverage slot of ``gacc``; pass 2 walks back to front, reads it and overwrites the slot.
    """
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    pmask = p < n_pix
    b = (p // hw).to(tl.int64)
    pix = (p % hw).to(tl.int64)
    orow = b * NC * hw + pix
    alpha = tl.load(out_ptr + orow + (NC - 2) * hw, mask=pmask, other=1.0)
    inv = 1.0 / tl.maximum(alpha, eps)
    # d/d total = g_out / norm; d/d norm = -sum g_out out / norm, through clamp_min only where alpha >= eps
    g_norm = tl.zeros([BLOCK], dtype=tl.float32)
    G0 = tl.zeros([BLOCK], dtype=tl.float32)
    G1 = tl.zeros([BLOCK], dtype=tl.float32)
    G2 = tl.zeros([BLOCK], dtype=tl.float32)
    if NC >= 3:
        go = tl.load(gout_ptr + orow, mask=pmask, other=0.0)
        G0 = go * inv
        g_norm -= G0 * tl.load(out_ptr + orow, mask=pmask, other=0.0)
    if NC >= 4:
        go = tl.load(gout_ptr + orow + hw, mask=pmask, other=0.0)
        G1 = go * inv
        g_norm -= G1 * tl.load(out_ptr + orow + hw, mask=pmask, other=0.0)
    if NC >= 5:
        go = tl.load(gout_ptr + orow + 2 * hw, mask=pmask, other=0.0)
        G2 = go * inv
        g_norm -= G2 * tl.load(out_ptr + orow + 2 * hw, mask=pmask, other=0.0)
    Gd = tl.load(gout_ptr + orow + (NC - 1) * hw, mask=pmask, other=0.0) * inv
    g_norm -= Gd * tl.load(out_ptr + orow + (NC - 1) * hw, mask=pmask, other=0.0)
    ga = tl.load(gout_ptr + orow + (NC - 2) * hw, mask=pmask, other=0.0)
    ga += tl.where(alpha >= eps, g_norm, 0.0)

    trans = tl.full([BLOCK], 1.0, tl.float32)
    for k in range(K):
        row = ((b * K + k) * hw + pix) * NC
        cover = tl.load(acc_ptr + row + NC - 2, mask=pmask, other=0.0)
        tl.store(gacc_ptr + row + NC - 2, trans, mask=pmask)
        trans = trans * (1.0 - cover * (1.0 / tl.maximum(cover, 1.0)))
    bnext = tl.zeros([BLOCK], dtype=tl.float32)  # B_{k+1}
    for kk in range(K):
        k = K - 1 - kk
        row = ((b * K + k) * hw + pix) * NC
        cover = tl.load(acc_ptr + row + NC - 2, mask=pmask, other=0.0)
        t_k = tl.load(gacc_ptr + row + NC - 2, mask=pmask, other=0.0)
        scale = 1.0 / tl.maximum(cover, 1.0)
        a_k = cover * scale
        g_a = t_k * (ga - bnext)
        # colour/depth: p_c = acc_c * scale; g_scale collects every path through scale
        g_scale = g_a * cover
        gp_dot = ga * a_k
        if NC >= 3:
            v = tl.load(acc_ptr + row, mask=pmask, other=0.0)
            tl.store(gacc_ptr + row, t_k * G0 * scale, mask=pmask)
            g_scale += t_k * G0 * v
            gp_dot += G0 * v * scale
        if NC >= 4:
            v = tl.load(acc_ptr + row + 1, mask=pmask, other=0.0)
            tl.store(gacc_ptr + row + 1, t_k * G1 * scale, mask=pmask)
            g_scale += t_k * G1 * v
            gp_dot += G1 * v * scale
        if NC >= 5:
            v = tl.load(acc_ptr + row + 2, mask=pmask, other=0.0)
            tl.store(gacc_ptr + row + 2, t_k * G2 * scale, mask=pmask)
            g_scale += t_k * G2 * v
            gp_dot += G2 * v * scale
        v = tl.load(acc_ptr + row + NC - 1, mask=pmask, other=0.0)
        tl.store(gacc_ptr + row + NC - 1, t_k * Gd * scale, mask=pmask)
        g_scale += t_k * Gd * v
        gp_dot += Gd * v * scale
        # scale = 1 / clamp_min(cover, 1): d scale / d cover = -scale^2 where cover >= 1 (torch's clamp
        # passes the gradient at equality), 0 below
        g_cover = g_a * scale + tl.where(cover >= 1.0, -g_scale * scale * scale, 0.0)
        tl.store(gacc_ptr + row + NC - 2, g_cover, mask=pmask)
        bnext = gp_dot + (1.0 - a_k) * bnext


def _launch_splat(fn, *args, n_gauss: int, nc: int) -> None:
    grid = (triton.cdiv(n_gauss, BLOCK_G),)
    fn[grid](*args, NC=nc, BLOCK_G=BLOCK_G, BLOCK_P=BLOCK_P)


class _TritonSplatComposite(torch.autograd.Function):
    """Splat + composite in fp32: per-Gaussian inputs -> ``(B, C + 2, H, W)`` ``[image, alpha, depth]``."""

    @staticmethod
    def forward(ctx, mx, con, nrm, feat, base, radii, batch, num_layers, height, width, s2, eps):  # noqa: D102
        dtypes = (mx.dtype, con.dtype, nrm.dtype, feat.dtype)
        mx, con, nrm, feat = (t.detach().float().contiguous() for t in (mx, con, nrm, feat))
        radii = radii.to(torch.int32).contiguous()
        base = base.contiguous()
        # Blocks of similar box size: a block walks the largest box of its Gaussians.
        order = torch.argsort(radii).to(torch.int32)
        n, nc = mx.shape[0], feat.shape[1]
        hw = height * width
        acc = torch.zeros(batch * num_layers * hw, nc, dtype=torch.float32, device=mx.device)
        if n:
            _launch_splat(
                _splat_fwd, mx, con, nrm, feat, radii, order, base, acc, n, height, width, s2, n_gauss=n, nc=nc
            )
        out = torch.empty(batch, nc, hw, dtype=torch.float32, device=mx.device)
        n_pix = batch * hw
        _composite_fwd[(triton.cdiv(n_pix, BLOCK_PIX),)](acc, out, n_pix, hw, eps, K=num_layers, NC=nc, BLOCK=BLOCK_PIX)
        ctx.save_for_backward(mx, con, nrm, feat, base, radii, order, acc, out)
        ctx.dims = (batch, num_layers, height, width, s2, eps, dtypes)
        # fp64 callers (gradcheck, the reference tests) get their dtype back; the arithmetic stayed fp32
        return out.view(batch, nc, height, width).to(dtypes[3])

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        mx, con, nrm, feat, base, radii, order, acc, out = ctx.saved_tensors
        batch, num_layers, height, width, s2, eps, dtypes = ctx.dims
        n, nc = mx.shape[0], feat.shape[1]
        hw = height * width
        gout = grad_out.float().reshape(batch, nc, hw).contiguous()
        gacc = torch.empty_like(acc)
        n_pix = batch * hw
        _composite_bwd[(triton.cdiv(n_pix, BLOCK_PIX),)](
            acc, out, gout, gacc, n_pix, hw, eps, K=num_layers, NC=nc, BLOCK=BLOCK_PIX
        )
        grads = torch.zeros(n, 6 + nc, dtype=torch.float32, device=mx.device)
        if n:
            _launch_splat(
                _splat_bwd, mx, con, nrm, feat, radii, order, base, gacc, grads, n, height, width, s2, n_gauss=n, nc=nc
            )
        d_mx, d_con, d_nrm, d_feat = grads[:, 0:2], grads[:, 2:5], grads[:, 5], grads[:, 6:]
        return (
            d_mx.to(dtypes[0]),
            d_con.to(dtypes[1]),
            d_nrm.to(dtypes[2]),
            d_feat.to(dtypes[3]),
            *([None] * 8),
        )


def splat_composite(
    mx: Tensor,
    con: Tensor,
    nrm: Tensor,
    feat: Tensor,
    base: Tensor,
    radii: Tensor,
    batch: int,
    num_layers: int,
    height: int,
    width: int,
    s2: float,
    eps: float = 1e-8,
) -> Tensor:
    """Fused depth-layered splat and composite (differentiable w.r.t. ``mx``, ``con``, ``nrm``, ``feat``).

    Args:
        mx: ``(M, 2)`` centres (px), M = B N Gaussians over the batch.
        con: ``(M, 3)`` conics ``[inv00, inv01, inv11]`` (px^-2).
        nrm: ``(M,)`` kernel normalisation ``opacity / (2 pi sqrt(det))`` (px^-2).
        feat: ``(M, C + 2)`` ``[colour (C <= 3), 1, depth (m)]``.
        base: ``(M,)`` int64 first accumulator row of the Gaussian's (batch item, layer): ``(b K + k) H W``.
        radii: ``(M,)`` integer box half-size (px) holding the support.
        batch, num_layers, height, width: B, K, H, W.
        s2: squared support (Mahalanobis, sigma^2 units).
        eps: floor of the total coverage in the normalisation.

    Returns:
        ``(B, C + 2, H, W)``: coverage-normalised image (C), total coverage (1), normalised depth (1).
    """
    nc = feat.shape[1]
    if not 3 <= nc <= 5:
        raise ValueError(f"the triton backend composites 1 to 3 colour channels, got {nc - 2}")
    return _TritonSplatComposite.apply(mx, con, nrm, feat, base, radii, batch, num_layers, height, width, s2, eps)
