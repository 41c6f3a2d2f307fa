"""SDNet / DepthNet contracts and the loss functions."""

from __future__ import annotations

import kornia
import pytest
import torch

from sdgs import losses
from sdgs.models import DepthNet, SDNet, UNet
from sdgs.optics import FOD500, Camera, depth_from_signed_coc, signed_coc_px


def _cam(b: int, size: int = 32) -> Camera:
    from dataclasses import replace

    t = replace(FOD500, width_px=size, height_px=size).to_tensors()
    return Camera.from_batch({k: v.expand(b) for k, v in t.items()}, 4)


def test_unet_any_size_and_groupnorm() -> None:
    net = UNet(4, 2, width=8, depth=3)
    assert net(torch.rand(2, 4, 37, 50)).shape == (2, 2, 37, 50)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_sdnet_signed_coc_is_thin_lens_of_bounded_depth() -> None:
    net = SDNet(width=8, depth=2)
    with torch.no_grad():
        net.net.head.bias.fill_(50.0)  # saturate: the depth must stay inside the range
    cam = _cam(2)
    focus = torch.tensor([0.1, 1.5])
    out = net(torch.rand(2, 3, 32, 32), focus, cam)
    near, far = FOD500.depth_range_m
    assert out["depth"].min() >= near * 0.999 and out["depth"].max() <= far * 1.001
    torch.testing.assert_close(out["signed_coc"], signed_coc_px(out["depth"], focus.view(-1, 1, 1, 1), cam))
    torch.testing.assert_close(out["defocus"], out["signed_coc"].abs())
    # the lens inversion of SDNet's CoC is its own depth (why SDGSModule uses that depth as z0 directly)
    z0 = depth_from_signed_coc(out["signed_coc"], focus.view(-1, 1, 1, 1), cam)
    torch.testing.assert_close(z0, out["depth"], rtol=1e-4, atol=1e-5)


def test_depthnet_starts_as_identity_and_stays_in_range() -> None:
    net = DepthNet(width=8, depth=2)
    cam = _cam(2)
    z0 = torch.rand(2, 1, 32, 32) * 2 + 0.2
    out = net(torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32) * 5, torch.tensor([0.3, 0.7]), z0, cam)
    torch.testing.assert_close(out["depth"], z0, rtol=1e-3, atol=1e-4)
    with torch.no_grad():
        net.net.head.bias.fill_(-100.0)
    far = net(torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32), torch.tensor([0.3, 0.7]), z0, cam)["depth"]
    assert far.max() <= FOD500.depth_range_m[1] * 1.001


def test_sdnet_is_focus_conditioned() -> None:
    net = SDNet(width=8, depth=2)
    img = torch.rand(1, 3, 32, 32)
    a = net(img, torch.tensor([0.1]), _cam(1))["inv_depth"]
    b = net(img, torch.tensor([1.5]), _cam(1))["inv_depth"]
    assert not torch.allclose(a, b)


def test_photometric_uses_one_minus_ssim_not_kornias_half() -> None:
    x, y = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    assert float(losses.photometric(x, x)) == pytest.approx(0.0, abs=1e-6)
    only_ssim = losses.photometric(x, y, ssim_weight=1.0)
    assert float(only_ssim) == pytest.approx(2 * float(kornia.losses.ssim_loss(x, y, 11)), rel=1e-4)
    only_l1 = losses.photometric(x, y, ssim_weight=0.0)
    assert float(only_l1) == pytest.approx(float((x - y).abs().mean()), rel=1e-5)
    assert losses.photometric(torch.rand(2, 5, 3, 16, 16), torch.rand(2, 5, 3, 16, 16), reduce=False).shape == (2, 5)


def test_confidence_l1_hand_value() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3)
    target = torch.tensor([1.5, 2.0, 5.0]).view(1, 1, 1, 3)
    conf = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)
    assert float(losses.confidence_l1(pred, target, conf)) == pytest.approx(0.25)
    assert float(losses.confidence_l1(pred, target, torch.zeros_like(conf))) == 0.0


def test_siamese_consistency_and_smoothness() -> None:
    inv = torch.rand(2, 1, 8, 8) + 0.5
    assert float(losses.siamese_consistency(inv, inv)) == 0.0
    assert float(losses.siamese_consistency(inv, 2 * inv)) == pytest.approx(2 / 3, rel=1e-5)
    flat = torch.ones(1, 1, 8, 8)
    assert float(losses.smoothness(flat, torch.rand(1, 3, 8, 8))) == pytest.approx(0.0, abs=1e-7)


