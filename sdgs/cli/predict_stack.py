"""``sdgs predict --stack DIR --out OUT``: depth with a confidence for your own focal stacks, no training.

DIR is one scene folder (``stack.json`` + images, docs/usage.md, "Your own focal stacks") or a folder of them.
Each scene is fitted by the splatting stage (:func:`sdgs.splatting.fit_gaussians`: per-pixel Gaussians
whose defocus reproduces every image of the stack) and gets, in OUT:

* ``<scene>_depth.npy`` (float32 metres) and ``<scene>_depth.png`` (uint16 millimetres);
* ``<scene>_confidence.png`` (uint8, confidence x 255; 0.5 = the depth is pinned to ``confidence_rel_error``);
* ``<scene>_aif.png``, the fitted all-in-focus radiance;
* ``<scene>_preview.png``: one stack image | depth | confidence | all-in-focus.

Image size: the camera's ``pixel_size_m`` refers to its own ``width_px``. As for single photos, the stack is
resized (aspect kept) to the camera's width, fitted there, and the results are resized back to the images'
size. Large images (downscale-and-refine, not tiling): when that working size exceeds ``--max_pixels``, the
stack is downscaled further (the pixel pitch grows with it, so the optics stay exact) and fitted at the
reduced size; the depth is then upsampled and refined at full size by a guided filter steered by the
full-size sharpness composite, and the all-in-focus image gets the composite's fine detail back. The fit's
time and memory depend on ``--max_pixels``, not on the photo size; the full-size steps grow linearly with the
photo (measured by ``make bench-predict-stack``). The working size is printed.

If a scene folder holds ground truth (``depth.png`` mm / ``depth.exr`` / ``depth.npy`` m, the images'
size), AbsRel, RMSE and delta1 are printed and written to ``OUT/metrics.json`` (Eigen protocol:
valid = near < gt < far of the camera's ``depth_range_m``, prediction clamped to it), over all valid
pixels and over the confident ones (confidence >= 0.5).

Bad scenes (missing image, wrong count of focus distances, unreadable files) are reported and skipped with
a summary at the end; a scene's files are written to temporary names and renamed only when all five
succeeded, so nothing partial is left. The exit status is 1 when any scene was skipped.
"""

from __future__ import annotations

import json
import math
import sys
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import kornia
import numpy as np
import torch
import torch.nn.functional as F

from sdgs.batch import DataError
from sdgs.cli.predict import save_png16, summarize
from sdgs.io import (
    DEPTH_NAMES,
    IMAGE_SUFFIXES,
    atomic_path,
    atomic_paths,
    read_depth,
    read_image,
    read_stack_json,
    write_image,
)
from sdgs.optics import Camera
from sdgs.splatting.fit import SplatFitConfig, fit_gaussians, sharpness_composite

__all__ = ["predict_stack_main", "working_camera", "predict_scene", "StackPrediction"]

#: Default cap on the fitted image size: 640 x 480. Fit cost grows with pixels x CoC area, both of which
#: grow with resolution, so a 12 MP stack is fitted at this size and refined (module docstring).
MAX_PIXELS = 640 * 480
#: Confidence above which a pixel counts as confident (metrics, README).
CONFIDENT = 0.5
OUTPUTS = ("_depth.npy", "_depth.png", "_confidence.png", "_aif.png", "_preview.png")


@dataclass
class StackPrediction:
    """Result of :func:`predict_scene` at the images' size (H, W).

    Attributes:
        depth: ``(H, W)`` float32 metres.
        confidence: ``(H, W)`` float32 in [0, 1].
        aif: ``(H, W, 3)`` float32 all-in-focus radiance in [0, 1].
        working_size: ``(h, w)`` of the fit.
    """

    depth: np.ndarray
    confidence: np.ndarray
    aif: np.ndarray
    working_size: tuple[int, int]


