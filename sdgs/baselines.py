"""No-learning baselines, reported beside every result: depth from focus and the constant.

One definition each, used by the results table (:mod:`sdgs.cli.report`) and the benchmarks (``bench/``).
"""

from __future__ import annotations

import torch

__all__ = ["constant_depth", "depth_from_focus", "median_depth"]


def median_depth(depths: torch.Tensor, clip_max: float | None = None) -> float:
    """Median of the valid (> 0, finite) values of ground-truth depths of any shape (m), after clipping them
    at ``clip_max`` (m) if given (the DFV protocol scores depth clipped at 1.5 m)."""
    valid = depths[(depths > 0) & torch.isfinite(depths)]
    if valid.numel() == 0:
        raise ValueError("no valid ground-truth depth to take the median of")
    return float(valid.clamp(max=clip_max).median() if clip_max is not None else valid.median())


def constant_depth(train_dataset, max_samples: int = 64, clip_max: float | None = None) -> float:
    """The constant baseline (m): the median valid ground-truth depth of the TRAINING split.

    Never the test split's own median, which would tune the baseline on the data it is scored on.
    ``clip_max``: take the median of the depth the protocol scores (DFV: clipped at 1.5 m), which gives the
    stronger constant there (the clipped median lowers its AbsRel under that protocol).
    ``train_dataset`` needs ``len`` and ``load(i) -> {"depth": (1, H, W)}``; the first ``max_samples`` are used.
    """
    n = min(len(train_dataset), max_samples)
    if n == 0:
        raise ValueError("constant_depth needs a non-empty training split")
    return median_depth(torch.cat([train_dataset.load(i)["depth"].flatten() for i in range(n)]), clip_max)


def depth_from_focus(stack: torch.Tensor, focus: torch.Tensor) -> torch.Tensor:
    """Classic depth from focus: per pixel the focus distance of the sharpest slice ``(B, 1, H, W)``.

    Focus measure: :func:`sdgs.splatting.fit.focus_measure` over 9x9 (Nayar & Nakagawa style).
    """
    from sdgs.splatting.fit import focus_measure

    b, s, _, h, w = stack.shape
    best = focus_measure(stack, window=9, border_type="reflect").squeeze(2).argmax(1, keepdim=True)  # (B,1,H,W)
    return torch.gather(focus.view(b, s, 1, 1).expand(b, s, h, w), 1, best)
