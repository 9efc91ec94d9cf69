"""The ``bank`` command."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from bank.domain.errors import BankError
from bank.kit.cli.commands import build_parser


def _cmd_tutorial(args: argparse.Namespace) -> int:
    from bank.kit.cli.tutorial import run

    return run(quick=args.quick, uuids=Path(args.uuids) if args.uuids else None)



def main(argv: list[str] | None = None) -> int:
    parser, sub = build_parser()
    tut = sub.add_parser("tutorial", help="run every chapter on the configured database")
    tut.add_argument("--quick", action="store_true", help="smaller data sets")
    tut.add_argument("--uuids", metavar="FILE",
                     help="where ch06's loaded account ids go (default: uuids.txt in the repo)")
    tut.set_defaults(func=_cmd_tutorial)
    args = parser.parse_args(argv)
    from bank.kit import local

    try:
        local.use()  # the application's engine: the embedded server, strict mode
        return int(args.func(args) or 0)
    except BankError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"bank: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bank: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
