"""`bank endpoint`, as a developer runs it: in the foreground, its settings printed, the
application pointed at it by them (Alembic, `bank seed` and `bank invoke` in processes of
their own, on a schema of their own), Ctrl-C to stop."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bank.kit.pytest_plugin import FAKE_KEY, FAKE_SECRET
from tests.conftest import ON_DSQL

ROOT = Path(__file__).resolve().parents[2]
BANK = [sys.executable, "-m", "bank.kit.cli"]

pytestmark = pytest.mark.skipif(ON_DSQL, reason="local only on a cluster: the local endpoint")


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bank_endpoint_serves_the_application_until_interrupted(tmp_path):
    from bank.kit.endpoint import Upstream

    publish = tmp_path / "endpoint"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CLUSTER_ENDPOINT", "BANK_SCHEMA", "AWS_PROFILE",
                        "AWS_SESSION_TOKEN") and not k.startswith("PG")}
    server = subprocess.Popen([*BANK, "endpoint", "--publish", str(publish)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    schema = f"bank_ep_{secrets.token_hex(4)}"
    try:
        assert server.stdout is not None
        printed = []
        for line in server.stdout:  # until it says how to stop it
            printed.append(line)
            if line.startswith("Ctrl-C"):
                break
        settings = dict(line.split("export ", 1)[1].strip().split("=", 1)
                        for line in printed if "export " in line)
        assert settings["BANK_DSQL_LOCAL"] == str(publish)
        assert settings["CLUSTER_ENDPOINT"].endswith(".dsql.us-east-1.on.aws")
        assert (publish / "ca.pem").is_file() and (publish / "address").is_file()
        client = {**env, **settings, "BANK_SCHEMA": schema, "AWS_ACCESS_KEY_ID": FAKE_KEY,
                  "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_CONFIG_FILE": "/nonexistent",
                  "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
        run([sys.executable, "-c", "import sys, psycopg, boto3; h = sys.argv[1]; "
             "t = boto3.client('dsql', region_name='us-east-1')"
             ".generate_db_connect_admin_auth_token(h, 'us-east-1', 900); "
             "a, p = open(sys.argv[2]).read().split(':'); "
             "psycopg.connect(host=h, hostaddr=a, port=int(p), user='admin', dbname='postgres',"
             " password=t, sslmode='verify-full', sslrootcert=sys.argv[3], autocommit=True)"
             f".execute('CREATE SCHEMA {schema}')",
             settings["CLUSTER_ENDPOINT"], str(publish / "address"), str(publish / "ca.pem")],
            client)
        run([sys.executable, "-m", "alembic", "upgrade", "head"], client)
        run([*BANK, "seed"], client)
        answer = json.loads(run([*BANK, "invoke", "ch03", "--event", "events/ch03.json"],
                                client))
        assert answer == {"balance": "100.000000"}, answer
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        assert "stopped" in out
        assert not (publish / "address").exists()  # nothing points at a stopped endpoint
        assert "X-Amz-Signature" not in err  # no token in its log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        with Upstream.embedded().connect(autocommit=True,
                                         options="-c dsql_strict.enabled=off") as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
