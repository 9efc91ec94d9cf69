"""The ``bank`` subcommands but ``tutorial``: the embedded database, seed data, local invoke,
the loader, the load test and the query lab."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_db(args: argparse.Namespace) -> int:
    from bank.kit.embedded import server

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
        # libpq's form, for psql and pgbench too; the password stays in its passfile.
        print(str(srv.start().url).replace("postgresql+psycopg://", "postgresql://", 1))
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.services.seed import seed

    print(json.dumps(seed(SqlAlchemyUnitOfWork)))
    return 0


def _cmd_invoke(args: argparse.Namespace) -> int:
    from bank.kit.cli.invoke import invoke, read_event
    from bank.kit.lambda_runtime import ResponseCatcher

    event = read_event(args.event) if args.event else {}
    # A custom resource's event answers to a URL: a local one stands in for CloudFormation's.
    catcher = ResponseCatcher() if isinstance(event, dict) and "ResponseURL" in event else None
    if catcher:
        event["ResponseURL"] = catcher.url()
    try:
        if args.runtime == "lambda":
            ok, response = _invoke_built(args, event)
        else:
            ok, response = invoke(args.function, event)
        print(json.dumps(response, indent=2))
        if catcher:
            print("CloudFormation received: " + (json.dumps(catcher.responses.get_nowait())
                                                 if not catcher.responses.empty() else
                                                 "nothing (the stack would wait)"))
    finally:
        if catcher:
            catcher.close()
    return 0 if ok else 1


def _invoke_built(args: argparse.Namespace, event: object) -> tuple[bool, dict]:
    """The built function (make build) through Lambda's runtime client, against the local
    DSQL endpoint: cold start and the function's log lines on stderr."""
    import tempfile

    from bank.kit import lambda_runtime as lr
    from bank.kit.cli.invoke import resolve
    from bank.kit.endpoint import Endpoint, Upstream, dsql_host, endpoint_folder

    fn = resolve(args.function)
    place = lr.Place(dsql_host(), args.region)
    runtime = lr.Runtime.find().check()
    # Published in a folder of its own: a `bank endpoint` of the developer's keeps its own.
    with tempfile.TemporaryDirectory(prefix="bank-invoke-") as publish, \
            Endpoint(Upstream.embedded(), endpoint_folder(), host=place.cluster_endpoint,
                     region=place.region, iam_arn=place.role_arn("AppFunctionRole"),
                     publish=Path(publish)) as endpoint, \
            lr.sandbox(Path(args.build_dir), fn.logical_id, runtime, place,
                       {"BANK_DSQL_LOCAL": str(endpoint.publish)}) as sandbox:
        reply = sandbox.invoke(event)
    for line in reply.logs:
        print(line, file=sys.stderr)
    print(f"{fn.logical_id}: {'answered' if reply.ok else reply.error_type} in "
          f"{reply.seconds * 1000:.0f} ms; cold start (process start to answer) "
          f"{(reply.cold_start_s or 0) * 1000:.0f} ms", file=sys.stderr)
    return reply.ok, reply.payload


def _cmd_query_lab(args: argparse.Namespace) -> int:
    from bank.adapters.database import get_engine
    from bank.adapters.lab import LabDatabase
    from bank.adapters.settings import get_settings
    from bank.kit.cli import report
    from bank.services import querylab
    from bank.services.retry import RetryPolicy

    sizes = [querylab.parse_rows({"rows": n}) for n in args.rows or [querylab.DEFAULT_ROWS]]
    lab = LabDatabase(get_engine())
    policy = RetryPolicy.from_settings(get_settings())
    runs = []
    for rows in sizes:
        runs.append(querylab.run_lab(lab, rows, policy))
        print(report.render_table(runs[-1]) + "\n")
    if args.report:
        command = " ".join(["bank query-lab", *(f"--rows {n}" for n in sizes),
                            "--report", args.report])
        env = report.environment(lab.server_version(), get_settings().target.value)
        Path(args.report).write_text(report.render_report(runs, env, command))
        print(f"report written to {args.report}")
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    import threading

    from bank.adapters.database import install_engine
    from bank.adapters.settings import get_settings
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.kit import local
    from bank.kit.cli.console import IdsFile, LoadProgress, stop_on_signals
    from bank.kit.loader import load_accounts, validate
    from bank.services.retry import RetryPolicy

    validate(args.accounts, args.batch, args.threads, args.balance)
    settings = get_settings()
    install_engine(local.application_engine(pool_size=args.threads, max_overflow=0))  # one
    # connection per worker
    stop = threading.Event()
    ids = IdsFile(args.out)
    progress = LoadProgress(sys.stderr, args.accounts)
    try:
        with stop_on_signals(stop) as received:
            result = load_accounts(
                SqlAlchemyUnitOfWork, args.accounts, on_batch=ids.write,
                policy=RetryPolicy.from_settings(settings), batch=args.batch,
                threads=args.threads, balance=args.balance, stop=stop, on_progress=progress,
            )
    finally:
        progress.close()
        ids.close()
    what = (f"interrupted: {result.rows} of {result.requested} accounts committed"
            if result.interrupted else f"loaded {result.rows} accounts")
    print(f"{what} in {result.seconds:.2f} s ({result.rate:.0f} rows/s); ids in {args.out}")
    return 128 + received[0] if received else 0


