"""DataModules on tiny files the tests write in the real formats: values, orientation, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from datamodules import (
    DataError,
    FocalStackFolderDataModule,
    FoD500DataModule,
    NYUv2DataModule,
    SyntheticDataModule,
)
from datamodules.base import FocalStackDataModule, StackDataset, make_item
from datamodules.fod500 import FoD500Dataset, write_fod500_sample
from datamodules.procedural import make_scene, write_procedural_dataset
from sdgs.io import read_exr_depth, read_image, write_exr_depth, write_image
from sdgs.optics import FOD500, NYUV2


def _gradient_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Distinct content per pixel so orientation errors show: R = row, G = column, B = seed."""
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[..., 0] = np.arange(h)[:, None] / (h - 1)
    rgb[..., 1] = np.arange(w)[None, :] / (w - 1)
    rgb[..., 2] = (seed % 5) / 4
    return rgb


def _write_fod500(root: Path, indices: list[int], h: int = 12, w: int = 16) -> None:
    for i in indices:
        stack = np.stack([_gradient_image(h, w, k) for k in range(5)])
        depth = 0.1 + np.arange(h * w, dtype=np.float32).reshape(h, w) / (h * w) * 2 + i * 1e-3
        write_fod500_sample(root, i, stack, depth)


# ------------------------------------------------------------------------------------------ FoD500
def test_fod500_values_orientation_and_split(tmp_path: Path) -> None:
    _write_fod500(tmp_path, [0, 1, 2, 398, 399, 400, 401])
    dm = FoD500DataModule(str(tmp_path), val_fraction=0.2, batch_size=2)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [4, 1, 2]
    item = dm.dataset("test")[0]
    assert item["stack"].shape == (5, 3, 12, 16) and int(item["index"]) == 0
    assert dm.dataset("test").describe(0).startswith("FoD500 scene 000400")
    torch.testing.assert_close(item["focus_distance"], torch.tensor(FOD500.focus_distances_m))
    img = item["stack"][2]  # k = 2: blue = 2/4
    assert abs(float(img[2].mean()) - 0.5) < 1 / 255
    assert float(img[0, -1, 0]) == pytest.approx(1.0, abs=1 / 255) and float(img[0, 0, -1]) == 0.0  # rows
    assert float(img[1, 0, -1]) == pytest.approx(1.0, abs=1 / 255)  # columns
    expected = 0.1 + np.arange(12 * 16).reshape(12, 16) / (12 * 16) * 2 + 0.4
    np.testing.assert_allclose(item["depth"][0].numpy(), expected, rtol=1e-3)  # half float
    batch = next(iter(dm.test_dataloader()))
    assert batch["stack"].shape == (2, 5, 3, 12, 16) and batch["camera"]["focal_length_m"].shape == (2,)


def test_fod500_train_crop_and_flip_keep_alignment(tmp_path: Path) -> None:
    _write_fod500(tmp_path, [0, 1, 2])
    ds = FoD500Dataset(tmp_path, [0], crop_size=8, augment=True)
    for _ in range(5):
        item = ds[0]
        assert item["stack"].shape == (5, 3, 8, 8)
        # R encodes the row and depth increases along rows/cols: the same crop/flip hit both
        r_rows = item["stack"][0, 0, :, 0]
        d_rows = item["depth"][0, :, 0]
        assert torch.sign(r_rows[-1] - r_rows[0]) == torch.sign(d_rows[-1] - d_rows[0])
        assert float(item["camera"]["width_px"]) == 8


class _BlankStacks(StackDataset):
    """Cheap 32x32 samples: only the augmentation (the ``crop`` record) varies."""

    def __len__(self) -> int:
        return 8

    def load(self, i: int) -> dict[str, torch.Tensor]:
        return make_item(torch.zeros(2, 3, 32, 32), [0.3, 0.7], None, FOD500, i)


class _BlankModule(FocalStackDataModule):
    def build_datasets(self) -> dict[str, StackDataset]:
        return {"train": _BlankStacks(crop_size=8, augment=True)}


