"""Benchmark: ``bank load`` against the fastest server-side form of the same work.

Baseline: pgbench (the C client shipped with the embedded PostgreSQL), prepared protocol
(``--protocol simple`` for the slower unprepared form),
T clients on T threads, each transaction one statement of 1000 rows whose ids are
returned to the client:

    INSERT INTO accounts2 (balance) SELECT 100 FROM generate_series(1, 1000) RETURNING id

Then ``bank.services.loader.load_accounts`` (what ``bank load`` runs) with batches of 1000 and T
threads, ids written to a file. Both are timed by the wall clock, connections included.
Every measurement starts from an empty accounts2 in a scratch database created on the
server and dropped at the end; baseline and bank load alternate (ABBA), and the median
of ``--repeat`` runs is reported.

    .venv/bin/python benchmarks/load.py [--rows 200000] [--threads 1,2,4] [--repeat 3]

Server: DATABASE_URL's if set, else the embedded PostgreSQL (started if needed).
Local PostgreSQL only: it needs CREATE DATABASE and pgbench.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bank.adapters.database import database_url, install_engine, make_engine
from bank.adapters.embedded import pg_bin
from bank.adapters.orm import accounts2
from bank.adapters.settings import Settings
from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
from bank.cli.console import IdsFile
from bank.services.loader import load_accounts
from bank.services.retry import RetryPolicy

BATCH = 1000
SCRIPT = "INSERT INTO accounts2 (balance) SELECT 100 FROM generate_series(1, 1000) RETURNING id;\n"


def reset_table(url: str) -> None:
    engine = create_engine(url)
    try:
        accounts2.drop(engine, checkfirst=True)
        accounts2.create(engine)
    finally:
        engine.dispose()


def baseline(url: str, rows: int, threads: int, workdir: Path, protocol: str) -> float:
    script = workdir / "insert.sql"
    script.write_text(SCRIPT)
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    cmd = [pg_bin("pgbench"), "-n", "-M", protocol, "-f", str(script)]
    cmd += ["-c", str(threads), "-j", str(threads), "-t", str(rows // BATCH // threads), libpq]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return rows / (time.perf_counter() - started)


def bank_load(url: str, rows: int, threads: int, workdir: Path, protocol: str) -> float:
    # What `bank load` does: one connection per worker, the ids written to a file.
    settings = Settings.from_env({"DATABASE_URL": url})
    install_engine(make_engine(settings, pool_size=threads, max_overflow=0))
    started = time.perf_counter()
    ids = IdsFile(workdir / "uuids.txt")
    try:
        result = load_accounts(SqlAlchemyUnitOfWork, rows, on_batch=ids.write,
                               policy=RetryPolicy.from_settings(settings), batch=BATCH,
                               threads=threads)
    finally:
        ids.close()
    seconds = time.perf_counter() - started
    install_engine(None)
    assert result.rows == rows, result
    return rows / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per measurement")
    parser.add_argument("--threads", default="1,2,4", help="thread counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--protocol",
        choices=["prepared", "simple"],
        default="prepared",
        help="pgbench's query protocol; prepared (the default) is the faster baseline",
    )
    args = parser.parse_args(argv)

    server = database_url(Settings.from_env())
    scratch = f"bank_bench_{secrets.token_hex(4)}"
    url = make_url(server).set(database=scratch).render_as_string(hide_password=False)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{scratch}"'))
    print(f"server {make_url(server).render_as_string()}, scratch database {scratch}")
    print(f"{'threads':>7} {'rows':>9} {'baseline rows/s':>16} {'bank load rows/s':>17} ratio")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for threads in (int(t) for t in args.threads.split(",")):
                rows = args.rows // (BATCH * threads) * BATCH * threads
                runs: dict[str, list[float]] = {"baseline": [], "bank": []}
                order = [("baseline", baseline), ("bank", bank_load)]
                for _ in range(args.repeat):
                    order.reverse()  # ABBA...: drift in the machine's load cancels out
                    for name, measure in order:
                        reset_table(url)
                        runs[name].append(measure(url, rows, threads, Path(tmp), args.protocol))
                base, bank = (statistics.median(runs[k]) for k in ("baseline", "bank"))
                print(f"{threads:>7} {rows:>9} {base:>16,.0f} {bank:>17,.0f} {bank / base:>6.2f}")
                sys.stdout.flush()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
