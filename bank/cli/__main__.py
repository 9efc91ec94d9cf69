"""``python -m bank.cli``: the ``bank`` command."""

import sys

from bank.cli.main import main

sys.exit(main())