def _augmentations(num_workers: int, seed: int, epochs: int = 1, model_draws: int = 0) -> list[list[tuple[int, ...]]]:
    """Per epoch, the ``(index, top, left, flip_x, flip_y)`` of every train sample in loader order.

    ``model_draws``: numbers drawn from the global RNG after the loader is built, as a model's
    initialisation or dropout would.
    """
    torch.manual_seed(seed)  # what seed_everything does
    loader = _BlankModule(batch_size=1, num_workers=num_workers).train_dataloader()
    torch.rand(model_draws)
    out = []
    for _ in range(epochs):
        rows = [torch.cat([b["index"], b["crop"][0, [0, 1, 4, 5]]]) for b in loader]
        out.append([tuple(int(v) for v in r) for r in rows])
    return out


def test_workers_get_distinct_augmentation_streams_repeatable_per_seed() -> None:
    (run,) = _augmentations(num_workers=2, seed=3)
    assert sorted(r[0] for r in run) == list(range(8))  # shuffled, each sample once
    # batch k comes from worker k % 2; identically seeded workers would repeat each other's crops
    worker0, worker1 = [r[1:] for r in run[0::2]], [r[1:] for r in run[1::2]]
    assert worker0 != worker1
    assert _augmentations(num_workers=2, seed=3) == [run]  # same seed: same order and crops
    assert _augmentations(num_workers=2, seed=3, model_draws=100) == [run]  # the data seed alone decides
    assert _augmentations(num_workers=2, seed=4) != [run]


def test_in_process_augmentation_repeats_per_seed_and_varies_per_epoch() -> None:
    first, second = _augmentations(num_workers=0, seed=3, epochs=2)
    assert [r[1:] for r in first] != [r[1:] for r in second]  # the stream goes on across epochs
    assert _augmentations(num_workers=0, seed=3, epochs=2, model_draws=100) == [first, second]
    assert _augmentations(num_workers=0, seed=5) != [first]


def test_exr_half_float_round_trip(tmp_path: Path) -> None:
    depth = np.linspace(0.1, 3.0, 20, dtype=np.float32).reshape(4, 5)
    write_exr_depth(tmp_path / "d.exr", depth)
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "d.exr")) as f:
        channels = f.channels()  # OpenEXR 3 groups R, G, B into "RGB"
        pixels = channels["RGB"].pixels if "RGB" in channels else channels["R"].pixels
        assert pixels.dtype == np.float16  # HALF, as FoD500
    np.testing.assert_allclose(read_exr_depth(tmp_path / "d.exr"), depth, rtol=1e-3)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda root: (root / "000001_03All.tif").unlink(), "missing image"),
        (lambda root: (root / "000001_02All.tif").write_bytes(b"II*\x00garbage"), "cannot read image"),
        (
            lambda root: (root / "000001Dpt.exr").write_bytes((root / "000001Dpt.exr").read_bytes()[:60]),
            "cannot read EXR",
        ),
        (lambda root: write_exr_depth(root / "000001Dpt.exr", np.ones((5, 5))), "depth is"),
        (lambda root: write_exr_depth(root / "000001Dpt.exr", np.full((12, 16), np.nan)), "NaN"),
        (lambda root: write_exr_depth(root / "000001Dpt.exr", -np.ones((12, 16))), "negative"),
        (lambda root: write_image(root / "000001_04All.tif", np.zeros((10, 16, 3))), "04All.tif: image is 16x10 px"),
    ],
)
def test_fod500_bad_files_name_the_file(tmp_path: Path, damage, match: str) -> None:
    _write_fod500(tmp_path, [0, 1])
    damage(tmp_path)
    ds = FoD500Dataset(tmp_path, [0, 1])
    ds[0]  # the intact scene still loads
    with pytest.raises(DataError, match=match) as info:
        ds[1]
    assert "000001" in str(info.value)


def test_fod500_skip_bad_logs_and_continues(tmp_path: Path, caplog) -> None:
    _write_fod500(tmp_path, [0, 1])
    (tmp_path / "000001_00All.tif").unlink()
    ds = FoD500Dataset(tmp_path, [0, 1], skip_bad=True)
    assert torch.equal(ds[1]["stack"], ds[0]["stack"])  # scene 1 skipped: the next good one
    assert "skipping bad sample" in caplog.text


