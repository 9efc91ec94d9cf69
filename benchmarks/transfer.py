"""Transfers/s: pgbench running the original's transfer vs bank's ch05 path, over a link.

Both run on the same server in the same run, against the same 1,000 accounts in a scratch
schema migrated by Alembic, at REPEATABLE READ, through the same link:

- baseline: pgbench (shipped with the embedded PostgreSQL), prepared statements, the
  original's transaction ``BEGIN; UPDATE payer ... RETURNING balance; UPDATE payee; END``
  with ``--max-tries`` retrying serialization failures: 4 round trips;
- bank: the ch05 handler (event parsing, the unit of work, the one-statement move, the
  ledger entry, the retry loop), called by ``benchmarks/ch05_client.py``: N threads of one
  process, or N processes of one thread (``--processes``; how Lambda scales);
- with ``--baseline-code DIR``: the same client run by another checkout's code (DIR, with
  its own ``.venv``; e.g. a ``git worktree`` of main), so a change's cost in round trips
  and client CPU is measured against the code before it, in the same run.

``--rtt-ms`` puts a delay proxy (``netproxy.py``, a process of its own) between client and
server, both ways: 1 ms is about a round trip to Aurora DSQL within a Region. 0 is the
loopback, where client CPU is all that counts.

    .venv/bin/python -m benchmarks.transfer [--rtt-ms 0 1] [--clients 1 8] [--seconds 4]
                                            [--rounds 3] [--processes] [--both-kinds]
                                            [--baseline-code DIR]
                                            [--strict on|off|both] [--commits durable|fast|both]

Prints the round trips of one transfer (counted by a proxy, connection set-up excluded),
then per link, client count and kind, the median transfers/s of alternating runs, their
ratio to pgbench, and the client CPU per transfer (``time.process_time`` of the clients).
The server is the embedded one unless DATABASE_URL names another.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bank.kit.local import server_url, setup_engine
from benchmarks.common import (
    COMMIT_MODES,
    FAST_COMMITS,
    ROOT,
    STRICT_MODES,
    Link,
    pgbench,
    scratch_schema,
    tps,
    with_schema,
)
from benchmarks.netproxy import Proxy

ACCOUNT_COUNT = 1000
PGBENCH_SCRIPT = f"""\
\\set payer random(1, {ACCOUNT_COUNT})
\\set payee 1 + (:payer + random(0, {ACCOUNT_COUNT - 2})) % {ACCOUNT_COUNT}
\\set cents random(1, 1000)
BEGIN;
UPDATE accounts SET balance = balance - :cents / 100.0 WHERE id = :payer RETURNING balance;
UPDATE accounts SET balance = balance + :cents / 100.0 WHERE id = :payee;
END;
"""


def seed(server: str, schema: str) -> None:
    engine = setup_engine(with_schema(server, schema))
    with engine.begin() as conn:
        conn.execute(text(
            f"INSERT INTO accounts SELECT g, 1000000 FROM generate_series(1, {ACCOUNT_COUNT}) g"
        ))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE accounts"))
    engine.dispose()


@dataclass(frozen=True)
class Mode:
    strict: bool = True
    durable: bool = True


@dataclass(frozen=True)
class Code:
    """A checkout whose ch05 path is measured: its name and its Python."""

    name: str
    python: str


@dataclass
class Runs:
    baseline: list[float] = field(default_factory=list)
    bank: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)


CLIENT = str(Path(__file__).with_name("ch05_client.py"))


def run_pgbench(url: str, schema: str, clients: int, seconds: float, mode: Mode) -> float:
    return tps(pgbench(url, schema, PGBENCH_SCRIPT, "-M", "prepared", "-c", str(clients),
                       "-j", str(clients), "-T", str(int(seconds)), "--max-tries", "100",
                       strict=mode.strict, durable=mode.durable))


def client_env(url: str, schema: str, pool: int, mode: Mode = Mode()) -> dict[str, str]:
    """The environment of a client pointed at ``url`` and ``schema``."""
    if not mode.durable:
        url = make_url(url).update_query_dict({"options": FAST_COMMITS}).render_as_string(
            hide_password=False)
    return {**os.environ, "DATABASE_URL": url, "BANK_SCHEMA": schema,
            "BANK_POOL_SIZE": str(pool), "BANK_POOL_MAX_OVERFLOW": "0",
            "BANK_OCC_MAX_ATTEMPTS": "100", "BANK_STRICT": "1" if mode.strict else "0",
            "LOG_LEVEL": "WARNING"}


def run_clients(code: Code, env: dict[str, str], processes: int, threads: int,
                *client_args: str, started=None) -> list[dict]:
    """Start the clients, let them connect, start them together, collect their results.
    ``started`` (if given) is called once all are ready, before they go."""
    procs = [subprocess.Popen([code.python, CLIENT, "--threads", str(threads), "--seed", str(n),
                               *client_args], cwd=ROOT if code.name == "this" else None,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for n in range(processes)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a {code.name} client failed to start: {line!r}")
        if started is not None:
            started()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"a {code.name} client failed (exit {proc.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            proc.kill()


def run_bank(code: Code, url: str, schema: str, clients: int, seconds: float, processes: bool,
             mode: Mode) -> tuple[float, int, float]:
    """(transfers/s, retried, client CPU µs per transfer)."""
    per_process = 1 if processes else clients
    results = run_clients(code, client_env(url, schema, per_process, mode),
                          clients if processes else 1, per_process, "--seconds", str(seconds))
    done = sum(r["transfers"] for r in results)
    return (done / seconds, sum(r["retried"] for r in results),
            1e6 * sum(r["cpu_s"] for r in results) / done)


def round_trips(server: str, schema: str, codes: list[Code], n: int = 200) -> dict[str, float]:
    """Round trips of one transfer, connection set-up excluded, for pgbench and each code."""
    proxy = Proxy(make_url(server).host or "127.0.0.1", make_url(server).port or 5432).start()
    url = make_url(server).set(port=proxy.listen_port).render_as_string(hide_password=False)
    try:
        counts = []
        for transactions in (1, 1 + n):
            before = proxy.stats.snapshot()[0]
            pgbench(url, schema, PGBENCH_SCRIPT, "-M", "prepared", "-t", str(transactions))
            counts.append(proxy.stats.snapshot()[0] - before)
        found = {"pgbench": (counts[1] - counts[0]) / n}
        for code in codes:
            mark: list[int] = []
            run_clients(code, client_env(url, schema, 1), 1, 1, "--transfers", str(n),
                        started=lambda mark=mark: mark.append(proxy.stats.snapshot()[0]))
            found[code.name] = (proxy.stats.snapshot()[0] - mark[0]) / n
        return found
    finally:
        proxy.stop()


def summarize(rates: dict[Mode, tuple[float, float]]) -> None:
    """What strict mode and durable commits change, when both settings were measured."""
    for commits in (True, False):
        on, off = rates.get(Mode(True, commits)), rates.get(Mode(False, commits))
        if on and off:
            print(f"{'':>14} bank with strict mode on / off ({'durable' if commits else 'fast'} "
                  f"commits): {on[1] / off[1]:.3f}", flush=True)
    for strict in (True, False):
        slow, fast = rates.get(Mode(strict, True)), rates.get(Mode(strict, False))
        if slow and fast:
            print(f"{'':>14} durable commits cost pgbench {1 - slow[0] / fast[0]:.0%} and bank "
                  f"{1 - slow[1] / fast[1]:.0%} of their transfers/s (strict mode "
                  f"{'on' if strict else 'off'})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seconds", type=float, default=4, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate pgbench and bank this many times; medians are compared")
    parser.add_argument("--processes", action="store_true",
                        help="bank's clients are processes (as Lambda scales) instead of threads")
    parser.add_argument("--both-kinds", action="store_true",
                        help="measure bank's clients as threads and as processes")
    parser.add_argument("--baseline-code", metavar="DIR",
                        help="another checkout (with its own .venv) measured in the same run")
    parser.add_argument("--strict", choices=sorted(STRICT_MODES), default="on",
                        help="DSQL strict mode on the server for both sides (both: measure each "
                             "and compare); default on")
    parser.add_argument("--commits", choices=sorted(COMMIT_MODES), default="durable",
                        help="durable commits, or synchronous_commit = off for both sides' "
                             "sessions (both: measure each and print what durability costs)")
    args = parser.parse_args()
    codes = [Code("this", sys.executable)]
    if args.baseline_code:
        python = Path(args.baseline_code, ".venv", "bin", "python")
        if not python.exists():
            parser.error(f"{python} not found: make the checkout's venv first")
        codes.append(Code("before", str(python)))
    kinds = [False, True] if args.both_kinds else [args.processes]
    server = server_url()
    with scratch_schema(server) as schema:
        seed(server, schema)
        with setup_engine(server).connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        print(f"server: PostgreSQL {version}; {ACCOUNT_COUNT} accounts; median of "
              f"{args.rounds} alternating runs of {args.seconds:g} s"
              + (f"; 'before' is the code in {args.baseline_code}" if args.baseline_code else ""))
        trips = round_trips(server, schema, codes)
        print("round trips per transfer: " + ", ".join(f"{k} {v:.2f}" for k, v in trips.items()))
        columns = "".join(f" {c.name + ' tps':>12} {'ratio':>6} {'CPU µs':>7}" for c in codes)
        print(f"{'rtt ms':>6} {'clients':>7} {'kind':>9} {'strict':>6} {'commits':>7} "
              f"{'pgbench tps':>12}{columns}"
              + (f" {'CPU this/before':>16}" if len(codes) > 1 else ""))
        modes = [Mode(strict, durable) for durable in COMMIT_MODES[args.commits]
                 for strict in STRICT_MODES[args.strict]]
        for rtt in args.rtt_ms:
            with Link(server, rtt) as link:
                for n in args.clients:
                    for processes in kinds:
                        runs = {mode: Runs() for mode in modes}
                        for _ in range(args.rounds):  # everything takes turns: drift cancels
                            for mode in modes:
                                run = runs[mode]
                                run.baseline.append(
                                    run_pgbench(link.url, schema, n, args.seconds, mode))
                                for code in codes:
                                    rate, r, cpu = run_bank(code, link.url, schema, n,
                                                            args.seconds, processes, mode)
                                    run.bank.setdefault(code.name, []).append(rate)
                                    run.cpu.setdefault(code.name, []).append(cpu)
                                    run.retried[code.name] = run.retried.get(code.name, 0) + r
                        rates: dict[Mode, tuple[float, float]] = {}
                        for mode, run in runs.items():
                            b = statistics.median(run.baseline)
                            cells, cpus = "", []
                            for code in codes:
                                o = statistics.median(run.bank[code.name])
                                cpus.append(statistics.median(run.cpu[code.name]))
                                cells += f" {o:>12.0f} {o / b:>5.2f}x {cpus[-1]:>7.0f}"
                            rates[mode] = (b, statistics.median(run.bank["this"]))
                            kind = "processes" if processes else "threads"
                            print(f"{rtt:>6g} {n:>7} {kind:>9} "
                                  f"{'on' if mode.strict else 'off':>6} "
                                  f"{'durable' if mode.durable else 'fast':>7} {b:>12.0f}{cells}"
                                  + (f" {cpus[0] / cpus[1]:>16.2f}" if len(cpus) > 1 else ""),
                                  flush=True)
                        summarize(rates)
            if link.report:
                print(f"{'':>14} the {rtt:g} ms link: {link.report}", flush=True)


if __name__ == "__main__":
    main()
