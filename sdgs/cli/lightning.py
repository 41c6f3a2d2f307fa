"""LightningCLI subclass behind ``sdgs fit|validate|test|predict``: run folders, base + delta configs."""

from __future__ import annotations

import csv
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

from sdgs.batch import DataError
from sdgs.io import atomic_path
from sdgs.lit.callbacks import RunDirSaveConfig, run_dir
from sdgs.lit.module import SDGSModule, read_checkpoint
from sdgs.splatting import GaussianSplattingStage

__all__ = [
    "BASE_CONFIG",
    "SDGSCLI",
    "RunFolderError",
    "check_config_files",
    "format_metrics",
    "make_cli",
    "parse_config",
    "splat_settings",
    "resolve_run_folder",
    "run_lightning_cli",
]

#: Loaded before every --config (jsonargparse ``default_config_files``): trainer, loggers, callbacks.
BASE_CONFIG = Path(__file__).resolve().parents[2] / "lightning_configs" / "base.yaml"
SUBCOMMANDS = ("fit", "validate", "test", "predict")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (a fresh fit into a used folder, nothing to resume)."""


def _items(value) -> list:
    """Logger/callback config entries: a list, one entry, or a bool (no entries)."""
    if isinstance(value, list):
        return value
    return [] if value is None or isinstance(value, bool) else [value]


def resolve_run_folder(cfg, subcommand: str | None, rank_zero: bool = True) -> Path:
    """Derive every output path of a run from ``trainer.default_root_dir`` (in place on the parsed config).

    * ``$VARS`` in the folder are expanded (a W&B sweep trial uses ``runs/sweeps/$WANDB_RUN_ID``);
    * loggers with ``save_dir: null`` write under the folder, ``ModelCheckpoint`` with ``dirpath: null``
      into ``<folder>/checkpoints``;
    * ``--ckpt_path last`` becomes ``<folder>/checkpoints/last.ckpt`` and must exist;
    * a fresh ``fit`` into a folder that already holds a run's ``last.ckpt`` is refused (it would mix two
      runs' checkpoints and logs): resume it, or name another folder.

    Returns the run folder.
    """
    trainer = cfg.trainer
    raw = str(trainer.default_root_dir)
    expanded = os.path.expandvars(raw)
    if "$" in expanded:
        raise RunFolderError(f"trainer.default_root_dir={raw!r} names an unset environment variable")
    root = Path(expanded)
    trainer.default_root_dir = str(root)
    for logger in _items(trainer.logger):
        args = logger.get("init_args")
        if args is not None and "save_dir" in args and args.save_dir is None:
            args.save_dir = str(root)
    for callback in _items(trainer.callbacks):
        args = callback.get("init_args")
        if str(callback.get("class_path", "")).endswith("ModelCheckpoint") and args.get("dirpath") is None:
            args.dirpath = str(root / "checkpoints")
    last = root / "checkpoints" / "last.ckpt"
    ckpt = cfg.get("ckpt_path")
    if ckpt == "last":
        if not last.is_file():
            raise RunFolderError(
                f"--ckpt_path last: no checkpoint to resume at {last} (the run folder is "
                f"trainer.default_root_dir={root}); pass the folder of the run to resume, or a checkpoint file"
            )
        cfg.ckpt_path = str(last)
    elif subcommand == "fit" and ckpt is None and rank_zero and last.is_file():
        raise RunFolderError(
            f"{root} already holds a run ({last}); resume it with --ckpt_path last, "
            f"or start a new run in another folder with --trainer.default_root_dir=DIR"
        )
    return root


def format_metrics(metrics: dict[str, float]) -> str:
    """A plain-text table of ``name: value`` rows, sorted."""
    if not metrics:
        return "(no metrics: the data has no ground-truth depth?)"
    width = max(len(k) for k in metrics)
    return "\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items()))


class SDGSCLI(LightningCLI):
    """``sdgs``: model = :class:`SDGSModule`, data = any LightningDataModule that keeps the batch contract
    (:mod:`sdgs.batch`; the ones in ``datamodules`` do, named by class path, e.g. ``datamodules.FoD500DataModule``).

    Every run writes into one folder, ``trainer.default_root_dir`` (:func:`resolve_run_folder`); the
    configs are ``lightning_configs/base.yaml`` plus the experiment's deltas. The splatting stage is a
    callback with its own config key, ``splat``. After ``test``/``validate`` it prints the metrics and
    writes ``metrics.json`` into the run folder.
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(GaussianSplattingStage, "splat")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        resolve_run_folder(cfg, self.subcommand, rank_zero=int(os.environ.get("LOCAL_RANK", 0)) == 0)

    def parse_arguments(self, parser, args) -> None:
        """Parse, then check an explicit ``ckpt_path`` before Lightning reads it or any run folder exists."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt and ckpt not in ("best", "last", "hpc") and not str(ckpt).startswith("registry"):
            read_checkpoint(ckpt)

    def _build_data(self) -> None:
        """Build the datasets now, so bad data fails before the loggers create a run folder and a W&B run."""
        if self.datamodule is not None:
            self.datamodule.setup()

    before_fit = before_validate = before_test = before_predict = _build_data

    def _report(self, prefix: str) -> None:
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(prefix)}
        if not self.trainer.is_global_zero:
            return
        print(format_metrics(metrics))
        path = run_dir(self.trainer) / "metrics.json"
        payload = {"metrics": metrics, "ckpt_path": self.config_init[self.subcommand].get("ckpt_path")}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {path}")

    def after_test(self) -> None:
        self._report("test/")
        rows = getattr(self.model, "test_rows", None)
        if rows and self.trainer.is_global_zero:
            path = run_dir(self.trainer) / "test_samples.csv"
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            print(f"wrote {path} ({len(rows)} rows: one per test sample and focus index)")

    def after_validate(self) -> None:
        self._report("val/")


def _parser_kwargs(run: bool) -> dict:
    defaults = {"default_config_files": [str(BASE_CONFIG)]} if BASE_CONFIG.is_file() else {}
    return {name: defaults for name in SUBCOMMANDS} if run else defaults


def check_config_files(argv: Sequence[str]) -> None:
    """Raise :class:`DataError` naming the file and line of a YAML syntax error in any ``--config`` file.

    jsonargparse reports such errors against ``<unicode string>``, which does not say which of several
    ``--config`` files is broken.
    """
    import yaml

    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config="):
            value = arg.partition("=")[2]
        else:
            continue
        if not os.path.isfile(value):  # inline YAML or a missing file: jsonargparse reports those
            continue
        try:
            yaml.safe_load(Path(value).read_text())
        except (yaml.scanner.ScannerError, yaml.parser.ParserError, yaml.composer.ComposerError) as err:
            mark, ctx = err.problem_mark, err.context_mark
            context = f" ({err.context} at line {ctx.line + 1})" if err.context and ctx else ""
            raise DataError(
                f"{value}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {err.problem}{context}"
            ) from err
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # not a syntax error (e.g. a tag, binary bytes): jsonargparse reports those


def make_cli(argv: Sequence[str], run: bool = True, cli_class: type[SDGSCLI] | None = None) -> SDGSCLI:
    """Build :class:`SDGSCLI` (or ``cli_class``) on ``argv`` with the base config and sdgs' checks."""
    check_config_files(argv)
    with warnings.catch_warnings():
        # sdgs routes its subcommands itself and passes the command line as `args`; Lightning warns about
        # that whenever sys.argv also holds arguments, i.e. on every `sdgs` run
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return (cli_class or SDGSCLI)(
            SDGSModule,
            L.LightningDataModule,
            subclass_mode_data=True,
            save_config_callback=RunDirSaveConfig if run else None,
            seed_everything_default=0,
            parser_kwargs=_parser_kwargs(run),
            args=list(argv),
            run=run,
            auto_configure_optimizers=False,
        )


