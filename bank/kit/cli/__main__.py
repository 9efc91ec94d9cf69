"""``python -m bank.kit.cli``: the ``bank`` command."""

import sys

from bank.kit.cli.main import main

sys.exit(main())
