"""Occlusion-aware layered defocus synthesis (datamodules.defocus)."""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from datamodules.defocus import synthesize_focal_stack
from sdgs.optics import FOD500, coc_px, coc_to_sigma_px

FOCUS = torch.tensor(FOD500.focus_distances_m)


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 1e-3:
        return img
    r = max(1, math.ceil(3 * sigma))
    return kornia.filters.gaussian_blur2d(img, (2 * r + 1,) * 2, (sigma, sigma))


@pytest.mark.parametrize("depth", [0.3, 1.0, 2.5])
def test_constant_plane_is_gaussian_blur(depth: float) -> None:
    rgb = torch.rand(1, 3, 48, 48)
    stack = synthesize_focal_stack(rgb, torch.full((1, 1, 48, 48), depth), FOCUS, FOD500)
    for k, f in enumerate(FOD500.focus_distances_m):
        sigma = float(coc_to_sigma_px(coc_px(torch.tensor(depth), f, FOD500)))
        err = (stack[0, k] - _blur(rgb, sigma)[0])[:, 8:-8, 8:-8].abs().max()
        assert err < 1e-4, (f, sigma, err)  # interior pixels; same kernel (3-sigma support); float32 round-off


def test_focus_at_depth_leaves_image_sharp() -> None:
    rgb = torch.rand(2, 3, 32, 32)
    stack = synthesize_focal_stack(rgb, torch.full((2, 1, 32, 32), 0.7), torch.tensor([0.7]), FOD500)
    torch.testing.assert_close(stack[:, 0], rgb, atol=1e-6, rtol=0)


def test_in_focus_occluder_keeps_interior_and_background_does_not_bleed() -> None:
    h = w = 64
    rgb = torch.rand(1, 3, h, w)
    depth = torch.full((1, 1, h, w), 3.0)
    depth[..., 20:44, 20:44] = 0.1  # near square, in focus at 0.1 m; background strongly defocused
    stack = synthesize_focal_stack(rgb, depth, torch.tensor([0.1, 1.5]), FOD500)
    inner = (slice(None), slice(20, 44), slice(20, 44))
    torch.testing.assert_close(stack[0, 0][inner], rgb[0][inner], atol=1e-6, rtol=0)
    # focused on the background instead: the now-defocused square spreads over the background
    ring = stack[0, 1][:, 16:20, 24:40] - rgb[0][:, 16:20, 24:40]
    assert ring.abs().mean() > 0.01


def test_slanted_single_colour_plane_has_no_seams() -> None:
    h, w = 64, 48
    depth = torch.linspace(0.12, 2.8, h).view(1, 1, h, 1).expand(1, 1, h, w).contiguous()
    colour = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).expand(1, 3, h, w)
    stack = synthesize_focal_stack(colour, depth, FOCUS, FOD500, num_layers=24)
    assert (stack - colour[:, None]).abs().max() < 1e-5


def test_mean_brightness_kept_on_textured_scene() -> None:
    from datamodules.procedural import make_scene

    scene = make_scene(seed=3, size=96, camera=FOD500)
    stack = synthesize_focal_stack(scene["rgb"][None], scene["depth"][None], FOCUS, FOD500)
    mean_in = scene["rgb"].mean()
    for k in range(FOCUS.numel()):
        assert abs(float(stack[0, k].mean() / mean_in) - 1) < 0.01


def test_batched_and_per_item_focus() -> None:
    rgb = torch.rand(2, 3, 24, 24)
    depth = torch.rand(2, 1, 24, 24) * 2 + 0.2
    focus = torch.tensor([[0.1, 0.3], [0.7, 1.5]])
    batched = synthesize_focal_stack(rgb, depth, focus, FOD500)
    single = synthesize_focal_stack(rgb[1:], depth[1:], focus[1], FOD500)
    assert batched.shape == (2, 2, 3, 24, 24)
    torch.testing.assert_close(batched[1:], single)


def test_splat_method_agrees_with_layered() -> None:
    from datamodules.procedural import _texture

    rgb = _texture(40, 40, torch.Generator().manual_seed(1), flat=False)[None]  # 1/f natural-image texture
    depth = torch.full((1, 1, 40, 40), 1.2)
    depth[..., 10:30, 10:30] = 0.25
    a = synthesize_focal_stack(rgb, depth, FOCUS, FOD500)
    b = synthesize_focal_stack(rgb, depth, FOCUS, FOD500, method="splat")
    # Same thin lens and compositing model; residual = the splat's per-pixel footprint (sigma 0.29 px)
    # added in quadrature and the layer-vs-pixel CoC at the occlusion boundary.
    diff = (a - b)[..., 6:-6, 6:-6].abs()
    assert diff.mean() < 0.005 and diff.max() < 0.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth_m": torch.zeros(1, 1, 8, 8)}, "depth"),
        ({"depth_m": torch.full((1, 1, 8, 8), math.nan)}, "depth"),
        ({"depth_m": torch.ones(1, 1, 8, 9)}, "depth must be"),
        ({"rgb": torch.rand(1, 4, 8, 8)}, "rgb"),
        ({"focus_distances_m": torch.ones(3, 2)}, "focus"),
        ({"method": "nope"}, "unknown synthesis"),
    ],
)
def test_bad_input(kwargs, match: str) -> None:
    args = {"rgb": torch.rand(1, 3, 8, 8), "depth_m": torch.ones(1, 1, 8, 8), "focus_distances_m": FOCUS}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        synthesize_focal_stack(camera=FOD500, **args)
