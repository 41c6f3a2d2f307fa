"""The notebooks execute headless (small sizes), are committed without outputs, and compute what they claim.

Each notebook runs in one kernel; a check cell appended after its last cell then asserts on the
variables it computed, and the test reads what it printed and plotted.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Run in the notebook's kernel after its last cell.
CHECKS = {
    "01_optics_and_rendering.ipynb": """
stack = out['image'][0]
assert stack.shape == (len(focus), 3, SIZE, SIZE), stack.shape
assert abs(float(stack.mean()) - float(scene['rgb'].mean())) < 0.02  # normalised kernels keep energy
assert float((stack[0] - stack[-1]).abs().max()) > 0.05  # the focus distance changes the image
assert float((far - rgb)[..., 22:42, 22:42].abs().mean()) > 0.05  # the defocused square is blurred
""",
    "02_train_and_evaluate.ipynb": """
assert trainer.global_step == 20, trainer.global_step
assert len(list(__import__('pathlib').Path(work, 'cache').rglob('*.pt'))) >= 8  # every training scene fitted
near, far = dm.camera.depth_range_m
assert out['depth'].shape == (4, 1, 32, 32) and bool(((out['depth'] >= near) & (out['depth'] <= far)).all())
""",
}


def _run(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "strip outputs before commit"
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS[name]))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[str]:
    """Texts of the notebook's outputs: ``stream`` (printed), ``result`` (cell values) or ``png`` (figures)."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if kind == "stream" and o.output_type == "stream":
                out.append(o.text)
            elif kind == "result" and o.output_type == "execute_result":
                out.append(o.data["text/plain"])
            elif kind == "png" and "image/png" in o.get("data", {}):
                out.append(o.data["image/png"])
    return out


def test_every_notebook_has_checks() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CHECKS)


def test_optics_and_rendering_notebook(tmp_path: Path) -> None:
    nb = _run("01_optics_and_rendering.ipynb", tmp_path)
    assert len(_outputs(nb, "png")) == 3  # CoC curves, focal stack, occlusion
    (printed,) = [t for t in _outputs(nb, "stream") if t.startswith("interior change")]
    assert float(printed.split(":")[1]) < 1e-4  # an in-focus occluder stays sharp


def test_train_and_evaluate_notebook(tmp_path: Path) -> None:
    nb = _run("02_train_and_evaluate.ipynb", tmp_path)
    assert len(_outputs(nb, "png")) == 1  # predicted vs ground-truth depth
    (shown,) = _outputs(nb, "result")
    metrics = ast.literal_eval(shown)
    assert {"test/abs_rel", "test/rmse", "test/delta1"} <= set(metrics), sorted(metrics)
    assert all(math.isfinite(v) and v >= 0 for v in metrics.values())
    assert metrics["test/delta1"] <= 100.0  # DFV protocol: percent
