"""Defocus Gaussian-splatting renderer: brute force, gradients, physics checks, parity, bad input."""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from sdgs.optics import FOD500, coc_px, coc_to_sigma_px
from sdgs.render import DefocusRenderer, rasterize_gaussians, render_defocus
from sdgs.render.defocus import FOOTPRINT_SIGMA_PX
from sdgs.render.reference import naive_alpha_splatter, rasterize_dense

from .conftest import requires_cuda


def _random_gaussians(b: int, n: int, h: int, w: int, dtype=torch.float64):
    means = torch.rand(b, n, 2, dtype=dtype) * torch.tensor([w, h], dtype=dtype)
    a = torch.randn(b, n, 2, 2, dtype=dtype) * 0.8
    covs = a @ a.transpose(-1, -2) + 0.3 * torch.eye(2, dtype=dtype)
    colors = torch.rand(b, n, 3, dtype=dtype)
    opac = torch.rand(b, n, dtype=dtype)
    depths = torch.rand(b, n, dtype=dtype) * 2 + 0.5
    return means, covs, colors, opac, depths


@pytest.mark.parametrize("layers", [1, 3, 8])
def test_rasterizer_matches_brute_force(layers: int) -> None:
    args = _random_gaussians(2, 30, 11, 13)
    fast = rasterize_gaussians(*args, 11, 13, num_layers=layers, backend="torch")
    slow = rasterize_dense(*args, 11, 13, num_layers=layers)
    for key in ("image", "alpha", "depth"):
        torch.testing.assert_close(fast[key], slow[key], atol=1e-5, rtol=0)


def test_rasterizer_gradcheck() -> None:
    args = [t.requires_grad_() for t in _random_gaussians(2, 10, 7, 8)]
    fn = lambda *a: tuple(rasterize_gaussians(*a, 7, 8, num_layers=3, backend="torch").values())  # noqa: E731
    assert torch.autograd.gradcheck(fn, args, atol=1e-6)


def test_render_defocus_gradcheck_radiance_depth_coc() -> None:
    h = w = 6
    radiance = torch.rand(1, 3, h, w, dtype=torch.float64, requires_grad=True)
    depth = (torch.rand(1, 1, h, w, dtype=torch.float64) * 0.5 + 0.2).requires_grad_()
    coc = (torch.rand(1, 1, h, w, dtype=torch.float64) * 3 + 1).requires_grad_()
    opacity = (torch.rand(1, 1, h, w, dtype=torch.float64) * 0.5 + 0.5).requires_grad_()
    focus = torch.tensor([0.3], dtype=torch.float64)
    fn_depth = lambda r, d: render_defocus(r, d, focus, FOD500, backend="torch", num_layers=4)["image"]  # noqa: E731
    assert torch.autograd.gradcheck(fn_depth, (radiance, depth))
    fn_coc = lambda r, c, o: render_defocus(  # noqa: E731
        r, depth.detach(), focus, FOD500, backend="torch", coc_px=c, opacity=o, num_layers=4
    )["image"]
    assert torch.autograd.gradcheck(fn_coc, (radiance, coc, opacity))


@pytest.mark.parametrize("depth_m", [0.2, 1.0])
def test_constant_plane_is_gaussian_blur_and_keeps_energy(depth_m: float) -> None:
    h = w = 48
    rgb = torch.rand(1, 3, h, w)
    focus = torch.tensor(FOD500.focus_distances_m)[None]
    out = render_defocus(rgb, torch.full((1, 1, h, w), depth_m), focus, FOD500, backend="torch")
    for k, f in enumerate(FOD500.focus_distances_m):
        sigma = float(coc_to_sigma_px(coc_px(torch.tensor(depth_m), f, FOD500)))
        f2 = FOOTPRINT_SIGMA_PX**2  # total variance sigma^2 + f^2 exp(-sigma^2 / f^2): footprint-compensated
        total = math.sqrt(sigma**2 + f2 * math.exp(-(sigma**2) / f2))
        r = math.ceil(3 * total)
        ref = kornia.filters.gaussian_blur2d(rgb, (2 * r + 1,) * 2, (total, total))
        # Tolerance 0.02 on white noise (the worst texture): kornia normalises a square 3-sigma kernel,
        # the splat cuts at the 3-sigma circle; the mean error is far smaller.
        err = (out["image"][0, k] - ref[0])[:, 8:-8, 8:-8].abs()
        assert err.max() < 0.02 and err.mean() < 0.004
        assert abs(float(out["image"][0, k].mean() / rgb.mean()) - 1) < 0.01


