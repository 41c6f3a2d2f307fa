"""`sdgs predict --stack`: the splatting stage as a depth tool on tiny focal stacks written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import kornia
import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.defocus import synthesize_focal_stack
from datamodules.procedural import scene_camera
from sdgs.cli.predict_stack import working_camera
from sdgs.io import write_image
from sdgs.optics import FOD500

REPO = Path(__file__).resolve().parents[1]
FOCUS = (0.1, 0.15, 0.3, 0.7, 1.5)


def write_plane_scene(
    folder: Path,
    depth_m: float,
    size: int = 48,
    seed: int = 3,
    gt: bool = True,
    texture_px: float = 1.5,
    f_number: float = 1.0,
) -> None:
    """A fronto-parallel textured plane at ``depth_m``, FoD500 optics, 8-bit PNG stack + stack.json.

    Texture: white noise blurred by sigma ``texture_px``, contrast std 0.15 (the fit's depth is then within ~2 % at
    0.5 m; at 0.4 m the layered synthesis and the renderer already disagree by ~4 %).
    """
    g = torch.Generator().manual_seed(seed)
    k = 2 * round(3 * texture_px) + 1
    rgb = kornia.filters.gaussian_blur2d(torch.rand(1, 3, size, size, generator=g), (k, k), (texture_px, texture_px))
    rgb = ((rgb - rgb.mean()) * (0.15 / rgb.std()) + 0.5).clamp(0, 1)
    cam = replace(scene_camera(FOD500, size), f_number=f_number)
    depth = torch.full((1, 1, size, size), depth_m)
    stack = synthesize_focal_stack(rgb, depth, torch.tensor(FOCUS), cam)[0]
    folder.mkdir(parents=True)
    for i, img in enumerate(stack):
        write_image(folder / f"{i:03d}.png", img.permute(1, 2, 0).numpy())
    (folder / "stack.json").write_text(json.dumps({"focus_distances_m": list(FOCUS), "camera": cam.to_json()}))
    if gt:
        Image.fromarray(np.full((size, size), round(depth_m * 1000), np.uint16)).save(folder / "depth.png")


def predict(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "sdgs.cli", "predict", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_working_camera_keeps_the_pitch_per_camera_width() -> None:
    cam = working_camera(FOD500, 300, 600)  # camera 256 px wide: the stack is fitted at 256 x 128
    assert (cam.width_px, cam.height_px) == (256, 128) and cam.pixel_size_m == FOD500.pixel_size_m
    big = working_camera(FOD500.resize(3000, 4000), 3000, 4000, max_pixels=640 * 480)
    assert big.width_px * big.height_px <= 640 * 480 and big.width_px == 640
    assert big.pixel_size_m == pytest.approx(FOD500.pixel_size_m * 256 / 640)  # same sensor, coarser pixels


@pytest.mark.slow  # sdgs subprocesses, ~10-30 s each on 2 cores
def test_predict_stack_folder_of_scenes_writes_good_and_skips_bad(tmp_path: Path) -> None:
    root = tmp_path / "stacks"
    write_plane_scene(root / "plane", 0.5)
    write_plane_scene(root / "other", 0.3, seed=2, gt=False)
    write_plane_scene(root / "missing_image", 0.5, seed=3, gt=False)
    (root / "missing_image" / "002.png").unlink()
    meta = {"focus_distances_m": [0.1, 0.3], "camera": "fod500"}  # 2 distances for 3 images
    write_plane_scene(root / "wrong_count", 0.5, seed=4, gt=False)
    (root / "wrong_count" / "003.png").unlink()
    (root / "wrong_count" / "004.png").unlink()
    (root / "wrong_count" / "stack.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    proc = predict("--stack", str(root), "--out", str(out), "--iters", "32")
    assert proc.returncode == 1, proc.stderr[-2000:]  # scenes were skipped
    assert "predicted 2 of 4 scenes" in proc.stdout
    assert "skipped missing_image" in proc.stderr and "skipped wrong_count" in proc.stderr
    assert "2 focus distances for 3 images" in proc.stderr
    assert "working resolution 48x48" in proc.stdout
    names = sorted(p.name for p in out.iterdir())
    suffixes = ("_depth.npy", "_depth.png", "_confidence.png", "_aif.png", "_preview.png")
    expected = sorted([f"{s}{x}" for s in ("plane", "other") for x in suffixes] + ["metrics.json"])
    assert names == expected  # nothing of the bad scenes, no temporary files
    for scene in ("plane", "other"):
        depth = np.load(out / f"{scene}_depth.npy")
        conf = np.asarray(Image.open(out / f"{scene}_confidence.png")) / 255.0
        aif = np.asarray(Image.open(out / f"{scene}_aif.png"))
        png = np.asarray(Image.open(out / f"{scene}_depth.png"))
        assert depth.shape == conf.shape == png.shape == aif.shape[:2] == (48, 48)
        assert np.isfinite(depth).all() and np.isfinite(conf).all() and aif.std() > 5
        assert png.dtype == np.uint16 and abs(int(np.median(png)) - 1000 * np.median(depth)) <= 1
    depth = np.load(out / "plane_depth.npy")
    confident = np.asarray(Image.open(out / "plane_confidence.png")) / 255.0 >= 0.5
    assert confident.mean() > 0.25, f"only {confident.mean():.0%} confident"
    rel = np.abs(depth[confident] - 0.5) / 0.5
    assert np.mean(rel) < 0.05, f"mean relative error {np.mean(rel):.3f} on confident pixels"
    summary = json.loads((out / "metrics.json").read_text())
    metrics = summary["scenes"]
    assert summary["mean"]["confident"] == metrics["plane"]["confident"]
    assert list(metrics) == ["plane"]  # only the scene with ground truth
    assert metrics["plane"]["confident"]["abs_rel"] == pytest.approx(np.mean(rel), abs=2e-3)
    assert metrics["plane"]["confident"]["delta1"] == 1.0 and metrics["plane"]["confident_fraction"] > 0.25
    assert "plane: " in proc.stdout and "AbsRel" in proc.stdout


@pytest.mark.slow  # sdgs subprocesses, ~10-30 s each on 2 cores
def test_predict_stack_one_scene_downscale_and_refine(tmp_path: Path) -> None:
    # fitted at half size: twice the aperture and twice the texture scale make the working-size stack
    # the 48-px scene of the test above (same CoC and texture in working pixels)
    write_plane_scene(tmp_path / "plane", 0.5, size=96, texture_px=3.0, f_number=0.5)
    out = tmp_path / "out"
    proc = predict("--stack", str(tmp_path / "plane"), "--out", str(out), "--max_pixels", "2304", "--iters", "32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "working resolution 48x48 (downscale-and-refine)" in proc.stdout
    depth = np.load(out / "plane_depth.npy")
    conf = np.asarray(Image.open(out / "plane_confidence.png")) / 255.0
    assert depth.shape == conf.shape == (96, 96) and np.isfinite(depth).all()
    assert (conf >= 0.5).mean() > 0.25 and np.mean(np.abs(depth[conf >= 0.5] - 0.5)) / 0.5 < 0.05


def test_predict_photo_averages_the_mirrored_photo_in_log_depth() -> None:
    """``flip_average``: the depth of the photo and the mirrored depth of its mirror image, geometric mean."""
    import numpy as np

    from sdgs.optics import DFD_INDOOR
    from sdgs.predict import predict_photo

    class Ramp:  # depth grows left to right with the image's mean brightness per column
        def predict_depth(self, image, focus_m, camera):
            return {"depth": 1.0 + image.mean(1, keepdim=True).cumsum(-1)}

    rgb = np.random.default_rng(0).random((20, DFD_INDOOR.width_px, 3)).astype(np.float32)
    plain = predict_photo(Ramp(), rgb, 1.7, DFD_INDOOR, flip_average=False)
    both = predict_photo(Ramp(), rgb, 1.7, DFD_INDOOR)
    mirrored = predict_photo(Ramp(), rgb[:, ::-1], 1.7, DFD_INDOOR, flip_average=False)[:, ::-1]
    np.testing.assert_allclose(both, np.sqrt(plain * mirrored), rtol=1e-5)
    assert not np.allclose(plain, mirrored)  # the ramp is not mirror-symmetric: the average did something


def test_predict_photo_smooths_log_depth_with_the_models_own_sigma_by_default() -> None:
    """``smooth_px``: a Gaussian of σ px on log depth; None = the model's ``predict_smooth_px`` (0 without one)."""
    import numpy as np

    from sdgs.optics import DFD_INDOOR, gaussian_psf_blur
    from sdgs.predict import predict_photo

    class Speckled:  # depth 1-3 m, different at every pixel
        hparams: dict = {}

        def predict_depth(self, image, focus_m, camera):
            return {"depth": 1.0 + 2.0 * image.mean(1, keepdim=True)}

    rgb = np.random.default_rng(1).random((40, DFD_INDOOR.width_px, 3)).astype(np.float32)
    model = Speckled()
    raw = predict_photo(model, rgb, 1.7, DFD_INDOOR, flip_average=False)
    np.testing.assert_allclose(predict_photo(model, rgb, 1.7, DFD_INDOOR, flip_average=False, smooth_px=0.0), raw)
    smooth = predict_photo(model, rgb, 1.7, DFD_INDOOR, flip_average=False, smooth_px=3.0)
    expected = gaussian_psf_blur(torch.from_numpy(np.log(raw))[None, None], 3.0).exp()[0, 0].numpy()
    np.testing.assert_allclose(smooth, expected, rtol=1e-5)
    assert smooth.std() < 0.5 * raw.std()  # the speckle is averaged away
    model.hparams = {"predict_smooth_px": 3.0}  # the checkpoint's own value is the default
    np.testing.assert_allclose(predict_photo(model, rgb, 1.7, DFD_INDOOR, flip_average=False), smooth, rtol=1e-6)
    with pytest.raises(ValueError, match="smooth_px"):
        predict_photo(model, rgb, 1.7, DFD_INDOOR, smooth_px=-1.0)
    from sdgs.lit.module import SDGSModule

    with pytest.raises(ValueError, match="predict_smooth_px"):
        SDGSModule(predict_smooth_px=-1.0)
