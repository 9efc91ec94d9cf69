"""The ``bank`` command: the embedded database, seed data, local invoke and the tools."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bank.errors import BankError


def _cmd_db(args: argparse.Namespace) -> int:
    from bank.embedded import server

    srv = server()
    if args.action == "start":
        status = srv.start()
        print(f"embedded PostgreSQL running on 127.0.0.1:{status.port} (data in {status.data_dir})")
    elif args.action == "stop":
        srv.stop()
        print("embedded PostgreSQL stopped")
    elif args.action == "status":
        status = srv.status()
        if status.running:
            print(f"running  pid {status.pid}  127.0.0.1:{status.port}  data {status.data_dir}")
        else:
            print(f"stopped  data {status.data_dir}")
        return 0 if status.running else 3
    elif args.action == "url":
        print(srv.start().url)
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from bank.database import get_engine
    from bank.seed import seed

    print(json.dumps(seed(get_engine())))
    return 0


def _cmd_invoke(args: argparse.Namespace) -> int:
    from bank.invoke import invoke, read_event

    event = read_event(args.event) if args.event else {}
    ok, response = invoke(args.function, event)
    print(json.dumps(response, indent=2))
    return 0 if ok else 1


def _cmd_tutorial(args: argparse.Namespace) -> int:
    from bank.tutorial import run

    return run(quick=args.quick, uuids=Path(args.uuids) if args.uuids else None)


def _cmd_query_lab(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bank import querylab
    from bank.database import get_engine

    sizes = [querylab.parse_rows({"rows": n}) for n in args.rows or [querylab.DEFAULT_ROWS]]
    engine = get_engine()
    runs = []
    for rows in sizes:
        runs.append(querylab.run_lab(engine, rows))
        print(querylab.render_table(runs[-1]) + "\n")
    if args.report:
        command = " ".join(["bank query-lab", *(f"--rows {n}" for n in sizes),
                            "--report", args.report])
        env = querylab.environment(engine)
        Path(args.report).write_text(querylab.render_report(runs, env, command))
        print(f"report written to {args.report}")
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    import threading

    from bank.loader import ProgressPrinter, load_accounts, stop_on_signals
    from bank.settings import get_settings

    stop = threading.Event()
    progress = ProgressPrinter(sys.stderr)
    with stop_on_signals(stop) as received:
        try:
            result = load_accounts(
                get_settings(), args.accounts, batch=args.batch, threads=args.threads,
                balance=args.balance, out=args.out, stop=stop, on_progress=progress,
            )
        finally:
            progress.close()
    print(result.summary())
    return 128 + received[0] if received else 0


def _cmd_loadtest(args: argparse.Namespace) -> int:
    import dataclasses
    import threading

    from bank import loadtest
    from bank.database import install_engine, make_engine
    from bank.invoke import apply_environment, resolve
    from bank.loader import stop_on_signals
    from bank.settings import get_settings

    if args.function == "ch06":
        ids: list = loadtest.read_uuids(args.uuids or "uuids.txt", args.accounts)
    elif args.uuids:
        raise loadtest.LoadTestError("--uuids is for ch06; ch04 and ch05 use accounts 1..N")
    else:
        ids = list(range(1, args.accounts + 1))
    iters = 1000 if args.iters is None and args.duration is None else args.iters
    loadtest.validate(ids, args.threads, iters, args.duration)
    apply_environment(resolve(args.function))
    # One connection per thread, or the threads queue for the handlers' small pool.
    settings = dataclasses.replace(get_settings(), pool_size=args.threads, max_overflow=0)
    install_engine(make_engine(settings))

    stop = threading.Event()  # Ctrl-C: no new request, the ones in flight finish
    with stop_on_signals(stop) as received:
        report = loadtest.run(
            args.function, ids, iters=iters, threads=args.threads, duration_s=args.duration,
            seed=args.seed, stop=stop,
            on_progress=lambda p: print(loadtest.render_progress(p), file=sys.stderr, flush=True),
        )
    print(json.dumps(report.to_dict()) if args.json else loadtest.render(report))
    if not report.conserved:
        print(f"bank: MONEY NOT CONSERVED: {report.balance_before} before, "
              f"{report.balance_after} after", file=sys.stderr)
        return 1
    return 128 + received[0] if received else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bank", description="The DAT401 Aurora DSQL tutorial, in Python."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="manage the embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "status", "url"])
    db.set_defaults(func=_cmd_db)

    seed = sub.add_parser("seed", help="load ch04's accounts and ch06's example UUID accounts")
    seed.set_defaults(func=_cmd_seed)

    inv = sub.add_parser(
        "invoke", help="run a function of template.yaml in-process (like `sam local invoke`)"
    )
    inv.add_argument("function", help="logical id or short name: Ch04Function, ch04")
    inv.add_argument("--event", "-e", help="JSON event file (default: {})")
    inv.set_defaults(func=_cmd_invoke)

    tut = sub.add_parser("tutorial", help="run every chapter on the configured database")
    tut.add_argument("--quick", action="store_true", help="smaller data sets")
    tut.add_argument("--uuids", metavar="FILE",
                     help="where ch06's loaded account ids go (default: uuids.txt in the repo)")
    tut.set_defaults(func=_cmd_tutorial)

    lab = sub.add_parser("query-lab", help="ch07: setup, query, optimize, query again; compare")
    lab.add_argument("--rows", type=int, action="append",
                     help="rows to load (default 5000); repeat to run at several sizes")
    lab.add_argument("--report", metavar="FILE", help="also write the results as Markdown")
    lab.set_defaults(func=_cmd_query_lab)

    load = sub.add_parser("load", help="ch06: bulk-load UUID accounts into accounts2, in parallel")
    load.add_argument("--accounts", type=int, default=1_000_000, help="default 1000000")
    load.add_argument("--batch", type=int, default=1000,
                      help="rows per transaction, at most 3000 (DSQL's limit); default 1000")
    load.add_argument("--threads", type=int, default=4,
                      help="workers, each on its own connection; default 4")
    load.add_argument("--out", default="uuids.txt", help="the ids, one a line; default uuids.txt")
    load.add_argument("--balance", default="100", help="balance of each account; default 100")
    load.set_defaults(func=_cmd_load)

    lt = sub.add_parser("loadtest", help="ch04-ch06: random transfers from threads, in-process")
    lt.add_argument("--function", required=True, choices=["ch04", "ch05", "ch06"])
    lt.add_argument("--iters", type=int,
                    help="total invocations, shared by the threads (as in the original); "
                         "default 1000, or no limit when --duration is given")
    lt.add_argument("--threads", type=int, default=1, help="default 1")
    lt.add_argument("--accounts", type=int, default=1000,
                    help="draw from ids 1..N, or (ch06) the first N ids of --uuids; default 1000")
    lt.add_argument("--uuids", metavar="FILE", help="ch06: ids of `bank load`; default uuids.txt")
    lt.add_argument("--duration", type=float, metavar="S",
                    help="stop after S seconds (also with --iters: whichever comes first)")
    lt.add_argument("--seed", type=int, help="same seed, same request sequence; default random")
    lt.add_argument("--json", action="store_true", help="print the report as one JSON object")
    lt.set_defaults(func=_cmd_loadtest)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BankError as exc:
        print(f"bank: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bank: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