TRANSFER_FUNCTIONS = {"Ch04Function": "Account", "Ch05Function": "Account",
                      "Ch06Function": "UuidAccount"}


def run_loadtest(function: str, ids: list, **options):
    """The load test of a template function, its handler invoked in-process (like
    ``bank invoke``: a fresh Lambda-like context per invocation)."""
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.domain import model
    from bank.kit import loadtest
    from bank.kit.cli.invoke import LocalContext, apply_environment, resolve

    fn = resolve(function)
    if fn.logical_id not in TRANSFER_FUNCTIONS:
        raise loadtest.LoadTestError(
            f"{fn.logical_id} is not a transfer function: use ch04, ch05 or ch06"
        )
    apply_environment(fn)
    handler = fn.load_handler()
    kind = getattr(model, TRANSFER_FUNCTIONS[fn.logical_id])
    return loadtest.run(fn.logical_id, lambda event: handler(event, LocalContext(fn)),
                        SqlAlchemyUnitOfWork, kind, ids, **options)


def remote_checks():
    """The unit of work for a remote run's money and ledger checks, or None and why.

    The deployed functions write to the stack's cluster: only a database this machine is
    pointed at (``CLUSTER_ENDPOINT``, or ``DATABASE_URL``) and can reach can be checked.
    """
    from bank.adapters.database import get_engine
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.kit import local

    if local.embedded():
        return None, ("no database reachable from here: set CLUSTER_ENDPOINT to the stack's "
                      "ClusterEndpoint output to check money and ledger")
    try:
        with get_engine().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - the reason is reported, the run goes on
        return None, f"the database did not answer ({type(exc).__name__}: {exc})"
    return SqlAlchemyUnitOfWork, ""


def run_remote_loadtest(function: str, ids: list, *, stack: str | None,
                        function_name: str | None, region: str | None, threads: int,
                        **options):
    """The load test of a deployed function, through Lambda's Invoke API."""
    from bank.domain import model
    from bank.kit import loadtest
    from bank.kit.cli import remote
    from bank.kit.cli.invoke import resolve

    fn = resolve(function)
    if fn.logical_id not in TRANSFER_FUNCTIONS:
        raise loadtest.LoadTestError(
            f"{fn.logical_id} is not a transfer function: use ch04, ch05 or ch06"
        )
    lambda_client, cloudformation = remote.clients(region, threads)
    if function_name is None:
        if stack is None:
            raise remote.RemoteSetupError("--remote needs --stack NAME or --function-name NAME")
        function_name = remote.function_name(cloudformation, stack, fn.logical_id)
    uow_factory, skipped = remote_checks()
    kind = getattr(model, TRANSFER_FUNCTIONS[fn.logical_id])
    return loadtest.run(fn.logical_id, remote.invoker(lambda_client, function_name),
                        uow_factory, kind, ids, checks_skipped=skipped,
                        where=f"remote: {function_name}", threads=threads, **options)


def _cmd_loadtest(args: argparse.Namespace) -> int:
    return loadtest_command(args)[0]


