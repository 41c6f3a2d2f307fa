"""The package layout the README describes, in layers that import downwards only:
``sdgs`` (the library) <- ``datamodules`` <- ``sdgs.cli`` (every entry point) <- ``bench``. No exceptions:
the library never imports ``datamodules`` or ``sdgs.cli``, the datamodules never import ``sdgs.cli``. The
renderer holds the renderer, the splatting stage has one home."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _back_arrows(files: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """``{file: [imported modules under a forbidden prefix]}`` for the files that have any."""
    out = {}
    for path in files:
        bad = sorted(
            m for m in imported_modules(path) if m in forbidden or m.startswith(tuple(f + "." for f in forbidden))
        )
        if bad:
            out[str(path)] = bad
    return out


def test_the_library_imports_neither_datamodules_nor_the_command_line_layer() -> None:
    library = [p for p in (REPO / "sdgs").rglob("*.py") if (REPO / "sdgs" / "cli") not in p.parents]
    assert len(library) > 20
    assert _back_arrows(library, ("datamodules", "sdgs.cli")) == {}


def test_datamodules_do_not_import_the_command_line_layer() -> None:
    assert _back_arrows(sorted((REPO / "datamodules").rglob("*.py")), ("sdgs.cli",)) == {}


def test_the_back_arrow_check_sees_an_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from sdgs.cli.lightning import make_cli\nimport datamodules.base\nimport sdgs.clip\n")
    assert _back_arrows([probe], ("datamodules", "sdgs.cli")) == {
        str(probe): ["datamodules.base", "sdgs.cli.lightning"]
    }


def test_renderer_does_not_import_the_splatting_stage() -> None:
    for path in (REPO / "sdgs" / "render").glob("*.py"):
        assert not any(m.startswith(("sdgs.splatting", "sdgs.lit")) for m in imported_modules(path)), path


def test_batched_camera_is_one_way_from_every_source() -> None:
    from sdgs.optics import FOD500, batched_camera

    batch = {k: v.expand(3) for k, v in FOD500.to_tensors().items()}
    as4 = batched_camera(batch, 4)
    assert as4.focal_length_m.shape == (3, 1, 1, 1) and as4.fx_px.shape == (3, 1, 1, 1)
    as5 = batched_camera(as4, 5)  # re-ranked, every per-sample field alike
    assert all(getattr(as5, k).shape == (3, 1, 1, 1, 1) for k in ("focal_length_m", "f_number", "fx_px", "cy_px"))
    assert torch.equal(as5.focal_length_m.flatten(), batch["focal_length_m"])
    preset = batched_camera("fod500", 4, size=(32, 48))  # a scalar camera: centred crop of its sensor
    assert (preset.height_px, preset.width_px) == (32, 48) and preset.pixel_size_m == FOD500.pixel_size_m


def test_no_bench_script_computes_a_depth_error_by_hand() -> None:
    """AbsRel / RMSE / δ come from :mod:`sdgs.metrics` (error maps, per-image means), never re-derived."""
    import re

    by_hand = re.compile(r"\.abs\(\)\s*/|1\.25\s*\*\*|\)\s*\*\*\s*2\)\.mean\(\)\.sqrt|torch\.maximum\([^)]*/")
    offenders = [
        f"{p.relative_to(REPO)}:{i}"
        for p in sorted((REPO / "bench").glob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if by_hand.search(line)
    ]
    assert offenders == []
