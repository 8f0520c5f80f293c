"""``python -m pipeline``: the command-line interface."""

import sys

from pipeline.cli.main import main

sys.exit(main())