def test_fod500_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        FoD500DataModule(str(tmp_path / "nope")).setup()
    with pytest.raises(DataError, match="sdgs synth"):
        FoD500DataModule(str(tmp_path)).setup()


# ------------------------------------------------------------------------------------------ NYUv2
def _write_nyu(tmp_path: Path, n: int = 6, h: int = 48, w: int = 64) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rgb = (rng.random((n, h, w, 3)) * 255).astype(np.uint8)  # (N, H, W, 3) as MATLAB shows it
    depth = (1.0 + rng.random((n, h, w)) * 4).astype(np.float32)
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat, "w", userblock_size=512) as f:  # MATLAB v7.3 layout: reversed axes
        f["images"] = rgb.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        f["depths"] = depth.transpose(0, 2, 1)  # (N, W, H)
    splits = tmp_path / "splits.mat"
    scipy.io.savemat(splits, {"trainNdxs": np.array([[1], [2], [3], [4]]), "testNdxs": np.array([[5], [6]])})
    return mat, splits, rgb, depth


def test_nyuv2_orientation_split_and_synthesis(tmp_path: Path) -> None:
    mat, splits, rgb, depth = _write_nyu(tmp_path)
    cam = "nyuv2"
    dm = NYUv2DataModule(str(mat), str(splits), camera=cam, val_fraction=0.25)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [3, 1, 2]
    item = dm.dataset("test")[1]
    assert dm.dataset("test").indices[1] == 5  # 1-based testNdxs 6 -> 0-based 5
    assert item["stack"].shape == (5, 3, 240, 320)
    # depth resized with nearest neighbour: the top-left value survives, orientation kept
    assert float(item["depth"][0, 0, 0]) == pytest.approx(depth[5, 0, 0])
    assert float(item["depth"][0, -1, -1]) == pytest.approx(depth[5, -1, -1])
    torch.testing.assert_close(item["focus_distance"], torch.tensor(NYUV2.focus_distances_m))


def test_nyuv2_eigen_crop_and_cache(tmp_path: Path) -> None:
    mat, splits, rgb, depth = _write_nyu(tmp_path, n=6, h=480, w=640)
    dm = NYUv2DataModule(str(mat), str(splits), crop="eigen", cache_dir=str(tmp_path / "cache"))
    item = dm.dataset("test")[0]
    assert item["stack"].shape[-2:] == (243, 320)  # 426x560 crop at width 320
    assert float(item["depth"][0, 0, 0]) == pytest.approx(depth[4, 45, 41])
    again = dm.dataset("test")[0]  # from the cache
    torch.testing.assert_close(again["stack"], item["stack"])
    assert list((tmp_path / "cache").rglob("*.npy"))


