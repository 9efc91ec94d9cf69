"""``bank load``: the parallel bulk loader, against the real test database (no mocks)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from bank import cli
from bank.errors import BatchTooLarge, ConflictRetriesExhausted, LoadFailed
from bank.loader import (
    ConnectionLost,
    Progress,
    ProgressPrinter,
    WorkerConnection,
    load_accounts,
    with_retries,
)
from bank.occ import RetryPolicy
from bank.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def ids_in_table(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT id::text FROM accounts2")).scalars())


def ids_in_file(path: Path) -> list[str]:
    return path.read_text().splitlines()


def settings_for(url: str, **env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": url, **env})


def test_load_with_several_threads(engine, database_url, tmp_path):
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"

    result = load_accounts(
        settings_for(database_url), 5000, batch=500, threads=4, balance="12.5", out=out
    )

    ids = ids_in_file(out)
    added = ids_in_table(engine) - before
    assert (result.rows, result.interrupted) == (5000, False)
    assert len(ids) == len(set(ids)) == 5000
    assert set(ids) == added  # every line is a new row, every new row is a line
    assert os.listdir(tmp_path) == ["uuids.txt"]
    with engine.connect() as conn:
        balances = conn.execute(
            text("SELECT DISTINCT balance::text FROM accounts2 WHERE id::text = ANY(:ids)"),
            {"ids": ids},
        ).scalars()
        assert list(balances) == ["12.500000"]


def test_last_batch_is_partial_and_threads_exceed_batches(engine, database_url, tmp_path):
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"
    result = load_accounts(settings_for(database_url), 1234, batch=1000, threads=8, out=out)
    assert result.rows == 1234
    assert set(ids_in_file(out)) == ids_in_table(engine) - before


def test_batch_above_dsql_limit_is_refused(engine, database_url, tmp_path):
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"
    with pytest.raises(BatchTooLarge):
        load_accounts(settings_for(database_url), 10_000, batch=3001, out=out)
    assert cli.main(["load", "--accounts", "10000", "--batch", "3001", "--out", str(out)]) == 1
    assert os.listdir(tmp_path) == []
    assert ids_in_table(engine) == before


def test_unwritable_out_fails_before_any_insert(engine, database_url, tmp_path):
    before = ids_in_table(engine)
    with pytest.raises(LoadFailed):
        load_accounts(settings_for(database_url), 100, out=tmp_path / "missing" / "uuids.txt")
    assert ids_in_table(engine) == before


# A real 40001 from the real server. Local PostgreSQL raises it at the statement, Aurora
# DSQL at COMMIT: a row trigger fails the statement, a deferred constraint trigger fails
# the COMMIT. The sequence is not transactional: it counts the failed attempts too.
INJECT = """
CREATE SEQUENCE inject_40001;
CREATE FUNCTION inject_40001() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('inject_40001') <= {failures} THEN
    RAISE EXCEPTION 'injected conflict' USING ERRCODE = '40001';
  END IF;
  RETURN NULL;
END $$;
CREATE {kind} TRIGGER inject_40001 AFTER INSERT ON accounts2 {timing}
  FOR EACH ROW WHEN (NEW.balance = 42.424242) EXECUTE FUNCTION inject_40001();
