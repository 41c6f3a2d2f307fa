"""The gsplat backend's own code on CPU, its CUDA calls routed to gsplat's torch references.

The ``gsplat_on_cpu`` fixture (conftest.py, tests/gsplat_proxy.py) does the routing. Also checks the
backend's ``isect_ids`` decoding against gsplat's own decoder (``_isect_offset_encode``) and that ``auto``
never enters gsplat with CPU tensors.
"""

from __future__ import annotations

import math
from collections import Counter

import gsplat.cuda._torch_impl as gsplat_ref
import gsplat.cuda._wrapper as gsplat_wrapper
import pytest
import torch

import sdgs.render.rasterize as rasterize_mod
from sdgs.optics import FOD500
from sdgs.render import rasterize_gaussians, render_defocus, resolve_backend


def _scene(b: int, n: int, h: int, w: int, margin: float, sigma_max: float, dtype=torch.float64):
    """Random Gaussians: centres up to ``margin`` px outside the image, sigma up to ``sigma_max`` px."""
    lo = torch.tensor([-margin, -margin], dtype=dtype)
    span = torch.tensor([w + 2 * margin, h + 2 * margin], dtype=dtype)
    means = lo + torch.rand(b, n, 2, dtype=dtype) * span
    angle = torch.rand(b, n, dtype=dtype) * math.pi
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()], -1), torch.stack([angle.sin(), angle.cos()], -1)], -2)
    sig = 0.4 + torch.rand(b, n, 2, dtype=dtype) * (sigma_max - 0.4)
    covs = rot @ torch.diag_embed(sig**2) @ rot.transpose(-1, -2)
    colors = torch.rand(b, n, 3, dtype=dtype)
    opac = torch.rand(b, n, dtype=dtype) * 0.9 + 0.1
    depths = torch.rand(b, n, dtype=dtype) * 2 + 0.5
    return [means, covs, colors, opac, depths]


def _run_rasterizer(args, h: int, w: int, backend: str, layers: int):
    leaves = [t.clone().requires_grad_() for t in args]
    out = rasterize_gaussians(*leaves, h, w, num_layers=layers, backend=backend)
    # A loss that weights every output pixel and channel differently, so each gradient path is exercised.
    weight = torch.linspace(0.2, 1.0, h * w, dtype=args[0].dtype).reshape(h, w)
    loss = sum((val * weight * (i + 1)).sum() for i, val in enumerate(out.values()))
    loss.backward()
    return out, [t.grad for t in leaves]


@pytest.mark.parametrize(
    ("b", "n", "h", "w", "layers"),
    [
        (1, 40, 32, 32, 4),  # multiple of the 16-px tile
        (3, 60, 37, 21, 5),  # B > 1, neither side a multiple of the tile
        (2, 30, 9, 50, 1),  # one row of tiles, one layer
    ],
)
def test_gsplat_cpu_proxy_rasterizer_matches_torch(gsplat_on_cpu: Counter, b, n, h, w, layers) -> None:
    args = _scene(b, n, h, w, margin=10.0, sigma_max=6.0)
    ref, ref_grads = _run_rasterizer(args, h, w, "torch", layers)
    assert gsplat_on_cpu["isect_tiles"] == 0  # the torch backend never touches gsplat
    out, grads = _run_rasterizer(args, h, w, "gsplat", layers)
    assert gsplat_on_cpu["isect_tiles"] == 1 and gsplat_on_cpu["max_tiles_per_gaussian"] > 1
    # The scene exercises what the tile path must get right: Gaussians centred outside the image that
    # still cover pixels, and some covering pixels of more than one tile.
    means = args[0]
    outside = (means[..., 0] < 0) | (means[..., 0] > w) | (means[..., 1] < 0) | (means[..., 1] > h)
    assert outside.any() and (ref_grads[2][outside].abs().sum(-1) > 0).any()
    # float64 throughout: both backends sum the same pairs in a different order, so agreement is to
    # rounding (1e-10), far below any enumeration error (a missed or doubled pixel moves values by > 1e-4).
    for key in ("image", "alpha", "depth"):
        torch.testing.assert_close(out[key], ref[key], atol=1e-10, rtol=1e-10)
    for name, g, g_ref in zip(("means", "covariances", "colours", "opacities", "depths"), grads, ref_grads):
        assert g_ref.abs().max() > 0, name
        torch.testing.assert_close(g, g_ref, atol=1e-9, rtol=1e-9, msg=lambda m, name=name: f"d/d{name}: {m}")