class _Parsed(Exception):
    """Carries a parsed config out of :class:`_ParseOnlyCLI` before anything is instantiated."""

    def __init__(self, config: Namespace) -> None:
        super().__init__("parsed")
        self.config = config


class _ParseOnlyCLI(SDGSCLI):
    """:class:`SDGSCLI`'s parser and parsing, then stop: no seeding, no classes built, no run folder."""

    def parse_arguments(self, parser, args) -> None:
        LightningCLI.parse_arguments(self, parser, args)
        raise _Parsed(self.config)


def parse_config(argv: Sequence[str]) -> Namespace:
    """The configuration ``sdgs fit ARGV`` would run with (base.yaml, every ``--config`` file in order, the
    overrides; validated by jsonargparse), as a jsonargparse namespace, without instantiating anything."""
    try:
        make_cli(list(argv), run=False, cli_class=_ParseOnlyCLI)
    except _Parsed as parsed:
        return parsed.config
    raise RuntimeError("the parse-only CLI returned without a config")  # pragma: no cover


def splat_settings(config: str | Path, *overrides: str) -> dict:
    """The splatting-stage settings (``splat`` key: :class:`GaussianSplattingStage`'s arguments) an experiment
    config runs with, as ``sdgs fit --config CONFIG OVERRIDES`` parses them. For tools that need them without
    running the CLI (the results table, benchmarks)."""
    return parse_config(["--config", str(config), *overrides]).splat.as_dict()


def run_lightning_cli(argv: Sequence[str]) -> None:
    """Run a LightningCLI subcommand; data errors become one clear line and exit code 2."""
    try:
        make_cli(argv)
    except (DataError, FileNotFoundError, RunFolderError) as err:
        print(f"sdgs: error: {err}", file=sys.stderr)
        raise SystemExit(2) from err
