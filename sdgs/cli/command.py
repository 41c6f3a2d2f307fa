"""The ``sdgs`` command.

``sdgs fit|validate|test|predict`` are LightningCLI subcommands (configs in ``lightning_configs/``);
``sdgs synth`` writes a procedural dataset in FoD500 format; ``sdgs splat`` precomputes the
splatting-stage cache of a config's dataset; ``sdgs predict --input PHOTOS`` writes depth maps for
users' photos and ``sdgs predict --stack DIR`` for their focal stacks, no checkpoint needed
(``sdgs predict --config`` without either is LightningCLI's predict). Tool
subcommands parse their own arguments with jsonargparse, so ``--help`` works on each.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from jsonargparse import ActionYesNo, ArgumentParser

__all__ = ["main", "synth_main"]


def synth_main(argv: Sequence[str]) -> int:
    """``sdgs synth --out DIR --scenes N --size H``: procedural focal stacks in FoD500 format."""
    from datamodules.procedural import write_procedural_dataset
    from sdgs.batch import DataError
    from sdgs.optics import get_camera

    parser = ArgumentParser(prog="sdgs synth", description=synth_main.__doc__)
    parser.add_argument("--out", required=True, help="output folder (refused if non-empty, unless --force)")
    parser.add_argument("--scenes", type=int, default=64, help="number of scenes")
    parser.add_argument("--size", type=int, default=128, help="image size in px (a centre crop of the sensor)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed; scene i uses seed + i")
    parser.add_argument("--camera", default="fod500", help="optics preset (fod500, nyuv2, d3net) or camera .json")
    parser.add_argument("--texture", default="pink", choices=["pink", "geometric"],
                        help="texture family: pink (1/f noise) or geometric (stripes, checks, discs)")  # fmt: skip
    parser.add_argument("--force", action=ActionYesNo, nargs="?", default=False,
                        help="replace the dataset in a non-empty --out (deletes only dataset files)")  # fmt: skip
    args = parser.parse_args(list(argv))
    if args.scenes < 1 or args.size < 8:
        parser.error("--scenes must be >= 1 and --size >= 8")
    try:
        out = write_procedural_dataset(
            args.out, args.scenes, args.size, args.seed, get_camera(args.camera), force=args.force,
            texture=args.texture,
        )  # fmt: skip
    except (DataError, ValueError) as err:
        print(f"sdgs synth: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.scenes} procedural scenes ({args.size}px, {args.texture} textures, FoD500 format) to {out}")
    return 0


def _splat(argv: Sequence[str]) -> int:
    from sdgs.cli.splat import splat_main

    return splat_main(argv)


TOOLS: dict[str, Callable[[Sequence[str]], int]] = {"synth": synth_main, "splat": _splat}


def _user_predict(argv: Sequence[str]) -> int:
    if _has_option(argv, "--stack"):
        from sdgs.cli.predict_stack import predict_stack_main

        return predict_stack_main(argv)
    from sdgs.cli.predict import predict_main

    return predict_main(argv)


def _has_option(argv: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(f"{name}=") for a in argv)


def main(argv: Sequence[str] | None = None) -> int | None:
    """Entry point of the ``sdgs`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        return TOOLS[argv[0]](argv[1:])
    if argv[:1] == ["predict"] and (_has_option(argv, "--input") or _has_option(argv, "--stack")):
        return _user_predict(argv[1:])  # photos / focal stacks -> depth files; `--config` stays LightningCLI
    from sdgs.cli.lightning import run_lightning_cli

    run_lightning_cli(argv)
    return 0
