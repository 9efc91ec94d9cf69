"""Benchmark: ``bank load`` against the fastest server-side form of the same work.

Baseline: pgbench (the C client shipped with the embedded PostgreSQL), prepared protocol
(``--protocol simple`` for the slower unprepared form), T clients on T threads, each
transaction one statement of 1000 rows whose ids are returned to the client:

    INSERT INTO accounts2 (balance) SELECT 100 FROM generate_series(1, 1000) RETURNING id

Then what ``bank load`` runs (``bank.kit.loader.load_accounts`` through the unit of
work, batches of 1000, T threads, the ids written to a file). Both are timed by the wall
clock, connections included, in a scratch schema migrated by Alembic; every measurement
starts from an empty accounts2; baseline and bank load alternate (ABBA), and the median
of ``--repeat`` runs is reported.

    .venv/bin/python -m benchmarks.load [--rows 200000] [--threads 1,2,4] [--repeat 3]

Server: DATABASE_URL's if set, else the embedded PostgreSQL. Local PostgreSQL only: it
needs pgbench and a superuser to make the scratch schema.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bank.adapters.database import install_engine
from bank.adapters.settings import Settings
from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
from bank.kit import local
from bank.kit.cli.console import IdsFile
from bank.kit.loader import load_accounts
from bank.kit.local import server_url, setup_engine
from bank.services.retry import RetryPolicy
from benchmarks.common import STRICT_MODES, pgbench, scratch_schema, with_schema

BATCH = 1000
SCRIPT = "INSERT INTO accounts2 (balance) SELECT 100 FROM generate_series(1, 1000) RETURNING id;\n"


def empty_table(url: str) -> None:
    """DELETE, not TRUNCATE (DSQL has none): in batches, as a transaction holds 3,000 rows."""
    engine = setup_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        while conn.execute(text(
            "DELETE FROM accounts2 WHERE id IN (SELECT id FROM accounts2 LIMIT 3000)"
        )).rowcount:
            pass
    engine.dispose()


def baseline(server: str, schema: str, rows: int, threads: int, _: Path, protocol: str,
             strict: bool) -> float:
    started = time.perf_counter()
    pgbench(server, schema, SCRIPT, "-M", protocol, "-c", str(threads), "-j", str(threads),
            "-t", str(rows // BATCH // threads), strict=strict)
    return rows / (time.perf_counter() - started)


def bank_load(server: str, schema: str, rows: int, threads: int, workdir: Path, _: str,
              strict: bool) -> float:
    settings = Settings.from_env({"DATABASE_URL": server, "BANK_SCHEMA": schema})
    kit = dataclasses.replace(local.get_kit_settings(), strict=strict)
    started = time.perf_counter()
    install_engine(local.engine(settings=settings, kit=kit, pool_size=threads, max_overflow=0))
    ids = IdsFile(workdir / "uuids.txt")
    try:
        result = load_accounts(SqlAlchemyUnitOfWork, rows, on_batch=ids.write, batch=BATCH,
                               threads=threads, policy=RetryPolicy.from_settings(settings))
    finally:
        ids.close()
        install_engine(None)
    seconds = time.perf_counter() - started
    assert result.rows == rows, result
    return rows / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows per measurement")
    parser.add_argument("--threads", default="1,2,4", help="thread counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--protocol", choices=["prepared", "simple"], default="prepared",
                        help="pgbench's query protocol; prepared (the default) is faster")
    parser.add_argument("--strict", choices=sorted(STRICT_MODES), default="on",
                        help="DSQL strict mode on the server for both sides (both: measure each "
                             "and compare); default on")
    args = parser.parse_args(argv)

    server = server_url()
    with scratch_schema(server) as schema, tempfile.TemporaryDirectory() as tmp:
        with setup_engine(server).connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
        print(f"server: PostgreSQL {version}; scratch schema {schema}; median of {args.repeat}")
        print(f"{'threads':>7} {'rows':>9} {'strict':>6} {'baseline rows/s':>16} "
              f"{'bank load rows/s':>17} ratio")
        for threads in (int(t) for t in args.threads.split(",")):
            rows = args.rows // (BATCH * threads) * BATCH * threads
            modes = STRICT_MODES[args.strict]
            runs: dict[bool, dict[str, list[float]]] = {
                strict: {"baseline": [], "bank": []} for strict in modes}
            order = [("baseline", baseline), ("bank", bank_load)]
            for _ in range(args.repeat):  # the modes take turns: drift cancels out
                for strict in modes:
                    order.reverse()  # ABBA...: drift in the machine's load cancels out
                    for name, measure in order:
                        empty_table(with_schema(server, schema))
                        runs[strict][name].append(measure(server, schema, rows, threads,
                                                          Path(tmp), args.protocol, strict))
            bank_by_mode = {}
            for strict in modes:
                base, bank = (statistics.median(runs[strict][k]) for k in ("baseline", "bank"))
                bank_by_mode[strict] = bank
                print(f"{threads:>7} {rows:>9} {'on' if strict else 'off':>6} {base:>16,.0f} "
                      f"{bank:>17,.0f} {bank / base:>6.2f}", flush=True)
            if len(bank_by_mode) == 2:
                print(f"{'':>17} bank load with strict mode on / off: "
                      f"{bank_by_mode[True] / bank_by_mode[False]:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
