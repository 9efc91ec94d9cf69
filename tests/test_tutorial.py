"""The README's tutorial command, end to end, on the test database."""

import subprocess
import sys

from tests.conftest import ROOT


def test_bank_tutorial_runs_every_chapter(app_env, tmp_path):
    env = app_env
    uuids = tmp_path / "uuids.txt"  # never the user's uuids.txt: this database is dropped
    out = subprocess.run(
        [sys.executable, "-m", "bank.cli", "tutorial", "--quick", "--uuids", str(uuids)],
        cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    text = out.stdout
    for header in ("=== ch01", "=== ch03", "=== ch04", "=== ch05", "=== ch06", "=== ch06 at scale",
                   "=== ch07"):
        assert header in text, header
    assert '{"greeting": "hello reinvent"}' in text
    assert "loaded 2000 accounts" in text
    assert text.count("money                 conserved") == 3
    assert '"index_used": "idx_accounts7_metadata' in text
    assert '"replayed": true' in text  # the transfer sent twice was applied once
    assert "Traceback" not in out.stderr
    assert len(uuids.read_text().split()) == 2000
