"""Transfers/s: pgbench running the original's transfer vs bank's ch05 path, over a link.

Both run on the same server in the same run, against the same 1,000 accounts in a scratch
schema migrated by Alembic, at REPEATABLE READ, through the same link:

- baseline: pgbench (shipped with the embedded PostgreSQL), prepared statements, the
  original's transaction ``BEGIN; UPDATE payer ... RETURNING balance; UPDATE payee; END``
  with ``--max-tries`` retrying serialization failures: 4 round trips;
- bank: the ch05 handler (event parsing, the unit of work, the one-statement move, the
  ledger entry, the retry loop) from N threads of this process or N processes.

``--rtt-ms`` puts a delay proxy (``netproxy.py``, a process of its own) between client and
server, both ways: 1 ms is about a round trip to Aurora DSQL within a Region. 0 is the
loopback, where client CPU is all that counts.

    .venv/bin/python -m benchmarks.transfer [--rtt-ms 0 1] [--clients 1 8] [--seconds 4]
                                            [--rounds 3] [--processes] [--strict on|off|both]
                                            [--commits durable|fast|both]

Prints, per link and client count, the median transfers/s of alternating runs and their
ratio; then the round trips of one transfer (counted by a proxy, connection set-up
excluded) and bank's client CPU per transfer. The server is the embedded one unless
DATABASE_URL names another.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bank.adapters.database import database_url, setup_engine
from bank.adapters.settings import Settings
from benchmarks.common import (
    COMMIT_MODES,
    FAST_COMMITS,
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


@dataclass
class Runs:
    baseline: list[float] = field(default_factory=list)
    bank: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    retried: int = 0


def run_pgbench(url: str, schema: str, clients: int, seconds: float, mode: Mode) -> float:
    return tps(pgbench(url, schema, PGBENCH_SCRIPT, "-M", "prepared", "-c", str(clients),
                       "-j", str(clients), "-T", str(int(seconds)), "--max-tries", "100",
                       strict=mode.strict, durable=mode.durable))


def _use(url: str, schema: str, pool: int, mode: Mode = Mode()) -> None:
    """Point this process's bank at ``url`` and ``schema`` (the handler's own engine)."""
    if not mode.durable:
        url = make_url(url).update_query_dict({"options": FAST_COMMITS}).render_as_string(
            hide_password=False)
    strict = mode.strict
    os.environ.update(DATABASE_URL=url, BANK_SCHEMA=schema, BANK_POOL_SIZE=str(pool),
                      BANK_POOL_MAX_OVERFLOW="0", BANK_OCC_MAX_ATTEMPTS="100",
                      BANK_STRICT="1" if strict else "0")
    from bank.adapters import database, settings

    settings.get_settings.cache_clear()
    database.install_engine(None)


def _transfers(url: str, schema: str, threads: int, seconds: float, seed: int, mode: Mode
               ) -> tuple[int, int, float]:
    """``threads`` threads of ch05 transfers for ``seconds``: (transfers, retried, CPU s)."""
    _use(url, schema, threads, mode)
    from bank.adapters.database import get_engine
    from bank.handlers.ch05 import handler

    counts, retried = [0] * threads, [0] * threads
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with get_engine().connect():  # this thread's connection, before the clock starts
            pass
        barrier.wait()
        while not stop.is_set():
            payer = rng.randint(1, ACCOUNT_COUNT)
            payee = 1 + (payer + rng.randint(0, ACCOUNT_COUNT - 2)) % ACCOUNT_COUNT
            cents = rng.randint(1, 1000)
            response = handler({"payer_id": payer, "payee_id": payee,
                                "amount": f"{cents // 100}.{cents % 100:02d}"})
            counts[n] += 1
            retried[n] += response["attempts"] > 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    cpu = time.process_time()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    cpu = time.process_time() - cpu
    return sum(counts), sum(retried), cpu


def run_bank(url: str, schema: str, clients: int, seconds: float, processes: bool,
             mode: Mode) -> tuple[float, int, float]:
    """(transfers/s, retried, client CPU µs per transfer)."""
    if processes:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(clients) as pool:
            results = pool.starmap(_transfers,
                                   [(url, schema, 1, seconds, n, mode) for n in range(clients)])
    else:
        results = [_transfers(url, schema, clients, seconds, 0, mode)]
    done = sum(r[0] for r in results)
    return done / seconds, sum(r[1] for r in results), 1e6 * sum(r[2] for r in results) / done


def round_trips(server: str, schema: str, n: int = 200) -> tuple[float, float]:
    """Round trips of one transfer, connection set-up excluded: (pgbench, bank)."""
    proxy = Proxy(make_url(server).host or "127.0.0.1", make_url(server).port or 5432).start()
    url = make_url(server).set(port=proxy.listen_port).render_as_string(hide_password=False)
    try:
        counts = []
        for transactions in (1, 1 + n):
            before = proxy.stats.snapshot()[0]
            pgbench(url, schema, PGBENCH_SCRIPT, "-M", "prepared", "-t", str(transactions))
            counts.append(proxy.stats.snapshot()[0] - before)
        baseline = (counts[1] - counts[0]) / n
        _use(url, schema, 1)
        from bank.handlers.ch05 import handler  # noqa: F811

        handler({"payer_id": 1, "payee_id": 2, "amount": "1"})  # connects
        before = proxy.stats.snapshot()[0]
        for i in range(n):
            handler({"payer_id": 1 + i % 500, "payee_id": 501 + i % 500, "amount": "0.01"})
        return baseline, (proxy.stats.snapshot()[0] - before) / n
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
    parser.add_argument("--strict", choices=sorted(STRICT_MODES), default="on",
                        help="DSQL strict mode on the server for both sides (both: measure each "
                             "and compare); default on")
    parser.add_argument("--commits", choices=sorted(COMMIT_MODES), default="durable",
                        help="durable commits, or synchronous_commit = off for both sides' "
                             "sessions (both: measure each and print what durability costs)")
    args = parser.parse_args()
    server = database_url(Settings.from_env())
    with scratch_schema(server) as schema:
        seed(server, schema)
        with setup_engine(server).connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        kind = "processes" if args.processes else "threads of one process"
        print(f"server: PostgreSQL {version}; {ACCOUNT_COUNT} accounts; bank clients are "
              f"{kind}; median of {args.rounds} alternating runs of {args.seconds:g} s")
        pg_rt, bank_rt = round_trips(server, schema)
        print(f"round trips per transfer: pgbench {pg_rt:.2f}, bank {bank_rt:.2f}")
        print(f"{'rtt ms':>6} {'clients':>7} {'strict':>6} {'commits':>7} {'pgbench tps':>12} "
              f"{'bank tps':>9} {'ratio':>6} {'retried':>8} {'bank CPU µs/transfer':>21}")
        modes = [Mode(strict, durable) for durable in COMMIT_MODES[args.commits]
                 for strict in STRICT_MODES[args.strict]]
        for rtt in args.rtt_ms:
            with Link(server, rtt) as link:
                for n in args.clients:
                    runs = {mode: Runs() for mode in modes}
                    for _ in range(args.rounds):  # the modes take turns: drift cancels out
                        for mode in modes:
                            runs[mode].baseline.append(
                                run_pgbench(link.url, schema, n, args.seconds, mode))
                            rate, r, cpu = run_bank(link.url, schema, n, args.seconds,
                                                    args.processes, mode)
                            runs[mode].bank.append(rate)
                            runs[mode].cpu.append(cpu)
                            runs[mode].retried += r
                    rates: dict[Mode, tuple[float, float]] = {}
                    for mode, run in runs.items():
                        b, o = statistics.median(run.baseline), statistics.median(run.bank)
                        rates[mode] = (b, o)
                        print(f"{rtt:>6g} {n:>7} {'on' if mode.strict else 'off':>6} "
                              f"{'durable' if mode.durable else 'fast':>7} {b:>12.0f} "
                              f"{o:>9.0f} {o / b:>5.2f}x {run.retried:>8} "
                              f"{statistics.median(run.cpu):>21.0f}", flush=True)
                    summarize(rates)
            if link.report:
                print(f"{'':>14} the {rtt:g} ms link: {link.report}", flush=True)


if __name__ == "__main__":
    main()
