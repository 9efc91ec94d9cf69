"""A local Aurora DSQL for any pytest suite: the local DSQL endpoint, in front of the embedded
PostgreSQL in strict mode, and the application's DSQL engine through it.

Enable it, explicitly, in the ``conftest.py`` at the root of your tests::

    pytest_plugins = ["bank.kit.pytest_plugin"]

or for one run: ``pytest -p bank.kit.pytest_plugin``. It is not registered as a ``pytest11``
entry point, on purpose: pytest would then load it into every run of every project in an
environment where bank is installed, importing the kit (boto3, SQLAlchemy, the endpoint) at
start-up and adding fixture names beside the project's own; a suite that wants a local DSQL
says so in one line.

Fixtures:

- ``local_dsql`` (session): the endpoint (``bank.kit.endpoint``), started once for the test
  session and stopped after: a :class:`LocalDsql` with its ``host`` (a DSQL-style name),
  ``port``, ``ca_file``, ``region``, ``folder`` (what ``BANK_DSQL_LOCAL`` names);
  ``token(user)`` (an IAM auth token minted by boto3 with fake credentials),
  ``conninfo(user)`` (libpq keywords: ``verify-full`` against the CA, ``hostaddr`` the
  endpoint's address), ``url(user)``, ``connect(user)`` (a plain psycopg connection),
  ``ssl_context()`` (for clients that connect to an address but must verify the name:
  asyncpg) and ``environment()``. The embedded server is started if it is not running
  (its data in ``BANK_DATA_DIR``, default ``.bank/``).
- ``local_dsql_environment`` (function): this process pointed at it as an application on a
  laptop is: ``CLUSTER_ENDPOINT``, ``BANK_DSQL_LOCAL``, fake AWS credentials, no
  ``DATABASE_URL``; bank's process-wide settings and engine are forgotten before and after,
  so ``get_engine()`` and the handlers reach the endpoint.
- ``local_dsql_engine`` (function): the application's engine for that environment,
  ``bank.adapters.database.make_engine`` (``aurora_dsql_sqlalchemy.create_dsql_engine``,
  the ``auroradsql`` dialect, a fresh token per connection, ``verify-full``); disposed after.

What it does not give: the token's signature is not checked (docs/endpoint.md), and the
differences strict mode lists (docs/strict-mode.md) stay.
"""

from __future__ import annotations

import dataclasses
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from sqlalchemy import Engine

from bank.kit.errors import StrictModeUnavailable

__all__ = ["FAKE_KEY", "FAKE_SECRET", "LocalDsql", "local_dsql", "local_dsql_engine",
           "local_dsql_environment", "start_local_dsql"]

#: The AWS credentials tokens are minted with: fake (the endpoint cannot check a signature).
FAKE_KEY = "AKIAFAKEFAKEFAKEFAKE"
FAKE_SECRET = "fake-secret-key"
#: What a process of the application must not inherit when it is pointed at the endpoint.
_UNSET = ("DATABASE_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


class _NamedContext(ssl.SSLContext):
    """An ``SSLContext`` whose connections verify, and send as SNI, one server name, whatever
    name or address the client gives: for a client that connects to ``127.0.0.1`` and has no
    libpq ``hostaddr`` (asyncpg passes its ``host`` as the TLS server name)."""

    server_name = ""

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    suppress_ragged_eofs=True, server_hostname=None, session=None):
        return super().wrap_socket(sock, server_side, do_handshake_on_connect,
                                   suppress_ragged_eofs, self.server_name, session)

    def wrap_bio(self, incoming, outgoing, server_side=False,
                 server_hostname=None, session=None):
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)


