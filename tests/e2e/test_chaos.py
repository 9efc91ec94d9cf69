"""``bank chaos``: transfers while backends are killed and the server crashes, then an audit.

Local only (it kills a server of its own, in a temp dir); bounded: 16 s of load.
"""

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from bank.kit.cli import chaos
from bank.kit.embedded import os_user_for


@pytest.mark.slow
def test_no_acknowledged_transfer_is_lost_or_doubled_under_faults(capsys):
    # Not under pytest's tmp_path: as root the server runs as its own OS user, which must
    # traverse the folders above its data (see tests/conftest.py, throwaway_server).
    top = Path(tempfile.mkdtemp(prefix="bank-chaos-"))
    try:
        report = chaos.run(top / "data", duration_s=16, workers=6, kill_every_s=2,
                           throwaway=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    with capsys.disabled():  # the figures, in CI's log even when the test passes
        print("\n" + report.render())
    assert report.crashes == 1 and report.backends_killed > 0, "no fault injected"
    assert report.recovery_s is not None, "no transfer acknowledged after the crash"
    assert report.outcomes["ok"] > 100, report.outcomes
    assert not report.raw_errors, report.raw_errors
    assert report.negative == 0
    assert all(before == after for before, after in report.totals.values()), report.totals
    assert report.in_ledger_once == report.acknowledged, "an acknowledged transfer is missing"
    assert not report.unexplained, report.unexplained
    assert report.sound
    if os.geteuid() == 0:  # the throwaway server's OS user went with its data
        with pytest.raises(KeyError):
            pwd.getpwnam(os_user_for((top / "data").resolve()))
