"""Data throughput: FoD500-format loading at 256 px (0 and 2 workers) and NYUv2 on-the-fly synthesis.

python -m bench.data --out bench/data.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch
from torch.utils.data import DataLoader

from bench.common import write_json
from datamodules.fod500 import FoD500Dataset
from datamodules.nyuv2 import NYUv2Dataset
from datamodules.procedural import make_scene, write_procedural_dataset
from sdgs.optics import FOD500, NYUV2


def loader_rate(dataset, workers: int, batch_size: int = 4) -> float:
    """Samples per second through a DataLoader (one pass; worker start-up included)."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    t0 = time.perf_counter()
    n = sum(batch["stack"].shape[0] for batch in loader)
    return n / (time.perf_counter() - t0)


def write_fake_nyu(root: Path, n: int) -> tuple[Path, Path]:
    """NYUv2-layout .mat from procedural scenes (natural-ish depth, 0.5-8 m) at 480x640."""
    images = np.zeros((n, 3, 640, 480), np.uint8)
    depths = np.zeros((n, 640, 480), np.float32)
    cam = NYUV2.resize(480, 640)
    for i in range(n):
        scene = make_scene(100 + i, (480, 640), cam)
        images[i] = (scene["rgb"].numpy() * 255).astype(np.uint8).transpose(0, 2, 1)
        depths[i] = scene["depth"][0].numpy().T
    mat = root / "nyu.mat"
    with h5py.File(mat, "w") as f:
        f["images"], f["depths"] = images, depths
    splits = root / "splits.mat"
    scipy.io.savemat(splits, {"trainNdxs": np.arange(1, n)[:, None], "testNdxs": np.array([[n]])})
    return mat, splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/data.json")
    parser.add_argument("--scenes", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_procedural_dataset(Path(tmp) / "fod", args.scenes, 256, 0, FOD500, progress=False)
        ds = FoD500Dataset(root, list(range(args.scenes)))
        fod = {f"workers_{w}": round(loader_rate(ds, w), 1) for w in (0, 2)}
        mat, _ = write_fake_nyu(Path(tmp), 8)
        nyu_ds = NYUv2Dataset(mat, list(range(8)))
        t0 = time.perf_counter()
        for i in range(len(nyu_ds)):
            nyu_ds[i]
        nyu_rate = len(nyu_ds) / (time.perf_counter() - t0)
    write_json(
        args.out,
        {
            "fod500_format_256px_samples_per_s": fod,
            "nyuv2_on_the_fly_synthesis_320x240_samples_per_s": round(nyu_rate, 2),
            "notes": "FoD500: 5 TIFs + 1 half-float EXR per sample, batch 4; NYUv2: h5py read, resize, "
            "32-slab layered synthesis of 5 images per sample, single process",
        },
    )


if __name__ == "__main__":
    main()
