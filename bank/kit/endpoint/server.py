"""The local DSQL endpoint's server: TLS, the IAM token, the role, then a relay to PostgreSQL.

One asyncio loop, in a thread of its own, serves every client (``Endpoint.start()``):

1. **TLS.** The first byte tells how the client starts it: a TLS ClientHello (libpq 17's
   ``sslnegotiation=direct``, what the DSQL dialect asks for; ALPN ``postgresql``), or an
   SSLRequest (answered ``S``; a GSSENCRequest is answered ``N``). A StartupMessage in the
   clear is refused, as DSQL refuses it; a CancelRequest is taken in the clear or over TLS.
2. **The password** is asked for in clear text (over TLS), as DSQL does, and must be an IAM
   auth token for this endpoint's host and region, with the user's action, not expired
   (``bank.kit.endpoint.token``). Its signature cannot be checked offline.
3. **The role.** ``admin`` is the embedded server's owner (its superuser ``postgres``).
   Any other role needs a mapping made by ``AWS IAM GRANT <role> TO '<arn>'``
   (``sys.iam_pg_role_mappings``): any mapping of the role, or, when the endpoint is told
   the IAM identity its clients act as (``iam_arn``), a mapping to that ARN.
4. **Upstream**, the endpoint logs in to the embedded server as its superuser (SCRAM, the
   password from its passfile) with ``-c role=<role>`` for a mapped role, so the session
   runs as that role, in strict mode (preloaded by the server, on by default), in its one
   database (``bank``; clients name DSQL's ``postgres``).
5. **The relay** passes every message both ways, in order, in batches, pipelines included.
   It rewrites, for every client, what DSQL accepts but PostgreSQL cannot parse (``CREATE
   INDEX ASYNC``, ``ALTER TABLE ASYNC ... VALIDATE CONSTRAINT``, ``AWS IAM GRANT/REVOKE``:
   ``bank.kit.strict.rewrite``) in Query and Parse messages, and puts DSQL's command tag in
   the CommandComplete of a rewritten statement (``Tags``). The client gets a cancel key of
   the endpoint's own, which it maps to the upstream's.

Each refusal is DSQL's error, as far as sources record it (the table in the doc of
``bank.kit.endpoint``, and docs/endpoint.md). Tokens and passwords are never logged: the log
says why a connection was refused, in words, without them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import os
import re
import secrets
import socket
import ssl
import struct
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import scramp

import bank.kit.endpoint.token as tokens
import bank.kit.endpoint.wire as wire
from bank.kit.endpoint.certs import server_context, write_file
from bank.kit.errors import EndpointError, PortInUse
from bank.kit.strict.rewrite import rewrite_with_tags

log = logging.getLogger("bank.kit.endpoint")

DEFAULT_CLUSTER_ID = "a" * 26
DEFAULT_REGION = "us-east-1"
#: The one database of a DSQL cluster, as clients name it.
DSQL_DATABASE = "postgres"
STARTUP_TIMEOUT_S = 30
READ_SIZE = 65536

_CLUSTER_ID = re.compile(r"[a-z0-9]{26}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


def dsql_host(cluster_id: str = DEFAULT_CLUSTER_ID, region: str = DEFAULT_REGION) -> str:
    """A DSQL-style endpoint name: ``<26 lowercase letters or digits>.dsql.<region>.on.aws``."""
    if not _CLUSTER_ID.fullmatch(cluster_id):
        raise EndpointError(f"a cluster id is 26 lowercase letters or digits, got {cluster_id!r}")
    if not _REGION.fullmatch(region):
        raise EndpointError(f"not an AWS region name: {region!r}")
    return f"{cluster_id}.dsql.{region}.on.aws"


# -- what the endpoint answers when it refuses a connection ----------------------------------

@dataclass(frozen=True)
class Refusal:
    sqlstate: str
    message: str
    hint: str | None = None
    session_detail: bool = True  # DSQL adds "Session Id: <id>" as the DETAIL line


ACCESS_DENIED = "unable to accept connection, access denied"
NO_TLS = Refusal("28000", "unable to accept connection, ssl is required", session_detail=False)
NO_SNI = Refusal("08006", "unable to accept connection, sni was not received",
                 session_detail=False)
UNMAPPED = Refusal("28000", ACCESS_DENIED)


def token_refusal(hint: str | None) -> Refusal:
    return Refusal("08006", ACCESS_DENIED, hint)


def session_id() -> str:
    """26 lowercase base32 letters, like DSQL's session ids."""
    return base64.b32encode(os.urandom(16)).decode().rstrip("=").lower()