def test_gsplat_cpu_proxy_render_defocus_matches_torch(gsplat_on_cpu: Counter) -> None:
    b, h, w = 2, 21, 37  # B > 1, not a multiple of the tile; blurred border pixels spill outside the image
    radiance = torch.rand(b, 3, h, w, dtype=torch.float64)
    depth = torch.rand(b, 1, h, w, dtype=torch.float64) * 2.5 + 0.15
    opacity = torch.rand(b, 1, h, w, dtype=torch.float64) * 0.5 + 0.5
    focus = torch.tensor([[0.1, 0.7], [0.3, 1.5]], dtype=torch.float64)
    weight = torch.linspace(0, 1, w, dtype=torch.float64)
    outs, grads = {}, {}
    for backend in ("torch", "gsplat"):
        leaves = [t.clone().requires_grad_() for t in (radiance, depth, opacity)]
        out = render_defocus(leaves[0], leaves[1], focus, FOD500, backend=backend, opacity=leaves[2], num_layers=8)
        (out["image"] * weight).sum().add((out["depth"] * weight).sum()).backward()
        outs[backend], grads[backend] = out, [t.grad for t in leaves]
    assert gsplat_on_cpu["fully_fused_projection"] == 1 and gsplat_on_cpu["isect_tiles"] == 1
    assert gsplat_on_cpu["max_tiles_per_gaussian"] > 1
    # The gsplat path projects in float32 (the CUDA kernels' type), the torch path in float64: the
    # tolerances are float32 rounding of the projected means, covariances and depths.
    for key in ("image", "alpha", "depth"):
        torch.testing.assert_close(outs["gsplat"][key], outs["torch"][key], atol=2e-5, rtol=1e-5)
    for name, g, g_ref in zip(("radiance", "depth", "opacity"), grads["gsplat"], grads["torch"]):
        assert g_ref.abs().max() > 0, name
        torch.testing.assert_close(g, g_ref, atol=1e-4, rtol=1e-3, msg=lambda m, name=name: f"d/d{name}: {m}")


def test_gsplat_cpu_proxy_tile_rows_decode_isect_ids_like_gsplat(gsplat_on_cpu: Counter) -> None:
    """The backend's decoding of ``isect_ids`` agrees with gsplat's own (``_isect_offset_encode``)."""
    b, n, h, w, tile = 3, 50, 40, 70, 16
    means, covs, _, _, depths = _scene(b, n, h, w, margin=6.0, sigma_max=8.0, dtype=torch.float32)
    radii = rasterize_mod.covariance_radii(covs)
    rows = rasterize_mod._blocks_gsplat(means, radii, depths, h, w, tile)
    g, y0, x0 = (torch.cat([r[i] for r in rows]) for i in range(3))
    assert all(r[3] == tile for r in rows)
    tw, th = math.ceil(w / tile), math.ceil(h / tile)
    # Per (image, tile) intersection counts as the backend sees them ...
    counts = torch.zeros(b, th, tw, dtype=torch.int64)
    counts.index_put_((g // n, y0 // tile, x0 // tile), torch.ones_like(g), accumulate=True)
    # ... and as gsplat's offset encoder decodes the same ids (offsets are exclusive prefix sums).
    _, isect_ids, _ = gsplat_ref._isect_tiles(
        means[:, None].contiguous(), radii.to(torch.int32)[:, None, :, None].expand(b, 1, n, 2).contiguous(),
        depths[:, None].contiguous(), tile, tw, th,
    )  # fmt: skip
    offsets = gsplat_ref._isect_offset_encode(isect_ids, b, tw, th).reshape(-1).long()
    ref_counts = torch.diff(offsets, append=torch.tensor([isect_ids.numel()])).reshape(b, th, tw)
    assert torch.equal(counts, ref_counts) and counts.sum() == isect_ids.numel()
    # Every row's tile lies inside the image and covers the Gaussian's support box.
    assert (x0 >= 0).all() and (x0 < w).all() and (y0 >= 0).all() and (y0 < h).all()
    r, mx = radii.reshape(-1)[g], means.reshape(-1, 2)[g]
    assert ((x0 < mx[:, 0] + r) & (x0 + tile > mx[:, 0] - r) & (y0 < mx[:, 1] + r) & (y0 + tile > mx[:, 1] - r)).all()


def test_gsplat_auto_never_calls_gsplat_with_cpu_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the proxy fixture, ``auto`` on CPU takes the torch path and never enters gsplat's wrappers."""

    def forbidden(*args, **kwargs):
        raise AssertionError("gsplat's CUDA wrapper called with CPU tensors")

    for name in ("fully_fused_projection", "isect_tiles", "isect_offset_encode", "rasterize_to_pixels"):
        monkeypatch.setattr(gsplat_wrapper, name, forbidden)
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    rgb, depth = torch.rand(2, 3, 12, 10), torch.rand(2, 1, 12, 10) + 0.2
    auto = render_defocus(rgb, depth, torch.tensor([0.3, 0.9]), FOD500, backend="auto")
    torch.testing.assert_close(
        auto["image"], render_defocus(rgb, depth, torch.tensor([0.3, 0.9]), FOD500, backend="torch")["image"]
    )
    args = _scene(1, 20, 12, 10, margin=2.0, sigma_max=3.0, dtype=torch.float32)
    rasterize_gaussians(*args, 12, 10, backend="auto")
    with pytest.raises(RuntimeError, match="use backend='torch'"):
        rasterize_gaussians(*args, 12, 10, backend="gsplat")
