"""``sdgs splat``: fill the splatting-stage cache of a config's dataset ahead of training."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

from sdgs.batch import DataError
from sdgs.cli.lightning import SDGSCLI, RunFolderError, make_cli
from sdgs.splatting.stage import GaussianSplattingStage, fit_and_cache

__all__ = ["splat_main"]


class SplatCLI(SDGSCLI):
    """The training config's parser plus the options of the precompute tool (``--help`` lists all)."""

    def add_arguments_to_parser(self, parser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_argument("--splits", type=str, default="train,val", help="comma-separated splits to fit")
        parser.add_argument("--workers", type=int, default=1, help="parallel processes (each takes a share)")
        parser.add_argument("--batch", type=int, default=8, help="scenes fitted together")


def splat_main(argv: Sequence[str]) -> int:
    """``sdgs splat --config CFG [--data.*] [--splat.*] [--splits train,val] [--workers N] [--batch N]``.

    Precomputes the splatting-stage cache of the config's dataset with its ``splat`` settings. Resumable:
    finished samples are skipped. Parallel: ``--workers N`` starts N processes; under torchrun (RANK /
    WORLD_SIZE set) each rank takes its share, on its own GPU when CUDA exists.
    """
    import torch
    from tqdm.auto import tqdm

    argv = list(argv[1:] if argv[:1] == ["fit"] else argv)
    try:
        cli = make_cli(["--trainer.logger=false", *argv], run=False, cli_class=SplatCLI)
    except (DataError, FileNotFoundError, RunFolderError) as err:
        print(f"sdgs splat: error: {err}", file=sys.stderr)
        return 2
    opts = cli.config
    if opts.workers < 1 or opts.batch < 1:
        print("sdgs splat: error: --workers and --batch must be >= 1", file=sys.stderr)
        return 2
    if opts.workers > 1 and "RANK" not in os.environ:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "sdgs.cli", "splat", *argv],
                env={**os.environ, "RANK": str(r), "WORLD_SIZE": str(opts.workers), "OMP_NUM_THREADS": "1"},
            )
            for r in range(opts.workers)
        ]
        return max(p.wait() for p in procs)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    stage = next(cb for cb in cli.trainer.callbacks if isinstance(cb, GaussianSplattingStage))
    try:
        stage.bind(cli.datamodule)
        for split in opts.splits.split(","):
            dataset = cli.datamodule.dataset(split)
            cache = stage.cache(split)
            todo = sorted(set(range(len(dataset))) - cache.done(list(range(len(dataset)))))[rank::world]
            t0 = time.perf_counter()
            with tqdm(total=len(todo), desc=f"splat {split} (rank {rank}/{world})", unit="scene", position=rank) as bar:
                fit_and_cache(dataset, todo, cache, stage.config, opts.batch, device, on_done=bar.update)
            if rank == 0:
                print(f"{split}: {len(dataset)} samples cached in {cache.dir} ({time.perf_counter() - t0:.1f} s)")
    except (DataError, PermissionError, ValueError) as err:
        print(f"sdgs splat: error: {err}", file=sys.stderr)
        return 2
    return 0
