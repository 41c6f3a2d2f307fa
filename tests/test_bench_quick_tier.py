"""``make bench-quick``'s stages: the commands it times are the ones a user would type."""

from __future__ import annotations

from bench.quick_tier import stages
from bench.real import QUICK_MODELS, QUICK_RUNS, QUICK_STEPS


def test_without_data_only_the_procedural_rows_run() -> None:
    (name, argv, run), *rest = stages(None)
    assert not rest and run is None
    assert argv[1:] == ["-m", "bench.train", "--plan", "lightning_configs/experiments/bench_quick.yaml"] + [
        "--out",
        "bench/quick.json",
    ]


def test_every_quick_real_row_is_trained_then_scored() -> None:
    plan = stages("/data/dfd_indoor")
    fits = [(argv, run) for _, argv, run in plan if run is not None]
    # every model row of the quick tier has its fit, each replacing its own run folder, at the tier's steps
    assert sorted(run for _, run in fits) == sorted(QUICK_RUNS) == sorted({r for r, _, _ in QUICK_MODELS.values()})
    for argv, run in fits:
        assert argv[1:5] == ["-m", "sdgs.cli", "fit", "--config"] and argv[5] == "lightning_configs/dfd_indoor.yaml"
        assert f"--trainer.default_root_dir={run}" in argv and f"--trainer.max_steps={QUICK_STEPS}" in argv
        assert "--data.init_args.data_dir=/data/dfd_indoor" in argv
        if QUICK_RUNS[run]:
            assert argv[argv.index(QUICK_RUNS[run]) - 1] == "--config"
    name, argv, run = plan[-1]
    assert run is None and argv[1:4] == ["-m", "bench.real", "--quick"] and "bench/quick_real.json" in argv
