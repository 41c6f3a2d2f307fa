"""The command-line layer: every entry point of sdgs, above the library and the datamodules.

* :mod:`sdgs.cli.command` — the ``sdgs`` console script (``sdgs fit|validate|test|predict|synth|splat``);
* :mod:`sdgs.cli.lightning` — the LightningCLI subclass behind ``sdgs fit|validate|test|predict``;
* :mod:`sdgs.cli.predict` — ``sdgs predict --input PHOTOS``: depth maps for single photos;
* :mod:`sdgs.cli.predict_stack` — ``sdgs predict --stack DIR``: depth of focal stacks by the splatting stage;
* :mod:`sdgs.cli.splat` — ``sdgs splat``: precompute the splatting-stage cache of a config's dataset;
* :mod:`sdgs.cli.report` — the experiment runner and results table (``make reproduce-table``).

Layering (``tests/test_structure.py``): ``sdgs`` (library) <- ``datamodules`` <- ``sdgs.cli``; nothing in the
library or the datamodules imports this package. ``python -m sdgs.cli ARGS`` is the ``sdgs`` command.
"""

from sdgs.cli.command import main, synth_main

__all__ = ["main", "synth_main"]