def test_zero_coc_reproduces_input() -> None:
    rgb = torch.rand(2, 3, 20, 24)
    out = render_defocus(rgb, torch.full((2, 1, 20, 24), 0.7), torch.tensor([0.7, 0.7]), FOD500, backend="torch")
    # footprint sigma 1/sqrt(12) px with a 3-sigma cut: only the pixel itself lies inside the support
    torch.testing.assert_close(out["image"], rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["alpha"], torch.ones_like(out["alpha"]))


def test_occlusion_in_focus_square_stays_sharp_and_defocused_square_spreads() -> None:
    h = w = 64
    rgb = torch.rand(1, 3, h, w)
    depth = torch.full((1, 1, h, w), 3.0)
    depth[..., 20:44, 20:44] = 0.1
    sharp = render_defocus(rgb, depth, torch.tensor([0.1]), FOD500, backend="torch")["image"]
    inner = (slice(None), slice(None), slice(21, 43), slice(21, 43))
    torch.testing.assert_close(sharp[inner], rgb[inner], atol=1e-5, rtol=0)  # no background bleed
    far_focus = render_defocus(rgb, depth, torch.tensor([3.0]), FOD500, backend="torch")["image"]
    ring = (far_focus - rgb)[..., 16:20, 24:40]  # background just outside the near square
    assert ring.abs().mean() > 0.02


def test_slanted_plane_one_colour_no_seams_and_composited_depth() -> None:
    h, w = 40, 32
    depth = torch.linspace(0.12, 2.8, h).view(1, 1, h, 1).expand(1, 1, h, w).contiguous()
    colour = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).expand(1, 3, h, w).contiguous()
    out = render_defocus(colour, depth, torch.tensor(FOD500.focus_distances_m)[None], FOD500, backend="torch")
    assert (out["image"] - colour[:, None]).abs().max() < 1e-5
    assert ((out["depth"][:, 0] - depth).abs() / depth)[..., 6:-6, :].max() < 0.05


def test_agrees_with_layered_synthesis() -> None:
    from datamodules.defocus import synthesize_focal_stack
    from datamodules.procedural import make_scene

    scene = make_scene(seed=5, size=64)
    focus = torch.tensor(FOD500.focus_distances_m)
    ours = render_defocus(scene["rgb"][None], scene["depth"][None], focus[None], FOD500, backend="torch")["image"]
    theirs = synthesize_focal_stack(scene["rgb"][None], scene["depth"][None], focus, FOD500)
    # Residual: per-pixel CoC (renderer) vs one CoC per depth slab (synthesis), and the 0.29 px footprint.
    diff = (ours - theirs)[..., 4:-4, 4:-4].abs()
    assert diff.mean() < 0.01 and diff.max() < 0.15


def test_focal_stack_equals_per_focus_renders() -> None:
    rgb, depth = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16) * 2 + 0.2
    focus = torch.tensor([[0.1, 1.5], [0.3, 0.7]])
    stack = render_defocus(rgb, depth, focus, FOD500, backend="torch")["image"]
    single = render_defocus(rgb, depth, focus[:, 1], FOD500, backend="torch")["image"]
    torch.testing.assert_close(stack[:, 1], single)


def test_renderer_module_and_batch_camera() -> None:
    renderer = DefocusRenderer("fod500", backend="torch")
    rgb, depth = torch.rand(2, 3, 16, 16), torch.full((2, 1, 16, 16), 0.5)
    a = renderer(rgb, depth, torch.tensor([0.1, 0.3]))["image"]
    from dataclasses import replace

    cam = {k: v.expand(2) for k, v in replace(FOD500, width_px=16, height_px=16).to_tensors().items()}
    b = DefocusRenderer(backend="torch")(rgb, depth, torch.tensor([0.1, 0.3]), camera=cam)["image"]
    torch.testing.assert_close(a, b)