def loadtest_command(args: argparse.Namespace):
    """``bank loadtest``: (exit status, the report) (``bank tutorial`` checks the report)."""
    import threading

    from bank.adapters.database import install_engine
    from bank.kit import loadtest, local
    from bank.kit.cli.console import stop_on_signals

    if args.function == "ch06":
        ids: list = loadtest.read_uuids(args.uuids or "uuids.txt", args.accounts)
    elif args.uuids:
        raise loadtest.LoadTestError("--uuids is for ch06; ch04 and ch05 use accounts 1..N")
    else:
        ids = list(range(1, args.accounts + 1))
    iters = 1000 if args.iters is None and args.duration is None else args.iters
    loadtest.validate(ids, args.threads, iters, args.duration)
    if (args.stack or args.function_name or args.region) and not args.remote:
        raise loadtest.LoadTestError("--stack, --function-name and --region go with --remote")
    if not args.remote:
        # One connection per thread, or the threads queue for the handlers' small pool.
        install_engine(local.application_engine(pool_size=args.threads, max_overflow=0))

    stop = threading.Event()  # Ctrl-C: no new request, the ones in flight finish
    options = dict(iters=iters, threads=args.threads, duration_s=args.duration, seed=args.seed,
                   stop=stop, on_progress=lambda p: print(loadtest.render_progress(p),
                                                          file=sys.stderr, flush=True))
    with stop_on_signals(stop) as received:
        if args.remote:
            report = run_remote_loadtest(args.function, ids, stack=args.stack,
                                         function_name=args.function_name,
                                         region=args.region, **options)
        else:
            report = run_loadtest(args.function, ids, **options)
    print(json.dumps(report.to_dict()) if args.json else loadtest.render(report))
    if not report.checked:
        print(f"bank: money and ledger NOT CHECKED: {report.checks_skipped}", file=sys.stderr)
    if report.conserved is False:
        print(f"bank: MONEY NOT CONSERVED: {report.balance_before} before, "
              f"{report.balance_after} after", file=sys.stderr)
    if report.ledger_complete is False:
        print(f"bank: LEDGER INCOMPLETE: {report.in_ledger} of {len(report.acknowledged)} "
              "acknowledged transfers recorded", file=sys.stderr)
    if not report.sound:
        return 1, report
    return (128 + received[0] if received else 0), report


def _cmd_chaos(args: argparse.Namespace) -> int:
    import tempfile

    from bank.kit.cli import chaos

    with tempfile.TemporaryDirectory(prefix="bank-chaos-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        report = chaos.run(data_dir, duration_s=args.duration, workers=args.workers,
                           kill_every_s=args.kill_every, crash=not args.no_crash, seed=args.seed,
                           throwaway=not args.data_dir)
    print(report.render())
    return 0 if report.sound else 1


