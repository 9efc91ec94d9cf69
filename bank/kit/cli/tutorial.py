"""``bank tutorial``: every chapter, in order, on the configured database.

On a fresh clone that is the embedded PostgreSQL; with DATABASE_URL or
CLUSTER_ENDPOINT set, the same steps run there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bank.adapters.settings import get_settings, project_root
from bank.kit import local
from bank.kit.cli.commands import dispatch
from bank.kit.errors import TutorialStepFailed


def _step(title: str) -> None:
    print(f"\n=== {title}")


def _invoke(function: str, event_file: str | None = None, *, event: dict | None = None,
            expect: str = "ok", brief: tuple[str, ...] = (),
            check: Callable[[dict], str | None] | None = None) -> dict:
    """Invoke like `bank invoke` and show it; the answer must be ``expect`` (``ok``, or the
    ``errorType`` the step demonstrates), and ``check`` (if given) must find nothing wrong
    with it. Fields named in ``brief`` are shown by their first line."""
    from bank.kit.cli.invoke import invoke, read_event

    if event_file is not None:
        event = read_event(str(project_root() / "events" / event_file))
        shown = f"$ bank invoke {function} --event events/{event_file}"
    else:
        shown = f"$ bank invoke {function}  # event {json.dumps(event)}"
    ok, response = invoke(function, event)
    answer = dict(response)
    for name in brief:
        if isinstance(answer.get(name), str):
            answer[name] = answer[name].splitlines()[0] + " ..."
    print(shown)
    print(("" if ok else "(error) ") + json.dumps(answer))
    got = "ok" if ok else str(response.get("errorType"))
    wrong = None if got == expect else f"answered {got}, where it shows {expect}"
    if wrong is None and check is not None:
        wrong = check(response)
    if wrong:
        raise TutorialStepFailed(f"step `{shown.removeprefix('$ ')}`: {wrong}")
    return response


def _bank(*args: str) -> None:
    """Run a `bank` command in-process, showing it first; a failure stops the tutorial."""
    print(f"$ bank {' '.join(args)}", flush=True)
    code = dispatch(list(args))
    if code != 0:
        raise TutorialStepFailed(f"step `bank {' '.join(args)}` exited with status {code}")


def _loadtest(*args: str, check: Callable[[Any], str | None]) -> None:
    """Run `bank loadtest` in-process, showing it; it must exit 0 and ``check`` must find
    nothing wrong with its report (what the step says it shows)."""
    from bank.kit.cli.commands import build_parser, loadtest_command

    shown = f"bank loadtest {' '.join(args)}"
    print(f"$ {shown}", flush=True)
    code, report = loadtest_command(build_parser()[0].parse_args(["loadtest", *args]))
    wrong = f"exited with status {code}" if code != 0 else check(report)
    if wrong:
        raise TutorialStepFailed(f"step `{shown}`: {wrong}")


def _conflicts_reported(report: Any) -> str | None:
    if report.errors.get("TransactionConflict", 0) > 0:
        return None
    return "ch04 reported no TransactionConflict, where the step shows its conflicts"


def _conflicts_retried(report: Any) -> str | None:
    """No conflict reported as such; retried (some success took more than one attempt);
    at most 5% of the requests out of attempts (ConflictRetriesExhausted)."""
    if report.errors.get("TransactionConflict", 0):
        return f"{report.errors['TransactionConflict']} TransactionConflict reported"
    if not any(n > 1 for n in report.attempts):
        return "no transfer needed a second attempt: nothing was retried"
    exhausted = report.errors.get("ConflictRetriesExhausted", 0)
    if exhausted > report.requests * 0.05:
        return f"{exhausted} of {report.requests} transfers ran out of attempts"
    return None


def _field(name: str, expected: Any) -> Callable[[dict], str | None]:
    def check(response: dict) -> str | None:
        if response.get(name) == expected:
            return None
        return f"its {name!r} is {response.get(name)!r}, where it shows {expected!r}"

    return check


def _optimized(answer: dict, expected: bool) -> str | None:
    """Does the lab's query use one of the optimizing indexes, as the step shows?"""
    used = str(answer.get("index_used") or "")
    if used.startswith("idx_accounts7_metadata") == expected:
        return None
    return f"it used {used or 'no index'}, where it shows {'the' if expected else 'no'} " \
           "optimizing index"