def refusal_message(refusal: Refusal) -> bytes:
    detail = f"Session Id: {session_id()}" if refusal.session_detail else None
    return wire.error_response(refusal.sqlstate, refusal.message, detail=detail,
                               hint=refusal.hint)


# -- the server behind ---------------------------------------------------------------------

@dataclass(frozen=True)
class Upstream:
    """The PostgreSQL behind the endpoint, and its superuser's credentials."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def embedded(cls) -> Upstream:
        """The embedded server (started if needed), as its superuser."""
        from bank.kit.embedded import DATABASE, SUPERUSER, server

        status = server().start()
        assert status.port is not None
        return cls("127.0.0.1", status.port, SUPERUSER, read_passfile(status.passfile), DATABASE)

    def connect(self, **kwargs) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, dbname=self.database, **kwargs)


def read_passfile(path: Path) -> str:
    """The password of the embedded server's passfile (``*:*:*:postgres:<secret>``)."""
    try:
        line = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        raise EndpointError(f"cannot read the embedded server's password from {path}") from None
    return line.split(":", 4)[4]


class Mappings:
    """Does ``sys.iam_pg_role_mappings`` (``AWS IAM GRANT``) map a role? One connection to
    the upstream, opened when first needed and again after a failure."""

    def __init__(self, upstream: Upstream, iam_arn: str | None):
        self.upstream = upstream
        self.iam_arn = iam_arn
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def holds(self, role: str) -> bool:
        query = "SELECT EXISTS (SELECT 1 FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s"
        params: list[str] = [role]
        if self.iam_arn is not None:
            query += " AND arn = %s"
            params.append(self.iam_arn)
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = self.upstream.connect(autocommit=True, connect_timeout=5,
                                                           application_name="bank endpoint")
                    row = self._conn.execute(query + ")", params).fetchone()
                    return bool(row and row[0])
                except psycopg.errors.UndefinedTable:
                    return False  # no sys schema (strict mode off): nothing is mapped
                except psycopg.OperationalError:
                    self.close_locked()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


# -- DSQL's command tags for rewritten statements -------------------------------------------

class Tags:
    """Which CommandComplete answers which statement, so that a rewritten statement reports
    DSQL's tag (``CREATE INDEX``) instead of its stand-in's (``SELECT 1``).

    One unit per ReadyForQuery to come: a Query, or the extended-protocol messages up to a
    Sync. A unit holds, in order, the tag for each answer it will get (CommandComplete,
    EmptyQueryResponse or PortalSuspended; ``None``: the server's tag stands). An error
    ends a unit's answers (the rest of a Query, or everything up to the Sync, is skipped).
    """

    def __init__(self) -> None:
        self.units: deque[deque[str | None]] = deque()
        self._open: deque[str | None] | None = None  # extended messages before their Sync
        self._statements: dict[bytes, str | None] = {}
        self._portals: dict[bytes, str | None] = {}

    def _extended(self) -> deque[str | None]:
        if self._open is None:
            self._open = deque()
            self.units.append(self._open)
        return self._open

    # the client's messages
    def query(self, tags: tuple[str | None, ...]) -> None:
        unit, self._open = self._open, None  # a Query after extended messages: one unit
        if unit is None:
            unit = deque()
            self.units.append(unit)
        if any(tags):
            unit.extend(tags)
        self._statements.pop(b"", None)  # a Query drops the unnamed statement and portal
        self._portals.pop(b"", None)

    def parse(self, name: bytes, tag: str | None) -> None:
        self._extended()
        self._statements[name] = tag

    def bind(self, portal: bytes, statement: bytes) -> None:
        self._extended()
        self._portals[portal] = self._statements.get(statement)

    def execute(self, portal: bytes) -> None:
        self._extended().append(self._portals.get(portal))

    def close(self, kind: bytes, name: bytes) -> None:
        self._extended()
        (self._statements if kind == b"S" else self._portals).pop(name, None)

    def sync(self) -> None:
        self._extended()
        self._open = None

    # the server's
    def answered(self) -> str | None:
        """A CommandComplete (EmptyQueryResponse, PortalSuspended) came: DSQL's tag for it."""
        if self.units and self.units[0]:
            return self.units[0].popleft()
        return None

    def failed(self) -> None:
        if self.units:
            self.units[0].clear()

    def ready(self) -> None:
        if self.units:
            self.units.popleft()


