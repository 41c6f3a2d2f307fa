"""bench.real scores the teacher with the settings the real-photo training runs with, and its scale diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from bench.real import RESPONSE_SCALES, TEACHER_VARIANTS, TRAINING_CONFIG, scale_response, scale_split, training_setup
from sdgs.splatting import SplatFitConfig

REPO = Path(__file__).resolve().parents[1]


def test_teacher_row_uses_the_training_configs_settings() -> None:
    raw = yaml.safe_load((REPO / TRAINING_CONFIG).read_text())
    focus, teacher = training_setup()
    assert focus == raw["data"]["init_args"]["synth_focus_m"]
    for key, value in raw["splat"].items():  # every override of the config reaches the teacher
        assert getattr(teacher, key) == value, key
    # base.yaml's splat block is merged underneath: settings the delta leaves alone keep the library default
    untouched = [f for f in ("sweep_planes", "sweep_temperature") if f not in raw["splat"]]
    assert untouched and all(getattr(teacher, f) == getattr(SplatFitConfig(), f) for f in untouched)


def test_teacher_variants_are_settings_of_the_fit() -> None:
    fields = set(SplatFitConfig.__dataclass_fields__)
    assert all(set(overrides) <= fields for overrides in TEACHER_VARIANTS.values())
    # the training configuration's own choice is among the variants it was chosen from
    _, teacher = training_setup()
    chosen = {k: getattr(teacher, k) for k in ("sweep_window", "sweep_guided_eps")}
    assert chosen in TEACHER_VARIANTS.values()


def _rooms(n: int = 3) -> list[torch.Tensor]:
    """``n`` ground-truth maps ``(1, 8, 12)`` of different median depth, a hole (0) in each."""
    gts = [torch.linspace(1.0, 3.0, 96).view(1, 8, 12) * (1.0 + 0.5 * i) for i in range(n)]
    for g in gts:
        g[0, 0, 0] = 0.0
    return gts


def test_scale_split_reads_bias_and_slope() -> None:
    gts = _rooms()
    exact = scale_split([g * 0.5 + (g == 0) for g in gts], gts)  # every room twice too near, shape exact
    assert exact["scale_gt_over_pred"] == [2.0, 2.0, 2.0] and exact["scale_bias"] == 2.0
    assert exact["scale_slope"] == 1.0 and exact["abs_rel_after_per_scene_scale"] == pytest.approx(0.0, abs=1e-4)
    flat = scale_split([torch.full_like(g, 2.0) for g in gts], gts)  # one depth for every room
    assert flat["scale_slope"] == 0.0


class _ConstantDepth:
    """predict_depth of a network that ignores its input: one depth everywhere."""

    def predict_depth(self, image: torch.Tensor, focus: torch.Tensor, camera: dict) -> dict[str, torch.Tensor]:
        return {"depth": torch.full_like(image[:, :1], 2.5)}


def test_scale_response_of_a_network_blind_to_blur() -> None:
    gts = _rooms(2)
    items = [
        {"stack": torch.rand(1, 3, 8, 12), "focus_distance": torch.tensor([1.7]), "depth": g * k}
        for k in RESPONSE_SCALES
        for g in gts
    ]
    r = scale_response(_ConstantDepth(), items, flip=True)
    assert r["k"] == list(RESPONSE_SCALES) and r["slope"] == 0.0
    assert r["prediction_over_captured"] == [1.0] * len(RESPONSE_SCALES)
    assert len(r["abs_rel"]) == len(RESPONSE_SCALES) and r["abs_rel"][0] != r["abs_rel"][-1]
