"""`bank endpoint`, as a developer runs it: in the foreground, its settings printed, the
application pointed at it by them (`bank invoke` in another process), Ctrl-C to stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import FAKE_KEY, FAKE_SECRET

ROOT = Path(__file__).resolve().parents[2]
BANK = [sys.executable, "-m", "bank.kit.cli"]


def test_bank_endpoint_serves_the_application_until_interrupted(app_env, seeded, tmp_path):
    publish = tmp_path / "endpoint"
    env = {k: v for k, v in app_env.items() if k not in ("DATABASE_URL", "CLUSTER_ENDPOINT")}
    server = subprocess.Popen([*BANK, "endpoint", "--publish", str(publish)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        client = {**env, **settings, "AWS_ACCESS_KEY_ID": FAKE_KEY,
                  "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_CONFIG_FILE": "/nonexistent",
                  "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
        client.pop("AWS_PROFILE", None)
        done = subprocess.run([*BANK, "invoke", "ch03", "--event", "events/ch03.json"],
                              cwd=ROOT, env=client, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "balance" in json.loads(done.stdout)
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
