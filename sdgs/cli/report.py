"""Experiments and the results table: ``make reproduce-table`` and ``make bench-train``.

For every experiment of ``lightning_configs/table.yaml`` (procedural quickstart by default; FoD500 and
NYUv2 when their data paths are set) this runs, as a user would (``sdgs fit`` / ``sdgs test`` in
subprocesses), each of our rows:

* ``self-supervised``: SDNet + DepthNet from ONE defocused image (the experiment's config as is);
* ``supervised``: the same networks and budget with ground-truth targets on every valid pixel and the
  AbsRel loss (``model.supervised=true``: the upper bound, with the best loss of docs/single_image.md);
* ``splatting stage``: z_gs fitted to the whole focal stack (a focal-stack-input method, DEReD's setting);
* ``depth from focus``: per-pixel sharpest slice under a Laplacian focus measure (no learning, a floor);
* ``constant``: the median ground-truth depth of the training split for every pixel (DFV: of the depth
  clipped at 1.5 m, as the protocol scores it).

Each row is a run folder ``results/<experiment>/<row>/`` (its config delta ``row.yaml``, checkpoints,
logs, ``metrics.json``); a finished row is reused unless ``force``, which deletes that folder first.
Seeds are fixed, so reruns on CPU give
the same table. Published peers' numbers (table.yaml, sources in docs/protocols.md) carry their protocol; rows
that cannot run here say ``needs data: <option>``, never a number.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from sdgs.baselines import constant_depth, depth_from_focus
from sdgs.cli.lightning import splat_settings
from sdgs.metrics import DFV_CLIP_M

__all__ = ["Experiment", "load_experiments", "run_table", "write_table"]

ROWS = ("self-supervised", "supervised", "splatting stage", "depth from focus", "constant")


@dataclass
class Experiment:
    """One block of the table.

    Attributes:
        name: experiment id (``procedural``, ``fod500``, ``nyuv2``).
        config: the experiment's LightningCLI YAML.
        needs: ``{option: dotted config key, env: variable}``; the experiment runs only if the variable
            points at existing data (its value is set as that option).
        overrides: dotted-key overrides applied to the config (e.g. smaller data for tests).
        peers: published numbers of other methods on this data, each ``{method, abs_rel, rmse, delta1,
            protocol}`` (the protocol says how it was measured; shown beside ours, never re-run).
        trained_in: test the network rows that an earlier experiment of the table trained (its
            ``<out>/<trained_in>/<row>/checkpoints/last.ckpt``) instead of training: with ``overrides`` on the
            data, the same models on another test set (e.g. a texture family they never saw).
    """

    name: str
    config: str
    needs: list[dict[str, str]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    peers: list[dict[str, Any]] = field(default_factory=list)
    trained_in: str | None = None


def load_experiments(path: str | Path) -> list[Experiment]:
    data = yaml.safe_load(Path(path).read_text())
    return [Experiment(**e) for e in data["experiments"]]


def _set(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def _row_delta(row: str, root: Path, cache: Path) -> dict:
    """The row's config delta, loaded after the experiment's own (base + experiment + row): its own run
    folder, the experiment's shared splatting cache, CSV logging only, no progress bar."""
    delta: dict[str, Any] = {
        "trainer": {
            "default_root_dir": str(root),
            "logger": [{"class_path": "sdgs.lit.RunCSVLogger"}],
            "enable_progress_bar": False,
        },
        "splat": {"cache_dir": str(cache)},
    }
    if row == "supervised":
        # ground-truth targets (with their default loss, AbsRel); no rendered losses: the splatting stage stays
        # idle. Data and augmentation as the experiment's (the self-supervised row's): over three training seeds
        # this is the upper bound on every metric of the training family (bench/train.json: seed_summary)
        delta["model"] = {"supervised": True, "blur_weight": 0.0, "depth_render_weight": 0.0}
    return delta


