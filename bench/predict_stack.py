"""``sdgs predict --stack`` seconds per scene and peak memory at 640x480 and at 12 MP.

    python -m bench.predict_stack --out bench/predict_stack.json     (make bench-predict-stack)

One procedural FoD500 scene (a 640x480 crop of the sensor, 5 focus distances, layered synthesis, 8-bit)
is written in the focal-stack folder format, and again upsampled to 4000x3000 (12 MP) with the pixel pitch
scaled (the same optics seen by a finer sensor). Each runs in its own ``sdgs predict --stack`` process with
the default settings (so the 12 MP stack is fitted at 640x480 and refined, see ``--max_pixels``); the JSON
holds the scene's seconds from the command's summary, the process's wall time (imports included), its peak
resident memory (``ru_maxrss``) and the metrics against the ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.common import write_json
from datamodules.procedural import SPLIT_OFFSETS, render_scene
from sdgs.io import write_image
from sdgs.optics import FOD500

REPO = Path(__file__).resolve().parents[1]
SIZES = {"640x480": (480, 640), "12MP": (3000, 4000)}
CHILD = (
    "import json, resource, sys; from sdgs.cli import main; rc = main(sys.argv[1:]); "
    "print('BENCH', json.dumps({'rc': rc, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
)


def write_scene(folder: Path, stack: torch.Tensor, depth: torch.Tensor, camera, size: tuple[int, int]) -> None:
    """Scene folder at ``size`` (H, W): the stack resized bilinearly, depth nearest, pitch scaled by width."""
    h, w = size
    if (h, w) != tuple(stack.shape[-2:]):
        stack = F.interpolate(stack, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
        depth = F.interpolate(depth[None], size=(h, w), mode="nearest")[0]
    cam = replace(camera, pixel_size_m=camera.pixel_size_m * camera.width_px / w, width_px=w, height_px=h)
    folder.mkdir(parents=True)
    for i, img in enumerate(stack):
        write_image(folder / f"{i:03d}.png", img.permute(1, 2, 0).numpy())
    np.save(folder / "depth.npy", depth[0].numpy())
    meta = {"focus_distances_m": list(camera.focus_distances_m), "camera": cam.to_json()}
    (folder / "stack.json").write_text(json.dumps(meta))


def run(scene: Path, out: Path, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-c", CHILD, "predict", "--stack", str(scene), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or "BENCH" not in proc.stdout:
        raise SystemExit(f"sdgs predict --stack failed on {scene}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    child = json.loads(proc.stdout.split("BENCH", 1)[1])
    metrics = json.loads((out / "metrics.json").read_text())["scenes"][scene.name]
    working = next(line for line in proc.stdout.splitlines() if "working resolution" in line)
    return {
        "seconds_per_scene": metrics.pop("seconds"),
        "process_wall_s": round(wall, 1),
        "peak_rss_gb": round(child["peak_rss_mb"] / 1024, 2),
        "log": working,
        "metrics": metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/predict_stack.json")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the predict processes")
    parser.add_argument("--seed", type=int, default=SPLIT_OFFSETS["test"] + 7)
    args = parser.parse_args()
    stack, depth, cam = render_scene(args.seed, SIZES["640x480"], FOD500)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in SIZES.items():
            scene = Path(tmp) / "stacks" / name
            write_scene(scene, stack, depth, cam, size)
            results[name] = run(scene, Path(tmp) / "out" / name, args.threads)
            print(name, results[name], flush=True)
    write_json(
        args.out,
        {
            "scene": f"procedural seed {args.seed}, FoD500 optics, 640x480 sensor crop, 5 focus distances; "
            "12MP = the same stack upsampled to 4000x3000 with the pitch scaled",
            "settings": "sdgs predict --stack defaults (SplatFitConfig defaults, --max_pixels 307200)",
            "threads": args.threads,
            "load_average_1_5_15min_at_end": [round(x, 2) for x in os.getloadavg()],  # > cores: others were running
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
