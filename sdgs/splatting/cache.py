"""Disk cache of splatting-stage fits, one file per (dataset split, sample).

Key = dataset identity + split + sample index + camera + fitting config (hashed into the folder name
and stored inside each entry). Entries are written to a temporary file and renamed, so concurrent
writers (runs, DDP ranks) never leave a half-written entry; an unreadable, stale or non-finite entry is
reported as missing and refitted, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import Tensor

from sdgs.io import atomic_path
from sdgs.splatting.fit import SplatFit, SplatFitConfig

__all__ = ["SplatCache"]

#: The stored fields: exactly those of :class:`~sdgs.splatting.fit.SplatFit`.
FIELDS = tuple(f.name for f in dataclasses.fields(SplatFit))


class SplatCache:
    """Per-sample store of :class:`~sdgs.splatting.fit.SplatFit` fields (unbatched tensors, CPU).

    Args:
        root: cache folder (shared between runs is safe).
        identity: dataset identity (e.g. ``DataModule.identity``) plus split.
        camera_key: the optics (``Camera.cache_key()`` or any stable string).
        config: the fitting settings.
    """

    def __init__(self, root: str | Path, identity: str, camera_key: str, config: SplatFitConfig) -> None:
        self.key = json.dumps({"identity": identity, "camera": camera_key, "config": config.key()}, sort_keys=True)
        digest = hashlib.sha1(self.key.encode()).hexdigest()[:16]
        self.dir = Path(root) / digest
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise PermissionError(
                f"splatting cache folder {self.dir} is not writable ({err}); set a writable cache_dir "
                "(e.g. --trainer.callbacks... GaussianSplattingStage cache_dir=/tmp/sdgs-cache)"
            ) from err
        meta = self.dir / "key.json"
        if not meta.is_file():
            with atomic_path(meta) as tmp:
                tmp.write_text(self.key)

    def path(self, index: int) -> Path:
        return self.dir / f"{int(index):07d}.pt"

    def load(self, index: int) -> dict[str, Tensor] | None:
        """Fields of sample ``index``, or None if missing, unreadable, stale or non-finite."""
        path = self.path(index)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None
        if not isinstance(entry, dict) or entry.get("key") != self.key:
            return None
        fields = entry.get("fields", {})
        if set(fields) != set(FIELDS) or not all(torch.isfinite(v).all() for v in fields.values()):
            return None
        return fields

    def save(self, index: int, fields: dict[str, Tensor]) -> None:
        """Store one sample's fields atomically."""
        # clone: a row of a batched fit is a view, and torch.save writes a view's whole storage (every scene)
        payload = {"key": self.key, "fields": {k: fields[k].detach().cpu().clone() for k in FIELDS}}
        with atomic_path(self.path(index)) as tmp:
            torch.save(payload, tmp)

    def done(self, indices: list[int]) -> set[int]:
        """The indices whose entries exist (not validated; :meth:`load` validates)."""
        return {i for i in indices if self.path(i).is_file()}