"""
TIMINGS = {"statement": ("", ""), "commit": ("CONSTRAINT", "DEFERRABLE INITIALLY DEFERRED")}


@pytest.fixture
def inject_conflicts(engine):
    def install(failures: int, at: str) -> None:
        kind, timing = TIMINGS[at]
        with engine.begin() as conn:
            sql = INJECT.format(failures=failures, kind=kind, timing=timing)
            conn.exec_driver_sql(sql)

    yield install
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS inject_40001 ON accounts2")
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS inject_40001()")
        conn.exec_driver_sql("DROP SEQUENCE IF EXISTS inject_40001")


@pytest.mark.parametrize("at", ["statement", "commit"])
def test_conflicting_batch_is_retried(engine, database_url, tmp_path, inject_conflicts, at):
    inject_conflicts(failures=2, at=at)
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"

    result = load_accounts(
        settings_for(database_url), 300, batch=300, threads=1, balance="42.424242", out=out
    )

    assert result.rows == 300
    assert set(ids_in_file(out)) == ids_in_table(engine) - before
    with engine.connect() as conn:
        calls = conn.execute(text("SELECT last_value FROM inject_40001")).scalar_one()
    assert calls == 2 + 300  # two attempts failed with 40001, the third inserted 300 rows


def test_conflicts_beyond_the_cap_fail_the_load(engine, database_url, tmp_path, inject_conflicts):
    inject_conflicts(failures=1000, at="commit")
    before = ids_in_table(engine)
    settings = settings_for(
        database_url,
        BANK_OCC_MAX_ATTEMPTS="3",
        BANK_OCC_BASE_DELAY_S="0",
        BANK_OCC_MAX_DELAY_S="0",
    )
    with pytest.raises(LoadFailed) as failure:
        load_accounts(settings, 100, batch=100, balance="42.424242", out=tmp_path / "u.txt")
    assert isinstance(failure.value.__cause__, ConflictRetriesExhausted)
    assert ids_in_table(engine) == before
    assert os.listdir(tmp_path) == []  # nothing committed: no file, no temp file


def test_retry_policy():
    conflict = psycopg.errors.SerializationFailure("injected")
    retry = RetryPolicy(max_attempts=4, base_delay_s=0, max_delay_s=0)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise conflict
        return "ok"

    assert with_retries(flaky, retry, threading.Event()) == "ok"
    assert len(calls) == 3

    def always():
        calls.append(1)
        raise conflict

    calls.clear()
    with pytest.raises(ConflictRetriesExhausted) as exhausted:
        with_retries(always, retry, threading.Event())
    assert exhausted.value.attempts == len(calls) == 4

    def broken():
        calls.append(1)
        raise psycopg.errors.UniqueViolation("not a conflict")

    calls.clear()
    with pytest.raises(psycopg.errors.UniqueViolation):
        with_retries(broken, retry, threading.Event())
    assert len(calls) == 1

    stopped = threading.Event()
    stopped.set()
    calls.clear()
    assert with_retries(always, retry, stopped) is None  # stop: abandon the failed batch
    assert len(calls) == 1


def test_dropped_connections_are_replaced(engine, database_url, tmp_path):
    """Backends killed mid-load: the workers reconnect, and the file still matches the table."""
    name = "bank_load_dropped"
    url = f"{database_url}?application_name={name}"
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"
    done = threading.Event()
    killed = []

    def killer():
        with engine.connect() as conn:
            while not done.wait(0.05):
                killed.extend(
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :name"
                        ),
                        {"name": name},
                    ).scalars()
                )
                conn.commit()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        result = load_accounts(settings_for(url), 50_000, batch=100, threads=2, out=out)
    finally:
        done.set()
        thread.join()

    assert killed, "no connection was dropped: the test proved nothing"
    assert result.rows == 50_000
    ids = ids_in_file(out)
    assert len(ids) == len(set(ids)) == 50_000
    assert set(ids) == ids_in_table(engine) - before


def test_worker_connection_is_held_recycled_and_replaced(engine):
    def backend_pid(connection: WorkerConnection) -> int:
        with connection.use() as conn:
            pid = conn.cursor().execute("SELECT pg_backend_pid()").fetchone()[0]
            conn.commit()
        return pid

    held = WorkerConnection(engine, max_age_s=3600)
    first = backend_pid(held)
    assert backend_pid(held) == first  # held from batch to batch
    with pytest.raises(psycopg.errors.UndefinedTable):
        with held.use() as conn:
            conn.cursor().execute("SELECT * FROM no_such_table")
    second = backend_pid(held)
    assert second != first  # discarded after an error
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": second})
    with pytest.raises(ConnectionLost):
        backend_pid(held)
    assert backend_pid(held) != second  # dropped: the next use connects again
    held.close()

    aging = WorkerConnection(engine, max_age_s=0)
    assert backend_pid(aging) != backend_pid(aging)  # recycled by age
    aging.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly(engine, database_url, tmp_path, signum):
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"
    cmd = [sys.executable, "-m", "bank.cli", "load", "--accounts", "50000000"]
    cmd += ["--batch", "1000", "--threads", "2", "--out", str(out)]
    env = dict(os.environ, DATABASE_URL=database_url)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        first = proc.stderr.readline()  # the first progress line: rows are being committed
        assert first.startswith("load:"), first + proc.stderr.read()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()

    assert proc.returncode == 128 + signum, stderr
    committed = int(re.search(r"interrupted: (\d+) of 50000000", stdout).group(1))
    ids = ids_in_file(out)
    added = ids_in_table(engine) - before
    assert 0 < committed == len(ids) == len(set(ids)) < 50_000_000
    assert set(ids) == added
    assert os.listdir(tmp_path) == ["uuids.txt"]  # no worker or temp file left behind


def test_progress_printer():
    plain = io.StringIO()
    printer = ProgressPrinter(plain, every=0)
    printer(Progress(rows=250, total=1000, seconds=0.5))
    printer.close()
    assert plain.getvalue() == "load: 25%  250/1000  500 rows/s  ETA 0:01\n"

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty = Terminal()
    printer = ProgressPrinter(tty)
    printer(Progress(rows=0, total=1000, seconds=0.0))
    printer(Progress(rows=1000, total=1000, seconds=1.0))
    printer.close()
    assert tty.getvalue().count("\r") == 2
    assert "[" + "#" * 30 + "] 100%  1000/1000  1,000 rows/s  ETA 0:00" in tty.getvalue()
    assert "ETA --:--" in tty.getvalue()
    assert tty.getvalue().endswith("\n")