def _sdgs(args: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        proc = subprocess.run([sys.executable, "-m", "sdgs.cli", *args], stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"`sdgs {' '.join(args)}` failed; see {log}")


def _network_row(exp: Experiment, options: list[str], row: str, out: Path, cache: Path, force: bool, say) -> dict:
    root = out / exp.name / row.replace(" ", "_")
    metrics_path = root / "metrics.json"
    source = out / exp.trained_in / row.replace(" ", "_") / "checkpoints" / "last.ckpt" if exp.trained_in else None
    stale = (
        source is not None
        and source.is_file()
        and metrics_path.is_file()
        and (source.stat().st_mtime > metrics_path.stat().st_mtime)
    )  # the models it tests were retrained since
    if metrics_path.is_file() and not force and not stale:
        say(f"[{exp.name}] {row}: finished earlier, reusing {metrics_path}")
        return json.loads(metrics_path.read_text())
    if force and root.exists():
        shutil.rmtree(root)  # the row's own run folder, written only by this tool
    root.mkdir(parents=True, exist_ok=True)
    delta = root / "row.yaml"
    delta.write_text(yaml.safe_dump(_row_delta(row, root, cache), sort_keys=False))
    configs = ["--config", exp.config, "--config", str(delta), *options]
    ckpt = source or root / "checkpoints" / "last.ckpt"
    if source is not None and not source.is_file():
        raise FileNotFoundError(
            f"[{exp.name}] tests the {row!r} model of experiment {exp.trained_in!r}, but {source} does not "
            f"exist: run {exp.trained_in!r} first (list it before {exp.name!r} in the experiments file)"
        )
    t0 = time.perf_counter()
    if ckpt.is_file():
        say(f"[{exp.name}] {row}: reusing checkpoint {ckpt}")
    else:
        say(f"[{exp.name}] {row}: training (sdgs fit {' '.join(configs)})")
        _sdgs(["fit", *configs], root / "fit.log")
    fit_s = time.perf_counter() - t0
    say(f"[{exp.name}] {row}: testing on single defocused images")
    _sdgs(["test", *configs, "--ckpt_path", str(ckpt)], root / "test.log")
    result = json.loads(metrics_path.read_text())
    result["fit_seconds"] = None if exp.trained_in else round(fit_s, 1)
    metrics_path.write_text(json.dumps(result, indent=2))
    return result


def _instantiate_data(base: dict):
    from jsonargparse import ArgumentParser
    from lightning import LightningDataModule

    parser = ArgumentParser()
    parser.add_argument("--data", type=LightningDataModule)
    cfg = parser.parse_object({"data": base["data"]})
    return parser.instantiate_classes(cfg).data


def _stack_rows(exp: Experiment, base: dict, cache: Path, say) -> dict[str, dict]:
    """Rows computed from the full test stacks without networks: splatting stage, depth from focus, constant."""
    from torch.utils.data import default_collate

    from sdgs.metrics import DepthMetrics
    from sdgs.splatting import GaussianSplattingStage

    dm = _instantiate_data(base)
    stage = GaussianSplattingStage(**{**base.get("splat", {}), "cache_dir": str(cache)})
    stage.bind(dm)
    test = dm.dataset("test")
    protocol = base.get("model", {}).get("metric_protocol", "dfv")
    near = base.get("model", {}).get("near_max", DFV_CLIP_M)
    metrics = {
        row: (DepthMetrics(protocol), DepthMetrics(protocol, near_max=near) if protocol == "dfv" else None)
        for row in ("splatting stage", "depth from focus", "constant")
    }
    # the median of the depth the protocol scores (DFV clips at 1.5 m): the stronger constant
    const = constant_depth(dm.dataset("train"), clip_max=DFV_CLIP_M if protocol == "dfv" else None)
    # the fits of missing test stacks: on the GPU when the experiment trains on one
    accelerator = base.get("trainer", {}).get("accelerator", "auto")
    device = torch.device("cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")
    say(f"[{exp.name}] splatting stage / depth from focus / constant on {len(test)} test stacks")
    for start in range(0, len(test), 8):
        idx = list(range(start, min(len(test), start + 8)))
        batch = default_collate([test.load(i) for i in idx])
        fields = stage.fields_for("test", idx, device)
        preds = {
            "splatting stage": torch.stack([fields[i]["depth"] for i in idx]),
            "depth from focus": depth_from_focus(batch["stack"], batch["focus_distance"]),
            "constant": torch.full_like(batch["depth"], const),
        }
        for row, pred in preds.items():
            for m in metrics[row]:
                if m is not None:
                    m.update(pred, batch["depth"])
    out = {}
    for row, (m_all, m_near) in metrics.items():
        values = {f"test/{k}": float(v) for k, v in m_all.compute().items()}
        if m_near is not None:
            values.update({f"test/near/{k}": float(v) for k, v in m_near.compute().items()})
        out[row] = {"metrics": values}
    out["constant"]["value_m"] = const
    return out


def run_table(
    experiments: list[Experiment],
    out: str | Path = "results",
    force: bool = False,
    rows=ROWS,
    say=print,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run every runnable experiment's rows; returns ``{experiment: {row: result | needs}}``.

    Splatting fits are cached per experiment (``<out>/<experiment>/splat_cache``) unless ``cache_dir`` names
    one cache for all (variants of one dataset; the cache is keyed by data, sample, camera and settings).
    """
    out = Path(out)
    table: dict[str, Any] = {}
    for exp in experiments:
        # the experiment as the CLI sees it, for the rows computed here (data, splatting settings):
        # lightning_configs/base.yaml's `splat` updated by the experiment's
        base = yaml.safe_load(Path(exp.config).read_text())
        base["splat"] = splat_settings(exp.config)
        options = []
        for key, value in exp.overrides.items():
            _set(base, key, value)
            options.append(f"--{key}={value}")
        missing = []
        for need in exp.needs:
            value = os.environ.get(need["env"])
            if not value or not Path(value).exists():
                missing.append(f"needs data: --{need['option']} (set {need['env']})")
            else:
                _set(base, need["option"], value)
                options.append(f"--{need['option']}={value}")
        if missing:
            say(f"[{exp.name}] skipped: {'; '.join(missing)}")
            table[exp.name] = {"needs": missing, "peers": exp.peers}
            continue
        cache = Path(cache_dir or out / exp.name / "splat_cache").resolve()
        results: dict[str, Any] = {}
        t0 = time.perf_counter()
        for row in rows:
            if row in ("self-supervised", "supervised"):
                results[row] = _network_row(exp, options, row, out, cache, force, say)
        if any(r in rows for r in ("splatting stage", "depth from focus", "constant")):
            results.update({k: v for k, v in _stack_rows(exp, base, cache, say).items() if k in rows})
        results["_seconds"] = round(time.perf_counter() - t0, 1)
        results["peers"] = exp.peers
        results["trained_in"] = exp.trained_in
        table[exp.name] = results
    return table


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if pct else f"{value:.3f}"


def write_table(table: dict[str, Any], out: str | Path = "results") -> Path:
    """``results/table.md`` and ``results/table.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    lines = ["# Results", ""]
    for exp, rows in table.items():
        lines.append(f"## {exp}")
        lines.append("")
        if "needs" in rows:
            lines += [f"Not run here: {'; '.join(rows['needs'])}.", ""]
        else:
            dfv = any("test/bumpiness" in (r.get("metrics") or {}) for r in rows.values() if isinstance(r, dict))
            if dfv:
                lines.append(
                    "Protocol: DFV (clip prediction and GT to [0, 1.5] m, gt > 0, per-image mean, δ in %); "
                    "near = GT < 1.5 m. Single-image rows average over every focus index."
                )
                lines.append("")
                lines.append("| method | input | AbsRel ↓ | RMSE ↓ | δ1 (%) ↑ | AbsRel near ↓ | RMSE near ↓ |")
                lines.append("|---|---|---|---|---|---|---|")
            else:
                lines.append("Protocol: Eigen (valid 1e-3 < gt < 10 m, per-image mean, δ as a fraction, RMSE-log ln).")
                lines.append("")
                lines.append("| method | input | AbsRel ↓ | RMSE ↓ | δ1 ↑ |")
                lines.append("|---|---|---|---|---|")
            inputs = {
                "self-supervised": "one defocused image",
                "supervised": "one defocused image (GT-trained)",
                "splatting stage": "focal stack",
                "depth from focus": "focal stack",
                "constant": "none",
            }
            for row in ROWS:
                if row not in rows:
                    continue
                m = rows[row]["metrics"]
                name = {
                    "self-supervised": "**sdgs (ours, self-supervised)**",
                    "supervised": "sdgs, supervised upper bound",
                    "splatting stage": "sdgs splatting stage (z_gs)",
                    "depth from focus": "depth from focus (Laplacian)",
                    "constant": "constant (median train depth)",
                }[row]
                cells = [_fmt(m.get("test/abs_rel")), _fmt(m.get("test/rmse")), _fmt(m.get("test/delta1"), dfv)]
                if dfv:
                    cells += [_fmt(m.get("test/near/abs_rel")), _fmt(m.get("test/near/rmse"))]
                lines.append(f"| {name} | {inputs[row]} | " + " | ".join(cells) + " |")
            lines.append("")
            fits = {r: rows[r].get("fit_seconds") for r in ("self-supervised", "supervised") if r in rows}
            timing = ", ".join(f"{r} {t:.0f} s" for r, t in fits.items() if t is not None)
            if rows.get("trained_in"):
                lines.append(f"The models of `{rows['trained_in']}`, not retrained: tested on this data only.")
            else:
                lines.append(f"Training wall time (splatting fits included): {timing or 'n/a'}.")
            lines.append("")
        peers = rows.get("peers", [])
        if peers:
            lines.append(f"Published ({exp}, not re-run; protocol per row):")
            lines.append("")
            lines.append("| method | AbsRel | RMSE | δ1 | protocol |")
            lines.append("|---|---|---|---|---|")
            for p in peers:
                lines.append(
                    f"| {p['method']} | {_fmt(p.get('abs_rel'))} | {_fmt(p.get('rmse'))} | "
                    f"{_fmt(p.get('delta1'))} | {p['protocol']} |"
                )
            lines.append("")
    path = out / "table.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run the experiments of a table config and write results/table.*")
    parser.add_argument("--experiments", default="lightning_configs/table.yaml")
    parser.add_argument("--out", default="results")
    parser.add_argument("--force", action="store_true", default=os.environ.get("FORCE") == "1")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    table = run_table(load_experiments(args.experiments), args.out, args.force)
    path = write_table(table, args.out)
    print(path.read_text())
    print(f"wrote {path} and {Path(args.out) / 'table.json'} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
