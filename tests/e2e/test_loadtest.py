"""``bank loadtest`` on a real database: counts, money, conflicts, Ctrl-C, bad arguments.

Every test draws from accounts of its own (``make_accounts``), never from 1..N, which the
seed and other tests use; the CLI tests therefore run ch06 from an ids file.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from bank.adapters.errors import TransactionConflict
from bank.kit import loadtest
from bank.kit.cli.commands import run_loadtest
from bank.kit.cli.main import main
from bank.kit.loadtest import LoadTestError, read_uuids
from tests.conftest import ROOT, balances


def assert_counts_add_up(report):
    assert report.successes + sum(report.errors.values()) == report.requests
    assert len(report.latencies_ms) == report.requests


def another_writer(engine, table: str, account, delta: int) -> None:
    """Change a balance behind the load test's back (again if it conflicts with the test)."""
    for _ in range(100):
        try:
            with engine.begin() as conn:
                conn.execute(  # table: a test constant
                    text(f"UPDATE {table} SET balance = balance + :delta WHERE id = :id"),
                    {"delta": delta, "id": account},
                )
            return
        except TransactionConflict:
            pass
    raise AssertionError("the other writer conflicted 100 times")


def test_counts_add_up_and_money_is_conserved(engine, make_accounts):
    ids = make_accounts(20, balance=100)
    report = run_loadtest("ch05", ids, iters=300, threads=4, seed=1)
    assert report.requests == 300 and report.stopped_by == "iters"
    assert_counts_add_up(report)
    assert sum(report.attempts.values()) == report.successes
    assert report.balance_before == report.balance_after == Decimal(2000)
    assert report.conserved
    after = balances(engine, ids)
    assert sum(after.values()) == Decimal(2000) and min(after.values()) >= 0
    assert report.to_dict()["money_conserved"] is True
    # Every acknowledged transfer is in the ledger, once.
    assert len(report.acknowledged) == report.successes == report.in_ledger
    assert len(set(report.acknowledged)) == report.successes
    assert report.ledger_complete and report.to_dict()["ledger_complete"] is True


def test_ch04_reports_conflicts_and_ch05_retries_them(engine, make_accounts):
    plain = run_loadtest("ch04", make_accounts(10), iters=1000, threads=10, seed=2)
    assert plain.errors["TransactionConflict"] > 0, plain.errors
    assert plain.conflicts == plain.errors["TransactionConflict"]
    assert set(plain.errors) <= {"TransactionConflict", "InsufficientFunds"}
    assert not plain.attempts  # ch04 does not retry, so reports no attempts

    ids = make_accounts(10)
    retried = run_loadtest("ch05", ids, iters=1000, threads=10, seed=2)
    assert retried.conflicts == 0, retried.errors
    assert set(retried.errors) <= {"InsufficientFunds"}
    assert max(retried.attempts) > 1, retried.attempts
    for report in (plain, retried):
        assert_counts_add_up(report)
        assert report.conserved and report.balance_after == Decimal(1000)
    assert sum(balances(engine, ids).values()) == Decimal(1000)


def test_ch06_from_an_ids_file(engine, make_uuid_accounts, tmp_path):
    ids = make_uuid_accounts(12, balance=50)
    path = tmp_path / "uuids.txt"
    path.write_text("\n".join(ids[:5]) + "\n\n" + "\n".join(ids[5:]) + "\n")
    used = read_uuids(path, 10)
    assert used == ids[:10]
    report = run_loadtest("ch06", used, iters=200, threads=4, seed=3)
    assert report.table == "UuidAccount" and report.requests == 200
    assert_counts_add_up(report)
    assert report.conserved and report.balance_before == Decimal(500)
    after = balances(engine, ids, table="accounts2")
    assert sum(after[i] for i in used) == Decimal(500)
    assert after[ids[10]] == after[ids[11]] == Decimal(50)  # beyond --accounts: untouched


def test_the_same_seed_gives_the_same_requests(engine, make_accounts):
    """One thread, same seed, same starting balances: the same final balances, by position."""
    finals = []
    for _ in range(2):
        ids = make_accounts(5, balance=20)
        report = run_loadtest("ch04", ids, iters=60, threads=1, seed=42)
        assert report.successes > 0 and report.seed == 42
        found = balances(engine, ids)
        finals.append([found[i] for i in ids])
    assert finals[0] == finals[1]


def test_duration_and_stop_end_a_run_cleanly(make_accounts):
    ids = make_accounts(10)
    timed = run_loadtest("ch05", ids, iters=None, threads=2, duration_s=0.3)
    assert timed.stopped_by == "duration" and timed.requests > 0
    assert_counts_add_up(timed)

    stop = threading.Event()
    stopped = run_loadtest("ch05", ids, iters=None, threads=3, stop=stop,
                           on_progress=lambda p: stop.set(), progress_every_s=0.05)
    assert stopped.interrupted and stopped.requests > 0
    assert_counts_add_up(stopped)
    assert stopped.conserved


