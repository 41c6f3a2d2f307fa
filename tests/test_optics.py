"""Thin-lens optics: hand-computed CoC values, round trips, gradients, invalid input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from sdgs.optics import (
    FOD500,
    NYUV2,
    SIGMA_PER_COC,
    Camera,
    coc_px,
    coc_to_sigma_px,
    depth_from_signed_coc,
    gaussian_psf_blur,
    get_camera,
    signed_coc_px,
)
from sdgs.render import render_defocus


def _hand_coc(f: float, n: float, p: float, d: float, z: float) -> float:
    return (f / n) * f * (z - d) / (z * (d - f) * p)


@pytest.mark.parametrize(
    ("focus", "depth", "expected"),
    # docs/protocols.md, "Camera presets": the FoD500 CoC table (px = 3.1 mm / 256)
    [(0.1, 0.3, 4.77), (0.1, 3.0, 6.91), (0.3, 1.0, 1.64), (0.7, 0.1, -5.98), (1.5, 3.0, 0.23), (0.15, 0.1, -2.36)],
)
def test_fod500_matches_anchor_table(focus: float, depth: float, expected: float) -> None:
    got = float(signed_coc_px(torch.tensor(depth, dtype=torch.float64), focus, FOD500))
    assert got == pytest.approx(expected, abs=0.01)
    assert got == pytest.approx(_hand_coc(2.9e-3, 1.0, 3.0999999046325684e-3 / 256, focus, depth), rel=1e-9)


@pytest.mark.parametrize(("focus", "depth", "expected"), [(1.0, 0.5, 27.4), (2.5, 1.0, 15.9), (6.0, 10.0, 1.8)])
def test_nyuv2_matches_anchor_table(focus: float, depth: float, expected: float) -> None:
    # docs/protocols.md, "Camera presets": DEReD optics, f = 50 mm, N = 8, p = 12 um
    got = float(coc_px(torch.tensor(depth, dtype=torch.float64), focus, NYUV2))
    assert got == pytest.approx(expected, abs=0.1)
    # hand value: A f / ((d - f) p) * |1 - d/z| with A = 6.25 mm
    assert got == pytest.approx(6.25e-3 * 50e-3 / ((focus - 50e-3) * 12e-6) * abs(1 - focus / depth), rel=1e-9)


def test_sign_convention_and_in_focus_zero() -> None:
    z = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    s = signed_coc_px(z, 0.3, FOD500)
    assert s[0] < 0 and s[1] == 0 and s[2] > 0  # positive behind the focus plane


@pytest.mark.parametrize("camera", [FOD500, NYUV2])
def test_round_trip_float64(camera: Camera) -> None:
    near, far = camera.depth_range_m
    z = torch.linspace(near, far, 257, dtype=torch.float64).view(1, 1, 257, 1)
    focus = torch.tensor(camera.focus_distances_m, dtype=torch.float64).view(-1, 1, 1, 1)
    back = depth_from_signed_coc(signed_coc_px(z, focus, camera), focus, camera)
    assert ((back - z).abs() / z).max() < 1e-5


def test_broadcasting_and_float32() -> None:
    z = torch.rand(2, 1, 4, 5) * 2 + 0.2
    focus = torch.tensor([0.1, 1.5]).view(2, 1, 1, 1)
    s = signed_coc_px(z, focus, FOD500)
    assert s.shape == (2, 1, 4, 5) and s.dtype == torch.float32
    batched = Camera.from_batch({k: v.expand(2) for k, v in FOD500.to_tensors().items()}, ndim=4)
    torch.testing.assert_close(signed_coc_px(z, focus, batched), s)


def test_gradients_finite() -> None:
    z = (torch.rand(3, 1, 4, 4, dtype=torch.float64) * 2 + 0.2).requires_grad_()
    s = signed_coc_px(z, 0.7, FOD500)
    back = depth_from_signed_coc(s, 0.7, FOD500)
    (s.sum() + back.sum()).backward()
    assert torch.isfinite(z.grad).all() and (z.grad != 0).all()
    assert torch.autograd.gradcheck(lambda t: signed_coc_px(t, 0.7, FOD500), (z,))


def _second_moments(img: Tensor) -> tuple[float, float, float]:
    """Per-axis second central moments (px^2) and total mass of a ``(H, W)`` non-negative image."""
    h, w = img.shape
    y = torch.arange(h, dtype=img.dtype)[:, None].expand(h, w)
    x = torch.arange(w, dtype=img.dtype)[None, :].expand(h, w)
    m = img.sum()
    my, mx = (img * y).sum() / m, (img * x).sum() / m
    return float((img * (y - my) ** 2).sum() / m), float((img * (x - mx) ** 2).sum() / m), float(m)


def test_sigma_convention_blurs_a_point_like_the_disc_it_stands_for() -> None:
    """SIGMA_PER_COC claims: a CoC of diameter c blurs like a uniform disc, per-axis variance c^2 / 16."""
    c = 6.0
    # a uniform disc of diameter c (supersampled 20x): its per-axis second moment is c^2 / 16
    t = (torch.arange(-100.0, 100.0, dtype=torch.float64) + 0.5) / 20.0
    disc = ((t[:, None] ** 2 + t[None, :] ** 2) <= (c / 2) ** 2).double()
    var_y, var_x, _ = _second_moments(disc)
    assert var_y / 400 == pytest.approx(c**2 / 16, rel=0.01) and var_x / 400 == pytest.approx(c**2 / 16, rel=0.01)
    # render one bright pixel on a plane whose thin-lens CoC is c (default sigma convention)
    cam = Camera(2.9e-3, 1.0, FOD500.pixel_size_m, 41, 41)
    focus = 0.1
    z = depth_from_signed_coc(torch.tensor(c, dtype=torch.float64), focus, cam)
    assert float(coc_px(z, focus, cam)) == pytest.approx(c)
    radiance = torch.zeros(1, 3, 41, 41, dtype=torch.float64)
    radiance[..., 20, 20] = 1.0
    depth = torch.full((1, 1, 41, 41), float(z), dtype=torch.float64)
    # support 5 sigma: the default 3-sigma cut trims the tails (2.17 instead of 2.25 px^2 here), not what is tested
    img = render_defocus(radiance, depth, torch.tensor([focus]), cam, backend="torch", support=5.0)["image"]
    var_y, var_x, mass = _second_moments(img[0, 0])
    assert var_y == pytest.approx(c**2 / 16, rel=0.02) and var_x == pytest.approx(c**2 / 16, rel=0.02)
    assert mass == pytest.approx(1.0, rel=1e-3)  # the normalised kernel keeps the point's energy
    # the knob scales the blur: D3-Net's 0.3 c gives (0.3 c)^2
    img = render_defocus(radiance, depth, torch.tensor([focus]), cam, backend="torch", support=5.0, sigma_per_coc=0.3)
    var_y, var_x, _ = _second_moments(img["image"][0, 0])
    assert var_y == pytest.approx((0.3 * c) ** 2, rel=0.02) and var_x == pytest.approx((0.3 * c) ** 2, rel=0.02)
    assert SIGMA_PER_COC * abs(-c) == coc_to_sigma_px(torch.tensor(-c))  # sign-blind


def test_gaussian_psf_blur_has_the_asked_sigma_per_image() -> None:
    """The one Gaussian blur: a point spreads to variance σ² (3σ cut: within 3 %), energy kept, σ per image."""
    point = torch.zeros(2, 1, 41, 41, dtype=torch.float64)
    point[..., 20, 20] = 1.0
    out = gaussian_psf_blur(point, torch.tensor([1.5, 3.0]))
    for img, sigma in zip(out[:, 0], (1.5, 3.0)):
        var_y, var_x, mass = _second_moments(img)
        assert var_y == pytest.approx(sigma**2, rel=0.03) and var_x == pytest.approx(sigma**2, rel=0.03)
        assert mass == pytest.approx(1.0, rel=1e-3)
    # one float for the batch = the same σ per image; a tiny σ is the identity
    torch.testing.assert_close(gaussian_psf_blur(point, 3.0)[1], out[1])
    torch.testing.assert_close(gaussian_psf_blur(point, 0.0), point)
    with pytest.raises(ValueError, match="one value per image"):
        gaussian_psf_blur(point, torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: signed_coc_px(torch.tensor([1.0]), 2e-3, FOD500), "focal length"),
        (lambda: signed_coc_px(torch.tensor([0.0, 1.0]), 0.3, FOD500), "depth"),
        (lambda: signed_coc_px(torch.tensor([-1.0]), 0.3, FOD500), "depth"),
        (lambda: signed_coc_px(torch.tensor([math.nan]), 0.3, FOD500), "depth"),
        (lambda: Camera(2.9e-3, 0.0, 1e-5, 8, 8), "f_number"),
        (lambda: Camera(2.9e-3, 1.0, 1e-5, 8, 8, focus_distances_m=(1e-3,)), "focal length"),
        (lambda: depth_from_signed_coc(torch.tensor([100.0]), 0.1, FOD500), "infinity"),
        (lambda: get_camera("nope"), "unknown camera"),
    ],
)
def test_invalid_optics_raise(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_crop_keeps_pixel_pitch_and_shifts_centre() -> None:
    crop = FOD500.crop(10, 20, 64, 64)
    assert crop.pixel_size_m == FOD500.pixel_size_m
    fx, fy, cx, cy = crop.intrinsics_px
    assert (cx, cy) == (128.0 - 20, 128.0 - 10)
    assert fx == pytest.approx(2.9e-3 / FOD500.pixel_size_m)


def test_camera_json_round_trip(tmp_path) -> None:
    path = tmp_path / "cam.json"
    import json

    path.write_text(json.dumps(NYUV2.to_json()))
    assert get_camera(path) == NYUV2
    path.write_text(json.dumps({"focal_length_m": 1.0, "bogus": 2}))
    with pytest.raises(ValueError, match="bogus"):
        get_camera(path)