_CANDIDATE_HEADS = (b"CREATE", b"ALTER", b"AWS")


def _candidate(query: bytes) -> bool:
    head = query[:32].lstrip()[:6].upper()
    return head.startswith(_CANDIDATE_HEADS) or b";" in query


def rewrite_sql(query: bytes) -> tuple[bytes, tuple[str | None, ...]]:
    """A query's bytes with DSQL's forms rewritten, and their tags. The bytes are read as
    UTF-8, any byte that is not kept as it was (``surrogateescape``)."""
    if not _candidate(query):
        return query, ()
    text = query.decode("utf-8", "surrogateescape")
    new, tags = rewrite_with_tags(text)
    if new is text:
        return query, tags
    return new.encode("utf-8", "surrogateescape"), tags


# -- reading messages ---------------------------------------------------------------------

class Messages:
    """Whole messages from a stream: ``batch()`` (all that have arrived, at least one) or
    ``next()`` (one)."""

    def __init__(self, reader: asyncio.StreamReader):
        self.reader = reader
        self.framer = wire.Framer()
        self.pending: deque[tuple[int, bytes]] = deque()

    async def batch(self) -> list[tuple[int, bytes]]:
        while not self.pending:
            data = await self.reader.read(READ_SIZE)
            if not data:
                raise ConnectionResetError("closed")
            self.pending.extend(self.framer.feed(data))
        found = list(self.pending)
        self.pending.clear()
        return found

    async def next(self) -> tuple[int, bytes]:
        while not self.pending:
            data = await self.reader.read(READ_SIZE)
            if not data:
                raise ConnectionResetError("closed")
            self.pending.extend(self.framer.feed(data))
        return self.pending.popleft()


async def read_startup(reader: asyncio.StreamReader) -> bytes:
    """A startup-phase packet's payload (after its length)."""
    (length,) = struct.unpack("!i", await reader.readexactly(4))
    if not 8 <= length <= wire.MAX_STARTUP:
        raise wire.ProtocolError(f"a startup packet of {length} bytes")
    return await reader.readexactly(length - 4)


