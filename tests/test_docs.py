"""The generated pages (docs/results.md, docs/benchmarks.md, the README's figure and results-table blocks) are
current, and the generator turns a bench JSON into rows and sections, skipping what is absent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from docs import make_results
from docs.make_results import FIGURES, REAL_SECTION, TABLE, delta1_percent, render_pages, stale

REPO = Path(__file__).resolve().parents[1]


def test_committed_pages_are_current() -> None:
    assert stale(REPO) == [], "run `make docs` (python -m docs.make_results) and commit the result"


def test_readme_is_short_and_ci_runs_its_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for command in ("make install", "sdgs fit --config lightning_configs/quickstart.yaml", "make test"):
        assert command in readme, command
    ci = (REPO / ".ci" / "run").read_text()
    assert "make install" in ci and "make test" in ci


def test_delta1_is_percent_whatever_the_json_stores() -> None:
    assert delta1_percent(0.25, "Eigen: 1e-3 < GT < 10 m, δ as fractions") == pytest.approx(25.0)
    assert delta1_percent(25.0, "DFV (clip to [0, 1.5] m)") == 25.0
    assert delta1_percent(None, "DFV") is None


def _tiny_repo(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "bench").mkdir()
    (root / "README.md").write_text(
        "# x\n\n" + "\n".join(FIGURES) + "\n\n## Results\n\n" + "\n".join(TABLE) + "\n\nend\n"
    )
    return root


def test_real_photographs_become_rows_and_a_section_and_lead_the_figures(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    real = {
        "data": "DFD-indoor test split, 3 photos",
        "protocol": "Eigen: 1e-3 < GT < 10 m, per-image mean, δ as fractions",
        "rows": {
            "sdgs, self-supervised": {"abs_rel": 0.2, "rmse": 0.9, "delta1": 0.654, "note": "trained on DFD stacks"},
            "constant": {"abs_rel": 0.3, "rmse": 1.4, "delta1": 0.4},
        },
    }
    (repo / "bench" / "real.json").write_text(json.dumps(real))
    for name in ("real_photos.png", "prediction.png"):
        (repo / "docs" / name).write_bytes(b"")
    pages = render_pages(repo)
    results, readme = pages[repo / "docs" / "results.md"], pages[repo / "README.md"]
    assert f"## {REAL_SECTION}" in results and "trained on DFD stacks" in results
    assert "| sdgs, self-supervised | 0.200 | 0.900 | 65.4 |" in results  # δ1 fraction -> percent
    assert "| real photos (DFD-indoor test split, 3 photos) | sdgs, self-supervised | one image | 0.200 |" in readme
    assert "|  | constant | one image | 0.300 | 1.400 | 40.0 |" in readme
    figures = [line for line in readme.splitlines() if line.startswith("![")]
    assert [f.split("](")[1] for f in figures] == ["docs/real_photos.png)", "docs/prediction.png)"]
    assert readme.endswith("\nend\n")  # only the blocks change
    # the generator's own output is a fixed point
    for path, text in pages.items():
        path.write_text(text)
    assert stale(repo) == []


def test_absent_sources_are_skipped_cleanly(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    pages = render_pages(repo)
    assert REAL_SECTION not in pages[repo / "docs" / "results.md"]
    readme = pages[repo / "README.md"]
    assert "real_photos.png" not in readme and "| data | method |" in readme
    shutil.copy(REPO / "bench" / "quickstart.json", repo / "bench" / "quickstart.json")
    readme = render_pages(repo)[repo / "README.md"]
    assert "| procedural scenes (FoD500 optics), held out | **sdgs**, self-supervised | one image |" in readme


def test_missing_markers_are_an_error(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    (repo / "README.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers"):
        render_pages(repo)


def test_check_fails_until_the_pages_are_written(tmp_path: Path) -> None:
    repo = _tiny_repo(tmp_path)
    assert make_results.main(["--repo", str(repo), "--check"]) == 1
    assert make_results.main(["--repo", str(repo)]) == 0
    assert make_results.main(["--repo", str(repo), "--check"]) == 0
