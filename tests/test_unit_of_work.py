"""The unit of work on a real server: its Session, opened at first use, shares its transaction.

A transfer's statements are set-based and run on the unit of work's connection; the ORM
``Session`` is opened only when a repository reads or writes through it, on the same
connection, so it sees the transaction's own writes and commits or rolls back with them.
"""

from __future__ import annotations

from contextlib import nullcontext
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork, session_factory
from bank.domain.model import Account
from tests.conftest import balances


class CountingSession(Session):
    opened = 0

    def __init__(self, *args, **kwargs):
        CountingSession.opened += 1  # sessionmaker makes a subclass: count here
        super().__init__(*args, **kwargs)


@pytest.fixture
def counting(engine):
    """A ``sessionmaker`` like the application's, whose sessions are counted."""
    CountingSession.opened = 0
    app = session_factory(engine)
    return sessionmaker(class_=CountingSession, **app.kw)


def test_a_set_based_transfer_opens_no_session(make_accounts, counting, engine):
    payer, payee = make_accounts(2, balance=100)
    with SqlAlchemyUnitOfWork(sessions=counting) as uow:
        assert uow.accounts(Account).move(payer, payee, Decimal(30)) == Decimal(70)
        uow.commit()
    assert CountingSession.opened == 0
    assert balances(engine, [payer, payee]) == {payer: Decimal(70), payee: Decimal(130)}


def test_the_session_reads_the_unit_of_works_own_writes(make_accounts, counting, engine):
    payer, payee = make_accounts(2, balance=100)
    with SqlAlchemyUnitOfWork(sessions=counting) as uow:
        accounts = uow.accounts(Account)
        accounts.move(payer, payee, Decimal(30))
        assert accounts.get(payer).balance == Decimal(70)  # not yet committed: same transaction
        assert balances(engine, [payer]) == {payer: Decimal(100)}  # others see the old one
        # no commit(): both the move and the session's read are rolled back on exit
    assert CountingSession.opened == 1
    assert balances(engine, [payer, payee]) == {payer: Decimal(100), payee: Decimal(100)}


def test_the_sessions_writes_commit_with_the_set_based_ones(make_accounts, counting, engine):
    payer, payee = make_accounts(2, balance=100)
    new_id = make_accounts(1)[0] + 1_000_000_000  # an id nobody uses
    with SqlAlchemyUnitOfWork(sessions=counting) as uow:
        uow.accounts(Account).move(payer, payee, Decimal(5))
        uow.session.add(Account(new_id, Decimal(7)))  # flushed in commit()'s round trip
        uow.commit()
    assert balances(engine, [payer, new_id]) == {payer: Decimal(95), new_id: Decimal(7)}


def test_the_connection_goes_back_to_the_pool(make_accounts, counting, engine):
    payer, payee = make_accounts(2, balance=100)
    pool = counting.kw["bind"].pool
    before = pool.checkedout()
    for fail in (False, True):
        with pytest.raises(RuntimeError) if fail else nullcontext():
            with SqlAlchemyUnitOfWork(sessions=counting) as uow:
                uow.accounts(Account).get(payer)  # opens the session too
                if fail:
                    raise RuntimeError("boom")
        assert pool.checkedout() == before



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
