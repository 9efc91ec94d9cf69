"""What the services need from storage: a unit of work and its repositories.

Services depend on these protocols only, never on an engine, a connection or a driver.
``bank.adapters.unit_of_work.SqlAlchemyUnitOfWork`` implements them on a real database;
the service tests use an in-memory fake (``tests/fakes.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol, Self

from bank.domain.model import AccountKind, Transfer


class Accounts(Protocol):
    """The accounts of one kind (``Account`` or ``UuidAccount``)."""

    def get(self, account_id: Any) -> Any: ...

    def get_many(self, ids: Iterable[Any]) -> dict[Any, Any]:
        """The accounts of these ids that exist, by id."""

    def move(self, payer_id: Any, payee_id: Any, amount: Decimal) -> Decimal | None:
        """Move ``amount`` if both accounts exist and the payer can pay; the payer's balance
        after, or None if nothing moved."""

    def put_many(self, ids: Iterable[Any], balance: Decimal) -> int: ...

    def create_many(self, count: int, balance: Decimal) -> list[str]: ...

    def exists(self, account_id: Any) -> bool: ...

    def total(self, ids: Sequence[Any]) -> tuple[int, Decimal]: ...


class Ledger(Protocol):
    """Applied transfers, by ``transfer_id``."""

    def add(self, transfer: Transfer) -> None: ...

    def get(self, transfer_id: uuid.UUID) -> Transfer | None: ...

    def count(self, ids: Sequence[uuid.UUID]) -> int: ...


class UnitOfWork(Protocol):
    """One transaction: nothing is kept unless ``commit()`` is called inside the block."""

    @property
    def transfers(self) -> Ledger: ...

    def accounts(self, kind: AccountKind) -> Accounts: ...

    def commit(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...


#: Makes a fresh unit of work; ``deadline`` (``time.monotonic()``) bounds its waits.
UnitOfWorkFactory = Callable[..., UnitOfWork]
