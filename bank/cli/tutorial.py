"""``bank tutorial``: every chapter, in order, on the configured database.

On a fresh clone that is the embedded PostgreSQL; with DATABASE_URL or
CLUSTER_ENDPOINT set, the same steps run there.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from bank.adapters.settings import Target, get_settings, project_root
from bank.cli.commands import dispatch


def _step(title: str) -> None:
    print(f"\n=== {title}")


def _invoke_event(function: str, event: dict) -> None:
    from bank.cli.invoke import invoke

    ok, response = invoke(function, event)
    print(f"$ bank invoke {function}  # event {json.dumps(event)}")
    print(("" if ok else "(error) ") + json.dumps(response))


def _invoke(function: str, event_file: str, brief: tuple[str, ...] = ()) -> None:
    """Invoke like `bank invoke`; fields named in ``brief`` are shown by their first line."""
    from bank.cli.invoke import invoke, read_event

    path = project_root() / "events" / event_file
    ok, response = invoke(function, read_event(str(path)))
    for name in brief:
        if isinstance(response.get(name), str):
            response[name] = response[name].splitlines()[0] + " ..."
    print(f"$ bank invoke {function} --event events/{event_file}")
    print(("" if ok else "(error) ") + json.dumps(response))


def _bank(*args: str) -> None:
    """Run a `bank` command in-process, showing it first; a failure stops the tutorial."""
    print(f"$ bank {' '.join(args)}", flush=True)
    code = dispatch(list(args))
    if code != 0:
        raise SystemExit(code)


def run(quick: bool = False, uuids: Path | None = None) -> int:
    settings = get_settings()
    _step("database")
    if settings.target is Target.EMBEDDED:
        from bank.adapters.embedded import server

        status = server(settings).start()
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
    _invoke("ch01", "ch01.json")
    _step("ch03: read a balance")
    _invoke("ch03", "ch03.json")
    _invoke("ch03", "ch03-unknown-account.json")
    _step("ch04: a transfer in one transaction, recorded in the ledger")
    _invoke("ch04", "ch04.json")
    _invoke("ch04", "ch04-insufficient-balance.json")
    _invoke("ch04", "ch04-same-account.json")
    _step("ch05: the same transfer, retried on conflicts")
    _invoke("ch05", "ch05.json")
    _step("a transfer sent twice is applied once: its transfer_id is the ledger's key")
    event = {"payer_id": 3, "payee_id": 4, "amount": "5", "transfer_id": str(uuid.uuid4())}
    for _ in range(2):
        _invoke_event("ch05", event)
    print("The second call found its transfer_id in the ledger and returned the first "
          'outcome ("replayed": true) without moving the money again.')
    _step("ch06: UUID keys")
    _invoke("ch06", "ch06.json")
    _invoke("ch06", "ch06-malformed-uuid.json")
    _step("ch06 at scale: bulk-load UUID accounts, then load-test the transfers")
    uuids = uuids or project_root() / "uuids.txt"
    _bank("load", "--accounts", "2000" if quick else "10000", "--threads", "2",
          "--out", str(uuids))
    iters = "200" if quick else "1000"
    print("\nch04 has no retry: on 10 hot accounts, 10 threads conflict, and ch04 reports it.")
    _bank("loadtest", "--function", "ch04", "--threads", "10", "--accounts", "10",
          "--iters", iters, "--seed", "1")
    print("\nch05 retries the whole transaction on SQLSTATE 40001: same load, no conflict errors.")
    _bank("loadtest", "--function", "ch05", "--threads", "10", "--accounts", "10",
          "--iters", iters, "--seed", "1")
    print("\nch06 does the same on UUID keys, over the accounts just loaded.")
    _bank("loadtest", "--function", "ch06", "--threads", "4", "--accounts", "1000",
          "--uuids", str(uuids), "--iters", iters, "--seed", "1")

    _step("ch07: query optimization (5,000 rows, one index, then the optimizing two)")
    for event_file in ("ch07-setup.json", "ch07-query.json", "ch07-optimize.json",
                       "ch07-query-optimized.json"):
        _invoke("ch07", event_file, brief=("query_plan",))
    print("\nDone. Every chapter ran; see README.md for what each step teaches.")
    return 0