@dataclasses.dataclass
class LocalDsql:
    """A running local DSQL endpoint, and how a client reaches it."""

    endpoint: Any  # bank.kit.endpoint.Endpoint
    host: str
    region: str
    port: int
    ca_file: Path
    folder: Path  # what BANK_DSQL_LOCAL names

    def token(self, user: str = "admin", expires_s: int = 900, *, host: str | None = None,
              region: str | None = None, admin: bool | None = None) -> str:
        """A token as boto3 mints it for a cluster (``DbConnectAdmin`` for admin, else
        ``DbConnect``; ``admin`` forces one), with fake credentials."""
        import boto3

        client = boto3.session.Session(
            aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_SECRET,
        ).client("dsql", region_name=region or self.region)
        mint = (client.generate_db_connect_admin_auth_token
                if (user == "admin" if admin is None else admin)
                else client.generate_db_connect_auth_token)
        return mint(host or self.host, region or self.region, expires_s)

    def conninfo(self, user: str = "admin", **overrides: Any) -> dict[str, Any]:
        """libpq's keywords for a connection as ``user``, a fresh token as the password."""
        params: dict[str, Any] = dict(
            host=self.host, hostaddr="127.0.0.1", port=self.port, user=user, dbname="postgres",
            sslmode="verify-full", sslrootcert=str(self.ca_file), connect_timeout=10,
            gssencmode="disable")
        params.update(overrides)
        if "password" not in params:
            params["password"] = self.token(user)
        return params

    def url(self, user: str = "admin", **overrides: Any) -> str:
        """The same as a libpq URL (``postgresql://user:token@host:port/postgres?...``)."""
        params = self.conninfo(user, **overrides)
        head = (f"postgresql://{quote(params.pop('user'), safe='')}:"
                f"{quote(params.pop('password'), safe='')}@{params.pop('host')}:"
                f"{params.pop('port')}/{params.pop('dbname')}")
        return f"{head}?{urlencode(params)}"

    def connect(self, user: str = "admin", **overrides: Any) -> psycopg.Connection:
        """A plain psycopg connection through the endpoint (autocommit unless told)."""
        overrides.setdefault("autocommit", True)
        return psycopg.connect(**self.conninfo(user, **overrides))

    def ssl_context(self) -> ssl.SSLContext:
        """TLS for a client that connects to the endpoint's address (``127.0.0.1``) but must
        verify its certificate for the DSQL name, and send that name as SNI: asyncpg has no
        ``hostaddr``, and gives its ``host`` to TLS as the server name. Trusts the endpoint's
        CA only."""
        context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and name
        context.load_verify_locations(cafile=str(self.ca_file))
        context.server_name = self.host
        return context

    def environment(self) -> dict[str, str]:
        """What a process of the application needs to reach it: the one setting, the
        cluster's name, and AWS credentials (fake)."""
        return {"CLUSTER_ENDPOINT": self.host, "BANK_DSQL_LOCAL": str(self.folder),
                "AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                "AWS_REGION": self.region, "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


def start_local_dsql(publish: Path) -> LocalDsql:
    """Start an endpoint in front of the embedded server (started if needed) that publishes
    its address and CA in ``publish``; raises ``StrictModeUnavailable`` (and stops it) if
    the server runs without strict mode, which the endpoint's rewrites need."""
    from bank.kit.endpoint import Endpoint, Upstream, endpoint_folder

    endpoint = Endpoint(Upstream.embedded(), endpoint_folder(), publish=publish).start()
    dsql = LocalDsql(endpoint=endpoint, host=endpoint.host, region=endpoint.region,
                     port=endpoint.address[1], ca_file=endpoint.ca_file, folder=publish)
    try:
        with dsql.connect() as conn:  # pg_settings lists a module's settings, not placeholders
            row = conn.execute("SELECT EXISTS (SELECT FROM pg_settings WHERE name = "
                               "'dsql_strict.enabled'), to_regnamespace('sys') IS NOT NULL"
                               ).fetchone()
    except BaseException:
        endpoint.stop()
        raise
    if row != (True, True):
        endpoint.stop()
        raise StrictModeUnavailable(
            "the embedded PostgreSQL runs without DSQL strict mode (its server module could "
            "not be built: no C compiler and no ziglang package?), so the local DSQL "
            "endpoint cannot answer as DSQL; `bank db stop`, install what is missing, retry")
    return dsql


@pytest.fixture(scope="session")
def local_dsql() -> Iterator[LocalDsql]:
    """A local DSQL endpoint for the test session (see the module doc)."""
    publish = Path(tempfile.mkdtemp(prefix="bank-endpoint-"))
    try:
        dsql = start_local_dsql(publish)
        try:
            yield dsql
        finally:
            dsql.endpoint.stop()
    finally:
        shutil.rmtree(publish, ignore_errors=True)


@pytest.fixture()
def local_dsql_environment(local_dsql: LocalDsql,
                           monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalDsql]:
    """This process pointed at the endpoint as the application would be on a laptop:
    CLUSTER_ENDPOINT, BANK_DSQL_LOCAL, fake AWS credentials, no DATABASE_URL. The
    process-wide settings and engine are forgotten before and after."""
    from bank.adapters import database, settings

    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in local_dsql.environment().items():
        monkeypatch.setenv(name, value)
    settings.get_settings.cache_clear()
    database.install_engine(None)
    yield local_dsql
    database.install_engine(None)
    settings.get_settings.cache_clear()


@pytest.fixture()
def local_dsql_engine(local_dsql_environment: LocalDsql) -> Iterator[Engine]:
    """The application's own DSQL engine (``make_engine``), through the endpoint."""
    from bank.adapters.database import make_engine
    from bank.adapters.settings import Settings

    engine = make_engine(Settings.from_env())
    try:
        yield engine
    finally:
        engine.dispose()
