"""The DSQL engine, offline: tokens are minted locally (SigV4 presigning) with fake credentials.

Nothing here reaches AWS or a database: the test stops each connection attempt at
psycopg's network connect and looks at what would have been sent.
"""

from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from dsql_core.token_manager import TokenManager

from bank.adapters.database import DSQL_ROOT_CERTS, make_engine
from bank.adapters.settings import Settings

ENDPOINT = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"


class Offline(Exception):
    pass


@pytest.fixture()
def captured(monkeypatch):
    """Fake AWS credentials; record the parameters of each would-be connection."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKEFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    seen = []

    def network_connect(cls, *args, **kwargs):
        seen.append(kwargs)
        raise Offline()

    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(network_connect))
    mints = []
    real_get_token = TokenManager.get_token.__func__

    def counting_get_token(cls, params):
        token = real_get_token(cls, params)
        mints.append(token)
        return token

    monkeypatch.setattr(TokenManager, "get_token", classmethod(counting_get_token))
    return seen, mints


def connect_twice(engine):
    for _ in range(2):
        with pytest.raises(Exception) as info:
            engine.connect()
        assert isinstance(info.value, Offline) or isinstance(
            getattr(info.value, "orig", None), Offline
        )


def token_parts(token: str):
    parts = urlsplit("https://" + token)
    return parts.hostname, {k: v[0] for k, v in parse_qs(parts.query).items()}


@pytest.mark.parametrize("user, action", [("admin", "DbConnectAdmin"), ("app_user", "DbConnect")])
def test_each_new_connection_gets_a_fresh_token_for_the_right_action(captured, user, action):
    seen, mints = captured
    settings = Settings.from_env({"CLUSTER_ENDPOINT": ENDPOINT, "DB_USER": user})
    engine = make_engine(settings)
    assert engine.dialect.name == "auroradsql"
    connect_twice(engine)
    assert len(seen) == 2 and len(mints) == 2  # minted anew for each connection
    for params in seen:
        assert params["host"] == ENDPOINT
        assert params["user"] == user
        assert params["dbname"] == "postgres"
        assert params["sslmode"] == "verify-full"
        # The bundle shipped in the package, never "system" (no CA store on Lambda).
        assert params["sslrootcert"] == str(DSQL_ROOT_CERTS)
        assert DSQL_ROOT_CERTS.is_file()
        host, query = token_parts(params["password"])
        assert host == ENDPOINT
        assert query["Action"] == action
        assert query["X-Amz-Credential"].startswith("AKIAFAKEFAKEFAKEFAKE/")
        assert query["X-Amz-Credential"].endswith("/us-east-1/dsql/aws4_request")
        assert query["X-Amz-Signature"]
    assert [p["password"] for p in seen] == mints


def test_pool_is_recycled_before_dsql_closes_connections():
    engine = make_engine(Settings.from_env({"CLUSTER_ENDPOINT": ENDPOINT}))
    assert 0 < engine.pool._recycle < 3600
    assert engine.pool.size() <= 5  # sized for Lambda: one request at a time


def test_region_comes_from_settings(captured):
    seen, _ = captured
    settings = Settings.from_env({"CLUSTER_ENDPOINT": "myclusterid", "REGION": "ap-south-1"})
    connect_twice(make_engine(settings))
    _, query = token_parts(seen[0]["password"])
    assert "/ap-south-1/dsql/aws4_request" in query["X-Amz-Credential"]
    assert seen[0]["host"] == "myclusterid.dsql.ap-south-1.on.aws"


def test_a_local_endpoint_changes_only_where_libpq_connects_and_which_ca_it_trusts(
        captured, tmp_path):
    """BANK_DSQL_LOCAL: the same DSQL connection (token, verify-full, the cluster's name),
    to the local endpoint's address, its certificate checked against the endpoint's CA."""
    seen, _ = captured
    (tmp_path / "ca.pem").write_text("(a CA certificate)")
    (tmp_path / "address").write_text("127.0.0.1:54321\n")
    settings = Settings.from_env({"CLUSTER_ENDPOINT": ENDPOINT,
                                  "BANK_DSQL_LOCAL": str(tmp_path)})
    connect_twice(make_engine(settings))
    params = seen[0]
    assert (params["host"], params["hostaddr"], params["port"]) == (ENDPOINT, "127.0.0.1", 54321)
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == str(tmp_path / "ca.pem")
    host, query = token_parts(params["password"])
    assert host == ENDPOINT and query["Action"] == "DbConnectAdmin"
    default = Settings.from_env({"CLUSTER_ENDPOINT": ENDPOINT})
    connect_twice(make_engine(default))
    assert "hostaddr" not in seen[-1] and seen[-1]["sslrootcert"] == str(DSQL_ROOT_CERTS)


def test_a_local_endpoint_that_is_not_running_is_a_configuration_error(tmp_path):
    from bank.adapters.errors import ConfigurationError

    (tmp_path / "ca.pem").write_text("(a CA certificate)")
    settings = Settings.from_env({"CLUSTER_ENDPOINT": ENDPOINT,
                                  "BANK_DSQL_LOCAL": str(tmp_path)})
    with pytest.raises(ConfigurationError, match="no endpoint address .*[(]bank endpoint[)]"):
        make_engine(settings)
