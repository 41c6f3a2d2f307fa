"""The batch contract between the data (``datamodules``) and everything that consumes it (``sdgs``).

``datamodules`` imports this module; the library never imports ``datamodules`` (only the command-line layer,
:mod:`sdgs.cli`, does, to build a dataset a user names). A training/validation/test batch is a dict::

    stack           (B, S, 3, H, W)  defocused images in [0, 1]
    focus_distance  (B, S)           m
    depth           (B, 1, H, W)     m, 0 = invalid (NaN never: loaders map it to 0)
    camera          {field: (B,)}    :meth:`sdgs.optics.Camera.to_batch`
    index           (B,)             sample index in its split
    crop            (B, 6)           top, left, h, w, flip_x, flip_y of the view in the full sample

``crop`` lets per-sample caches made on full samples (the splatting stage) be cut to the batch's view with
:func:`apply_crop`. Errors in data files are :class:`DataError`, whose message names the file and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["DataError", "apply_crop"]


class DataError(ValueError):
    """A dataset file is missing, unreadable or inconsistent. The message names the file and the fix."""


def apply_crop(full: Tensor, crop: Tensor | Sequence[int]) -> Tensor:
    """Cut a per-sample full-image tensor ``(..., H, W)`` to the view described by ``crop`` (6,): a tensor or,
    cheaper for a tensor on the GPU (no sync per element), its ``tolist()``."""
    top, left, h, w, flip_x, flip_y = (int(v) for v in crop)
    out = full[..., top : top + h, left : left + w]
    if flip_x:
        out = out.flip(-1)
    if flip_y:
        out = out.flip(-2)
    return out
