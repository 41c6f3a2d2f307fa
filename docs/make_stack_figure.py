"""README figure of ``sdgs predict --stack`` on a real-texture scene: ``python docs/make_stack_figure.py``.

Reads one f/8 image and its depth map from the DFD indoor dataset of Carvalho et al. 2018 (D3-Net,
"Deep depth from defocus: how can defocus blur improve 3D estimation using dense neural networks?"),
pairs them by nearest timestamp, synthesizes a focal stack with
:func:`datamodules.defocus.synthesize_focal_stack` and the ``nyuv2`` preset lens (camera resized to the image
width, pixel pitch scaled), writes it in the focal-stack folder format (with the depth as ground truth),
runs ``sdgs predict --stack`` on it and copies the preview to ``docs/stack_prediction.png``.

The dataset is not part of the repository: pass ``--data`` or keep it at ``../shared/data/dfd_indoor``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dfd_indoor" / "dfd_dataset_indoor_N8"
#: the nyuv2 preset's focus distances inside the scene's depth range
FOCUS_M = (1.0, 1.5, 2.5, 4.0)
#: depth range of the stack.json camera: the indoor scenes' 0.5-6 m (bounds the fit's search)
DEPTH_RANGE_M = (0.5, 6.0)


def _timestamp(path: Path) -> float:
    return datetime.fromisoformat(path.stem).timestamp()


def write_dfd_scene(data: Path, index: int, root: Path) -> Path:
    """Scene folder ``root/dfd_indoor_<index>`` (stack.json, 000.png..., depth.png) from DFD image ``index``."""
    from dataclasses import replace

    from datamodules.defocus import synthesize_focal_stack
    from sdgs.io import write_image
    from sdgs.optics import NYUV2

    rgbs = sorted((data / "rgb").rglob("*.JPG"))
    depths = sorted((data / "depth").rglob("*.png"))
    rgb_path = rgbs[index]
    depth_path = min(depths, key=lambda p: abs(_timestamp(p) - _timestamp(rgb_path)))
    with Image.open(rgb_path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    with Image.open(depth_path) as im:
        depth_mm = np.asarray(im).astype(np.uint16)
    h, w = depth_mm.shape
    if rgb.shape[:2] != (h, w):
        raise SystemExit(f"{rgb_path} is {rgb.shape[1]}x{rgb.shape[0]}, its depth {depth_path} {w}x{h}")
    # the nyuv2 lens (f = 50 mm, N = 8) with its sensor resampled to the image width: pitch scaled
    camera = replace(NYUV2, pixel_size_m=NYUV2.pixel_size_m * NYUV2.width_px / w, width_px=w, height_px=h,
                     fx_px=None, fy_px=None, cx_px=None, cy_px=None, depth_range_m=DEPTH_RANGE_M,
                     focus_distances_m=FOCUS_M, name="nyuv2_at_image_width")  # fmt: skip
    depth = torch.from_numpy(depth_mm.astype(np.float32) / 1000.0).clamp(*DEPTH_RANGE_M)[None, None]
    stack = synthesize_focal_stack(torch.from_numpy(rgb).permute(2, 0, 1)[None], depth, torch.tensor(FOCUS_M), camera)
    scene = root / f"dfd_indoor_{index:02d}"
    scene.mkdir(parents=True)
    for i, img in enumerate(stack[0]):
        write_image(scene / f"{i:03d}.png", img.permute(1, 2, 0).numpy())
    shutil.copyfile(depth_path, scene / "depth.png")  # uint16 mm, the format's ground truth
    meta = {"focus_distances_m": list(FOCUS_M), "camera": camera.to_json(),
            "source": {"image": rgb_path.name, "depth": depth_path.name}}  # fmt: skip
    (scene / "stack.json").write_text(json.dumps(meta, indent=1))
    print(f"{scene.name}: {rgb_path.name} + {depth_path.name}, {w}x{h}, pitch {camera.pixel_size_m * 1e6:.2f} um")
    return scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="dfd_dataset_indoor_N8 folder (rgb/, depth/)")
    parser.add_argument("--index", type=int, nargs="+", default=[0], help="image indices (sorted by name)")
    parser.add_argument("--work", type=Path, default=Path("runs/stack_figure"), help="scratch folder")
    parser.add_argument("--figure", type=Path, default=REPO / "docs" / "stack_prediction.png")
    parser.add_argument("--max_pixels", type=int, default=80_000, help="passed to sdgs predict --stack")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"DFD indoor data not found at {args.data}: pass --data DIR (folder with rgb/ and depth/)")
    shutil.rmtree(args.work, ignore_errors=True)
    for index in args.index:
        write_dfd_scene(args.data, index, args.work / "stacks")
    out = args.work / "predictions"
    cmd = [sys.executable, "-m", "sdgs.cli", "predict", "--stack", str(args.work / "stacks"), "--out", str(out),
           "--max_pixels", str(args.max_pixels)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    subprocess.run(cmd, check=True, env=env)
    shutil.copyfile(out / f"dfd_indoor_{args.index[0]:02d}_preview.png", args.figure)
    print(f"wrote {args.figure}; metrics in {out / 'metrics.json'}")


if __name__ == "__main__":
    main()
