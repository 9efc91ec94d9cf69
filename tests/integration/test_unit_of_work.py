"""The unit of work on a real server: one Session in one transaction, kept only by commit()."""

from __future__ import annotations

from contextlib import nullcontext
from decimal import Decimal

import pytest

from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
from bank.domain.model import Account
from tests.conftest import balances


def test_the_session_reads_the_unit_of_works_own_writes(make_accounts, engine):
    payer, payee = make_accounts(2, balance=100)
    with SqlAlchemyUnitOfWork() as uow:
        accounts = uow.accounts(Account)
        accounts.move(payer, payee, Decimal(30))
        assert accounts.get(payer).balance == Decimal(70)  # not yet committed: same transaction
        assert balances(engine, [payer]) == {payer: Decimal(100)}  # others see the old one
        # no commit(): the move is rolled back on exit
    assert balances(engine, [payer, payee]) == {payer: Decimal(100), payee: Decimal(100)}


def test_added_objects_commit_with_the_set_based_writes(make_accounts, engine):
    payer, payee = make_accounts(2, balance=100)
    new_id = make_accounts(1)[0] + 1_000_000_000  # an id nobody uses
    with SqlAlchemyUnitOfWork() as uow:
        uow.accounts(Account).move(payer, payee, Decimal(5))
        uow.session.add(Account(new_id, Decimal(7)))  # flushed by commit(), with COMMIT
        uow.commit()
    assert balances(engine, [payer, new_id]) == {payer: Decimal(95), new_id: Decimal(7)}


def test_an_error_inside_the_block_keeps_nothing(make_accounts, engine):
    payer, payee = make_accounts(2, balance=100)
    new_id = make_accounts(1)[0] + 1_000_000_000
    with pytest.raises(RuntimeError), SqlAlchemyUnitOfWork() as uow:
        uow.accounts(Account).move(payer, payee, Decimal(5))
        uow.session.add(Account(new_id, Decimal(7)))
        uow.session.flush()  # sent (queued with the next statement), not committed
        raise RuntimeError("boom")
    assert balances(engine, [payer, payee, new_id]) == {payer: Decimal(100), payee: Decimal(100)}


def test_the_connection_goes_back_to_the_pool(make_accounts):
    from bank.adapters.database import get_engine

    payer, _ = make_accounts(2, balance=100)
    engine = get_engine()  # the process-wide engine, which the unit of work uses
    before = engine.pool.checkedout()
    for fail in (False, True):
        with pytest.raises(RuntimeError) if fail else nullcontext():
            with SqlAlchemyUnitOfWork() as uow:
                uow.accounts(Account).get(payer)
                assert engine.pool.checkedout() == before + 1
                if fail:
                    raise RuntimeError("boom")
        assert engine.pool.checkedout() == before


def test_rows_put_without_commit_are_not_kept(make_accounts, engine):
    """put_many sends many rows in one call (an executemany): they too wait for commit()."""
    base = make_accounts(1)[0] + 2_000_000_000
    ids = [base, base + 1, base + 2]
    with SqlAlchemyUnitOfWork() as uow:
        assert uow.accounts(Account).put_many(ids, Decimal(5)) == 3
        # no commit()
    assert balances(engine, ids) == {}
    with SqlAlchemyUnitOfWork() as uow:
        uow.accounts(Account).put_many(ids, Decimal(5))
        uow.commit()
    assert balances(engine, ids) == {i: Decimal(5) for i in ids}
