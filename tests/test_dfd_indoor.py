"""DFD-indoor DataModule on tiny files written in the published layout (JPG + uint16 PNG, timestamp names)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import DataError, DFDIndoorDataModule
from datamodules.dfd_indoor import fill_depth_holes, pair_by_timestamp
from sdgs.io import write_image
from sdgs.optics import DFD_INDOOR, NYUV2, get_camera

H, W = 24, 36
T0 = datetime(2018, 4, 26, 17, 26, 34, 505212)


def _name(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _image(scene: int, aperture: str) -> np.ndarray:
    """Flat blocks that survive JPEG: a bright top-left quadrant; green codes the scene, blue the aperture."""
    rgb = np.zeros((H, W, 3), np.float32)
    rgb[: H // 2, : W // 2, 0] = 1.0
    rgb[..., 1] = scene / 10
    rgb[..., 2] = 0.8 if aperture == "N8" else 0.2
    return rgb


def _depth_mm(scene: int) -> np.ndarray:
    """uint16 mm: 1000 + 100 * scene + 10 * column, a hole (0) at the bottom-right corner."""
    mm = 1000 + 100 * scene + 10 * np.arange(W)[None, :].repeat(H, 0)
    mm[-3:, -3:] = 0
    return mm.astype(np.uint16)


def _write(root: Path, split: str, images: dict[int, float], depths: dict[int, float]) -> None:
    """Scene -> capture time (s after T0) of its image and of its depth map, in both aperture folders."""
    for aperture in ("N2_8", "N8"):
        base = root / f"dfd_dataset_indoor_{aperture}"
        (base / "rgb" / split).mkdir(parents=True, exist_ok=True)
        (base / "depth" / split).mkdir(parents=True, exist_ok=True)
        for scene, t in images.items():
            write_image(base / "rgb" / split / f"{_name(t)}.JPG", _image(scene, aperture))
        for scene, t in depths.items():
            Image.fromarray(_depth_mm(scene)).save(base / "depth" / split / f"{_name(t)}.png")


@pytest.fixture()
def dfd_root(tmp_path: Path) -> Path:
    # train: depth up to 0.3 s before or after its image
    _write(tmp_path, "train", {0: 0.0, 1: 40.0, 2: 80.0, 3: 120.0}, {0: 0.3, 1: 39.8, 2: 80.25, 3: 119.9})
    # test: scene 5 has no depth; sorted order would pair it with scene 6's depth and scene 6 with scene 7's
    _write(tmp_path, "test", {4: 0.0, 5: 10.0, 6: 20.0, 7: 20.9}, {4: 0.1, 6: 20.2, 7: 20.75})
    return tmp_path


def _scene_of(item: dict) -> int:
    return int(round(float(item["stack"][0, 1].mean()) * 10))


def test_pairs_by_nearest_timestamp_and_warns_once(dfd_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    dm = DFDIndoorDataModule(str(dfd_root), aperture="N2_8", val_fraction=0.25)
    with caplog.at_level(logging.WARNING, logger="datamodules.dfd_indoor"):
        dm.setup()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and _name(10.0) in warnings[0] and "test" in warnings[0]
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [3, 1, 3]
    for split, scenes in (("train", [0, 1, 2]), ("val", [3]), ("test", [4, 6, 7])):
        ds = dm.dataset(split)
        for i, scene in enumerate(scenes):
            item = ds.load(i)
            assert _scene_of(item) == scene, f"{split}[{i}]"
            # the depth is the scene's own: 1 m + 0.1 m per scene + 1 cm per column
            assert float(item["depth"][0, 0, 0]) == pytest.approx(1.0 + 0.1 * scene, abs=1e-6)


def test_real_item_values_orientation_and_camera(dfd_root: Path) -> None:
    dm = DFDIndoorDataModule(str(dfd_root), aperture="N2_8", val_fraction=0.25)
    item = dm.dataset("test")[0]
    assert item["stack"].shape == (1, 3, H, W) and item["depth"].shape == (1, H, W)
    torch.testing.assert_close(item["focus_distance"], torch.tensor([1.7]))
    red = item["stack"][0, 0]
    assert float(red[: H // 2 - 2, : W // 2 - 2].mean()) > 0.9 and float(red[H // 2 + 2 :, :].mean()) < 0.1
    assert float(red[:, W // 2 + 2 :].mean()) < 0.1  # bright block top-LEFT: rows and columns not swapped
    assert float(item["stack"][0, 2].mean()) == pytest.approx(0.2, abs=0.03)  # the f/2.8 folder's image
    depth = item["depth"][0]
    np.testing.assert_allclose(depth[0].numpy(), 1.4 + 0.01 * np.arange(W), rtol=1e-6)  # mm -> m along columns
    assert (depth[-3:, -3:] == 0).all() and (depth[:-3] > 0).all()  # 0 mm stays invalid
    cam = item["camera"]
    assert float(cam["f_number"]) == pytest.approx(2.8) and float(cam["focal_length_m"]) == pytest.approx(0.035)
    assert float(cam["pixel_size_m"]) == pytest.approx(36e-6 * 645 / W)  # the pitch follows the image width
    sharp = DFDIndoorDataModule(str(dfd_root), aperture="N8").dataset("train")[0]
    assert float(sharp["camera"]["f_number"]) == pytest.approx(8.0)
    assert float(sharp["stack"][0, 2].mean()) == pytest.approx(0.8, abs=0.03)
    assert get_camera("dfd_indoor") is DFD_INDOOR and DFD_INDOOR.focus_distances_m == (1.7,)


def test_synthesized_stack_from_the_f8_image(dfd_root: Path, tmp_path: Path) -> None:
    # the nyuv2 preset's optics opened to f/1, so that blur shows at 18 px wide
    lens = tmp_path / "lens.json"
    lens.write_text(json.dumps({**NYUV2.to_json(), "f_number": 1.0}))
    cache = tmp_path / "cache"
    dm = DFDIndoorDataModule(
        str(dfd_root), synthesize=True, synth_camera=str(lens), width=18, val_fraction=0.25, cache_dir=str(cache)
    )
    item = dm.dataset("test")[1]
    assert _scene_of(item) == 6
    assert item["stack"].shape == (5, 3, 12, 18) and item["depth"].shape == (1, 12, 18)
    torch.testing.assert_close(item["focus_distance"], torch.tensor(NYUV2.focus_distances_m))
    # synthesised from the f/8 image (blue 0.8), blurred: the far focus blurs the 1.6-2 m scene more
    assert float(item["stack"][:, 2].mean()) == pytest.approx(0.8, abs=0.03)
    assert (item["depth"][0, -1, -1] == 0) and float(item["depth"][0, 0, 0]) == pytest.approx(1.6, abs=0.011)
    cam = item["camera"]
    assert float(cam["f_number"]) == 1.0 and float(cam["focal_length_m"]) == pytest.approx(0.05)
    assert float(cam["pixel_size_m"]) == pytest.approx(12e-6 * 320 / 18)
    edge = lambda img: float((img[0, :, 1:] - img[0, :, :-1]).abs().amax())  # noqa: E731  red step sharpness
    assert edge(item["stack"][4]) < edge(item["stack"][1])  # focus 6 m blurs more than 1.5 m
    again = dm.dataset("test")[1]  # from the cache
    torch.testing.assert_close(again["stack"], item["stack"])
    assert len(list(cache.glob("*/*.npy"))) == 1
    default = DFDIndoorDataModule(str(dfd_root), synthesize=True).dataset("train")[0]
    assert default["stack"].shape == (5, 3, 213, 320) and float(default["camera"]["f_number"]) == 8.0


def test_missing_test_split_and_bad_names(tmp_path: Path) -> None:
    _write(tmp_path, "train", {0: 0.0, 1: 40.0}, {0: 0.1, 1: 40.1})
    dm = DFDIndoorDataModule(str(tmp_path))
    with pytest.raises(DataError, match="no DFD-indoor test split"):
        dm.dataset("test")
    with pytest.raises(DataError, match="DFD-indoor image folder not found"):
        DFDIndoorDataModule(str(tmp_path / "nowhere")).setup()
    write_image(tmp_path / "dfd_dataset_indoor_N8" / "rgb" / "train" / "IMG_0001.JPG", _image(0, "N8"))
    with pytest.raises(DataError, match="IMG_0001.JPG: the name is not a capture timestamp"):
        DFDIndoorDataModule(str(tmp_path), aperture="N8").setup()
    with pytest.raises(ValueError, match="aperture must be one of"):
        DFDIndoorDataModule(str(tmp_path), aperture="N4")


def test_pair_by_timestamp_and_hole_filling() -> None:
    images = [Path(f"{_name(t)}.JPG") for t in (5.0, 0.0, 3.0)]
    depths = [Path(f"{_name(t)}.png") for t in (0.2, 5.5, 1.2)]
    pairs, orphans = pair_by_timestamp(images, depths, max_gap_s=1.0)
    assert [(a.stem, b.stem) for a, b in pairs] == [(_name(0.0), _name(0.2)), (_name(5.0), _name(5.5))]
    assert orphans == [Path(f"{_name(3.0)}.JPG")]  # 1.8 s from its nearest depth
    depth = torch.tensor([[[2.0, 0.0, 0.0, 4.0]]])
    filled = fill_depth_holes(depth)
    torch.testing.assert_close(filled, torch.tensor([[[2.0, 2.0, 4.0, 4.0]]]))
    with pytest.raises(DataError, match="no valid pixel"):
        fill_depth_holes(torch.zeros(1, 2, 2))


def _synth_real(dfd_root: Path, **kw) -> DFDIndoorDataModule:
    """Stacks as lightning_configs/dfd_indoor.yaml builds them, at the tiny files' own width."""
    args = {"synthesize": True, "synth_camera": "dfd_indoor", "synth_focus_m": [1.0, 3.0], "real_in_stack": True}
    return DFDIndoorDataModule(str(dfd_root), width=W, val_fraction=0.25, **{**args, **kw})


