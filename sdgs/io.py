"""File formats and file writing shared by every part of sdgs.

* All-or-nothing writes: :func:`atomic_path`, :func:`atomic_paths`.
* Images: 8/16-bit TIF/PNG/JPG as float RGB in [0, 1] (:func:`read_image`, :func:`read_stack`,
  :func:`write_image`).
* Depth (m): half-float EXR (:func:`read_exr_depth`, :func:`write_exr_depth`), NPY, or PNG in mm
  (:func:`read_depth`).
* A focal-stack folder's ``stack.json`` (images, focus distances, camera: :func:`read_stack_json`).

Every reader raises :class:`~sdgs.batch.DataError` naming the file and what to do, never a bare library
error. EXR goes through the ``OpenEXR`` package: OpenCV 5 cannot read EXR and OpenCV 4 silently reads a
``Z``-only file as zeros (docs/protocols.md, "FoD500").
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from sdgs.batch import DataError  # re-exported: what every reader raises
from sdgs.optics import Camera, get_camera

__all__ = [
    "DataError",
    "DEPTH_NAMES",
    "IMAGE_SUFFIXES",
    "atomic_path",
    "atomic_paths",
    "read_depth",
    "read_exr_depth",
    "read_image",
    "read_stack",
    "read_stack_json",
    "write_exr_depth",
    "write_image",
]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it over ``path`` only if the block succeeds.

    Readers never see a half-written file, and concurrent writers (runs, DDP ranks) leave one complete copy.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_paths(paths: list[Path]) -> Iterator[list[Path]]:
    """:func:`atomic_path` for a set of files that belong together (one prediction's outputs): the
    temporaries are renamed over ``paths`` only if the whole block succeeds, else all are removed."""
    with ExitStack() as stack:
        yield [stack.enter_context(atomic_path(p)) for p in paths]


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: Channel names tried in order when reading depth from an EXR (FoD500 stores it in R, half float).
EXR_DEPTH_CHANNELS = ("R", "Z", "depth.Z", "Y")


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise DataError(f"missing {what}: {path} (check the data path, or re-create the dataset)")


def read_image(path: str | Path) -> np.ndarray:
    """RGB image as ``(H, W, 3)`` float32 in [0, 1] from an 8- or 16-bit TIF/PNG/JPG.

    Integer samples are divided by their type's maximum (255 or 65535), so 16-bit files keep their
    brightness; grey (and grey + alpha) is expanded to RGB, alpha dropped, palettes looked up. Floating-point
    TIFFs must already lie in [0, 1]. Pillow decodes 16-bit *RGB* PNGs to 8 bits (16-bit grey PNGs and
    16-bit TIFFs keep full precision).
    """
    path = Path(path)
    _require(path, "image")
    try:
        arr = _read_tiff(path) if path.suffix.lower() in (".tif", ".tiff") else _read_pillow(path)
    except DataError:
        raise
    except Exception as err:  # corrupt/truncated files raise many different library errors
        raise DataError(f"cannot read image {path}: {err} (file corrupt or truncated? re-copy it)") from err
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise DataError(f"cannot read image {path}: decoded shape {arr.shape}, expected (H, W, 3) RGB (corrupt file?)")
    arr = arr[..., :3] if arr.shape[-1] >= 3 else np.repeat(arr[..., :1], 3, -1)  # grey (+ alpha) -> RGB
    if arr.dtype in (np.uint8, np.uint16):
        return arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise DataError(f"{path}: floating-point image with values outside [0, 1]; save it as 8- or 16-bit")
        return arr
    raise DataError(f"{path}: {arr.dtype} samples are not supported; save the image as 8- or 16-bit")


def read_stack(paths: Sequence[str | Path]) -> np.ndarray:
    """The images of one focal stack as ``(S, H, W, 3)`` float32 in [0, 1]; all must share one size."""
    images = [read_image(p) for p in paths]
    for path, image in zip(paths, images):
        if image.shape != images[0].shape:
            raise DataError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]} px but {Path(paths[0]).name} is "
                f"{images[0].shape[1]}x{images[0].shape[0]} px; all images of a stack must share one size"
            )
    return np.stack(images)


def _read_pillow(path: Path) -> np.ndarray:
    """PNG/JPG samples, keeping 16-bit grey (Pillow's ``convert("RGB")`` would clip it to 255)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode.startswith("I;16"):
            return np.asarray(im).astype(np.uint16)  # also byte-swaps big-endian I;16B
        if im.mode == "I":  # 32-bit container of a 16-bit grey PNG (older Pillow)
            arr = np.asarray(im)
            if arr.min() < 0 or arr.max() > 65535:
                raise DataError(f"{path}: 32-bit integer image; save it as 8- or 16-bit")
            return arr.astype(np.uint16)
        if im.mode == "F":
            return np.asarray(im, dtype=np.float32)
        return np.asarray(im.convert("RGB"))  # 8-bit: L, LA, P, PA, 1, RGBA, CMYK, YCbCr


def _read_tiff(path: Path) -> np.ndarray:
    """TIFF samples via tifffile (Pillow cannot read 16-bit RGB), with palette and min-is-white applied."""
    import tifffile
    from tifffile import PHOTOMETRIC

    with tifffile.TiffFile(path) as tif:
        arr = tif.asarray()
        page = tif.pages[0]
        if tif.series[0].axes.startswith("S"):  # planar (channel-first) storage
            arr = np.moveaxis(arr, 0, -1)
        if page.photometric == PHOTOMETRIC.PALETTE:  # samples are indices into a 16-bit colour map
            return np.moveaxis(page.colormap[:, arr], 0, -1).astype(np.uint16)
        if page.photometric == PHOTOMETRIC.MINISWHITE and arr.dtype in (np.uint8, np.uint16):
            return np.iinfo(arr.dtype).max - arr
    return arr


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


#: Ground-truth depth files a focal-stack folder may hold, in the order they are looked for.
DEPTH_NAMES = ("depth.png", "depth.exr", "depth.npy")


def read_stack_json(scene: Path) -> tuple[list[Path], list[float], Camera]:
    """Images (in stack order), focus distances (m) and camera of one scene folder."""
    meta_path = scene / "stack.json"
    if not meta_path.is_file():
        raise DataError(f"missing {meta_path}: every scene folder needs a stack.json with focus_distances_m")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{meta_path} is not valid JSON: {err}") from err
    if "focus_distances_m" not in meta:
        raise DataError(f"{meta_path} lacks 'focus_distances_m' (one focus distance in metres per image)")
    if "images" in meta:
        images = [scene / name for name in meta["images"]]
    else:
        images = sorted(p for p in scene.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.lower() != "depth")
    focus = [float(d) for d in meta["focus_distances_m"]]
    if len(focus) != len(images):
        raise DataError(
            f"{meta_path}: {len(focus)} focus distances for {len(images)} images in {scene}; give one per image"
        )
    if len(images) < 1:
        raise DataError(f"{scene} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    cam_spec = meta.get("camera")
    if cam_spec is None:
        raise DataError(f"{meta_path} lacks 'camera': a preset name (fod500, nyuv2, d3net) or Camera fields")
    try:
        camera = get_camera(cam_spec) if isinstance(cam_spec, str) else Camera.from_json(cam_spec)
    except (TypeError, ValueError) as err:
        raise DataError(f"{meta_path}: bad camera: {err}") from err
    return images, focus, camera
