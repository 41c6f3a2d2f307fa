"""``sdgs predict --ckpt_path CKPT --input DIR_or_FILE --focus-distance M [--camera …] --out DIR``.

Depth from single defocused photos. For each JPG/PNG/TIF it writes ``<name>_depth.npy`` (metres),
``<name>_depth.png`` (16-bit millimetres), ``<name>_depth_vis.png`` (colour map with a scale bar) and
``<name>_preview.png`` (photo | depth side by side).

Image size: the camera's pixel pitch refers to its own ``width_px``; a photo of another size is resized
(aspect kept) so its width matches the camera's, predicted, and the depth is resized back to the photo.
Focus distance: ``--focus-distance`` or, when absent, the photo's EXIF SubjectDistance.
Bad files are reported and skipped, with a summary at the end (exit code 1 if any was skipped); an
image's outputs are written to temporary names and renamed only when all four succeeded
(:func:`sdgs.io.atomic_paths`), so nothing partial is left behind. Inputs sharing a base name
(``x.jpg``, ``x.png``) get ``x_jpg_*``, ``x_png_*``.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["predict_main", "exif_focus_distance", "unique_stems", "summarize"]

SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def exif_focus_distance(path: Path) -> float | None:
    """EXIF SubjectDistance (m) if the file has it, else None."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            exif = im.getexif()
            value = exif.get_ifd(0x8769).get(0x9206) or exif.get(0x9206)
        value = float(value) if value is not None else None
        return value if value and 0 < value < 1e4 else None
    except Exception:
        return None


def save_png16(path: Path, depth_m: np.ndarray) -> None:
    from PIL import Image

    mm = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
    Image.fromarray(mm).save(path, format="PNG")


def _save_vis(path: Path, rgb: np.ndarray, depth_m: np.ndarray, preview: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    im = ax.imshow(depth_m, cmap="magma_r")
    fig.colorbar(im, ax=ax, label="depth (m)")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].imshow(rgb)
    axes[0].set_title("input")
    im = axes[1].imshow(depth_m, cmap="magma_r")
    axes[1].set_title("predicted depth (m)")
    fig.colorbar(im, ax=axes[1])
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(preview, dpi=100, format="png")
    plt.close(fig)


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """One output base name per input, never two alike (compared case-insensitively, as macOS/Windows do).

    A name shared by several inputs gets its suffix appended (``x.jpg``, ``x.png`` -> ``x_jpg``, ``x_png``);
    a lone ``x.jpg`` stays ``x``; any remaining clash gets a counter (``x_jpg_2``).
    """
    shared = Counter(p.stem.casefold() for p in paths)
    taken: set[str] = set()
    stems = []
    for path in paths:
        base = path.stem if shared[path.stem.casefold()] == 1 else f"{path.stem}_{path.suffix.lstrip('.')}"
        stem, n = base, 2
        while stem.casefold() in taken:
            stem, n = f"{base}_{n}", n + 1
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def summarize(out: Path, written: Sequence[Sequence[Path]], skipped: Sequence[str], total: int, what: str) -> int:
    """Print the run summary and return the exit code (0 only if all ``total`` inputs have their outputs).

    ``written`` holds each finished input's output files; the count is of distinct complete sets found on
    disk, so outputs that overwrote each other or vanished are not reported as done.
    """
    done = len({tuple(files) for files in written if all(f.is_file() for f in files)})
    print(f"predicted {done} of {total} {what} into {out}")
    for line in skipped:
        print(f"  skipped {line}", file=sys.stderr)
    return 0 if done == total else 1


def predict_main(argv: Sequence[str]) -> int:
    from jsonargparse import ArgumentParser
    from tqdm.auto import tqdm

    from sdgs.batch import DataError
    from sdgs.io import atomic_paths, read_image
    from sdgs.lit.module import SDGSModule, read_checkpoint
    from sdgs.optics import check_focus, get_camera
    from sdgs.predict import predict_photo

    parser = ArgumentParser(prog="sdgs predict", description=__doc__)
    parser.add_argument("--ckpt_path", required=True, help="trained sdgs checkpoint (e.g. from make quickstart-ckpt)")
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--focus-distance", "--focus_distance", dest="focus", type=float | None, default=None,
                        help="focus distance in metres (default: EXIF SubjectDistance)")  # fmt: skip
    parser.add_argument("--camera", default="fod500", help="fod500, nyuv2, d3net or a camera .json")
    parser.add_argument("--out", default="predictions", help="output folder")
    parser.add_argument("--smooth-px", "--smooth_px", dest="smooth_px", type=float | None, default=None,
                        help="Gaussian sigma (px at the camera's width) on log depth; default: the checkpoint's "
                        "model.predict_smooth_px (0: none)")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(list(argv))

    def fail(message: str) -> int:
        print(f"sdgs predict: error: {message}", file=sys.stderr)
        return 2

    # every argument is checked before the (slow) model load, and nothing is created on disk until then
    try:
        camera = get_camera(args.camera)
        if args.focus is not None:
            check_focus(args.focus, camera)
        if args.smooth_px is not None and not args.smooth_px >= 0:
            raise ValueError(f"--smooth-px must be >= 0 (a Gaussian sigma in px), got {args.smooth_px}")
    except (TypeError, ValueError) as err:
        return fail(f"{err}")
    src = Path(args.input)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in SUFFIXES) if src.is_dir() else [src]
    if not files or not files[0].exists():
        return fail(f"no JPG/PNG/TIF images at {src}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return fail(f"--out {out} is a file: it must be a folder (new or existing)")
    try:
        read_checkpoint(args.ckpt_path)
        model = SDGSModule.load_from_checkpoint(args.ckpt_path, map_location=args.device).eval()
    except DataError as err:
        return fail(f"{err}")
    except Exception as err:  # an sdgs checkpoint this version cannot build, a missing device, ...
        return fail(f"cannot load the model from {args.ckpt_path}: {str(err).splitlines()[0]}")
    made_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    written: list[list[Path]] = []
    failed: list[str] = []
    for path, stem in zip(tqdm(files, desc="predict", unit="image"), unique_stems(files)):
        targets = [out / f"{stem}{suffix}" for suffix in ("_depth.npy", "_depth.png", "_depth_vis.png", "_preview.png")]
        try:
            focus = args.focus if args.focus is not None else exif_focus_distance(path)
            if focus is None:
                raise DataError(f"{path}: no --focus-distance given and no EXIF SubjectDistance in the file")
            check_focus(focus, camera)
            rgb = read_image(path)
            depth = predict_photo(model, rgb, focus, camera, args.device, smooth_px=args.smooth_px)
            with atomic_paths(targets) as temps:  # all four files or none
                with open(temps[0], "wb") as f:  # a handle: np.save would append ".npy" to the temporary name
                    np.save(f, depth.astype(np.float32))
                save_png16(temps[1], depth)
                _save_vis(temps[2], rgb, depth, temps[3])
            written.append(targets)
        except Exception as err:  # report, skip, and leave nothing partial
            failed.append(f"{path.name}: {err}")
    if made_out and not any(out.iterdir()):
        out.rmdir()  # every image failed: leave no empty folder behind
    return summarize(out, written, failed, len(files), "images")