def test_blur_features_rank_sharpness_independent_of_contrast() -> None:
    import kornia

    from sdgs.models import blur_features

    sharp = torch.rand(1, 3, 48, 48)
    blurred = kornia.filters.gaussian_blur2d(sharp, (9, 9), (1.5, 1.5), border_type="reflect")
    f_sharp, f_blur = blur_features(sharp), blur_features(blurred)
    assert f_sharp.shape == (1, 4, 48, 48) and torch.isfinite(f_sharp).all()
    sharpness = lambda f: (f[:, 0] - f[:, 3]).mean()  # noqa: E731  Laplacian energy against local contrast
    assert sharpness(f_sharp) > sharpness(f_blur) + 0.1  # 0.1 = a factor e^0.4 = 1.5 in energy ratio
    # halving the contrast moves every log-energy by the same amount: the sharpness cue stays
    low = blur_features(0.25 + 0.5 * sharp)
    assert torch.allclose(sharpness(low), sharpness(f_sharp), atol=0.05)


def test_reblur_features_follow_the_gaussian_energy_law_whatever_the_contrast() -> None:
    """An edge blurred by σ_b and re-blurred by σ_r keeps ~σ_b / √(σ_b² + σ_r²) of its local gradient energy."""
    import kornia

    from sdgs.models import reblur_features
    from sdgs.models.sdnet import REBLUR_SIGMAS_PX

    step = (torch.arange(64.0) >= 32).float().view(1, 1, 1, 64).expand(1, 3, 64, 64)
    sigma_b = 2.0
    edge = kornia.filters.gaussian_blur2d(step, (25, 25), (sigma_b, sigma_b), border_type="replicate")
    feats = reblur_features(edge)
    assert feats.shape == (1, len(REBLUR_SIGMAS_PX), 64, 64) and torch.isfinite(feats).all()
    at_edge = feats[0, :, 32, 28:36].mean(-1)  # within the box window of the edge
    ratio = ((at_edge - 1) * 2).exp()
    expected = torch.tensor([sigma_b / (sigma_b**2 + s**2) ** 0.5 for s in REBLUR_SIGMAS_PX])
    assert torch.allclose(ratio, expected, atol=0.06), (ratio, expected)
    # a sharper edge keeps less of its energy when re-blurred: the cue ranks blur
    sharper = reblur_features(kornia.filters.gaussian_blur2d(step, (25, 25), (0.8, 0.8), border_type="replicate"))
    assert (sharper[0, :, 32, 28:36].mean(-1) < at_edge - 0.05).all()
    # contrast cancels in the ratio
    assert torch.allclose(reblur_features(0.2 + 0.3 * edge)[0, :, 32, 28:36].mean(-1), at_edge, atol=1e-3)


def test_log_depth_l1_is_relative_and_respects_a_far_clip() -> None:
    from sdgs.losses import log_depth_l1

    conf = torch.ones(1, 1, 1, 2)
    target = torch.tensor([[[[1 / 0.5, 1 / 3.0]]]])  # 0.5 m and 3 m
    pred = torch.tensor([[[[1 / 0.55, 1 / 3.3]]]])  # both 10 % too far
    # scale-aware: the same relative error costs the same near and far
    assert log_depth_l1(pred, target, conf) == pytest.approx(float(torch.log(torch.tensor(1.1))), rel=1e-5)
    # with the DFV clip, the far pixel (beyond 1.5 m either way) costs nothing; the near one still does
    clipped = log_depth_l1(pred, target, conf, far_m=1.5)
    assert clipped == pytest.approx(float(torch.log(torch.tensor(1.1))) / 2, rel=1e-5)


@pytest.mark.parametrize("use_confidence", [False, True])
def test_self_supervised_targets_weight_by_confidence_only_when_asked(use_confidence: bool) -> None:
    from sdgs.lit import SDGSModule
    from sdgs.optics import batched_camera

    conf = torch.rand(2, 1, 8, 8)
    batch = {
        "coc_targets": torch.zeros(2, 5, 1, 8, 8), "confidence": conf, "initial_depth": torch.full((2, 1, 8, 8), 0.5),
        "focus_distance": torch.tensor([FOD500.focus_distances_m] * 2),
    }  # fmt: skip
    module = SDGSModule(sdnet_width=4, depthnet_width=4, use_confidence=use_confidence)
    targets = module._targets(batch, batched_camera(FOD500, 4, 2, (8, 8)))
    torch.testing.assert_close(targets["confidence"], conf if use_confidence else torch.ones_like(conf))
    torch.testing.assert_close(targets["inv_depth"], torch.full((2, 1, 8, 8), 2.0))


