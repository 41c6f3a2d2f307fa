"""``make bench-single-image`` (bench/single_image_oracle.py) at toy size: each run trains through SDGSModule,
and the JSON holds what ``single_image_page`` (``make docs``) reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import single_image_oracle as oracle

pytestmark = pytest.mark.slow

RUNS = ["oracle (ground truth)", "self-supervised, confidence-weighted"]


def test_runs_train_through_the_module_and_the_json_lays_out_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[oracle.SDGSModule, dict[str, torch.Tensor]]] = []

    class Recorded(oracle.SDGSModule):
        def __init__(self, **kw) -> None:
            super().__init__(**kw)
            made.append((self, {k: v.clone() for k, v in self.sdnet.state_dict().items()}))

    monkeypatch.setattr(oracle, "SDGSModule", Recorded)
    out = tmp_path / "oracle.json"
    oracle.main(
        ["--train", "4", "--test", "1", "--size", "32", "--steps", "3", "--eval-every", "2", "--batch-size", "2",
         "--runs", *RUNS, "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
         "--figure", str(tmp_path / "curves.png")]
    )  # fmt: skip

    assert len(made) == len(RUNS)
    for (module, before), name in zip(made, RUNS):
        assert module.hparams.stage == "sdnet" and module.trainer.global_step == 3, name
        after = module.sdnet.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before), f"{name}: SDNet weights unchanged"
    assert made[0][0].hparams.supervised and not made[1][0].hparams.supervised

    result = json.loads(out.read_text())
    assert result["steps"] == 3 and result["trainer"].startswith("SDGSModule")
    for name in RUNS:
        run = result["runs"][name]
        assert run["steps"] == 3
        assert [p["step"] for p in run["curve"]] == [2, 3]  # every 2 steps and the last
        for family in ("pink", "geometric"):
            point = run["curve"][-1][family]
            assert len(point["abs_rel_per_focus_index"]) == 5
            assert set(point["abs_rel_per_band_and_focus_index"]) == set(oracle.BANDS)
    for row in ("constant", "splatting_stage"):
        assert set(result[row]) == {"pink", "geometric"}
    page = oracle.single_image_page(result, None)
    assert f"`{result['command']}`" in page and "--steps 3" in page
    assert "## Learning curves (SDNet alone, SDGSModule" in page
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "single_image_coc.png").is_file()
