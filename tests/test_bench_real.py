"""bench.real scores the teacher with the settings the real-photo training runs with, and its scale diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from bench.real import (
    DEV_FOLD_RUN,
    RESPONSE_SCALES,
    SMOOTH_GRID_PX,
    TEACHER_VARIANTS,
    TRAINING_CONFIG,
    carried_results,
    dev_fold,
    other_real_fit,
    real_blur_vs_lens,
    recipe_note,
    register_shift,
    scale_response,
    scale_split,
    score,
    shifted,
    training_setup,
)
from sdgs.lit.module import SDGSModule
from sdgs.splatting import SplatFitConfig

REPO = Path(__file__).resolve().parents[1]


def test_teacher_row_uses_the_training_configs_settings() -> None:
    raw = yaml.safe_load((REPO / TRAINING_CONFIG).read_text())
    stacks, teacher = training_setup()
    assert stacks["synth_focus_m"] == raw["data"]["init_args"]["synth_focus_m"]
    assert stacks["real_in_teacher"] == raw["data"]["init_args"].get("real_in_teacher", True)
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
    assert exact["abs_rel_flat_at_own_median"] > 0.2  # the rooms' shape is right: flattening it costs
    one_depth = [torch.full_like(g, 2.0) for g in gts]
    flat = scale_split(one_depth, gts)  # one depth for every room
    assert flat["scale_slope"] == 0.0
    assert flat["abs_rel_flat_at_own_median"] == score(one_depth, gts)["abs_rel"]  # already flat: nothing changes


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
    r = scale_response(_ConstantDepth(), items)
    assert r["k"] == list(RESPONSE_SCALES) and r["slope"] == 0.0
    assert r["prediction_over_captured"] == [1.0] * len(RESPONSE_SCALES)
    assert len(r["abs_rel"]) == len(RESPONSE_SCALES) and r["abs_rel"][0] != r["abs_rel"][-1]


class _Checkerboard:
    """A network whose depth is right on average but speckled: 2 m times a ±30 % checkerboard."""

    hparams: dict = {}

    def eval(self) -> _Checkerboard:
        return self

    def predict_depth(self, image: torch.Tensor, focus: torch.Tensor, camera: dict) -> dict[str, torch.Tensor]:
        h, w = image.shape[-2:]
        board = (torch.arange(h)[:, None] // 4 + torch.arange(w)[None, :] // 4) % 2
        return {"depth": (2.0 * (1.0 + 0.3 * (2 * board - 1))).expand_as(image[:, :1]).float()}


def test_dev_fold_scores_scenes_held_out_of_the_fold_only_and_picks_the_best_smoothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_dfd_indoor import _write

    _write(tmp_path, "train", {i: 40.0 * i for i in range(10)}, {i: 40.0 * i + 0.2 for i in range(10)})
    monkeypatch.setattr(SDGSModule, "load_from_checkpoint", lambda *a, **k: _Checkerboard())
    validation = [p.name for p in sorted((tmp_path / "dfd_dataset_indoor_N2_8" / "depth" / "train").iterdir())][-1:]
    out = dev_fold(str(tmp_path), validation, tmp_path / "runs" / "fold" / "checkpoints" / "last.ckpt")
    # 10 scenes: the last (validation) and the one before it held out of the fold; the fold trains on 8
    assert out["training_scenes"] == 8 and len(out["scenes"]) == 1
    assert out["scenes"][0] + ".png" not in validation
    scores = out["smooth_px"]
    assert list(scores) == [f"{s:g}" for s in SMOOTH_GRID_PX]
    # smoothing averages the speckle away: the chosen σ is the best one and beats no smoothing
    assert out["chosen_px"] > 0 and scores[f"{out['chosen_px']:g}"]["abs_rel"] < scores["0"]["abs_rel"]
    assert all(scores[f"{out['chosen_px']:g}"]["abs_rel"] <= m["abs_rel"] for m in scores.values())
    assert set(out["constant"]) >= {"abs_rel", "rmse", "delta1", "note"}


def test_register_shift_finds_a_sub_pixel_shift_and_shifted_undoes_it() -> None:
    g = torch.Generator().manual_seed(0)
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 96, 128, generator=g), 3, 1, 1)[0, 0]
    moved = shifted(texture, -1.5, 2.25)  # content moved by (+1.5, -2.25) px
    dy, dx = register_shift(moved.numpy(), texture.numpy())
    assert (dy, dx) == pytest.approx((1.5, -2.25), abs=0.13)  # 1/8-px steps
    back = shifted(moved, dy, dx)  # moved(x + d) = texture(x)
    inner = lambda t: t[8:-8, 8:-8].abs().mean()  # noqa: E731  (the phase ramp wraps at the borders)
    assert float(inner(back - texture)) < 0.1 * float(inner(moved - texture))


def test_real_blur_vs_lens_measures_a_known_blur_and_sees_through_a_shift(tmp_path: Path) -> None:
    """Tiny files in the published layout: each f/2.8 photo is its f/8 photo blurred by σ = 1 px and shifted by
    3 px. Registered, the measured σ is 1; as captured, the shift reads as much more blur."""
    import kornia
    import numpy as np
    from PIL import Image

    from datamodules import DFDIndoorDataModule
    from sdgs.io import write_image
    from tests.test_dfd_indoor import _name

    g = torch.Generator().manual_seed(1)
    for i in range(3):
        sharp = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 120, 180, generator=g), 3, 1, 1)
        real = shifted(kornia.filters.gaussian_blur2d(sharp, (7, 7), (1.0, 1.0), border_type="reflect"), 0.0, 3.0)
        depth = np.full((120, 180), 3000, np.uint16)
        for aperture, image in (("N8", sharp), ("N2_8", real)):
            for kind in ("rgb", "depth"):
                (tmp_path / f"dfd_dataset_indoor_{aperture}" / kind / "train").mkdir(parents=True, exist_ok=True)
            folder = tmp_path / f"dfd_dataset_indoor_{aperture}"
            write_image(folder / "rgb" / "train" / f"{_name(10.0 * i)}.png", image[0].permute(1, 2, 0).numpy())
            Image.fromarray(depth).save(folder / "depth" / "train" / f"{_name(10.0 * i)}.png")
    dm = DFDIndoorDataModule(
        str(tmp_path), synthesize=True, synth_camera="dfd_indoor", synth_focus_m=[1.0, 3.0], real_in_stack=True,
        val_fraction=0.0,
    )  # fmt: skip
    out = real_blur_vs_lens(dm.dataset("train"), border=6)
    assert out["shift_px"]["median_abs_dx"] == pytest.approx(3.0, abs=0.13)
    (row,) = out["bins"]  # one depth, one bin
    assert row["sigma_registered_px"] == pytest.approx(1.0, abs=0.15)
    assert row["sigma_as_captured_px"] > 1.5


def test_recipe_note_names_what_a_run_did_unlike_the_configuration(tmp_path: Path) -> None:
    recipe = {"real_in_teacher": True, "twin_base_blur_px": 0.4}

    def note(data: dict, model: dict | None = None) -> str:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({"data": {"init_args": data}, "model": model or {}}))
        return recipe_note(tmp_path, recipe)

    assert recipe_note(tmp_path / "absent", recipe) == ""
    assert note({"real_in_stack": True, "twin_base_blur_px": 0.4}) == ""
    assert note({"real_in_stack": True}) == "; data.twin_base_blur_px=0.0"  # a run made before the option
    both = note({"real_in_stack": True, "real_in_teacher": False})
    assert both == "; data.real_in_teacher=False, data.twin_base_blur_px=0.0"
    # no teacher (supervised) or no real photo in training: whether the teacher fits it does not matter
    unfitted = {"real_in_stack": True, "real_in_teacher": False, "twin_base_blur_px": 0.4}
    assert note(unfitted, {"supervised": True}) == ""
    assert note({**unfitted, "real_in_training": False}) == ""
    assert note({"real_in_stack": False}) == ""


def test_other_real_fit_flips_the_real_photos_flag_only() -> None:
    items = [{"fit_images": torch.tensor([True, True, True])}, {"fit_images": torch.tensor([True, True, True])}]
    label, flipped = other_real_fit(items)
    assert label == "the real photo left out of the fit"
    assert [x["fit_images"].tolist() for x in flipped] == [[True, True, False]] * 2
    assert items[0]["fit_images"].tolist() == [True, True, True]  # the originals untouched
    assert other_real_fit(flipped)[0] == "the real photo fitted too"
    with pytest.raises(ValueError, match="real_in_stack"):
        other_real_fit([{"stack": torch.zeros(2, 3, 4, 4)}])


def test_carried_rows_keep_model_rows_and_their_first_date(tmp_path: Path) -> None:
    """Rows of absent checkpoints survive a rerun with the date they were measured; baselines are re-measured."""
    assert carried_results(tmp_path / "none.json") == {"rows": {}}
    earlier = {
        "date": "2026-12-01 10:00:00",
        "rows": {
            "constant (median training depth)": {"abs_rel": 0.3},
            "model": {"abs_rel": 0.2, "command": "make real-ckpt"},
            "older": {"abs_rel": 0.25, "command": "sdgs fit …", "carried": "2026-11-20 09:00:00"},
        },
        "dev_fold": {"chosen_px": 32.0},
    }
    (tmp_path / "real.json").write_text(json.dumps(earlier))
    kept = carried_results(tmp_path / "real.json")
    assert kept["dev_fold"] == {"chosen_px": 32.0, "carried": "2026-12-01 10:00:00"}  # the dev fold is kept too
    rows = kept["rows"]
    assert set(rows) == {"model", "older"}
    assert rows["model"] == {"abs_rel": 0.2, "command": "make real-ckpt", "carried": "2026-12-01 10:00:00"}
    assert rows["older"]["carried"] == "2026-11-20 09:00:00"


def test_the_configs_output_smoothing_is_the_dev_folds_choice() -> None:
    """The committed bench/real.json's dev fold chose the σ the real-photo config ships (not the validation rooms)."""
    dev = json.loads((REPO / "bench" / "real.json").read_text())["dev_fold"]
    raw = yaml.safe_load((REPO / TRAINING_CONFIG).read_text())
    assert raw["model"]["predict_smooth_px"] == dev["chosen_px"] == dev["config_px"]
    assert dev["chosen_px"] in SMOOTH_GRID_PX and str(DEV_FOLD_RUN) == dev["run"]
