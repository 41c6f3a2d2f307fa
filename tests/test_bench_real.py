"""bench.real scores the teacher with the settings the real-photo training runs with."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.real import TEACHER_VARIANTS, TRAINING_CONFIG, training_setup
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