def _cmd_endpoint(args: argparse.Namespace) -> int:
    """The local DSQL endpoint, in the foreground until Ctrl-C (or SIGTERM)."""
    import logging
    import shlex
    import threading

    from bank.kit.cli.console import stop_on_signals
    from bank.kit.endpoint import Endpoint, Upstream, dsql_host, endpoint_folder

    logging.basicConfig(level=logging.INFO, format="bank endpoint: %(message)s",
                        stream=sys.stderr)
    host = dsql_host(args.cluster_id, args.region)
    folder = endpoint_folder()
    endpoint = Endpoint(Upstream.embedded(), folder, host=host, region=args.region,
                        port=args.port, iam_arn=args.iam_arn,
                        publish=Path(args.publish).resolve() if args.publish else None).start()
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            _, port = endpoint.address
            ca = shlex.quote(str(endpoint.ca_file))
            mapped = (f"roles mapped to {args.iam_arn}" if args.iam_arn
                      else "roles mapped by AWS IAM GRANT")
            print(f"local DSQL endpoint {host} on 127.0.0.1:{port}, in front of the embedded "
                  f"PostgreSQL (admin, and {mapped})\n"
                  f"CA: {endpoint.ca_file}\n\n"
                  "The application, unchanged, with these two settings:\n"
                  f"  export CLUSTER_ENDPOINT={host}\n"
                  f"  export BANK_DSQL_LOCAL={shlex.quote(str(endpoint.publish))}\n\n"
                  "psql (one with TLS, 14 or later: the embedded wheel's has none), with an IAM "
                  "token (any AWS credentials: the signature is not checked):\n"
                  "  PGPASSWORD=$(aws dsql generate-db-connect-admin-auth-token "
                  f"--hostname {host} --region {args.region}) \\\n"
                  f"  psql 'host={host} hostaddr=127.0.0.1 port={port} user=admin "
                  f"dbname=postgres sslmode=verify-full sslrootcert={ca}'\n\n"
                  "Ctrl-C stops it.", flush=True)
            stop.wait()
    finally:
        endpoint.stop()
    print("local DSQL endpoint stopped")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="bank", description="The DAT401 Aurora DSQL tutorial, in Python."
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error, not just its name and message")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="manage the embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "status", "url"])
    db.set_defaults(func=_cmd_db)

    seed = sub.add_parser("seed", help="load ch04's accounts and ch06's example UUID accounts")
    seed.set_defaults(func=_cmd_seed)

    inv = sub.add_parser(
        "invoke", help="run a function of template.yaml, in-process or through Lambda's "
                       "runtime client (like `sam local invoke`, without Docker)"
    )
    inv.add_argument("function", help="logical id or short name: Ch04Function, ch04")
    inv.add_argument("--event", "-e", help="JSON event file (default: {})")
    inv.add_argument("--runtime", choices=["process", "lambda"], default="process",
                     help="process (default): the handler in this process; lambda: the "
                          "built artifact (make build) through Lambda's runtime client on "
                          "Python 3.13, against the local DSQL endpoint")
    inv.add_argument("--build-dir", default=".aws-sam/build",
                     help="--runtime lambda: what make build wrote; default .aws-sam/build")
    inv.add_argument("--region", default="us-east-1", help="--runtime lambda: us-east-1")
    inv.set_defaults(func=_cmd_invoke)

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

    lt = sub.add_parser("loadtest", help="ch04-ch06: random transfers from threads, in-process "
                                         "or against the deployed functions (--remote)")
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
    lt.add_argument("--remote", action="store_true",
                    help="invoke the deployed function (Lambda Invoke) instead of the handler")
    lt.add_argument("--stack", metavar="NAME",
                    help="--remote: the stack whose function to invoke (e.g. bank)")
    lt.add_argument("--function-name", metavar="NAME",
                    help="--remote: the Lambda function's name or ARN, instead of --stack")
    lt.add_argument("--region", help="--remote: the AWS region (default: boto3's)")
    lt.set_defaults(func=_cmd_loadtest)

    ep = sub.add_parser("endpoint", help="a local Aurora DSQL endpoint (TLS, IAM tokens, "
                                         "DSQL's refusals) in front of the embedded server")
    ep.add_argument("--port", type=int, default=0, help="default: a free port")
    ep.add_argument("--cluster-id", default="a" * 26,
                    help="26 lowercase letters or digits; default aaa...a")
    ep.add_argument("--region", default="us-east-1", help="default us-east-1")
    ep.add_argument("--iam-arn", metavar="ARN",
                    help="the IAM identity clients act as: a role other than admin needs "
                         "an AWS IAM GRANT to this ARN (default: to any ARN)")
    ep.add_argument("--publish", metavar="DIR",
                    help="where to write ca.pem and address, the folder BANK_DSQL_LOCAL names "
                         "(default: .bank/endpoint, where the CA is kept)")
    ep.set_defaults(func=_cmd_endpoint)

    ch = sub.add_parser("chaos", help="transfers while backends are killed and the server "
                                      "crashes; then audit money and ledger (local only)")
    ch.add_argument("--duration", type=float, default=20, help="seconds; default 20")
    ch.add_argument("--workers", type=int, default=6, help="default 6")
    ch.add_argument("--kill-every", type=float, default=2, metavar="S",
                    help="kill every client backend this often; default 2 s")
    ch.add_argument("--no-crash", action="store_true", help="no postmaster crash half-way")
    ch.add_argument("--seed", type=int, default=0)
    ch.add_argument("--data-dir", help="the throwaway server's data; default a temp dir")
    ch.set_defaults(func=_cmd_chaos)
    return parser, sub


def dispatch(argv: list[str]) -> int:
    """Run one subcommand, as from the command line; errors propagate."""
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