def test_nyuv2_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mat"
    with h5py.File(bad, "w") as f:
        f["images"] = np.zeros((2, 3, 8, 6), np.uint8)
    _, splits, _, _ = _write_nyu(tmp_path)
    with pytest.raises(DataError, match="depths"):
        NYUv2DataModule(str(bad), str(splits)).setup()
    with pytest.raises(DataError, match="missing NYUv2 file"):
        NYUv2DataModule(str(tmp_path / "none.mat"), str(splits)).setup()
    scipy.io.savemat(tmp_path / "s.mat", {"trainNdxs": np.array([[1]])})
    with pytest.raises(DataError, match="testNdxs"):
        NYUv2DataModule(str(tmp_path / "nyu_depth_v2_labeled.mat"), str(tmp_path / "s.mat")).setup()
    (tmp_path / "corrupt.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(DataError, match="corrupt.mat"):
        NYUv2DataModule(str(tmp_path / "nyu_depth_v2_labeled.mat"), str(tmp_path / "corrupt.mat")).setup()


# ------------------------------------------------------------------------------------ procedural
def test_procedural_scene_deterministic_and_in_range() -> None:
    a, b = make_scene(7, 32), make_scene(7, 32)
    torch.testing.assert_close(a["rgb"], b["rgb"])
    assert not torch.equal(a["depth"], make_scene(8, 32)["depth"])
    near, far = FOD500.depth_range_m
    assert a["depth"].min() >= near and a["depth"].max() <= far
    assert 0 <= a["rgb"].min() and a["rgb"].max() <= 1


def test_texture_families_share_geometry_and_differ_in_texture() -> None:
    """A seed gives the same depth in both families (the cross-family test compares like with like), and
    the geometric family is not 1/f noise: most of its pixels sit on flat runs or hard edges."""
    pink, geo = make_scene(11, 48, texture="pink"), make_scene(11, 48, texture="geometric")
    torch.testing.assert_close(pink["depth"], geo["depth"], rtol=0, atol=0)
    assert not torch.allclose(pink["rgb"], geo["rgb"])
    flat = lambda rgb: float((rgb.diff(dim=-1).abs().amax(0) < 1e-6).float().mean())  # noqa: E731
    runs = [flat(make_scene(s, 48, texture="geometric")["rgb"]) for s in range(20)]
    assert sum(runs) / len(runs) > 0.4 > flat(pink["rgb"])
    dm = SyntheticDataModule(num_train=2, size=32, texture="geometric")
    assert dm.identity != SyntheticDataModule(num_train=2, size=32).identity  # separate splatting caches
    with pytest.raises(ValueError, match="texture must be one of"):
        SyntheticDataModule(texture="wood")


def test_posterised_and_mixed_families_add_flat_regions_to_pink() -> None:
    """``posterised`` is flat regions of at most 4 levels (textureless areas without geometric patterns);
    ``mixed`` draws pink or posterised per texture; both keep the seed's geometry."""
    from datamodules.procedural import _posterised_texture

    c1, c2 = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
    for seed in range(5):
        t = _posterised_texture(48, 48, torch.Generator().manual_seed(seed), c1, c2)
        assert 2 <= len(torch.unique(t[0])) <= 4
    flat = lambda rgb: float((rgb.diff(dim=-1).abs().amax(0) < 1e-6).float().mean())  # noqa: E731
    share = {
        f: sum(flat(make_scene(s, 48, texture=f)["rgb"]) for s in range(12)) / 12
        for f in ("pink", "posterised", "mixed")
    }
    assert share["posterised"] > share["mixed"] > share["pink"] + 0.1
    ref = make_scene(3, 48, texture="pink")["depth"]
    for family in ("posterised", "mixed"):
        torch.testing.assert_close(make_scene(3, 48, texture=family)["depth"], ref, rtol=0, atol=0)


def test_synthetic_datamodule_keeps_sensor_pixel_pitch() -> None:
    dm = SyntheticDataModule(num_train=3, num_val=1, num_test=2, size=32, batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["stack"].shape == (2, 5, 3, 32, 32)
    assert float(batch["camera"]["pixel_size_m"][0]) == pytest.approx(FOD500.pixel_size_m)
    assert float(batch["camera"]["cx_px"][0]) in (16.0,)
    test_a = dm.dataset("test")[0]["depth"]
    assert not torch.equal(test_a, dm.dataset("train").load(0)["depth"])  # held-out seeds


def test_procedural_written_in_fod500_format_is_read_back(tmp_path: Path) -> None:
    out = write_procedural_dataset(tmp_path / "synth", scenes=3, size=24, seed=5, progress=False)
    names = {p.name for p in out.glob("000000*")}
    assert names == {f"000000_{k:02d}All.tif" for k in range(5)} | {"000000Dpt.exr"}
    dm = FoD500DataModule(str(out))
    item = dm.dataset("train").load(0)  # load(): no train-time augmentation
    mem = SyntheticDataModule(num_train=3, size=24, seed=5).dataset("train").load(0)
    torch.testing.assert_close(item["stack"], mem["stack"], atol=1 / 255, rtol=0)
    with pytest.raises(DataError, match="--force"):
        write_procedural_dataset(tmp_path / "synth", scenes=3, size=24, seed=6, progress=False)


# ------------------------------------------------------------------------------- user folders
def _write_scene(root: Path, name: str, n: int = 3, focus=None, camera="fod500", depth: str | None = "depth.png"):
    scene = root / name
    scene.mkdir(parents=True)
    for k in range(n):
        write_image(scene / f"{k:03d}.png", _gradient_image(10, 14, k))
    meta = {"focus_distances_m": focus if focus is not None else [0.2 * (k + 1) for k in range(n)], "camera": camera}
    (scene / "stack.json").write_text(json.dumps(meta))
    if depth == "depth.png":
        from PIL import Image

        Image.fromarray(np.full((10, 14), 1500, np.uint16)).save(scene / "depth.png")
    return scene


def test_folder_datamodule_reads_stacks_and_depth(tmp_path: Path) -> None:
    for i in range(5):
        _write_scene(tmp_path, f"s{i}")
    dm = FocalStackFolderDataModule(str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    item = dm.dataset("test")[0]
    assert item["stack"].shape == (3, 3, 10, 14)
    torch.testing.assert_close(item["depth"], torch.full((1, 10, 14), 1.5))
    torch.testing.assert_close(item["focus_distance"], torch.tensor([0.2, 0.4, 0.6]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"focus": [0.2, 0.4]}, "2 focus distances for 3 images"),
        ({"camera": {"focal_length_m": 1.0, "bogus": 1}}, "bad camera"),
    ],
)
def test_folder_bad_scenes(tmp_path: Path, kwargs, match: str) -> None:
    _write_scene(tmp_path, "s0", **kwargs)
    with pytest.raises(DataError, match=match):
        FocalStackFolderDataModule(str(tmp_path)).dataset("train")[0]


def test_folder_wrong_depth_shape(tmp_path: Path) -> None:
    scene = _write_scene(tmp_path, "s0", depth=None)
    np.save(scene / "depth.npy", np.ones((3, 3), np.float32))
    with pytest.raises(DataError, match="depth map is"):
        FocalStackFolderDataModule(str(tmp_path)).dataset("train")[0]


def test_image_reader_rejects_truncated_png(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.ones((8, 8, 3)) * 0.5)
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="a.png"):
        read_image(tmp_path / "a.png")