def working_camera(camera: Camera, height: int, width: int, max_pixels: int = MAX_PIXELS) -> Camera:
    """Camera of the fit for images of ``height x width`` px (module docstring, "Image size").

    The camera's width with the images' aspect ratio, scaled down (pitch scaled up) to at most
    ``max_pixels``; intrinsics are derived from the lens and centred.
    """
    cw = camera.width_px
    ch = max(8, round(height * cw / width))
    cam = replace(camera, width_px=cw, height_px=ch, cx_px=None, cy_px=None, fx_px=None, fy_px=None)
    if cw * ch > max_pixels:
        s = math.sqrt(max_pixels / (cw * ch))
        cam = cam.resize(max(8, int(ch * s)), max(8, int(cw * s)))
    return cam


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, C, h, w)`` to ``size``: area average when shrinking, bilinear when enlarging."""
    if tuple(x.shape[-2:]) == size:
        return x
    if size[0] * size[1] < x.shape[-2] * x.shape[-1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def predict_scene(
    stack: torch.Tensor,
    focus_m: Sequence[float],
    camera: Camera,
    config: SplatFitConfig,
    max_pixels: int = MAX_PIXELS,
    on_step: typing.Callable[[], None] | None = None,
) -> StackPrediction:
    """Depth, confidence and all-in-focus image of one focal stack.

    Args:
        stack: ``(S, 3, H, W)`` float32 in [0, 1] (CPU; moved to the fit's device by the caller).
        focus_m: S focus distances (m).
        camera: the stack.json camera (its pitch refers to its own width).
        config: splatting-stage settings.
        max_pixels: cap on the fitted size.
        on_step: called after each fit step.
    """
    s, _, h, w = stack.shape
    cam = working_camera(camera, h, w, max_pixels)
    size = (cam.height_px, cam.width_px)
    work = _resize(stack, size).clamp(0, 1)
    focus = torch.tensor([list(focus_m)], dtype=stack.dtype, device=stack.device)
    fit = fit_gaussians(work[None], focus, cam, config=config, on_step=on_step)
    inv, conf, radiance = 1.0 / fit.depth, fit.confidence, fit.radiance  # (1, C, h', w')
    if h * w <= size[0] * size[1]:  # working size >= images: average back down
        inv, conf, radiance = (_resize(t, (h, w)) for t in (inv, conf, radiance))
    else:  # downscale-and-refine
        with torch.no_grad():
            composite = sharpness_composite(stack[None])  # (1, 3, H, W) full-size all-in-focus estimate
            detail = composite - _resize(_resize(composite, size), (h, w))
            radiance = _resize(radiance, (h, w)) + detail
            del detail
            scale = h / size[0]
            radius = max(1, math.ceil(2 * scale))
            guide = kornia.color.rgb_to_grayscale(composite.clamp(0, 1))
            del composite
            # guided filter (He et al.): edges of the upsampled inverse depth snap to image edges;
            # eps (grey variance 0.1^2) keeps fine texture from being copied into the depth
            inv = kornia.filters.guided_blur(guide, _resize(inv, (h, w)), 2 * radius + 1, 1e-2)
            conf = _resize(conf, (h, w))
    near, far = cam.depth_range_m
    depth = (1.0 / inv.clamp(1.0 / far, 1.0 / near))[0, 0]
    return StackPrediction(
        depth=depth.float().cpu().numpy(),
        confidence=conf.clamp(0, 1)[0, 0].float().cpu().numpy(),
        aif=radiance.clamp(0, 1)[0].permute(1, 2, 0).float().cpu().numpy(),
        working_size=size,
    )


def _load_scene(scene: Path) -> tuple[np.ndarray, list[float], Camera, np.ndarray | None]:
    """Stack ``(S, H, W, 3)``, focus distances, camera and ground truth ``(H, W)`` (or None); DataError if bad."""
    paths, focus, camera = read_stack_json(scene)
    if len(paths) < 2:
        raise DataError(f"{scene}: a focal stack needs at least 2 images with distinct focus distances")
    if len(set(focus)) != len(focus):
        raise DataError(f"{scene / 'stack.json'}: duplicate focus distances {focus}; give each image its own")
    images = [read_image(p) for p in paths]
    sizes = sorted({im.shape for im in images})
    if len(sizes) != 1:
        raise DataError(f"{scene}: images of one stack must share a size, got {sizes}")
    gt = None
    for name in DEPTH_NAMES:
        if (scene / name).is_file():
            gt = read_depth(scene / name)
            if gt.shape != images[0].shape[:2]:
                raise DataError(
                    f"{scene / name}: ground truth is {gt.shape[1]}x{gt.shape[0]}, the images "
                    f"{sizes[0][1]}x{sizes[0][0]}; resize it to the images"
                )
            gt = np.where(np.isfinite(gt), gt, 0.0).astype(np.float32)  # +inf = no return: invalid
            break
    return np.stack(images), focus, camera, gt


def _metrics(depth: np.ndarray, conf: np.ndarray, gt: np.ndarray, camera: Camera) -> dict:
    from sdgs.metrics import per_image_depth_errors

    near, far = camera.depth_range_m
    pred = torch.from_numpy(depth)[None, None]
    out: dict = {}
    for name, mask in (("all", np.ones_like(gt, bool)), ("confident", conf >= CONFIDENT)):
        g = torch.from_numpy(np.where(mask, gt, 0.0).astype(np.float32))[None, None]
        values, has = per_image_depth_errors(pred, g, "eigen", min_depth=near, max_depth=far)
        out[name] = {k: round(float(values[k][0]), 4) for k in ("abs_rel", "rmse", "delta1")} if has[0] else None
    valid = (gt > near) & (gt < far)
    out["confident_fraction"] = round(float((conf[valid] >= CONFIDENT).mean()), 4) if valid.any() else None
    return out


def _save_preview(path: Path, image: np.ndarray, focus: float, pred: StackPrediction) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = max(1, math.ceil(image.shape[1] / 800))  # plot at most ~800 px wide
    sub = (slice(None, None, step), slice(None, None, step))
    h, w = image[sub].shape[:2]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4 * h / w + 0.6))
    axes[0].imshow(image[sub])
    axes[0].set_title(f"stack image (focus {focus:g} m)")
    im = axes[1].imshow(pred.depth[sub], cmap="magma_r")
    axes[1].set_title("depth (m)")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    im = axes[2].imshow(pred.confidence[sub], cmap="gray", vmin=0, vmax=1)
    axes[2].set_title("confidence")
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    axes[3].imshow(pred.aif[sub])
    axes[3].set_title("all-in-focus (fitted)")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def _write_outputs(out: Path, name: str, image: np.ndarray, focus: float, pred: StackPrediction) -> list[Path]:
    """All five files of a scene, or none (each to a temporary name, renamed when all succeeded); returns them."""
    from PIL import Image

    paths = [out / f"{name}{suffix}" for suffix in OUTPUTS]
    with atomic_paths(paths) as tmp:
        with open(tmp[0], "wb") as f:  # a handle: np.save would append ".npy" to the temporary name
            np.save(f, pred.depth)
        save_png16(tmp[1], pred.depth)
        Image.fromarray(np.round(pred.confidence * 255).astype(np.uint8)).save(tmp[2], format="PNG")
        write_image(tmp[3], pred.aif)
        _save_preview(tmp[4], image, focus, pred)
    return paths


def _find_scenes(root: Path, out: Path) -> list[Path]:
    """``root`` itself when it holds a stack.json, else its sub-folders that hold a stack.json or images.

    ``out`` is never a scene (``--out`` inside ``--stack`` holds our own PNGs on a rerun).
    """
    if (root / "stack.json").is_file():
        return [root]
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and p.resolve() != out.resolve()
        and ((p / "stack.json").is_file() or any(q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir()))
    )


def _type_of(name: str) -> type:
    return typing.get_type_hints(SplatFitConfig)[name]


def predict_stack_main(argv: Sequence[str]) -> int:
    """Entry of ``sdgs predict --stack`` (module docstring); returns the exit status."""
    from jsonargparse import ArgumentParser
    from tqdm.auto import tqdm

    parser = ArgumentParser(prog="sdgs predict --stack", description=__doc__)
    parser.add_argument("--stack", required=True, help="a scene folder (stack.json + images) or a folder of them")
    parser.add_argument("--out", default="predictions", help="output folder")
    parser.add_argument("--max_pixels", "--max-pixels", dest="max_pixels", type=int, default=MAX_PIXELS,
                        help="largest fitted size in pixels (larger stacks: downscale-and-refine)")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    defaults, helps = SplatFitConfig(), SplatFitConfig.help()
    for f in fields(SplatFitConfig):
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        parser.add_argument(*names, dest=f.name, type=_type_of(f.name), default=getattr(defaults, f.name),
                            help=helps[f.name])  # fmt: skip
    args = parser.parse_args(list(argv))

    root = Path(args.stack)
    if not root.is_dir():
        print(
            f"sdgs predict: error: --stack {root} is not a folder (a scene folder or a folder of them)", file=sys.stderr
        )
        return 2
    out = Path(args.out)
    scenes = _find_scenes(root, out)
    if not scenes:
        print(f"sdgs predict: error: no scene folders (stack.json + images) in {root}", file=sys.stderr)
        return 2
    try:
        config = SplatFitConfig(**{f.name: getattr(args, f.name) for f in fields(SplatFitConfig)})
    except (TypeError, ValueError) as err:
        print(f"sdgs predict: error: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    written: list[list[Path]] = []
    failed: list[str] = []
    metrics: dict[str, dict] = {}
    for scene in scenes:
        name = scene.name
        t0 = time.perf_counter()
        try:
            images, focus, camera, gt = _load_scene(scene)
            s, h, w, _ = images.shape
            stack = torch.from_numpy(images).permute(0, 3, 1, 2).to(args.device)
            work_cam = working_camera(camera, h, w, args.max_pixels)
            mode = (
                "downscale-and-refine"
                if work_cam.width_px * work_cam.height_px < h * w
                else "resized to the camera width"
            )
            print(
                f"{name}: {s} images {w}x{h} px, working resolution {work_cam.width_px}x{work_cam.height_px} ({mode})"
            )
            with tqdm(total=config.iters, desc=name, unit="it", leave=False) as bar:
                pred = predict_scene(stack, focus, camera, config, args.max_pixels, on_step=lambda: bar.update(1))
            del stack
            if not (np.isfinite(pred.depth).all() and np.isfinite(pred.confidence).all()):
                raise RuntimeError("the fit produced non-finite depth; try --backend torch or fewer --iters")
            written.append(_write_outputs(out, name, images[0], focus[0], pred))
            seconds = time.perf_counter() - t0
            line = f"{name}: {seconds:.1f} s ({w}x{h}, fitted at {work_cam.width_px}x{work_cam.height_px})"
            if gt is not None:
                m = _metrics(pred.depth, pred.confidence, gt, camera)
                metrics[name] = {**m, "seconds": round(seconds, 2)}
                line += "".join(
                    f"; {k}: AbsRel {v['abs_rel']:.3f}, RMSE {v['rmse']:.3f} m, δ1 {v['delta1']:.3f}"
                    for k, v in ((k, m[k]) for k in ("all", "confident"))
                    if v is not None
                )
                if m["confident_fraction"] is not None:
                    line += f" ({100 * m['confident_fraction']:.0f}% of valid pixels confident)"
            print(line)
            done.append(line)
        except Exception as err:  # report, skip; atomic writes left nothing behind
            failed.append(f"{name}: {err}")
    if metrics:
        summary = {
            "protocol": "eigen: valid = near < gt < far (camera depth_range_m), prediction clamped; "
            f"AbsRel, RMSE (m), delta1 (fraction); 'confident' = confidence >= {CONFIDENT}",
            "scenes": metrics,
            "mean": {  # unweighted mean over the scenes with ground truth
                part: {
                    k: round(float(np.mean([m[part][k] for m in metrics.values() if m[part]])), 4)
                    for k in ("abs_rel", "rmse", "delta1")
                }
                for part in ("all", "confident")
                if any(m[part] for m in metrics.values())
            },
        }
        with atomic_path(out / "metrics.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2))
    status = summarize(out, written, failed, len(scenes), "scenes")  # counts the complete sets on disk
    for line in done:
        print(f"  {line}")
    return status
