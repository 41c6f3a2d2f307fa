"""Bad input as a new user gives it: images of every bit depth and layout, output-name clashes, foreign
files beside a dataset, corrupt checkpoints, broken configs, bad options. docs/robustness.md lists them."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from datamodules import DataError, FocalStackFolderDataModule
from datamodules.fod500 import FoD500Dataset, image_path, write_fod500_sample
from sdgs.cli import synth_main
from sdgs.cli.lightning import run_lightning_cli
from sdgs.cli.predict import predict_main, summarize, unique_stems
from sdgs.io import read_image

REPO = Path(__file__).resolve().parents[1]
CFG = str(REPO / "lightning_configs" / "quickstart.yaml")
CSV = str(REPO / "lightning_configs" / "logger" / "csv.yaml")
NOT_SDGS = "is not an sdgs checkpoint (corrupt or another file)"


# ------------------------------------------------------------------------------------------ images
def _png_rgb16(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb)  # filter 0 per scanline
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)  # 16 bit, colour type 2 (RGB)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


RNG = np.random.default_rng(0)
U16_RGB = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
U16_GREY = RNG.integers(0, 65536, (6, 7), dtype=np.uint16)
U8_RGBA = RNG.integers(0, 256, (6, 7, 4), dtype=np.uint8)
U8_GREY = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
PALETTE = RNG.integers(0, 256, (4, 3), dtype=np.uint8)  # 4 colours
INDICES = RNG.integers(0, 4, (6, 7), dtype=np.uint8)
TIFF_MAP = RNG.integers(0, 65536, (3, 256), dtype=np.uint16)  # TIFF colour maps are 16-bit
FLOAT_RGB = RNG.random((6, 7, 3)).astype(np.float32)


def _palette_png(path: Path) -> None:
    im = Image.fromarray(INDICES, mode="P")
    im.putpalette(PALETTE.flatten().tolist())
    im.save(path)


# name -> (writer, expected (H, W, 3) float in [0, 1], tolerance)
IMAGE_CASES = {
    "png16_grey": (lambda p: Image.fromarray(U16_GREY).save(p), np.repeat(U16_GREY[..., None], 3, -1) / 65535, 1e-6),
    # Pillow decodes 16-bit RGB PNGs to their high byte: 8-bit precision, correct scale
    "png16_rgb": (lambda p: _png_rgb16(p, U16_RGB), U16_RGB / 65535, 1 / 255),
    "tif16_rgb": (lambda p: tifffile.imwrite(p, U16_RGB, photometric="rgb"), U16_RGB / 65535, 1e-6),
    "tif16_grey": (lambda p: tifffile.imwrite(p, U16_GREY), np.repeat(U16_GREY[..., None], 3, -1) / 65535, 1e-6),
    "tif16_planar": (
        lambda p: tifffile.imwrite(p, np.moveaxis(U16_RGB, -1, 0), photometric="rgb", planarconfig="separate"),
        U16_RGB / 65535,
        1e-6,
    ),
    "tif8_miniswhite": (
        lambda p: tifffile.imwrite(p, U8_GREY, photometric="miniswhite"),
        np.repeat(255 - U8_GREY[..., None], 3, -1) / 255,
        1e-6,
    ),
    "tif_palette": (
        lambda p: tifffile.imwrite(p, INDICES, photometric="palette", colormap=TIFF_MAP),
        np.moveaxis(TIFF_MAP[:, INDICES], 0, -1) / 65535,
        1e-6,
    ),
    "tif_float": (lambda p: tifffile.imwrite(p, FLOAT_RGB, photometric="rgb"), FLOAT_RGB, 0),
    "png8_rgba": (lambda p: Image.fromarray(U8_RGBA).save(p), U8_RGBA[..., :3] / 255, 1e-6),
    "png8_grey": (lambda p: Image.fromarray(U8_GREY).save(p), np.repeat(U8_GREY[..., None], 3, -1) / 255, 1e-6),
    "png8_grey_alpha": (
        lambda p: Image.fromarray(np.stack([U8_GREY, U8_GREY[::-1]], -1), mode="LA").save(p),
        np.repeat(U8_GREY[..., None], 3, -1) / 255,
        1e-6,
    ),
    "png8_palette": (_palette_png, PALETTE[INDICES] / 255, 1e-6),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_read_image_scales_every_bit_depth_and_layout(tmp_path: Path, case: str) -> None:
    write, expected, tol = IMAGE_CASES[case]
    path = tmp_path / f"img.{'tif' if case.startswith('tif') else 'png'}"
    write(path)
    rgb = read_image(path)
    assert rgb.dtype == np.float32 and rgb.shape == (6, 7, 3)
    np.testing.assert_allclose(rgb, expected, atol=tol, rtol=0)


def test_read_image_refuses_values_it_cannot_scale(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "hdr.tif", FLOAT_RGB * 4, photometric="rgb")
    with pytest.raises(DataError, match=r"hdr.tif: floating-point image with values outside \[0, 1\]"):
        read_image(tmp_path / "hdr.tif")
    tifffile.imwrite(tmp_path / "i32.tif", U16_GREY.astype(np.int32))
    with pytest.raises(DataError, match="i32.tif: int32 samples are not supported"):
        read_image(tmp_path / "i32.tif")


def test_stack_image_of_another_size_names_the_file(tmp_path: Path) -> None:
    stack = np.full((5, 8, 10, 3), 0.5, np.float32)
    write_fod500_sample(tmp_path / "fod", 0, stack, np.ones((8, 10), np.float32))
    tifffile.imwrite(image_path(tmp_path / "fod", 0, 3), np.zeros((8, 12, 3), np.uint8), photometric="rgb")
    with pytest.raises(DataError, match=r"000000_03All.tif: image is 12x8 px but 000000_00All.tif is 10x8 px"):
        FoD500Dataset(tmp_path / "fod", [0]).load(0)
    scene = tmp_path / "stacks" / "s0"
    scene.mkdir(parents=True)
    for k, width in enumerate((10, 10, 11)):
        Image.fromarray(np.zeros((8, width, 3), np.uint8)).save(scene / f"{k:03d}.png")
    (scene / "stack.json").write_text(json.dumps({"focus_distances_m": [0.2, 0.4, 0.6], "camera": "fod500"}))
    with pytest.raises(DataError, match=r"s0/002.png: image is 11x8 px"):
        FocalStackFolderDataModule(str(tmp_path / "stacks")).dataset("train").load(0)


# ------------------------------------------------------------------------------------------ predict
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import lightning as L

    from sdgs.lit import SDGSModule

    trainer = L.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu")
    trainer.strategy.connect(SDGSModule(sdnet_width=8, depthnet_width=8))
    path = tmp_path_factory.mktemp("ckpt") / "m.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def bad_ckpts(ckpt: Path) -> dict[str, Path]:
    """Random bytes, a checkpoint cut in half, another program's torch file."""
    import torch

    root = ckpt.parent
    (root / "random.ckpt").write_bytes(np.random.default_rng(1).bytes(4096))
    data = ckpt.read_bytes()
    (root / "half.ckpt").write_bytes(data[: len(data) // 2])
    torch.save({"state_dict": {"backbone.weight": torch.zeros(3)}}, root / "foreign.ckpt")
    return {name: root / f"{name}.ckpt" for name in ("random", "half", "foreign")}


def _predict(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = predict_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_unique_stems_and_summary_count_what_is_on_disk(tmp_path: Path, capsys) -> None:
    names = ["x.jpg", "x.png", "X.tif", "x_jpg.png", "y.png"]
    stems = unique_stems([Path(n) for n in names])
    assert stems == ["x_jpg", "x_png", "X_tif", "x_jpg_2", "y"]
    same = [tmp_path / "x_depth.npy"]
    same[0].write_bytes(b"1")
    # two inputs that wrote the same file count once; a set whose file is gone counts zero
    assert summarize(tmp_path, [same, same, [tmp_path / "gone.npy"]], [], 3, "images") == 1
    assert "predicted 1 of 3 images" in capsys.readouterr().out


def test_predict_reads_16bit_and_keeps_same_named_outputs_apart(tmp_path: Path, ckpt: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    grey8 = np.random.default_rng(2).integers(0, 256, (30, 40), dtype=np.uint8)
    tifffile.imwrite(photos / "x.tif", grey8)  # 8-bit
    Image.fromarray(grey8.astype(np.uint16) * 257).save(photos / "x.png")  # the same picture, 16-bit
    code, out, err = _predict(capsys, "--ckpt_path", ckpt, "--input", photos, "--focus-distance", "0.3",
                              "--out", tmp_path / "out")  # fmt: skip
    assert code == 0 and "predicted 2 of 2 images" in out, err
    a, b = (np.load(tmp_path / "out" / f"x_{s}_depth.npy") for s in ("tif", "png"))
    np.testing.assert_allclose(a, b, rtol=1e-5)  # 16-bit read as white would give another depth
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert len(names) == 8 and not any(n.startswith("x_depth") for n in names)


def test_predict_bad_arguments_fail_in_one_line_before_the_model_loads(
    tmp_path: Path, ckpt: Path, bad_ckpts: dict[str, Path], capsys
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(photos / "a.png")
    out = tmp_path / "out"
    common = ("--input", photos, "--out", out)
    for name, path in bad_ckpts.items():
        code, _, err = _predict(capsys, "--ckpt_path", path, *common, "--focus-distance", "0.3")
        assert code == 2 and f"{path} {NOT_SDGS}" in err, (name, err)
        assert "weights_only" not in err and len(err.strip().splitlines()) == 1, err
    for focus, message in (
        ("-1", "must be finite and > 0"),
        ("0", "must be finite and > 0"),
        ("0.001", "focal length"),
    ):
        # with a corrupt checkpoint: the focus distance is refused first, the model is never loaded
        code, _, err = _predict(capsys, "--ckpt_path", bad_ckpts["half"], *common, "--focus-distance", focus)
        assert code == 2 and "focus distance" in err and message in err, err
    (tmp_path / "file").write_text("x")
    code, _, err = _predict(capsys, "--ckpt_path", ckpt, "--input", photos, "--out", tmp_path / "file",
                            "--focus-distance", "0.3")  # fmt: skip
    assert code == 2 and "is a file: it must be a folder" in err
    assert not out.exists()  # no failed run left an (empty) output folder


def test_predict_exits_nonzero_when_an_image_is_skipped(tmp_path: Path, ckpt: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    args = ("--ckpt_path", ckpt, "--input", photos, "--focus-distance", "0.3", "--out", tmp_path / "out")
    code, out, err = _predict(capsys, *args)
    assert code == 1 and "predicted 0 of 1 images" in out and "skipped broken.png" in err
    assert not (tmp_path / "out").exists()  # nothing written: no empty folder left behind
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(photos / "good.png")
    code, out, err = _predict(capsys, *args)
    assert code == 1 and "predicted 1 of 2 images" in out and "skipped broken.png" in err
    assert (tmp_path / "out" / "good_depth.npy").is_file()


# ------------------------------------------------------------------------------------------ synth
def _synth(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = synth_main(["--scenes", "2", "--size", "16", *args])
    return code, capsys.readouterr().err


def test_synth_force_replaces_only_dataset_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    assert _synth(capsys, "--out", str(out), "--scenes", "3")[0] == 0
    assert (out / "000002Dpt.exr").is_file()
    code, err = _synth(capsys, "--out", str(out), "--seed", "4")
    assert code == 2 and "--force" in err
    assert _synth(capsys, "--out", str(out), "--seed", "4", "--force")[0] == 0  # a bare flag
    assert not (out / "000002Dpt.exr").exists() and (out / "000001Dpt.exr").is_file()  # old scene 2 removed
    assert json.loads((out / "procedural.json").read_text())["seed"] == 4
    # foreign files: refused, listed, nothing deleted
    (out / "notes.txt").write_text("mine")
    (out / "mine").mkdir()
    before = sorted(p.name for p in out.iterdir())
    code, err = _synth(capsys, "--out", str(out), "--seed", "5", "--force")
    assert code == 2 and "notes.txt" in err and "mine/" in err and "not part of a dataset" in err
    assert sorted(p.name for p in out.iterdir()) == before
    (tmp_path / "file").write_text("x")
    code, err = _synth(capsys, "--out", str(tmp_path / "file"))
    assert code == 2 and "is a file: --out must be a folder" in err


# ------------------------------------------------------------------------------------------ LightningCLI
def _lightning(capsys, monkeypatch, tmp_path: Path, *args: str) -> str:
    """Run a LightningCLI command in-process that must fail with exit code 2; returns its stderr."""
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli([str(a) for a in args])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("subcommand", ["fit", "test"])
def test_lightning_refuses_a_corrupt_checkpoint_before_any_run_folder(
    tmp_path: Path, bad_ckpts: dict[str, Path], capsys, monkeypatch, subcommand: str
) -> None:
    for path in bad_ckpts.values():
        err = _lightning(capsys, monkeypatch, tmp_path, subcommand, "--config", CFG, "--ckpt_path", path)
        assert err.startswith(f"sdgs: error: {path} {NOT_SDGS}") and len(err.strip().splitlines()) == 1, err
    err = _lightning(capsys, monkeypatch, tmp_path, subcommand, "--config", CFG, "--ckpt_path", "nope.ckpt")
    assert "checkpoint not found: nope.ckpt" in err
    assert not list(tmp_path.iterdir())  # no runs/, no W&B run


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "bad.yaml").write_text("trainer:\n  max_steps: 2\n  devices: [1\n")
    err = _lightning(capsys, monkeypatch, tmp_path, "fit", "--config", CFG, "--config", CSV, "--config=bad.yaml")
    assert "bad.yaml: YAML syntax error at line 4" in err and "line 3" in err, err


@pytest.mark.slow
def test_failed_fit_leaves_no_run_folder_and_no_warning_noise(tmp_path: Path, bad_ckpts: dict[str, Path]) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}

    def sdgs(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "sdgs.cli", *map(str, args)]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    # quickstart.yaml logs to CSV and W&B: a data error must come before either creates its run
    proc = sdgs("fit", "--config", CFG, "--data=datamodules.FoD500DataModule", "--data.data_dir=/nope")
    assert proc.returncode == 2 and "FoD500 folder not found: /nope" in proc.stderr, proc.stderr[-3000:]
    assert "args parameter is intended" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # no run folder, no W&B run, not even an empty runs/
    proc = sdgs("test", "--config", CFG, "--ckpt_path", bad_ckpts["half"])
    assert proc.returncode == 2 and NOT_SDGS in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
