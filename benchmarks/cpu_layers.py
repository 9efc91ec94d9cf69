"""Client CPU of one transfer, layer by layer: where bank's microseconds go.

One thread, loopback, the same transfer (the one-statement move and the ledger INSERT) at
each layer of the stack, from the driver up to the ch05 handler, each measured by
``time.process_time`` over ``--transfers`` transfers after a warm-up, best of
``--repeat``:

- ``psycopg``: the two statements with psycopg's pipeline, BEGIN with the move and the
  INSERT with COMMIT (2 round trips): the floor, no SQLAlchemy;
- ``core, plain engine``: SQLAlchemy Core on an engine without bank's hooks,
  ``engine.begin()``, the same compiled statements (psycopg's own BEGIN: 4 round trips);
- ``core, bank engine``: the same on the application's engine, whose pipelining piece
  (``bank.adapters.pipelining``) makes it 2 round trips;
- ``session``: a ``Session`` from the application's ``sessionmaker`` in ``begin()``;
- ``unit of work``: ``SqlAlchemyUnitOfWork`` and its repositories (``move``, ``add``);
- ``service``: ``bank.services.transfers.transfer`` (the retry loop, the result);
- ``handler``: the ch05 handler (parsing the event, the request's log line).

Each row's difference from the one above is what that layer costs.

    .venv/bin/python -m benchmarks.cpu_layers [--transfers 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import insert

from bank.kit.local import server_url, setup_engine
from benchmarks.common import scratch_schema, with_schema
from benchmarks.transfer import ACCOUNT_COUNT, seed

AMOUNT = Decimal("0.01")


def pair(rng: random.Random) -> tuple[int, int]:
    payer = rng.randint(1, ACCOUNT_COUNT)
    return payer, 1 + (payer + rng.randint(0, ACCOUNT_COUNT - 2)) % ACCOUNT_COUNT


def layers(server: str, schema: str) -> list[tuple[str, Callable[[random.Random], None]]]:
    os.environ.update(DATABASE_URL=server, BANK_SCHEMA=schema)
    from bank.adapters import orm
    from bank.adapters.database import get_engine
    from bank.adapters.repositories import _move_statement
    from bank.adapters.settings import get_settings
    from bank.adapters.unit_of_work import Sessions, SqlAlchemyUnitOfWork
    from bank.domain.model import Account, Transfer, TransferRequest
    from bank.handlers import ch05
    from bank.kit import local
    from bank.services.retry import RetryPolicy
    from bank.services.transfers import transfer

    get_settings.cache_clear()
    local.use()
    logging.getLogger("bank.requests").setLevel(logging.WARNING)
    app = get_engine()
    plain = setup_engine(with_schema(server, schema))
    move, entry = _move_statement(orm.accounts), insert(orm.transfers)
    policy = RetryPolicy.from_settings(get_settings())

    def row(payer: int, payee: int, balance: Decimal) -> dict:
        return {"id": uuid.uuid4(), "payer_id": str(payer), "payee_id": str(payee),
                "amount": AMOUNT, "payer_balance": balance,
                "created_at": dt.datetime.now(dt.UTC)}

    def payer_balance(rows, payer: int) -> Decimal:
        return next(balance for account, balance in rows if account == payer)

    driver = plain.raw_connection().driver_connection
    driver.autocommit = True
    sql_move = str(move.compile(plain))
    sql_entry = str(entry.compile(plain, column_keys=list(row(1, 2, AMOUNT))))

    def with_psycopg(rng: random.Random) -> None:
        payer, payee = pair(rng)
        cursor = driver.cursor()
        with driver.pipeline():
            cursor.execute("BEGIN", prepare=False)
            cursor.execute(sql_move, {"payer": payer, "payee": payee, "amount": AMOUNT})
        balance = payer_balance(cursor.fetchall(), payer)
        with driver.pipeline():
            cursor.execute(sql_entry, row(payer, payee, balance))
            cursor.execute("COMMIT", prepare=False)

    def core_on(engine) -> Callable[[random.Random], None]:
        def with_core(rng: random.Random) -> None:
            payer, payee = pair(rng)
            with engine.begin() as conn:
                rows = conn.execute(move, {"payer": payer, "payee": payee, "amount": AMOUNT})
                conn.execute(entry, row(payer, payee, payer_balance(rows.all(), payer)))
        return with_core

    def with_session(rng: random.Random) -> None:
        payer, payee = pair(rng)
        with Sessions(bind=app) as session, session.begin():
            rows = session.execute(move, {"payer": payer, "payee": payee, "amount": AMOUNT})
            session.execute(entry, row(payer, payee, payer_balance(rows.all(), payer)))

    def with_unit_of_work(rng: random.Random) -> None:
        payer, payee = pair(rng)
        with SqlAlchemyUnitOfWork() as uow:
            balance = uow.accounts(Account).move(payer, payee, AMOUNT)
            uow.transfers.add(Transfer.record(TransferRequest(payer, payee, AMOUNT), balance))
            uow.commit()

    def with_service(rng: random.Random) -> None:
        payer, payee = pair(rng)
        transfer(SqlAlchemyUnitOfWork, Account, TransferRequest(payer, payee, AMOUNT),
                 policy=policy)

    def with_handler(rng: random.Random) -> None:
        payer, payee = pair(rng)
        ch05.handler({"payer_id": payer, "payee_id": payee, "amount": "0.01"})

    return [("psycopg", with_psycopg), ("core, plain engine", core_on(plain)),
            ("core, bank engine", core_on(app)), ("session", with_session),
            ("unit of work", with_unit_of_work), ("service", with_service),
            ("handler", with_handler)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=2000, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="best of; default 3")
    args = parser.parse_args()
    server = server_url()
    with scratch_schema(server) as schema:
        seed(server, schema)
        rng = random.Random(0)
        print(f"client CPU per transfer, one thread, loopback; best of {args.repeat} x "
              f"{args.transfers} transfers")
        previous = None
        for name, work in layers(server, schema):
            for _ in range(200):
                work(rng)
            best = float("inf")
            for _ in range(args.repeat):
                began = time.process_time()
                for _ in range(args.transfers):
                    work(rng)
                best = min(best, (time.process_time() - began) / args.transfers)
            more = "" if previous is None else f"  ({(best - previous) * 1e6:+5.0f})"
            print(f"{name:20} {best * 1e6:6.0f} µs{more}", flush=True)
            previous = best


if __name__ == "__main__":
    main()
