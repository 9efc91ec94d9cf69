"""``bank load``: the parallel bulk loader, on the real test database and on a fake one."""

from __future__ import annotations

import functools
import io
import os
import re
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bank.adapters.errors import CommitOutcomeUnknown, TransactionConflict
from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
from bank.kit import local
from bank.kit.cli.console import IdsFile, LoadProgress
from bank.kit.cli.main import main
from bank.kit.errors import BatchTooLarge, LoadFailed
from bank.kit.loader import Progress, load_accounts
from bank.services.errors import ConflictRetriesExhausted
from bank.services.retry import RetryPolicy
from tests.conftest import settings_for
from tests.fakes import FakeStore

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(max_attempts=5, base_delay_s=0, max_delay_s=0)


def ids_in_table(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT id::text FROM accounts2")).scalars())


def collect() -> tuple[list[str], callable]:
    ids: list[str] = []
    return ids, ids.extend


def test_load_with_several_threads(engine):
    before = ids_in_table(engine)
    ids, on_batch = collect()
    result = load_accounts(SqlAlchemyUnitOfWork, 5000, on_batch=on_batch, policy=FAST,
                           batch=500, threads=4, balance="12.5")
    assert (result.rows, result.interrupted) == (5000, False)
    assert len(ids) == len(set(ids)) == 5000
    assert set(ids) == ids_in_table(engine) - before  # every id a new row, every new row listed
    with engine.connect() as conn:
        balances = conn.execute(
            text("SELECT DISTINCT balance::text FROM accounts2 WHERE id::text = ANY(:ids)"),
            {"ids": ids},
        ).scalars()
        assert list(balances) == ["12.500000"]


def test_last_batch_is_partial_and_threads_exceed_batches(engine):
    before = ids_in_table(engine)
    ids, on_batch = collect()
    result = load_accounts(SqlAlchemyUnitOfWork, 1234, on_batch=on_batch, policy=FAST,
                           batch=1000, threads=8)
    assert result.rows == 1234
    assert set(ids) == ids_in_table(engine) - before


def test_batch_above_dsql_limit_is_refused(engine, tmp_path):
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"
    with pytest.raises(BatchTooLarge):
        load_accounts(SqlAlchemyUnitOfWork, 10_000, on_batch=print, policy=FAST, batch=3001)
    assert main(["load", "--accounts", "10000", "--batch", "3001", "--out", str(out)]) == 1
    assert os.listdir(tmp_path) == []
    assert ids_in_table(engine) == before


def test_unwritable_out_fails_before_any_insert(engine, tmp_path):
    before = ids_in_table(engine)
    assert main(["load", "--accounts", "100", "--out", str(tmp_path / "no" / "u.txt")]) == 1
    with pytest.raises(LoadFailed):
        IdsFile(tmp_path / "missing" / "uuids.txt")
    assert ids_in_table(engine) == before


# --- the retries, on a fake unit of work: conflicts and lost commits on demand -----------


def test_a_conflicting_batch_is_retried_and_listed_once():
    store = FakeStore()
    store.fail_next = [(TransactionConflict("injected"), False)] * 2
    ids, on_batch = collect()
    result = load_accounts(store.factory, 300, on_batch=on_batch, policy=FAST, batch=300)
    assert result.rows == 300 and store.commits == 1
    assert set(ids) == {str(i) for i in store.tables["UuidAccount"]}


def test_conflicts_beyond_the_cap_fail_the_load():
    store = FakeStore()
    store.fail_next = [(TransactionConflict("injected"), False)] * 10
    with pytest.raises(LoadFailed) as failure:
        load_accounts(store.factory, 100, on_batch=print, policy=FAST, batch=100)
    assert isinstance(failure.value.__cause__, ConflictRetriesExhausted)
    assert store.tables["UuidAccount"] == {}


@pytest.mark.parametrize("committed", [True, False])
def test_a_lost_commit_reply_is_settled_by_the_first_id(committed):
    """COMMIT's reply lost: listed once if it committed, run again if it did not."""
    store = FakeStore()
    store.fail_next = [(CommitOutcomeUnknown("reply lost"), committed)]
    ids, on_batch = collect()
    result = load_accounts(store.factory, 200, on_batch=on_batch, policy=FAST, batch=200)
    assert result.rows == 200
    assert store.commits == 1  # the batch committed once, either way
    assert len(ids) == 200
    assert set(ids) == {str(i) for i in store.tables["UuidAccount"]}


def test_stop_while_waiting_to_retry_drops_the_uncommitted_batch():
    store = FakeStore()
    store.fail_next = [(TransactionConflict("injected"), False)]
    stop = threading.Event()
    stop.set()
    result = load_accounts(store.factory, 100, on_batch=print, stop=stop, batch=100,
                           policy=RetryPolicy(base_delay_s=1, max_delay_s=1))
    assert (result.rows, result.interrupted) == (0, True)


# --- real faults (local PostgreSQL: killing backends needs a superuser on the server) -----


def test_dropped_connections_are_replaced(engine, server_url, test_schema):
    """Backends killed mid-load: the workers reconnect, and the ids still match the table."""
    name = "bank_load_dropped"
    url = make_url(server_url).update_query_dict({"application_name": name})
    settings = settings_for(url.render_as_string(hide_password=False), test_schema.name)
    loader_engine = local.application_engine(settings, pool_size=2, max_overflow=0)
    uow = functools.partial(SqlAlchemyUnitOfWork, engine=loader_engine)
    before = ids_in_table(engine)
    ids, on_batch = collect()
    done = threading.Event()
    killed: list[bool] = []

    def killer():
        with engine.connect() as conn:
            while not done.wait(0.05):
                killed.extend(conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"), {"name": name}).scalars())

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        result = load_accounts(uow, 30_000, on_batch=on_batch, batch=100, threads=2,
                               policy=RetryPolicy(max_attempts=20, base_delay_s=0.001))
    finally:
        done.set()
        thread.join()
        loader_engine.dispose()
    assert killed, "no connection was dropped: the test proved nothing"
    assert result.rows == 30_000
    assert len(ids) == len(set(ids)) == 30_000
    assert set(ids) == ids_in_table(engine) - before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly(engine, app_env, tmp_path, signum):
    before = ids_in_table(engine)
    out = tmp_path / "uuids.txt"
    cmd = [sys.executable, "-m", "bank.kit.cli", "load", "--accounts", "50000000"]
    cmd += ["--batch", "1000", "--threads", "2", "--out", str(out)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=app_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
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
    ids = out.read_text().splitlines()
    assert 0 < committed == len(ids) == len(set(ids)) < 50_000_000
    assert set(ids) == ids_in_table(engine) - before
    assert os.listdir(tmp_path) == ["uuids.txt"]  # no temporary file left behind


def test_progress_lines_when_not_a_terminal():
    plain = io.StringIO()
    progress = LoadProgress(plain, total=1000, every=0)
    progress(Progress(rows=250, total=1000, seconds=0.5))
    progress.close()
    assert plain.getvalue() == "load: 25%  250/1000  500 rows/s\n"


def test_ids_file_appears_whole_or_not_at_all(tmp_path):
    empty = IdsFile(tmp_path / "none.txt")
    empty.close()
    assert os.listdir(tmp_path) == []
    ids = IdsFile(tmp_path / "u.txt")
    ids.write(["a", "b"])
    assert not (tmp_path / "u.txt").exists()
    ids.write(["c"])
    ids.close()
    assert (tmp_path / "u.txt").read_text() == "a\nb\nc\n"
    assert os.listdir(tmp_path) == ["u.txt"]


def test_balance_is_checked_like_an_amount():
    with pytest.raises(Exception, match="'balance' must not be negative"):
        load_accounts(FakeStore().factory, 10, on_batch=print, policy=FAST, balance="-1")
    store = FakeStore()
    assert load_accounts(store.factory, 1, on_batch=print, policy=FAST, balance="0").rows == 1
    (account,) = store.tables["UuidAccount"].values()
    assert account.balance == Decimal(0)
