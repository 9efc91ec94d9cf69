"""The README's tutorial command, end to end, on the test database: every step checked."""

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

#: The error scenarios the tutorial demonstrates, by event file: each must answer this.
ERROR_STEPS = {
    "events/ch03-unknown-account.json": "AccountNotFound",
    "events/ch04-insufficient-balance.json": "InsufficientFunds",
    "events/ch04-same-account.json": "InvalidRequest",
    "events/ch06-malformed-uuid.json": "InvalidRequest",
}


def test_bank_tutorial_runs_every_chapter(app_env, tmp_path):
    env = app_env
    uuids = tmp_path / "uuids.txt"  # never the user's uuids.txt: this database is dropped
    out = subprocess.run(
        [sys.executable, "-m", "bank.kit.cli", "tutorial", "--quick", "--uuids", str(uuids)],
        cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    text = out.stdout
    for header in ("=== ch01", "=== ch03", "=== ch04", "=== ch05", "=== ch06", "=== ch06 at scale",
                   "=== ch07"):
        assert header in text, header
    # Every invocation's answer, in order: the error scenarios with their errorType, and
    # every other step a success.
    lines = text.splitlines()
    answers = [(lines[i], lines[i + 1]) for i, line in enumerate(lines)
               if line.startswith("$ bank invoke")]
    assert len(answers) == 15
    for shown, answer in answers:
        event_file = re.search(r"--event (\S+)", shown)
        expected = ERROR_STEPS.get(event_file.group(1) if event_file else "")
        if expected is None:
            assert not answer.startswith("(error)"), (shown, answer)
            json.loads(answer)
        else:
            assert json.loads(answer.removeprefix("(error) "))["errorType"] == expected, shown
    assert '{"greeting": "hello reinvent"}' in text
    assert "loaded 2000 accounts" in text
    assert text.count("money                 conserved") == 3
    assert '"index_used": "idx_accounts7_metadata' in text
    assert '"replayed": true' in text  # the transfer sent twice was applied once
    assert "Every step did what it shows" in text
    assert "Traceback" not in out.stderr
    assert len(uuids.read_text().split()) == 2000


def test_a_step_that_does_not_do_what_it_shows_stops_the_tutorial(database_url, capsys):
    """An error scenario that answers another errorType, or a success that fails: the
    tutorial raises, naming the step, and `bank tutorial` exits 1 (bank.kit.cli.main)."""
    from bank.kit.cli.tutorial import TutorialStepFailed, _field, _invoke

    with pytest.raises(TutorialStepFailed, match=r"ch03-unknown-account\.json`: answered "
                                                 r"AccountNotFound, where it shows ok"):
        _invoke("ch03", "ch03-unknown-account.json")
    with pytest.raises(TutorialStepFailed, match=r"ch01\.json`: its 'greeting' is 'hello "
                                                 r"reinvent', where it shows 'hi'"):
        _invoke("ch01", "ch01.json", check=_field("greeting", "hi"))
    with pytest.raises(TutorialStepFailed, match="answered ok, where it shows InvalidRequest"):
        _invoke("ch01", "ch01.json", expect="InvalidRequest")
    assert "(error)" in capsys.readouterr().out


def test_the_load_test_steps_check_what_they_say():
    """ch04's step shows conflicts reported, ch05's shows them retried: a report that does
    not show it fails the step."""
    from collections import Counter

    from bank.kit.cli.tutorial import _conflicts_reported, _conflicts_retried
    from bank.kit.loadtest import Report

    def report(errors: dict, attempts: dict) -> Report:
        return Report("Ch05Function", "accounts", 10, 10, 1, 1000, None, requests=1000,
                      errors=Counter(errors), attempts=Counter(attempts))

    assert _conflicts_reported(report({"TransactionConflict": 3}, {})) is None
    assert "no TransactionConflict" in _conflicts_reported(report({}, {1: 1000}))
    assert _conflicts_retried(report({"ConflictRetriesExhausted": 2}, {1: 900, 2: 98})) is None
    assert "reported" in _conflicts_retried(report({"TransactionConflict": 1}, {2: 999}))
    assert "nothing was retried" in _conflicts_retried(report({}, {1: 1000}))
    assert "ran out" in _conflicts_retried(report({"ConflictRetriesExhausted": 51}, {2: 949}))