def test_money_not_conserved_is_loud(engine, make_accounts):
    ids = make_accounts(4)

    report = run_loadtest("ch05", ids, iters=None, duration_s=0.5, progress_every_s=0.1,
                          on_progress=lambda p: another_writer(engine, "accounts", ids[0], 1))
    assert not report.conserved and report.balance_after > report.balance_before
    assert "NOT CONSERVED" in loadtest.render(report)
    assert report.to_dict()["money_conserved"] is False


def test_refuses_missing_accounts_and_non_transfer_functions(make_accounts):
    (real,) = make_accounts(1)
    with pytest.raises(LoadTestError, match="1 of the 2 accounts do not exist"):
        run_loadtest("ch05", [real, 2_000_000_000], iters=10)
    with pytest.raises(LoadTestError, match="not a transfer function"):
        run_loadtest("ch03", [1, 2], iters=10)


@pytest.mark.parametrize("content, count, message", [
    (None, 5, "cannot read the ids file"),
    ("123e4567-e89b-12d3-a456-426614174000\n", 2, "has only 1 ids, 2 accounts"),
    ("123e4567-e89b-12d3-a456-426614174000\nnot-a-uuid\n", 2, "line 2: not a UUID"),
    ("123e4567-e89b-12d3-a456-426614174000\n" * 2, 2, "line 2: duplicate id"),
])
def test_bad_ids_files_are_named(tmp_path, content, count, message):
    path = tmp_path / "uuids.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LoadTestError, match=message):
        read_uuids(path, count)


@pytest.mark.parametrize("args, message", [
    (["--function", "ch04", "--accounts", "1"], "at least 2 accounts"),
    (["--function", "ch05", "--threads", "0"], "threads must be at least 1"),
    (["--function", "ch05", "--iters", "0"], "iters must be at least 1"),
    (["--function", "ch05", "--duration", "-1"], "duration must be positive"),
    (["--function", "ch06", "--uuids", "/nonexistent/uuids.txt"], "cannot read the ids file"),
    (["--function", "ch04", "--uuids", "uuids.txt"], "--uuids is for ch06"),
])
def test_cli_refuses_bad_arguments_before_any_database_work(capsys, args, message):
    assert main(["loadtest", *args]) == 1
    err = capsys.readouterr().err
    assert "LoadTestError" in err and message in err


def test_cli_refuses_an_unknown_function(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["loadtest", "--function", "ch07"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


# The CLI in a subprocess, as a user runs it.


def uuids_file(make_uuid_accounts, tmp_path: Path, count: int = 10) -> Path:
    path = tmp_path / "uuids.txt"
    path.write_text("\n".join(make_uuid_accounts(count)) + "\n")
    return path


def start_cli(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bank.kit.cli", "loadtest", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )


def wait_for_progress(proc: subprocess.Popen) -> str:
    """The first progress line: the workers are running."""
    ready, _, _ = select.select([proc.stderr], [], [], 60)
    assert ready, "no progress line within 60 s"
    line = proc.stderr.readline()
    assert "requests" in line, line + proc.stderr.read()
    return line


def test_cli_json_is_one_object(app_env, make_uuid_accounts, tmp_path):
    path = uuids_file(make_uuid_accounts, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bank.kit.cli", "loadtest", "--function", "ch06", "--uuids",
         str(path), "--accounts", "10", "--iters", "100", "--threads", "3", "--seed", "5",
         "--json"],
        capture_output=True, text=True, cwd=ROOT, env=app_env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["function"] == "Ch06Function" and report["seed"] == 5
    assert report["requests"] == 100 == report["successes"] + report["errors"]
    assert report["errors"] == sum(report["errors_by_type"].values())
    assert report["money_conserved"] is True and report["balance_before"] == "1000.000000"
    assert report["ledger_complete"] is True
    assert report["acknowledged_in_ledger"] == report["successes"]
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max"}


def test_cli_ctrl_c_prints_a_partial_report(app_env, make_uuid_accounts, tmp_path):
    path = uuids_file(make_uuid_accounts, tmp_path)
    proc = start_cli(app_env, "--function", "ch06", "--uuids", str(path), "--accounts", "10",
                     "--threads", "4", "--duration", "600")
    try:
        wait_for_progress(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "INTERRUPTED, partial report" in out
    assert "conserved (1000.000000 before and after)" in out
    assert "Traceback" not in err


def test_cli_exits_non_zero_when_money_is_not_conserved(
    app_env, engine, make_uuid_accounts, tmp_path
):
    path = uuids_file(make_uuid_accounts, tmp_path)
    proc = start_cli(app_env, "--function", "ch06", "--uuids", str(path), "--accounts", "10",
                     "--threads", "2", "--duration", "600")
    try:
        wait_for_progress(proc)
        another_writer(engine, "accounts2", path.read_text().split()[0], -1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "NOT CONSERVED" in out and "MONEY NOT CONSERVED" in err
