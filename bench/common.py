"""Helpers shared by the benchmarks: machine facts, timing, JSON output."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """What ran the benchmark (numbers are only comparable on the same machine)."""
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gsplat": _version("gsplat"),
    }
    return info


def best_of(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Smallest wall time (s) of ``repeats`` runs after ``warmup`` runs (noisy machines: take the minimum)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def write_json(path: str | Path, payload: dict, echo: bool = True) -> None:
    """Write ``payload`` with the machine facts and date (atomically: rewriting it mid-run is safe)."""
    from sdgs.io import atomic_path

    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
    if echo:
        print(json.dumps(payload, indent=2))