def test_layered_and_plain_alpha_differ_on_a_plane() -> None:
    """Why the layered semantics: plain alpha compositing of per-pixel splats darkens a blurred plane."""
    h = w = 32
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    means = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)[None]
    cov = torch.eye(2).expand(1, h * w, 2, 2) * 4.0
    colors = torch.full((1, h * w, 3), 0.5)
    depths = 1.0 + 1e-3 * torch.rand(1, h * w)
    opac = torch.ones(1, h * w)
    layered = rasterize_gaussians(means, cov, colors, opac, depths, h, w, backend="torch")["image"]
    # plain 3DGS needs per-splat opacity = the normalised kernel peak to keep energy
    plain = naive_alpha_splatter(means, cov, colors, opac / (2 * math.pi * 2.0), depths, h, w)
    assert (layered[0] - 0.5).abs().max() < 1e-5
    assert (plain[:, 8:-8, 8:-8] - 0.5).abs().mean() > 0.05


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"depth": torch.zeros(1, 1, 8, 8)}, ValueError, "depth"),
        ({"depth": torch.full((1, 1, 8, 8), math.inf)}, ValueError, "depth"),
        ({"depth": torch.ones(1, 1, 8, 7)}, ValueError, "depth must be"),
        ({"radiance": torch.rand(1, 8, 8)}, ValueError, "radiance"),
        ({"coc_px": torch.full((1, 1, 8, 8), math.nan)}, ValueError, "coc_px"),
        ({"coc_px": torch.ones(1, 2, 8, 8)}, ValueError, "coc_px"),
        ({"backend": "vulkan"}, ValueError, "unknown render backend"),
    ],
)
def test_bad_input(kwargs, err, match: str) -> None:
    args = {"radiance": torch.rand(1, 3, 8, 8), "depth": torch.ones(1, 1, 8, 8), "focus_distance": torch.tensor([0.3])}
    backend = kwargs.pop("backend", "torch")
    args.update(kwargs)
    with pytest.raises(err, match=match):
        render_defocus(camera=FOD500, backend=backend, **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error path")
def test_gsplat_backend_without_cuda_says_use_torch() -> None:
    with pytest.raises(RuntimeError, match="use backend='torch'"):
        render_defocus(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8), torch.tensor([0.3]), FOD500, backend="gsplat")


def test_auto_picks_torch_on_cpu() -> None:
    from sdgs.render import resolve_backend

    assert resolve_backend("auto", torch.device("cpu")) == "torch"


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gsplat_matches_torch_forward_and_gradients(seed: int) -> None:
    """Agreement up to 3-sigma cut flips (bench.gpu_check's criterion: rare, bounded by one kernel at the cut)."""
    from bench.gpu_check import agrees, forward_errors, gradient_errors
    from sdgs.render import gsplat_available

    if not gsplat_available():
        pytest.skip("gsplat CUDA kernels did not load")
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(seed)
    rgb = torch.rand(2, 3, 48, 40, device=dev, generator=g)
    depth = torch.rand(2, 1, 48, 40, device=dev, generator=g) * 2.5 + 0.15
    focus = torch.tensor([[0.1, 0.7], [0.3, 1.5]], device=dev)
    outs, grads = {}, {}
    for backend in ("torch", "gsplat"):
        r, d = rgb.clone().requires_grad_(), depth.clone().requires_grad_()
        out = render_defocus(r, d, focus, FOD500, backend=backend)
        (out["image"] * torch.linspace(0, 1, 40, device=dev)).sum().backward()
        outs[backend], grads[backend] = out, (r.grad, d.grad)
    errors = {**forward_errors(outs["gsplat"], outs["torch"])}
    errors.update(gradient_errors(grads["gsplat"], grads["torch"], ("d_radiance", "d_depth")))
    assert all(agrees(e) for e in errors.values()), errors
