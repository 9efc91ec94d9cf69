"""The embedded server's lifecycle, on a data directory of its own (not .bank/)."""

import subprocess
import sys

import psycopg
import pytest

from bank.adapters.embedded import EmbeddedPostgres
from bank.domain.errors import EmbeddedDatabaseError


@pytest.fixture()
def pg(tmp_path):
    server = EmbeddedPostgres(tmp_path / "data")
    yield server
    server.stop()


def test_start_status_url_stop(pg):
    assert pg.status().running is False
    status = pg.start()
    assert status.running and status.port and status.pid
    url = status.url.replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        isolation = conn.execute("SHOW default_transaction_isolation").fetchone()[0]
    assert int(version) >= 180000
    assert isolation == "repeatable read"  # DSQL's isolation, for psql and pgbench too
    # Idempotent: a second start finds the running server.
    assert pg.start().pid == status.pid
    pg.stop()
    assert pg.status().running is False
    # Keeps its data and port across restarts.
    again = pg.start()
    assert again.running and again.port == status.port


def test_survives_the_process_that_started_it(pg, tmp_path):
    code = (
        "from bank.adapters.embedded import EmbeddedPostgres; from pathlib import Path; "
        f"print(EmbeddedPostgres(Path({str(tmp_path / 'data')!r})).start().port)"
    )
    port = int(subprocess.check_output([sys.executable, "-c", code], text=True).strip())
    assert pg.status().running and pg.status().port == port


def test_cli_status_and_url(tmp_path):
    env = {"BANK_DATA_DIR": str(tmp_path / "cli"), "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "bank.cli", "db", *a], capture_output=True, text=True, env=env
    )
    assert run("status").returncode == 3
    try:
        url = run("url")
        assert url.returncode == 0 and url.stdout.startswith("postgresql+psycopg://")
        status = run("status")
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        assert run("stop").returncode == 0
    assert run("status").returncode == 3


def test_unstartable_server_is_a_clear_error(tmp_path):
    data = tmp_path / "broken"
    server = EmbeddedPostgres(data)
    server.start()
    server.stop()
    (server.pgdata / "postgresql.conf").write_text("this is not a setting\n")
    with pytest.raises(EmbeddedDatabaseError, match="pg_ctl"):
        server.start()
    out = subprocess.run(
        [sys.executable, "-m", "bank.cli", "db", "start"], capture_output=True, text=True,
        env={"BANK_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1
    assert "EmbeddedDatabaseError" in out.stderr and "Traceback" not in out.stderr