@pytest.mark.parametrize("use_confidence", [False, True])
def test_supervised_targets_are_ground_truth_on_every_valid_pixel(use_confidence: bool) -> None:
    """The upper bound reads ground truth, weighs every valid pixel alike and, by default, uses AbsRel itself
    as its loss (the self-supervised default is the log-depth L1)."""
    from sdgs.lit import SDGSModule
    from sdgs.optics import batched_camera

    gt = torch.full((2, 1, 8, 8), 0.8)
    gt[0, 0, 0, 0] = 0.0  # invalid
    batch = {"depth": gt, "focus_distance": torch.tensor([FOD500.focus_distances_m] * 2)}
    module = SDGSModule(
        sdnet_width=4,
        depthnet_width=4,
        supervised=True,
        use_confidence=use_confidence,
        blur_weight=0.0,
        depth_render_weight=0.0,
    )  # as the report's supervised row
    assert not module.needs_splatting
    assert module.hparams.target_space == "abs_rel"  # resolved, so checkpoints record it
    assert SDGSModule(sdnet_width=4, depthnet_width=4).hparams.target_space == "log_depth"
    explicit = SDGSModule(sdnet_width=4, depthnet_width=4, supervised=True, target_space="coc")
    assert explicit.hparams.target_space == "coc"
    targets = module._targets(batch, batched_camera(FOD500, 4, 2, (8, 8)))
    torch.testing.assert_close(targets["confidence"], (gt > 0).float())
    torch.testing.assert_close(targets["inv_depth"][0, 0, 0, 1], torch.tensor(1 / 0.8))
    with pytest.raises(ValueError, match="target_space must be"):
        SDGSModule(sdnet_width=4, depthnet_width=4, target_space="l2")


def test_abs_rel_l1_is_abs_rel() -> None:
    pred, target = torch.tensor([[[[1.0, 3.0]]]]), torch.tensor([[[[2.0, 2.0]]]])  # depths (m)
    value = losses.abs_rel_l1(1 / pred, 1 / target, torch.ones_like(pred))
    assert float(value) == pytest.approx(0.5)  # (|1-2|/2 + |3-2|/2) / 2
    clipped = losses.abs_rel_l1(1 / pred, 1 / target, torch.ones_like(pred), far_m=1.5)
    assert float(clipped) == pytest.approx(1 / 6)  # (|1-1.5|/1.5 + 0) / 2


@pytest.mark.parametrize("stride", [1, 4])
def test_strided_networks_keep_the_input_size_and_the_bounds(stride: int) -> None:
    """``stride``: blur features at full size, the U-Net at 1/stride, the output back at full size (odd sizes too)."""
    from sdgs.models.sdnet import row_plane

    cam = _cam(2)
    img = torch.rand(2, 3, 43, 66)
    sd = SDNet(width=8, depth=2, stride=stride, row_input=True)
    out = sd(img, torch.tensor([0.3, 0.7]), cam)
    assert out["depth"].shape == (2, 1, 43, 66)
    near, far = FOD500.depth_range_m
    assert out["depth"].min() >= near * 0.999 and out["depth"].max() <= far * 1.001
    ref = DepthNet(width=8, depth=2, stride=stride, row_input=True)
    z = ref(img, out["defocus"], torch.tensor([0.3, 0.7]), out["depth"], cam)["depth"]
    torch.testing.assert_close(z, out["depth"], rtol=1e-3, atol=1e-4)  # still the identity at the start
    rows = row_plane(img)
    assert rows.shape == (2, 1, 43, 66) and float(rows[0, 0, 0, 5]) == -1.0 and float(rows[1, 0, -1, 0]) == 1.0
    with pytest.raises(ValueError, match="stride must be >= 1"):
        SDNet(stride=0)


def test_strided_sdnet_reads_blur_finer_than_its_own_grid() -> None:
    """Blur of 1-2 px survives the pooling: the features are taken at full size, so a network at 1/4 still
    sees a difference between a sharp and a slightly blurred texture (a fresh network, any weights)."""
    sharp = torch.rand(1, 3, 64, 64)
    blurred = kornia.filters.gaussian_blur2d(sharp, (7, 7), (1.0, 1.0))
    net = SDNet(width=8, depth=2, stride=4)
    pooled = lambda x: torch.nn.functional.avg_pool2d(x, 4)  # noqa: E731
    from sdgs.models.sdnet import blur_features

    diff = (pooled(blur_features(sharp)) - pooled(blur_features(blurred))).abs().mean()
    # pooling the blurred IMAGE instead would make both nearly equal at 1/4: the features keep the cue
    assert float(diff) > 5 * float((blur_features(pooled(sharp)) - blur_features(pooled(blurred))).abs().mean())
    assert net(sharp, torch.tensor([0.3]), _cam(1))["depth"].shape == (1, 1, 64, 64)
