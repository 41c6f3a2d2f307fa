"""Gaussian-splatting stage: per-scene fitting, confidence, cache and the shared Lightning callback."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch

from datamodules import SyntheticDataModule
from datamodules.defocus import synthesize_focal_stack
from datamodules.procedural import _texture, scene_camera
from sdgs.optics import FOD500
from sdgs.splatting import GaussianSplattingStage, SplatCache, SplatFitConfig, fit_gaussians

CAM = scene_camera(FOD500, 64)
FOCUS = torch.tensor(CAM.focus_distances_m)


@pytest.fixture(scope="module")
def step_scene():
    """Near textured square (0.2 m) over a far textured wall (0.6 m) with a textureless patch on the wall."""
    g = torch.Generator().manual_seed(3)
    rgb = _texture(64, 64, g, flat=False)
    rgb[:, 8:56, 8:56] = _texture(48, 48, g, flat=False)
    rgb[:, 44:60, 2:18] = 0.5  # textureless patch on the wall
    depth = torch.full((1, 64, 64), 0.6)
    depth[:, 20:44, 24:48] = 0.2
    stack = synthesize_focal_stack(rgb[None], depth[None], FOCUS, CAM)
    fit = fit_gaussians(stack, FOCUS[None], CAM)
    return {"rgb": rgb, "depth": depth, "stack": stack, "fit": fit}


def test_fit_recovers_depth_step_in_textured_regions(step_scene) -> None:
    z = step_scene["fit"].depth[0, 0]
    square = z[24:40, 28:44].median()  # interior, away from the occlusion boundary
    wall = z[4:16, 4:60].median()
    assert abs(float(square) / 0.2 - 1) < 0.1, float(square)
    assert abs(float(wall) / 0.6 - 1) < 0.1, float(wall)


def test_confidence_high_on_texture_low_on_textureless_patch(step_scene) -> None:
    conf = step_scene["fit"].confidence[0, 0]
    assert conf.min() >= 0 and conf.max() <= 1
    textured = conf[24:40, 28:44].mean()
    flat = conf[48:56, 6:14].mean()
    assert textured > 0.3 and flat < 0.05 and textured > 10 * flat, (float(textured), float(flat))


def test_fit_outputs_shapes_and_coc_targets(step_scene) -> None:
    fit = step_scene["fit"]
    assert fit.depth.shape == (1, 1, 64, 64) and fit.radiance.shape == (1, 3, 64, 64)
    assert fit.coc_targets.shape == (1, 5, 1, 64, 64) and fit.residual.shape == (1, 5)
    from sdgs.optics import signed_coc_px

    torch.testing.assert_close(fit.coc_targets[0, 2], signed_coc_px(fit.depth[0], 0.3, CAM))
    near, far = CAM.depth_range_m
    assert fit.depth.min() >= near * 0.999 and fit.depth.max() <= far * 1.001  # bounded
    assert float(fit.residual.max()) < 0.02


def test_fit_is_deterministic() -> None:
    stack = torch.rand(1, 3, 3, 24, 24)
    focus = torch.tensor([[0.1, 0.3, 1.5]])
    cfg = SplatFitConfig(iters=2)
    a = fit_gaussians(stack, focus, CAM, config=cfg)
    b = fit_gaussians(stack, focus, CAM, config=cfg)
    torch.testing.assert_close(a.depth, b.depth, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("stack", "focus", "match"),
    [
        (torch.rand(1, 1, 3, 16, 16), torch.tensor([[0.3]]), "S >= 2"),
        (torch.rand(1, 2, 3, 16, 16), torch.tensor([[0.3, 0.3]]), "duplicate focus"),
        (torch.full((1, 2, 3, 16, 16), float("nan")), torch.tensor([[0.1, 0.3]]), "non-finite"),
        (torch.rand(1, 2, 3, 16, 16), torch.tensor([0.1, 0.3]), r"\(B, S\)"),
    ],
)
def test_fit_bad_input(stack, focus, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_gaussians(stack, focus, CAM, iters=1)


# ------------------------------------------------------------------------------------------- cache
def _fields(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "depth": torch.rand(1, 4, 4, generator=g),
        "radiance": torch.rand(3, 4, 4, generator=g),
        "coc_targets": torch.rand(5, 1, 4, 4, generator=g),
        "confidence": torch.rand(1, 4, 4, generator=g),
        "residual": torch.rand(5, generator=g),
    }


def test_cache_round_trip_config_change_and_corruption(tmp_path: Path) -> None:
    cache = SplatCache(tmp_path, "ds:train", CAM.cache_key(), SplatFitConfig())
    cache.save(3, _fields(0))
    again = SplatCache(tmp_path, "ds:train", CAM.cache_key(), SplatFitConfig())
    for key, value in _fields(0).items():
        assert torch.equal(again.load(3)[key], value)
    assert SplatCache(tmp_path, "ds:train", CAM.cache_key(), SplatFitConfig(iters=3)).load(3) is None
    assert SplatCache(tmp_path, "ds:val", CAM.cache_key(), SplatFitConfig()).load(3) is None
    cache.path(3).write_bytes(cache.path(3).read_bytes()[:50])  # truncated entry: refit, never trusted
    assert cache.load(3) is None
    bad = _fields(1)
    bad["depth"][0, 0, 0] = float("nan")
    cache.save(4, bad)
    assert cache.load(4) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_cache_unwritable_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(PermissionError, match="not writable"):
        SplatCache(ro / "x", "ds", "cam", SplatFitConfig())


def test_cache_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match="cache_dir"):
        SplatCache(tmp_path / "file", "ds", "cam", SplatFitConfig())


# ---------------------------------------------------------------------------------------- callback
class _Probe(L.LightningModule):
    """Minimal module that records what the callback attached."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[dict[str, tuple]] = []
        self.renderer = None

    def attach_renderer(self, renderer) -> None:
        self.renderer = renderer

    def training_step(self, batch, batch_idx):
        self.seen.append({k: tuple(batch[k].shape) for k in ("initial_depth", "coc_targets", "confidence", "radiance")})
        return (self.w - batch["initial_depth"].mean()) ** 2

    def validation_step(self, batch, batch_idx):
        assert "initial_depth" in batch

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_callback_attaches_fields_in_a_two_step_fit(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_train=4, num_val=2, num_test=2, size=32, crop_size=24, batch_size=2)
    stage = GaussianSplattingStage(cache_dir=str(tmp_path / "cache"), iters=2)
    probe = _Probe()
    trainer = L.Trainer(
        max_steps=2, limit_val_batches=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, callbacks=[stage],
    )  # fmt: skip
    trainer.fit(probe, dm)
    assert probe.seen[0] == {
        "initial_depth": (2, 1, 24, 24), "coc_targets": (2, 5, 1, 24, 24),
        "confidence": (2, 1, 24, 24), "radiance": (2, 3, 24, 24),
    }  # fmt: skip
    assert probe.renderer is stage.renderer
    fitted = stage.fitted
    assert fitted >= 4  # train batches + the sanity-check val batch
    # a second run over the same data reads the cache and fits nothing
    stage2 = GaussianSplattingStage(cache_dir=str(tmp_path / "cache"), iters=2)
    L.Trainer(
        max_steps=2, limit_val_batches=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, callbacks=[stage2],
    ).fit(_Probe(), dm)  # fmt: skip
    assert stage2.fitted == 0