def run(quick: bool = False, uuids: Path | None = None) -> int:
    settings = get_settings()
    _step("database")
    if local.embedded(settings):
        from bank.kit.embedded import server

        status = server().start()
        print(f"embedded PostgreSQL on 127.0.0.1:{status.port}, data in {status.data_dir}")
    else:
        print(f"target: {settings.target.value}")
    _step("schema: alembic upgrade head")
    from bank.adapters import migrations
    from bank.adapters.database import get_engine

    print(f"now at {migrations.upgrade(get_engine())}")
    _step("seed: accounts 1..1000 and two UUID accounts, balance 100")
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.services.seed import seed

    print(json.dumps(seed(SqlAlchemyUnitOfWork)))

    _step("ch01: hello Lambda")
    _invoke("ch01", "ch01.json", check=_field("greeting", "hello reinvent"))
    _step("ch03: read a balance")
    _invoke("ch03", "ch03.json", check=_field("balance", "100.000000"))
    _invoke("ch03", "ch03-unknown-account.json", expect="AccountNotFound")
    _step("ch04: a transfer in one transaction, recorded in the ledger")
    _invoke("ch04", "ch04.json", check=_field("payer_balance", "90.000000"))
    _invoke("ch04", "ch04-insufficient-balance.json", expect="InsufficientFunds")
    _invoke("ch04", "ch04-same-account.json", expect="InvalidRequest")
    _step("ch05: the same transfer, retried on conflicts")
    _invoke("ch05", "ch05.json", check=_field("attempts", 1))
    _step("a transfer sent twice is applied once: its transfer_id is the ledger's key")
    event = {"payer_id": 3, "payee_id": 4, "amount": "5", "transfer_id": str(uuid.uuid4())}
    first = _invoke("ch05", event=event, check=_field("replayed", None))
    _invoke("ch05", event=event, check=lambda again: (
        _field("replayed", True)(again) or _field("payer_balance", first["payer_balance"])(again)))
    print("The second call found its transfer_id in the ledger and returned the first "
          'outcome ("replayed": true) without moving the money again.')
    _step("ch06: UUID keys")
    _invoke("ch06", "ch06.json", check=_field("payer_balance", "90.000000"))
    _invoke("ch06", "ch06-malformed-uuid.json", expect="InvalidRequest")
    _step("ch06 at scale: bulk-load UUID accounts, then load-test the transfers")
    uuids = uuids or project_root() / "uuids.txt"
    _bank("load", "--accounts", "2000" if quick else "10000", "--threads", "2",
          "--out", str(uuids))
    iters = "200" if quick else "1000"
    print("\nch04 has no retry: on 10 hot accounts, 10 threads conflict, and ch04 reports it.")
    _loadtest("--function", "ch04", "--threads", "10", "--accounts", "10",
              "--iters", iters, "--seed", "1", check=_conflicts_reported)
    print("\nch05 retries the whole transaction on SQLSTATE 40001: the same load, and no "
          "conflict reported;\nthe few transfers whose 10 attempts all conflict end as "
          "ConflictRetriesExhausted.")
    _loadtest("--function", "ch05", "--threads", "10", "--accounts", "10",
              "--iters", iters, "--seed", "1", check=_conflicts_retried)
    print("\nch06 does the same on UUID keys, over the accounts just loaded.")
    _loadtest("--function", "ch06", "--threads", "4", "--accounts", "1000",
              "--uuids", str(uuids), "--iters", iters, "--seed", "1",
              check=lambda report: _field("TransactionConflict", None)(dict(report.errors)))

    _step("ch07: query optimization (5,000 rows, one index, then the optimizing two)")
    _invoke("ch07", "ch07-setup.json", brief=("query_plan",),
            check=_field("operation", "setup"))
    _invoke("ch07", "ch07-query.json", brief=("query_plan",),
            check=lambda answer: _optimized(answer, False))
    _invoke("ch07", "ch07-optimize.json", brief=("query_plan",),
            check=_field("operation", "optimize"))
    _invoke("ch07", "ch07-query-optimized.json", brief=("query_plan",),
            check=lambda answer: _optimized(answer, True))
    print("\nDone. Every step did what it shows; see README.md for what each one teaches.")
    return 0
