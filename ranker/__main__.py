"""``python -m ranker`` (and ``torchrun -m ranker``) runs the CLI."""

import sys

from ranker.cli import main

sys.exit(main())
