"""Who may use the embedded server: its owner, no one else.

The server asks for a password (SCRAM-SHA-256) on 127.0.0.1; the secret is in
``pgpass``, mode 0600, in a data folder of mode 0700. As root, each data folder's server
runs as an OS user of its own. The tests that need another OS user create one with
``useradd``: they need root (CI runs as root), and say so when they skip.
"""

import os
import pwd
import stat
import subprocess
import time

import psycopg
import pytest

from bank.kit.embedded import pg_bin

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: creates OS users with useradd (CI runs as root)"
)


def as_user(user: pwd.struct_passwd, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def libpq(url: str) -> str:
    """The URL for psycopg, in a session of a server test: DSQL strict mode off (these tests
    use what DSQL refuses: temporary tables, COPY FROM PROGRAM, several statements)."""
    return (url.replace("postgresql+psycopg://", "postgresql://", 1)
            + "&options=-c%20dsql_strict.enabled%3Doff")


def secret_of(server) -> str:
    return server.passfile.read_text().strip().rsplit(":", 1)[1]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_password_only_and_the_secret_stays_in_its_file(throwaway_server):
    pg = throwaway_server()
    status = pg.start()
    with psycopg.connect(libpq(status.url)) as conn:  # the owner, with the passfile
        methods = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
    assert methods == [("scram-sha-256",)]  # no trust, anywhere
    address = dict(host="127.0.0.1", port=status.port, user="postgres", dbname="bank",
                   passfile="/nonexistent", connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**address)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(password="postgres", **address)

    assert mode(pg.data_dir) == mode(pg.pgdata) == 0o700
    logs = [pg.log_file, *pg.log_dir.iterdir()]
    assert len(logs) >= 2 and all(mode(p) == 0o600 for p in [pg.passfile, *logs])
    # Failed logins are logged; the secret is in no log and not in the URL.
    secret = secret_of(pg)
    assert secret not in status.url
    for _ in range(50):  # the log collector writes soon, not at once
        text = "".join(p.read_text(errors="replace") for p in logs)
        if "password authentication failed" in text:
            break
        time.sleep(0.1)
    assert "password authentication failed" in text and secret not in text


@needs_root
def test_a_stranger_can_neither_connect_nor_read_the_data(throwaway_server, stranger):
    pg = throwaway_server()
    status = pg.start()
    psql = [pg_bin("psql"), "-X", "-w", "-h", "127.0.0.1", "-p", str(status.port),
            "-U", "postgres", "-d", "bank", "-c", "COPY (SELECT 1) TO PROGRAM 'id'"]
    no_password = as_user(stranger, *psql)
    assert no_password.returncode != 0 and "no password supplied" in no_password.stderr
    unreadable = as_user(stranger, *psql, PGPASSFILE=str(pg.passfile))
    assert unreadable.returncode != 0 and "no password supplied" in unreadable.stderr
    guessed = as_user(stranger, *psql, PGPASSWORD="postgres")
    assert "password authentication failed" in guessed.stderr
    via_url = as_user(stranger, pg_bin("psql"), "-X", "-w", "-c", "SELECT 1", libpq(status.url))
    assert via_url.returncode != 0
    for path in (pg.passfile, pg.pgdata / "PG_VERSION"):
        read = as_user(stranger, "cat", str(path))
        assert read.returncode != 0 and "Permission denied" in read.stderr
    for folder in (pg.data_dir, pg.pgdata, pg.log_dir):
        listing = as_user(stranger, "ls", str(folder))
        assert listing.returncode != 0 and "Permission denied" in listing.stderr

    # The owner can: the server's OS user with the URL, and root (who started it).
    owner = pwd.getpwnam(pg.os_user)
    assert as_user(owner, "cat", str(pg.passfile)).returncode == 0
    mine = as_user(owner, pg_bin("psql"), "-X", "-w", "-tAc", "SELECT 1", libpq(status.url))
    assert mine.stdout.strip() == "1", mine.stderr
    with psycopg.connect(libpq(status.url)) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "postgres"


@needs_root
def test_two_checkouts_servers_cannot_read_each_others_data(throwaway_server):
    a, b = throwaway_server("a"), throwaway_server("b")
    url_a, _ = a.start().url, b.start()
    assert a.os_user != b.os_user
    with psycopg.connect(libpq(url_a), autocommit=True) as conn:
        # A superuser of a runs programs as a's OS user...
        conn.execute("CREATE TEMP TABLE out (line text)")
        conn.execute("COPY out FROM PROGRAM 'id -un'")
        assert conn.execute("SELECT line FROM out").fetchone()[0] == a.os_user
        # ...which reads a's own files, and none of b's.
        own = conn.execute("SELECT pg_read_file(%s)", (str(a.pgdata / "PG_VERSION"),))
        assert own.fetchone()[0].strip() == "18"
        for path in (b.passfile, b.pgdata / "PG_VERSION"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="Permission denied"):
                conn.execute("SELECT pg_read_file(%s)", (str(path),))


def test_a_data_folder_from_before_gets_a_password(throwaway_server, request):
    """A data folder made by an older version: trust authentication, no secret, and as
    root the shared OS user (``embedded_postgres``), running. ``start`` brings it up to
    date: it stops it, hands it to its own OS user, sets a password; the data stays."""
    pg = throwaway_server()
    status = pg.start()
    with psycopg.connect(libpq(status.url), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    pg.stop()
    pg.passfile.unlink()
    (pg.pgdata / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
    old_user = None
    if os.geteuid() == 0:
        old_user = request.getfixturevalue("stranger")  # as the shared OS user was
        for root, dirs, files in os.walk(pg.data_dir):
            for name in [".", *dirs, *files]:
                os.lchown(os.path.join(root, name), old_user.pw_uid, old_user.pw_gid)
    pg_ctl = [pg_bin("pg_ctl"), "-D", str(pg.pgdata), "-l", str(pg.log_file), "-w", "start"]
    started = (as_user(old_user, *pg_ctl) if old_user else
               subprocess.run(pg_ctl, capture_output=True, text=True))
    assert started.returncode == 0, started.stderr
    trusting = dict(host="127.0.0.1", port=status.port, user="postgres", dbname="bank",
                    passfile="/nonexistent")
    psycopg.connect(**trusting).close()  # anyone gets in, as before

    upgraded = pg.start()
    assert upgraded.running and upgraded.pid != status.pid
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**trusting)
    with psycopg.connect(libpq(upgraded.url)) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone()[0] == 7
    assert mode(pg.passfile) == 0o600
    if old_user is not None:
        assert os.stat(pg.pgdata).st_uid == pwd.getpwnam(pg.os_user).pw_uid
