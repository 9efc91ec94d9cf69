"""What strict mode costs: pgbench with dsql_strict loaded and enabled vs disabled.

One throwaway server (the embedded wheel's PostgreSQL, dsql_strict preloaded); the same
pgbench scripts run alternately with strict mode on and off (``PGOPTIONS=-c
dsql_strict.enabled=off`` for the off runs); the medians of the tps are compared.

- transfer: BEGIN; two single-row UPDATEs; COMMIT (the bank's transfer shape);
- bulk: one 1,000-row INSERT ... SELECT generate_series per transaction.

Run: ``.venv/bin/python -m benchmarks.strict_overhead [--seconds 8] [--pairs 5]``.
Not a test: it prints a table; 2 cores and the noise of a shared machine make single runs
vary by a few percent, so look at the medians.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bank.kit.embedded import pg_bin
from tests.integration.strict.server import ThrowawayServer

TRANSFER = """\\set a random(1, 10000)
\\set b random(1, 10000)
BEGIN;
UPDATE bench_accounts SET balance = balance - 1 WHERE id = :a;
UPDATE bench_accounts SET balance = balance + 1 WHERE id = :b;
COMMIT;
"""
SELECT1 = "SELECT 1;\n"
BULK = """BEGIN;
INSERT INTO bench_bulk (id, v) SELECT g, 'x' FROM generate_series(1, 1000) g;
COMMIT;
"""


def _children_cpu(postmaster: int) -> float:
    """CPU seconds of the postmaster's exited children (the benchmark's backends)."""
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime


def _pgbench(target, script: Path, seconds: int, clients: int, strict: bool,
             postmaster: int) -> tuple[float, float]:
    """(tps, server CPU microseconds per transaction) of one pgbench run."""
    before = _children_cpu(postmaster)
    env = {**os.environ, "PGOPTIONS": "" if strict else "-c dsql_strict.enabled=off"}
    out = subprocess.run(
        [*PIN_CLIENT, pg_bin("pgbench"), "-n", "-h", "127.0.0.1", "-p", str(target.port),
         "-U", "postgres",
         "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-f", str(script),
         target.dbname],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    assert match and done, out
    time.sleep(0.3)  # let the postmaster reap the backends
    cpu_us = (_children_cpu(postmaster) - before) * 1e6 / int(done.group(1))
    return float(match.group(1)), cpu_us


# With 2 cores, where the scheduler puts pgbench and the backend can swing the tps a lot
# from one run to the next: --pin puts the server on CPU 0 and pgbench on CPU 1.
PIN_CLIENT: list[str] = []


def _pin(server: ThrowawayServer) -> None:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return
    postmaster = (server.pgdata / "postmaster.pid").read_text().split()[0]
    subprocess.run(["taskset", "-a", "-p", "-c", "0", postmaster], check=True,
                   capture_output=True)  # backends forked from now on inherit it
    PIN_CLIENT[:] = ["taskset", "-c", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, pgbench on CPU 1")
    args = parser.parse_args()

    # No autovacuum or checkpoint in the middle of a run: less noise in the bulk load.
    server = ThrowawayServer({"autovacuum": "off", "max_wal_size": "8GB",
                              "checkpoint_timeout": "1h"})
    target = server.start()
    if args.pin:
        _pin(server)
    try:
        with target.connect() as conn:
            conn.execute("SET dsql_strict.enabled = off")  # setup: superuser, one transaction
            conn.execute("CREATE TABLE bench_accounts (id int PRIMARY KEY, balance bigint)")
            conn.execute("INSERT INTO bench_accounts SELECT g, 1000000 FROM "
                         "generate_series(1, 10000) g")
            conn.execute("CREATE TABLE bench_bulk (id int, v text)")
            conn.execute("VACUUM ANALYZE bench_accounts")
        scripts = {}
        tmp = Path(tempfile.mkdtemp(prefix="strict-bench-"))
        # select1: the per-statement cost alone (an upper bound: no work beside it)
        for name, body in (("transfer", TRANSFER), ("bulk", BULK), ("select1", SELECT1)):
            scripts[name] = tmp / f"{name}.sql"
            scripts[name].write_text(body)
        print(f"pgbench -M simple -c {args.clients} -T {args.seconds}, {args.pairs} pairs, "
              f"alternating order, pinned: {bool(PIN_CLIENT)}")
        postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        print("tps: throughput (noisy here: the host's other load moves it a lot);")
        print("cpu: server CPU microseconds per transaction, of the benchmark's backends")
        print(f"{'workload':10} {'':5} {'strict on':>10} {'strict off':>10} {'on/off':>7} "
              f"{'paired':>7}")
        for name, script in scripts.items():
            on: list[tuple[float, float]] = []
            off: list[tuple[float, float]] = []
            for i in range(args.pairs):
                order = (True, False) if i % 2 == 0 else (False, True)
                for strict in order:
                    if name == "bulk":  # every run starts from an empty table
                        with target.connect() as conn:
                            conn.execute("SET dsql_strict.enabled = off")
                            conn.execute("TRUNCATE bench_bulk")
                    run = _pgbench(target, script, args.seconds, args.clients, strict,
                                   postmaster)
                    (on if strict else off).append(run)
            for k, what in ((0, "tps"), (1, "cpu")):
                a = [r[k] for r in on]
                b = [r[k] for r in off]
                m_on, m_off = statistics.median(a), statistics.median(b)
                paired = statistics.median(x / y for x, y in zip(a, b, strict=True))
                print(f"{name:10} {what:5} {m_on:10.1f} {m_off:10.1f} {m_on / m_off:7.3f} "
                      f"{paired:7.3f}")
    finally:
        target.close()


if __name__ == "__main__":
    main()