def test_callback_cuts_cached_full_fit_to_the_batch_crop(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_train=2, size=32, crop_size=20, batch_size=2)
    stage = GaussianSplattingStage(cache_dir=str(tmp_path), iters=1)
    stage.bind(dm)
    batch = next(iter(dm.train_dataloader()))
    stage.attach(batch, "train")
    full = stage.cache("train").load(int(batch["index"][0]))
    from datamodules.base import apply_crop

    assert torch.equal(batch["initial_depth"][0], apply_crop(full["depth"], batch["crop"][0]))


def test_sweep_planes_uniform_in_log_inverse_depth() -> None:
    from dataclasses import replace as dc_replace

    from sdgs.splatting.fit import sweep_planes

    cfg = SplatFitConfig()
    planes = sweep_planes(CAM, cfg, torch.float64, torch.device("cpu"))
    near, far = CAM.depth_range_m
    assert planes.shape == (cfg.sweep_planes,)
    torch.testing.assert_close(planes[[0, -1]], torch.tensor([1 / far, 1 / near], dtype=torch.float64))
    ratios = planes[1:] / planes[:-1]
    torch.testing.assert_close(ratios, ratios[:1].expand_as(ratios))  # constant relative step
    linear = sweep_planes(CAM, dc_replace(cfg, sweep_spacing="inverse"), torch.float64, torch.device("cpu"))
    torch.testing.assert_close(linear[1:] - linear[:-1], (linear[1:] - linear[:-1])[:1].expand(len(linear) - 1))
    with pytest.raises(ValueError, match="sweep_spacing"):
        sweep_planes(CAM, dc_replace(cfg, sweep_spacing="cubic"), torch.float64, torch.device("cpu"))


