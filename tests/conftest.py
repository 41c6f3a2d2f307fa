"""Shared pytest fixtures and settings: small, deterministic, CPU-only."""

from __future__ import annotations

import os

import pytest
import torch

# Without a GPU the triton backend's kernels run through Triton's CPU interpreter, which triton.jit picks when
# the kernels are decorated (first import of sdgs.render.triton_kernels): set it before any test imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU and gsplat's kernels (run on a GPU machine)"
)


@pytest.fixture
def gsplat_on_cpu(monkeypatch: pytest.MonkeyPatch):
    """The gsplat backend's CUDA calls routed to gsplat's torch references (tests/gsplat_proxy.py)."""
    from .gsplat_proxy import route_gsplat_to_torch_reference

    return route_gsplat_to_torch_reference(monkeypatch)
