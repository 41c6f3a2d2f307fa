"""``python -m sdgs.cli ARGS``: the ``sdgs`` command (subprocesses use it: no console script needed)."""

import sys

from sdgs.cli.command import main

sys.exit(main())
