"""File formats: 8-bit images (TIF/PNG/JPG), half-float EXR depth, NPY/PNG depth; atomic writes.

Every reader raises :class:`DataError` naming the file and what to do, never a bare library error.
EXR goes through the ``OpenEXR`` package: OpenCV 5 cannot read EXR and OpenCV 4 silently reads a
``Z``-only file as zeros (docs/protocols.md, "FoD500").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdgs.io import atomic_path  # re-exported: the project's one atomic writer

__all__ = [
    "DataError",
    "read_image",
    "write_image",
    "read_exr_depth",
    "write_exr_depth",
    "read_depth",
    "atomic_path",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: Channel names tried in order when reading depth from an EXR (FoD500 stores it in R, half float).
EXR_DEPTH_CHANNELS = ("R", "Z", "depth.Z", "Y")


class DataError(ValueError):
    """A dataset file is missing, unreadable or inconsistent. The message names the file and the fix."""


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise DataError(f"missing {what}: {path} (check the data path, or re-create the dataset)")


def read_image(path: str | Path) -> np.ndarray:
    """8-bit RGB image as ``(H, W, 3)`` float32 in [0, 1]; grey is expanded, alpha dropped."""
    path = Path(path)
    _require(path, "image")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
    except Exception as err:  # corrupt/truncated files raise many different library errors
        raise DataError(f"cannot read image {path}: {err} (file corrupt or truncated? re-copy it)") from err
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise DataError(f"cannot read image {path}: decoded shape {arr.shape}, expected (H, W, 3) RGB (corrupt file?)")
    arr = arr[..., :3]
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return arr.astype(np.float32) / scale if arr.dtype != np.float32 else arr


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3)`` float in [0, 1] as 8-bit (TIF via tifffile, else Pillow), atomically."""
    path = Path(path)
    arr = np.clip(np.round(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, arr, photometric="rgb")
        else:
            from PIL import Image

            Image.fromarray(arr).save(tmp, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"))


def read_exr_depth(path: str | Path) -> np.ndarray:
    """Depth (m) from an EXR as ``(H, W)`` float32; channel R (FoD500), else Z / depth.Z / Y."""
    import OpenEXR

    path = Path(path)
    _require(path, "depth EXR")
    try:
        with OpenEXR.File(str(path)) as f:
            channels = f.channels()
            for name in EXR_DEPTH_CHANNELS:
                if name in channels:
                    return np.asarray(channels[name].pixels, dtype=np.float32)
            if "RGB" in channels:
                return np.asarray(channels["RGB"].pixels[..., 0], dtype=np.float32)
            names = sorted(channels)
    except Exception as err:
        raise DataError(f"cannot read EXR {path}: {err} (file corrupt or truncated? re-copy it)") from err
    raise DataError(f"EXR {path} has no depth channel among {EXR_DEPTH_CHANNELS}; it has {names}")


def write_exr_depth(path: str | Path, depth: np.ndarray, half: bool = True) -> None:
    """Write ``(H, W)`` depth (m) as FoD500 does: channels R, G, B, HALF float by default; atomic."""
    import OpenEXR

    arr = np.asarray(depth, dtype=np.float16 if half else np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp, OpenEXR.File(header, {"R": arr, "G": arr, "B": arr}) as f:
        f.write(str(tmp))


def read_depth(path: str | Path) -> np.ndarray:
    """Depth (m) ``(H, W)`` float32 from EXR, NPY (metres) or 16-bit PNG (millimetres)."""
    path = Path(path)
    _require(path, "depth map")
    suffix = path.suffix.lower()
    try:
        if suffix == ".exr":
            return read_exr_depth(path)
        if suffix == ".npy":
            arr = np.load(path)
            return np.asarray(arr, dtype=np.float32).squeeze()
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im)
            if arr.dtype not in (np.uint16, np.int32):
                raise DataError(f"depth PNG {path} is {arr.dtype}; expected 16-bit millimetres")
            return arr.astype(np.float32) / 1000.0
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read depth {path}: {err} (file corrupt or truncated? re-copy it)") from err
    raise DataError(f"unsupported depth format {path.suffix} for {path}: use .exr, .npy (m) or 16-bit .png (mm)")