def test_real_photo_appended_to_the_synthesised_stack(dfd_root: Path) -> None:
    item = _synth_real(dfd_root).dataset("test")[1]
    assert _scene_of(item) == 6 and item["stack"].shape == (3, 3, H, W)
    torch.testing.assert_close(item["focus_distance"], torch.tensor([1.0, 3.0, 1.7]))
    # synthesised from the f/8 photo (blue 0.8), the last image is the scene's own f/2.8 photo (blue 0.2)
    assert float(item["stack"][0, 2].mean()) == pytest.approx(0.8, abs=0.03)
    assert float(item["stack"][2, 2].mean()) == pytest.approx(0.2, abs=0.03)
    assert int(round(float(item["stack"][2, 1].mean()) * 10)) == 6
    assert float(item["camera"]["f_number"]) == pytest.approx(2.8)  # the real lens, one camera per stack
    control = _synth_real(dfd_root, real_aperture="N8").dataset("test")[1]
    assert float(control["stack"][2, 2].mean()) == pytest.approx(0.8, abs=0.03)
    assert _synth_real(dfd_root).identity != _synth_real(dfd_root, real_aperture="N8").identity


def test_depth_scales_move_training_scenes_farther(dfd_root: Path, tmp_path: Path) -> None:
    """Each training scene once per factor: depth times k, its stack re-synthesised, the real photo replaced by
    its synthesised twin at the same focus; validation stays as captured."""
    dm = _synth_real(dfd_root, depth_scales=[1.0, 2.0], cache_dir=str(tmp_path / "stacks"))
    train = dm.dataset("train")
    assert len(train) == 2 * len(_synth_real(dfd_root).dataset("train")) == 6
    assert len(dm.dataset("val")) == len(_synth_real(dfd_root).dataset("val"))
    captured, moved = train.load(1), train.load(4)
    assert _scene_of(captured) == _scene_of(moved)
    torch.testing.assert_close(moved["depth"], 2 * captured["depth"])  # holes stay 0
    torch.testing.assert_close(moved["focus_distance"], captured["focus_distance"])  # [1.0, 3.0, 1.7]
    assert float(captured["stack"][2, 2].mean()) == pytest.approx(0.2, abs=0.03)  # the real f/2.8 photo
    assert float(moved["stack"][2, 2].mean()) == pytest.approx(0.8, abs=0.03)  # its twin, from the f/8 photo
    assert "times 2" in train.describe(4) and "times" not in train.describe(1)
    assert dm.identity != _synth_real(dfd_root).identity  # the teacher's cache keeps moved scenes apart
    torch.testing.assert_close(train.load(4)["stack"], moved["stack"])  # from the cache
    with pytest.raises(ValueError, match="data.synthesize=true"):
        DFDIndoorDataModule(str(dfd_root), depth_scales=[1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        _synth_real(dfd_root, depth_scales=[1.0, 0.0])


def test_real_in_training_false_gives_training_stacks_twins_only(dfd_root: Path) -> None:
    """No real photo in any training stack (its twin instead, at every scale); validation keeps the real photo."""
    dm = _synth_real(dfd_root, depth_scales=[1.0, 2.0], real_in_training=False)
    train, val = dm.dataset("train"), dm.dataset("val")
    captured, moved = train.load(1), train.load(4)
    torch.testing.assert_close(captured["focus_distance"], torch.tensor([1.0, 3.0, 1.7]))
    assert float(captured["stack"][2, 2].mean()) == pytest.approx(0.8, abs=0.03)  # the twin, from the f/8 photo
    assert float(moved["stack"][2, 2].mean()) == pytest.approx(0.8, abs=0.03)
    torch.testing.assert_close(moved["depth"], 2 * captured["depth"])
    assert float(val.load(0)["stack"][2, 2].mean()) == pytest.approx(0.2, abs=0.03)  # the real f/2.8 photo
    assert dm.identity != _synth_real(dfd_root, depth_scales=[1.0, 2.0]).identity  # the teacher refits
    with pytest.raises(ValueError, match="data.real_in_stack=true"):
        _synth_real(dfd_root, real_in_stack=False, real_in_training=False)


def test_real_in_teacher_false_marks_the_real_photo_out_of_the_fit(dfd_root: Path) -> None:
    """Every item of a stack with a real photo says which images the splatting stage fits: all of them by default;
    with ``real_in_teacher=False`` not the real photo (still the stack's last image), while a moved copy's
    synthesised twin is fitted."""
    default = _synth_real(dfd_root, depth_scales=[1.0, 2.0]).dataset("train")
    assert default.load(1)["fit_images"].tolist() == [True, True, True]
    dm = _synth_real(dfd_root, depth_scales=[1.0, 2.0], real_in_teacher=False)
    train, val = dm.dataset("train"), dm.dataset("val")
    captured, moved = train.load(1), train.load(4)
    assert captured["fit_images"].tolist() == [True, True, False]
    assert float(captured["stack"][2, 2].mean()) == pytest.approx(0.2, abs=0.03)  # the real photo, unfitted
    assert moved["fit_images"].tolist() == [True, True, True]
    assert val.load(0)["fit_images"].tolist() == [True, True, False]
    assert dm.identity != _synth_real(dfd_root, depth_scales=[1.0, 2.0]).identity  # the teacher refits
    assert "fit_images" not in _synth_real(dfd_root, real_in_stack=False).dataset("train").load(1)


def test_twin_base_blur_softens_the_twins_only(dfd_root: Path) -> None:
    """``twin_base_blur_px``: a moved copy's twin of the real photo gets the extra blur; its other synthesised
    images and the captured scene's real photo do not."""
    plain = _synth_real(dfd_root, depth_scales=[1.0, 2.0]).dataset("train")
    dm = _synth_real(dfd_root, depth_scales=[1.0, 2.0], twin_base_blur_px=1.0)
    soft = dm.dataset("train")
    a, b = plain.load(4)["stack"], soft.load(4)["stack"]  # a moved copy: [synth 1 m, synth 3 m, twin 1.7 m]
    torch.testing.assert_close(a[:2], b[:2])
    assert float((a[2] - b[2]).abs().max()) > 0.05  # the block edges soften
    edge = lambda img: float(img[0, H // 2 - 1 : H // 2 + 1].diff(dim=0).abs().mean())  # noqa: E731
    assert edge(b[2]) < edge(a[2])
    torch.testing.assert_close(plain.load(1)["stack"], soft.load(1)["stack"])  # the real photo as captured
    assert dm.identity != _synth_real(dfd_root, depth_scales=[1.0, 2.0]).identity
    with pytest.raises(ValueError, match="twin_base_blur_px"):
        _synth_real(dfd_root, twin_base_blur_px=-1.0).dataset("train")


def test_real_in_stack_refuses_another_lens_and_a_missing_partner(dfd_root: Path) -> None:
    with pytest.raises(ValueError, match="synth_camera=dfd_indoor"):
        DFDIndoorDataModule(str(dfd_root), synthesize=True, real_in_stack=True)  # nyuv2 optics
    with pytest.raises(ValueError, match="real_aperture must be one of"):
        _synth_real(dfd_root, real_aperture="N4")
    depth = dfd_root / "dfd_dataset_indoor_N2_8" / "depth" / "train" / f"{_name(39.8)}.png"
    depth.unlink()  # scene 1 keeps its f/8 depth map only
    with pytest.raises(DataError, match=rf"lacks 1 depth map.*{_name(39.8)}"):
        _synth_real(dfd_root).setup()


def test_vertical_flip_off_keeps_the_floor_down(dfd_root: Path) -> None:
    """Real rooms have an up: with ``vertical_flip=False`` training items flip left-right only."""
    for vertical, expect in ((True, {0, 1}), (False, {0})):
        ds = DFDIndoorDataModule(str(dfd_root), val_fraction=0.25, vertical_flip=vertical).dataset("train")
        items = [ds[0] for _ in range(24)]
        assert {int(x["crop"][5]) for x in items} == expect
        assert {int(x["crop"][4]) for x in items} == {0, 1}
        if not vertical:  # the bright block stays in the top half
            assert all(
                float(x["stack"][0, 0, : H // 2].mean()) > float(x["stack"][0, 0, H // 2 :].mean()) for x in items
            )


@pytest.mark.slow
def test_real_photo_config_trains_self_supervised_on_tiny_files(dfd_root: Path, tmp_path: Path) -> None:
    """``lightning_configs/dfd_indoor.yaml`` as a user runs it, on tiny files in the published layout: the stacks
    with the real photo appended, the splatting teacher, the strided networks; ground truth poisoned in training."""
    import csv

    from tests.test_cli import CSV, sdgs

    for scene in range(8, 14):  # more training scenes: two batches an epoch
        t = 200.0 + 10 * scene
        _write(dfd_root, "train", {scene: t}, {scene: t + 0.1})
    args = [
        "fit", "--config", "lightning_configs/dfd_indoor.yaml", "--config", CSV,
        f"--data.init_args.data_dir={dfd_root}", f"--data.init_args.width={W}", "--data.init_args.batch_size=3",
        "--data.init_args.photometric=false",
        "--data.init_args.num_workers=0", f"--data.init_args.cache_dir={tmp_path / 'stacks'}",
        "--data.init_args.synth_focus_m=[1.0, 3.0]", "--model.test_focus_index=2", "--trainer.max_steps=90",
        # the captured rooms only: at 36 px the blur is under a pixel, so a moved copy would look like its room
        # with another depth (test_depth_scales_move_training_scenes_farther covers the copies)
        "--data.init_args.depth_scales=[1.0]",
        "--trainer.val_check_interval=45", "--trainer.enable_progress_bar=false", "--model.lr=0.002",
        "--trainer.log_every_n_steps=2",
        f"--trainer.default_root_dir={tmp_path / 'run'}", f"--splat.cache_dir={tmp_path / 'splat'}",
        "--trainer.callbacks+=tests.helpers.NaNGroundTruth",
    ]  # fmt: skip
    sdgs(*args, cwd=Path(__file__).parents[1])
    rows = list(csv.DictReader((tmp_path / "run" / "logs" / "version_0" / "metrics.csv").open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 45 and sum(losses[-9:]) < 0.8 * sum(losses[:9]), losses
    val = [float(r["val/abs_rel"]) for r in rows if r.get("val/abs_rel")]
    assert len(val) == 2 and all(np.isfinite(val))
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