async def _sock_read_startup(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    async def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = await loop.sock_recv(sock, n - len(data))
            if not chunk:
                raise ConnectionResetError("closed during the startup")
            data += chunk
        return data

    (length,) = struct.unpack("!i", await exactly(4))
    if not 8 <= length <= wire.MAX_STARTUP:
        raise wire.ProtocolError(f"a startup packet of {length} bytes")
    return await exactly(length - 4)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready = loop.create_future()
    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


# -- the endpoint -----------------------------------------------------------------------------

@dataclass
class _Key:
    """What a client's cancel key stands for upstream."""

    pid: int
    key: bytes


class Endpoint:
    """A local DSQL endpoint on 127.0.0.1 (see the module doc). ``start()`` it (or use it
    as a context manager); ``address`` is then its (host, port).

    ``folder`` holds the CA (``ca.pem``); ``publish``, the folder a client's one setting
    names (``BANK_DSQL_LOCAL``), gets ``ca.pem`` and ``address`` (``127.0.0.1:<port>``)
    while it runs (default: ``folder``). ``clock``: seconds since the epoch, for a token's
    lifetime (tests move it)."""

    def __init__(self, upstream: Upstream, folder: Path, *, host: str | None = None,
                 region: str = DEFAULT_REGION, port: int = 0, iam_arn: str | None = None,
                 publish: Path | None = None, clock: Callable[[], float] = time.time):
        self.upstream = upstream
        self.folder = Path(folder)
        self.region = region
        self.host = (host or dsql_host(region=region)).lower()
        self.requested_port = port
        self.iam_arn = iam_arn
        self.publish = Path(publish) if publish is not None else self.folder
        self.clock = clock
        self.mappings = Mappings(upstream, iam_arn)
        self._keys: dict[tuple[int, bytes], _Key] = {}
        self._sni: weakref.WeakKeyDictionary[ssl.SSLObject, str] = weakref.WeakKeyDictionary()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopped: asyncio.Event | None = None
        self.port: int | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.port is not None, "not started"
        return "127.0.0.1", self.port

    @property
    def ca_file(self) -> Path:
        return self.publish / "ca.pem"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> Endpoint:
        self.context = server_context(self.folder, self.host)
        self.context.sni_callback = self._remember_sni
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.requested_port))
        except OSError as exc:
            listener.close()
            raise PortInUse(f"the endpoint cannot listen on 127.0.0.1:{self.requested_port}: "
                            f"{exc.strerror}; choose another port, or 0 for a free one"
                            ) from None
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._publish()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name=f"bank endpoint :{self.port}")
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.mappings.close()
        self._unpublish()

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _publish(self) -> None:
        self.publish.mkdir(parents=True, exist_ok=True)
        if self.publish != self.folder:
            ca = (self.folder / "ca.pem").read_bytes()
            write_file(self.publish / "ca.pem", ca, 0o644)
        write_file(self.publish / "address", f"127.0.0.1:{self.port}\n".encode(), 0o644)

    def _unpublish(self) -> None:
        address = self.publish / "address"
        with contextlib.suppress(OSError):
            if address.read_text().strip() == f"127.0.0.1:{self.port}":
                address.unlink()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        assert self._listener is not None
        accepting = asyncio.create_task(self._accept(loop, self._listener))
        ready.set()
        await self._stopped.wait()
        accepting.cancel()
        self._listener.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(accepting, *self._tasks, return_exceptions=True)

    async def _accept(self, loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
        while True:
            sock, peer = await loop.sock_accept(listener)
            # asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP; an accepted one
            # says 0. Without it a reply written after another waits for the client's
            # delayed ACK: 40 ms per login.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.create_task(self._session(loop, sock, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _remember_sni(self, ssl_object, server_name, context) -> None:
        if server_name:
            self._sni[ssl_object] = server_name

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    # -- one client -------------------------------------------------------------------------
    async def _session(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                       peer) -> None:
        writer: asyncio.StreamWriter | None = None
        session: _Session | None = None
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT_S):
                opened = await self._negotiate(loop, sock)
                if opened is None:
                    return
                reader, writer = opened
                session = await self._login(reader, writer)
            if session is not None:
                await session.relay()
        except (ConnectionError, asyncio.IncompleteReadError, wire.ProtocolError, ssl.SSLError,
                TimeoutError, OSError) as exc:
            log.debug("connection from %s ended: %s", peer, type(exc).__name__)
        except Exception:  # a bug: say so, and serve the other clients on
            log.exception("connection from %s failed", peer)
        finally:
            if session is not None:
                session.close()
                self._keys.pop(session.client_key, None)
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            else:
                sock.close()

    async def _negotiate(self, loop: asyncio.AbstractEventLoop, sock: socket.socket
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """TLS, whichever way the client starts it; None when the connection is done with
        (a cancel request, a refusal)."""
        while True:
            await _readable(loop, sock)
            try:
                first = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            if not first:
                return None
            if first[0] != wire.TLS_HANDSHAKE:
                packet = await _sock_read_startup(loop, sock)
                (code,) = struct.unpack_from("!i", packet)
                if code == wire.SSL_REQUEST:
                    await loop.sock_sendall(sock, b"S")
                elif code == wire.GSSENC_REQUEST:
                    await loop.sock_sendall(sock, b"N")
                    continue
                elif code == wire.CANCEL_REQUEST:
                    await self._cancel(packet)
                    return None
                else:
                    log.info("refused a connection without TLS")
                    await loop.sock_sendall(sock, refusal_message(NO_TLS))
                    return None
            return await self._start_tls(loop, sock)

    async def _start_tls(self, loop: asyncio.AbstractEventLoop, sock: socket.socket
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The TLS handshake on the accepted socket, as the server (the ClientHello is
        still unread in the socket), and streams over it."""
        reader = asyncio.StreamReader(limit=2**24)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol, sock, ssl=self.context, ssl_handshake_timeout=10)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def _login(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> _Session | None:
        packet = await read_startup(reader)
        (version,) = struct.unpack_from("!i", packet)
        if version == wire.CANCEL_REQUEST:
            await self._cancel(packet)
            return None
        if version >> 16 != 3:
            raise wire.ProtocolError(f"protocol version {version >> 16}.{version & 0xFFFF}")
        params = wire.startup_parameters(packet[4:])
        unknown = [name for name in params if name.startswith("_pq_.")]
        if version & 0xFFFF or unknown:  # we speak 3.0: say so, as PostgreSQL does
            writer.write(wire.message(b"v", struct.pack("!ii", 0, len(unknown))
                                      + b"".join(wire.cstring(n) for n in unknown)))
            for name in unknown:
                params.pop(name)
        ssl_object = writer.get_extra_info("ssl_object")
        if self._sni.get(ssl_object) is None:
            await self._refuse(writer, NO_SNI, "no SNI in the TLS handshake")
            return None
        user = params.get("user", "")
        database = params.get("database") or user
        writer.write(wire.authentication(wire.AUTH_CLEARTEXT))
        await writer.drain()
        messages = Messages(reader)
        kind, raw = await messages.next()
        if kind != ord("p"):
            raise wire.ProtocolError("no password message")
        password = wire.body(raw).split(b"\0", 1)[0].decode(errors="replace")
        try:
            tokens.check(password, host=self.host, region=self.region, user=user,
                         now=self.now())
        except tokens.TokenRefused as refused:
            await self._refuse(writer, token_refusal(refused.hint),
                               f"user {user!r}: {refused.reason}")
            return None
        finally:
            del password
        if database != DSQL_DATABASE:
            await self._refuse(
                writer, Refusal("3D000", f'database "{database}" does not exist',
                                session_detail=False),
                f"database {database!r} (DSQL has one, {DSQL_DATABASE!r})")
            return None
        if user != tokens.ADMIN:
            if not await asyncio.to_thread(self.mappings.holds, user):
                whom = f" to {self.iam_arn}" if self.iam_arn else ""
                await self._refuse(writer, UNMAPPED,
                                   f"role {user!r} is not mapped{whom} (AWS IAM GRANT)")
                return None
        session = _Session(self, messages, writer, user)
        return session if await session.open(params) else None

    async def _refuse(self, writer: asyncio.StreamWriter, refusal: Refusal, why: str) -> None:
        log.info("refused a connection: %s", why)
        writer.write(refusal_message(refusal))
        await writer.drain()

    async def _cancel(self, packet: bytes) -> None:
        """A CancelRequest: the upstream's key for the client's, sent upstream."""
        (pid,) = struct.unpack_from("!i", packet, 4)
        upstream = self._keys.get((pid, packet[8:]))
        if upstream is None:
            return  # as PostgreSQL does: no answer either way
        _, writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        try:
            writer.write(wire.cancel_request(upstream.pid, upstream.key))
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def register(self, upstream_pid: int, upstream_key: bytes) -> tuple[int, bytes]:
        """A cancel key for the client that stands for the upstream's."""
        while True:
            client = (secrets.randbelow(2**31 - 1) + 1, os.urandom(len(upstream_key)))
            if client not in self._keys:
                self._keys[client] = _Key(upstream_pid, upstream_key)
                return client


class _Session:
    """One client's session: the upstream connection and the relay between them."""

    def __init__(self, endpoint: Endpoint, client: Messages, writer: asyncio.StreamWriter,
                 user: str):
        self.endpoint = endpoint
        self.client = client
        self.client_writer = writer
        self.user = user
        self.tags = Tags()
        self.client_key: tuple[int, bytes] = (0, b"")
        self.upstream_writer: asyncio.StreamWriter | None = None

    async def open(self, params: dict[str, str]) -> bool:
        """Log in upstream and replay its startup to the client; False if it refused."""
        up = self.endpoint.upstream
        reader, self.upstream_writer = await asyncio.open_connection(up.host, up.port)
        self.upstream = Messages(reader)
        startup = {k: v for k, v in params.items()
                   if k not in ("user", "database", "replication", "options")}
        options = [params.get("options", "")]
        if self.user != tokens.ADMIN:
            options.append(f"-c role={self.user}")
        options.append("-c dsql_strict.enabled=on")  # last: a client's own cannot win
        startup.update(user=up.user, database=up.database,
                       options=" ".join(filter(None, options)))
        self.upstream_writer.write(wire.startup_message(startup))
        await self.upstream_writer.drain()
        if not await self._authenticate(up):
            return False
        out = [wire.authentication(wire.AUTH_OK)]
        while True:
            kind, raw = await self.upstream.next()
            if kind == ord("K"):
                data = wire.body(raw)
                (pid,) = struct.unpack_from("!i", data)
                self.client_key = self.endpoint.register(pid, data[4:])
                out.append(wire.backend_key_data(*self.client_key))
            elif kind == ord("S") and wire.body(raw).startswith(b"session_authorization\0"):
                # DSQL's session user is the role the client named, not our superuser
                out.append(wire.message(b"S", wire.cstring("session_authorization")
                                        + wire.cstring(self.user)))
            elif kind == ord("E"):
                self.client_writer.write(raw)  # the server refused: say what it said
                await self.client_writer.drain()
                return False
            else:
                out.append(raw)
            if kind == ord("Z"):
                break
        self.client_writer.write(b"".join(out))
        await self.client_writer.drain()
        return True

    async def _authenticate(self, up: Upstream) -> bool:
        assert self.upstream_writer is not None
        scram: scramp.ScramClient | None = None
        while True:
            kind, raw = await self.upstream.next()
            if kind == ord("E"):
                fields = wire.error_fields(raw)
                log.warning("the embedded server refused the endpoint's login: %s %s",
                            fields.get("C"), fields.get("M"))
                self.client_writer.write(raw)
                await self.client_writer.drain()
                return False
            if kind != ord("R"):
                raise wire.ProtocolError(f"upstream sent {chr(kind)!r} during authentication")
            data = wire.body(raw)
            (code,) = struct.unpack_from("!i", data)
            if code == wire.AUTH_OK:
                return True
            if code == wire.AUTH_SASL:
                mechanisms = [m.decode() for m in data[4:].split(b"\0") if m]
                if "SCRAM-SHA-256" not in mechanisms:
                    raise EndpointError(f"the upstream offers {mechanisms}, not SCRAM-SHA-256")
                scram = scramp.ScramClient(["SCRAM-SHA-256"], up.user, up.password)
                first = scram.get_client_first().encode()
                self.upstream_writer.write(wire.message(
                    b"p", wire.cstring("SCRAM-SHA-256") + struct.pack("!i", len(first))
                    + first))
            elif code == wire.AUTH_SASL_CONTINUE and scram is not None:
                scram.set_server_first(data[4:].decode())
                self.upstream_writer.write(wire.message(b"p",
                                                        scram.get_client_final().encode()))
            elif code == wire.AUTH_SASL_FINAL and scram is not None:
                scram.set_server_final(data[4:].decode())
            elif code == wire.AUTH_CLEARTEXT:
                self.upstream_writer.write(wire.message(b"p", wire.cstring(up.password)))
            else:
                raise EndpointError(f"the upstream asks for authentication method {code}")
            await self.upstream_writer.drain()

    async def relay(self) -> None:
        both = [asyncio.create_task(self._from_client()),
                asyncio.create_task(self._from_upstream())]
        try:
            done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None and not isinstance(
                        task.exception(), ConnectionError | asyncio.IncompleteReadError):
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in both:
                task.cancel()
            await asyncio.gather(*both, return_exceptions=True)

    async def _from_client(self) -> None:
        assert self.upstream_writer is not None
        while True:
            batch = await self.client.batch()
            out, terminate = [], False
            for kind, raw in batch:
                if kind == ord("X"):
                    out.append(raw)
                    terminate = True
                    break
                out.append(self._client_message(kind, raw))
            self.upstream_writer.write(b"".join(out))
            await self.upstream_writer.drain()
            if terminate:
                return

    def _client_message(self, kind: int, raw: bytes) -> bytes:
        if kind == ord("Q"):
            query = wire.body(raw)[:-1]
            sql, tags = rewrite_sql(query)
            self.tags.query(tags)
            return raw if sql is query else wire.message(b"Q", sql + b"\0")
        if kind == ord("P"):
            name, query, rest = wire.parse_message(raw)
            sql, tags = rewrite_sql(query)
            self.tags.parse(name, tags[0] if len(tags) == 1 else None)
            if sql is query:
                return raw
            return wire.message(b"P", name + b"\0" + sql + b"\0" + rest)
        if kind == ord("B"):
            self.tags.bind(*wire.bind_names(raw))
        elif kind == ord("E"):
            self.tags.execute(wire.read_cstring(wire.body(raw), 0)[0])
        elif kind == ord("C"):
            data = wire.body(raw)
            self.tags.close(data[:1], wire.read_cstring(data, 1)[0])
        elif kind == ord("S"):
            self.tags.sync()
        elif kind == ord("F"):
            self.tags.query(())
        return raw

    async def _from_upstream(self) -> None:
        """The server's messages to the client, as they came, but for DSQL's tags. Rows go
        through in the chunks they arrived in: only their boundaries are looked at."""
        framer = self.upstream.framer
        pending = [raw for _, raw in self.upstream.pending]  # read with the startup's replies
        self.upstream.pending.clear()
        if pending:
            self.client_writer.write(b"".join(pending))
        reader = self.upstream.reader
        C, I, s, E, Z = (ord(c) for c in "CIsEZ")  # noqa: E741 - the protocol's letters
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            whole, found = framer.scan(data)
            out: list[bytes] = []
            last = 0
            for kind, start, end in found:
                if kind == C or kind == I or kind == s:
                    tag = self.tags.answered()
                    if tag is not None and kind == C:
                        out += (whole[last:start], wire.command_complete(tag))
                        last = end
                elif kind == E:
                    self.tags.failed()
                elif kind == Z:
                    self.tags.ready()
            if last:
                out.append(whole[last:])
                whole = b"".join(out)
            if whole:
                self.client_writer.write(whole)
                await self.client_writer.drain()

    def close(self) -> None:
        if self.upstream_writer is not None:
            self.upstream_writer.close()
