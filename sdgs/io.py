"""File writing shared by every part of sdgs: all-or-nothing writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_paths"]


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
