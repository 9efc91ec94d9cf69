"""Fixtures of the integration tests: the local DSQL endpoint (``bank.kit.endpoint``).

``dsql_endpoint`` is one endpoint for the test session, in front of the embedded server
(its CA is the kit's, in ``.bank/endpoint/``; it publishes its address in a folder of its
own, so a developer's ``bank endpoint`` keeps its own). ``LocalDsql`` mints tokens with
fake AWS credentials, as boto3 does for a real cluster, offline.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest

FAKE_KEY = "AKIAFAKEFAKEFAKEFAKE"
FAKE_SECRET = "fake-secret-key"


@dataclasses.dataclass
class LocalDsql:
    endpoint: object  # bank.kit.endpoint.Endpoint
    host: str
    region: str
    port: int
    ca_file: Path
    folder: Path  # what BANK_DSQL_LOCAL names

    def token(self, user: str = "admin", expires_s: int = 900, *, host: str | None = None,
              region: str | None = None, admin: bool | None = None) -> str:
        """A token as boto3 mints it for a cluster, with fake credentials."""
        client = boto3.session.Session(
            aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_SECRET,
        ).client("dsql", region_name=region or self.region)
        mint = (client.generate_db_connect_admin_auth_token
                if (user == "admin" if admin is None else admin)
                else client.generate_db_connect_auth_token)
        return mint(host or self.host, region or self.region, expires_s)

    def conninfo(self, user: str = "admin", **overrides) -> dict:
        params = dict(host=self.host, hostaddr="127.0.0.1", port=self.port, user=user,
                      dbname="postgres", sslmode="verify-full", sslrootcert=str(self.ca_file),
                      connect_timeout=10, gssencmode="disable")
        params.update(overrides)
        if "password" not in params:
            params["password"] = self.token(user)
        return params

    def connect(self, user: str = "admin", **overrides) -> psycopg.Connection:
        """A plain psycopg connection through the endpoint: no StrictCursor, no kit."""
        overrides.setdefault("autocommit", True)
        return psycopg.connect(**self.conninfo(user, **overrides))

    def environment(self) -> dict[str, str]:
        """What a process of the application needs to reach it: the one setting, the
        cluster's name, and AWS credentials (fake)."""
        return {"CLUSTER_ENDPOINT": self.host, "BANK_DSQL_LOCAL": str(self.folder),
                "AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
                "AWS_REGION": self.region, "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


@pytest.fixture(scope="session")
def dsql_endpoint() -> Iterator[LocalDsql]:
    from tests.conftest import ON_DSQL

    if ON_DSQL:
        pytest.skip("local only on a cluster: the local DSQL endpoint")
    from bank.kit.endpoint import Endpoint, Upstream, endpoint_folder

    publish = Path(tempfile.mkdtemp(prefix="bank-endpoint-"))
    endpoint = Endpoint(Upstream.embedded(), endpoint_folder(), publish=publish).start()
    try:
        yield LocalDsql(endpoint=endpoint, host=endpoint.host, region=endpoint.region,
                        port=endpoint.address[1], ca_file=endpoint.ca_file, folder=publish)
    finally:
        endpoint.stop()
        shutil.rmtree(publish, ignore_errors=True)


@pytest.fixture()
def dsql_environment(dsql_endpoint, monkeypatch) -> Iterator[LocalDsql]:
    """This process pointed at the endpoint as the application would be on a laptop:
    CLUSTER_ENDPOINT, BANK_DSQL_LOCAL, fake AWS credentials, no DATABASE_URL. The
    process-wide settings and engine are forgotten before and after."""
    from bank.adapters import database, settings

    for name in ("DATABASE_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dsql_endpoint.environment().items():
        monkeypatch.setenv(name, value)
    settings.get_settings.cache_clear()
    database.install_engine(None)
    yield dsql_endpoint
    database.install_engine(None)
    settings.get_settings.cache_clear()