def test_the_stage_arguments_and_their_help_come_from_the_fit_config() -> None:
    import inspect
    from dataclasses import fields

    helps = SplatFitConfig.help()
    assert set(helps) == {f.name for f in fields(SplatFitConfig)} and all(helps.values())
    params = inspect.signature(GaussianSplattingStage.__init__).parameters
    for f in fields(SplatFitConfig):  # every setting an argument, with the dataclass's default and help
        assert params[f.name].default == f.default, f.name
        assert f"{f.name}: {helps[f.name]}" in GaussianSplattingStage.__doc__
    stage = GaussianSplattingStage(sweep_planes=7, backend="torch", render_layers=4)
    assert stage.config == SplatFitConfig(sweep_planes=7, backend="torch") and stage.renderer.num_layers == 4
    with pytest.raises(TypeError):
        GaussianSplattingStage(no_such_setting=1)


def test_splat_settings_are_parsed_by_the_cli_with_every_config_and_override(tmp_path: Path) -> None:
    from sdgs.cli.lightning import splat_settings

    configs = Path(__file__).resolve().parents[1] / "lightning_configs"
    quick = splat_settings(configs / "quickstart.yaml")
    assert quick["iters"] == 0 and quick["sweep_planes"] == SplatFitConfig().sweep_planes
    assert quick["cache_dir"] == "cache/splat"
    fragment = tmp_path / "fragment.yaml"
    fragment.write_text("splat:\n  num_layers: 4\n")
    got = splat_settings(configs / "fod500.yaml", "--config", str(fragment), "--splat.sweep_filter=box")
    assert (got["iters"], got["num_layers"], got["sweep_filter"]) == (32, 4, "box")
    with pytest.raises(SystemExit):  # jsonargparse validates: not a hand-merge
        splat_settings(configs / "quickstart.yaml", "--splat.sweep_filter=median")


def test_attach_brings_the_radiance_to_the_augmented_colours(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_train=2, size=24, batch_size=2, photometric=True)
    stage = GaussianSplattingStage(cache_dir=str(tmp_path), iters=0)
    stage.bind(dm)
    batch = stage.attach(next(iter(dm.train_dataloader())), "train")
    from datamodules.base import apply_crop

    full = stage.cache("train").load(int(batch["index"][0]))["radiance"]
    expected = apply_crop(full, batch["crop"][0]) * batch["gain"][0].view(3, 1, 1)
    torch.testing.assert_close(batch["radiance"][0], expected)
    assert not torch.equal(batch["gain"][0], torch.ones(3))