def test_photometric_jitter_keeps_optics_and_records_gains() -> None:
    from datamodules.base import photometric_jitter

    dm = SyntheticDataModule(num_train=2, size=24)
    item = {**dm.dataset("train").load(0), "gain": torch.ones(3)}
    g = torch.Generator().manual_seed(1)
    out = photometric_jitter(item, g, gain=(1.2, 1.2), colour=0.0, noise_max=0.0)
    torch.testing.assert_close(out["gain"], torch.full((3,), 1.2))
    torch.testing.assert_close(out["stack"], torch.round((item["stack"] * 1.2).clamp(0, 1) * 255) / 255)
    assert out["depth"] is item["depth"] and out["camera"] is item["camera"]
    noisy = photometric_jitter(item, g)  # default ranges: gains in [0.6, 1.4] x (1 +- 0.15), noise
    assert noisy["stack"].min() >= 0 and noisy["stack"].max() <= 1
    assert torch.equal(torch.round(noisy["stack"] * 255), noisy["stack"] * 255)  # 8-bit levels
    assert ((noisy["gain"] >= 0.6 * 0.85) & (noisy["gain"] <= 1.4 * 1.15)).all()
    assert not torch.allclose(noisy["stack"], item["stack"])


def test_photometric_option_jitters_the_training_split_only() -> None:
    dm = SyntheticDataModule(num_train=2, num_val=2, num_test=2, size=24, photometric=True)
    assert not torch.equal(dm.dataset("train")[0]["gain"], torch.ones(3))
    for split in ("val", "test"):
        item = dm.dataset(split)[0]
        assert torch.equal(item["gain"], torch.ones(3)) and torch.equal(
            item["stack"], dm.dataset(split).load(0)["stack"]
        )
    assert torch.equal(SyntheticDataModule(num_train=2, size=24).dataset("train")[0]["gain"], torch.ones(3))
