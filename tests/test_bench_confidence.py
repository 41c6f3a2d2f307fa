"""``make bench-confidence`` (bench/confidence.py): its calibration table."""

from __future__ import annotations

import torch

from bench.confidence import BINS, calibration


def test_calibration_bins_share_and_error() -> None:
    conf = torch.tensor([0.05, 0.05, 0.55, 0.95])
    err = torch.tensor([0.2, 0.4, 0.1, 0.02])
    rows = calibration(conf, err)
    assert len(rows) == len(BINS) - 1 and rows[-1]["confidence"] == [0.9, 1.0]
    assert sum(r["pixel_share"] for r in rows) == 1.0
    assert rows[0] == {"confidence": [0.0, 0.1], "pixel_share": 0.5, "mean_rel_error": 0.3}
    assert rows[4]["mean_rel_error"] == 0.1 and rows[-1]["mean_rel_error"] == 0.02
    assert rows[1]["mean_rel_error"] is None and rows[1]["pixel_share"] == 0.0  # an empty bin