def test_strided_fit_returns_full_size_outputs_consistent_with_its_depth() -> None:
    """``fit_stride``: fit at half size with the resized camera, every output back at full size; the CoC
    targets are the thin lens of the upsampled depth, and a depth step is still found (a 128-px scene fitted
    at 64 px, the size the stride-1 tests use)."""
    from sdgs.optics import signed_coc_px

    cam = scene_camera(FOD500, 128)
    g = torch.Generator().manual_seed(3)
    rgb = _texture(128, 128, g, flat=False)
    depth = torch.full((1, 128, 128), 0.6)
    depth[:, 40:88, 48:96] = 0.2
    stack = synthesize_focal_stack(rgb[None], depth[None], FOCUS, cam)
    fit = fit_gaussians(stack, FOCUS[None], cam, config=SplatFitConfig(fit_stride=2))
    assert fit.depth.shape == (1, 1, 128, 128) and fit.radiance.shape == (1, 3, 128, 128)
    assert fit.confidence.shape == (1, 1, 128, 128) and fit.coc_targets.shape == (1, 5, 1, 128, 128)
    torch.testing.assert_close(fit.coc_targets[0, 4], signed_coc_px(fit.depth[0], 1.5, cam))
    z = fit.depth[0, 0]
    # half the pixels also halve the blur in pixels: the near square stays within 25 %, the far wall (barely
    # blurred with these optics) is only placed well behind it (measured 0.24 m and 0.97 m; stride 1: 0.19, 0.60)
    square, wall = float(z[48:80, 56:88].median()), float(z[8:32, 8:120].median())
    assert abs(square / 0.2 - 1) < 0.25 and wall > 2.5 * square, (square, wall)
    with pytest.raises(ValueError, match="fit_stride must be >= 1"):
        fit_gaussians(stack, FOCUS[None], cam, config=SplatFitConfig(fit_stride=0))


def test_cache_entry_holds_its_own_scene_only(tmp_path: Path) -> None:
    """A row of a batched fit is a view of the whole batch: the entry must not carry the other scenes."""
    cache = SplatCache(tmp_path, "data:train", "cam", SplatFitConfig())
    batch = {k: torch.rand(8, 3, 32, 32) for k in ("depth", "radiance", "coc_targets", "confidence")}
    batch["residual"] = torch.rand(8, 3)
    cache.save(0, {k: v[0] for k, v in batch.items()})
    one = sum(v[0].numel() * 4 for v in batch.values())
    assert cache.path(0).stat().st_size < 2 * one + 4096
    torch.testing.assert_close(cache.load(0)["depth"], batch["depth"][0])


def test_fit_images_leave_an_image_out_of_the_fit_but_give_it_coc_targets(step_scene) -> None:
    """``fit_images``: the fit reads the marked images only (a corrupted image left out changes nothing), and every
    image, read or not, gets the thin-lens CoC of the fitted depth at its focus distance."""
    from sdgs.optics import signed_coc_px
    from sdgs.splatting import fit_batch

    stack = step_scene["stack"].clone()
    stack[:, 2] = torch.rand_like(stack[:, 2])  # an image the lens model does not describe
    keep = torch.tensor([True, True, False, True, True])
    fit = fit_gaussians(stack, FOCUS[None], CAM, fit_images=keep)
    alone = fit_gaussians(step_scene["stack"][:, keep], FOCUS[None, keep], CAM)
    torch.testing.assert_close(fit.depth, alone.depth)
    assert fit.coc_targets.shape == (1, 5, 1, 64, 64) and fit.residual.shape == (1, 4)
    torch.testing.assert_close(fit.coc_targets[0, 2], signed_coc_px(fit.depth[0], float(FOCUS[2]), CAM))
    read_all = fit_gaussians(stack, FOCUS[None], CAM, fit_images=torch.ones(5, dtype=torch.bool))
    assert float((read_all.depth - fit.depth).abs().max()) > 0.01  # the noise image is read when marked
    batch = {"stack": stack, "focus_distance": FOCUS[None], "camera": CAM.to_tensors(), "fit_images": keep[None]}
    batch["camera"] = {k: v[None] for k, v in batch["camera"].items()}
    same_camera = fit_gaussians(stack, FOCUS[None], batch["camera"], fit_images=keep)  # float32 tensors, as collated
    torch.testing.assert_close(fit_batch(batch, SplatFitConfig()).depth, same_camera.depth)  # the batch's mask
    with pytest.raises(ValueError, match=r"fit_images must be \(S,\) = \(5,\)"):
        fit_gaussians(stack, FOCUS[None], CAM, fit_images=torch.tensor([True, False]))
