"""Transfers/s: pgbench running the original two-UPDATE transfer vs bank's ch05 service path.

Both run on the same server in the same run, against the same 1,000 accounts in a
scratch database (created here, dropped at the end), at REPEATABLE READ:

- baseline: pgbench (shipped with the embedded PostgreSQL), prepared statements,
  the original's transaction (``BEGIN; UPDATE payer ... RETURNING balance; UPDATE
  payee; END``) with ``--max-tries`` retrying serialization failures;
- bank: ``bank.transfers.transfer_with_retry`` (what the ch05 handler calls, event
  parsing included) from N Python threads.

    .venv/bin/python benchmarks/transfer.py [--seconds 4] [--rounds 3] [--threads 1 2 4]
                                            [--processes]

Alternates pgbench and bank runs (--rounds) and prints the median transfers/s of each
and their ratio. --processes runs bank's clients as single-threaded processes, which is
how Lambda scales (one request per container); by default they are threads of one
process and share its GIL. The database is the embedded
server unless DATABASE_URL names another.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import secrets
import statistics
import subprocess
import tempfile
import threading
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bank.database import database_url
from bank.embedded import pg_bin
from bank.occ import RetryPolicy
from bank.settings import Settings
from bank.transfers import ACCOUNTS, transfer_with_retry
from bank.validation import parse_transfer

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


def make_scratch(server: str) -> str:
    name = f"bank_bench_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(18,6))"))
        conn.execute(text(
            f"INSERT INTO accounts SELECT g, 1000000 FROM generate_series(1, {ACCOUNT_COUNT}) g"
        ))
        conn.execute(text("ANALYZE accounts"))
    engine.dispose()
    return url


def drop_scratch(server: str, url: str) -> None:
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def run_pgbench(url: str, clients: int, seconds: float) -> float:
    u = make_url(url)
    env = {**os.environ, "PGOPTIONS": "-c default_transaction_isolation=repeatable\\ read"}
    if u.password:
        env["PGPASSWORD"] = u.password
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(PGBENCH_SCRIPT)
        script.flush()
        os.chmod(script.name, 0o644)
        out = subprocess.run(
            [pg_bin("pgbench"), "-n", "-M", "prepared", "-f", script.name,
             "-c", str(clients), "-j", str(clients), "-T", str(int(seconds)),
             "--max-tries", "100", "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432),
             "-U", u.username or "postgres", u.database],
            capture_output=True, text=True, env=env, check=True,
        ).stdout
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    assert match, out
    return float(match.group(1))


def _transfers(url: str, threads: int, seconds: float, seed: int) -> tuple[float, int]:
    """``threads`` threads of ch05 transfers for ``seconds``; (transfers/s, retried)."""
    engine = create_engine(
        url,
        isolation_level="REPEATABLE READ",
        connect_args={"options": "-c default_transaction_isolation=repeatable\\ read"},
        pool_size=threads,
    )
    policy = RetryPolicy(max_attempts=100)
    counts = [0] * threads
    retried = [0] * threads
    stop = threading.Event()
    start_barrier = threading.Barrier(threads + 1)

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with engine.connect():  # open this thread's connection before the clock starts
            pass
        start_barrier.wait()
        while not stop.is_set():
            payer = rng.randint(1, ACCOUNT_COUNT)
            payee = 1 + (payer + rng.randint(0, ACCOUNT_COUNT - 2)) % ACCOUNT_COUNT
            cents = rng.randint(1, 1000)
            event = {"payer_id": payer, "payee_id": payee, "amount": f"{cents / 100}"}
            result = transfer_with_retry(engine, ACCOUNTS, parse_transfer(event), policy)
            counts[n] += 1
            retried[n] += result.attempts > 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    start_barrier.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - began
    engine.dispose()
    return sum(counts) / elapsed, sum(retried)


def run_service(url: str, clients: int, seconds: float, processes: bool) -> tuple[float, int]:
    """bank's transfers from ``clients`` threads of one process, or from ``clients``
    single-threaded processes (how Lambda scales: one request per container)."""
    if not processes:
        return _transfers(url, clients, seconds, seed=0)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(clients) as pool:
        results = pool.starmap(_transfers, [(url, 1, seconds, n) for n in range(clients)])
    return sum(r[0] for r in results), sum(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate pgbench and bank this many times; medians are compared")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--processes", action="store_true",
                        help="bank's clients are processes instead of threads of one process")
    args = parser.parse_args()
    settings = Settings.from_env()
    server = database_url(settings)
    url = make_scratch(server)
    try:
        with create_engine(url).connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        kind = "processes" if args.processes else "threads"
        print(f"server: PostgreSQL {version}; {ACCOUNT_COUNT} accounts; bank clients are {kind}; "
              f"median of {args.rounds} alternating runs of {args.seconds:g}s")
        print(f"{'clients':>7} {'pgbench tps':>12} {'bank tps':>10} {'ratio':>6} {'retried':>8}")
        for n in args.threads:
            baseline, ours, retried = [], [], 0
            for _ in range(args.rounds):
                baseline.append(run_pgbench(url, n, args.seconds))
                tps, r = run_service(url, n, args.seconds, args.processes)
                ours.append(tps)
                retried += r
            b, o = statistics.median(baseline), statistics.median(ours)
            print(f"{n:>7} {b:>12.0f} {o:>10.0f} {o / b:>5.2f}x {retried:>8}")
    finally:
        drop_scratch(server, url)


if __name__ == "__main__":
    main()
