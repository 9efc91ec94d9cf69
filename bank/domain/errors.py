"""One exception hierarchy. Lambda reports the class name as ``errorType``: the names are the API.

Every failure a caller can see is one of these, never a raw driver error. Each says
whether the request certainly changed nothing (``applied = False``, so sending it again
is safe) and whether trying again later may succeed (``retryable``). Errors are classified
by type or SQLSTATE, never by message text, and no message carries SQL text or parameters.
"""

from __future__ import annotations


class BankError(Exception):
    """Base class of every error this application raises on purpose."""

    #: Trying the same request again later may succeed.
    retryable = False
    #: False: the request certainly changed nothing. None: unknown (see the subclass).
    applied: bool | None = False


class ConfigurationError(BankError):
    """The environment does not describe a usable database or setting."""


class EmbeddedDatabaseError(BankError):
    """The embedded PostgreSQL could not be started, stopped or reached."""


class PortInUse(EmbeddedDatabaseError):
    """Another program holds the embedded server's port; the server does not move."""


# --- the request -----------------------------------------------------------------------


class InvalidRequest(BankError):
    """The event is malformed: a field is missing, of the wrong type or out of range."""


class BatchTooLarge(InvalidRequest):
    """A load batch above DSQL's limit of 3,000 rows modified per transaction."""


class UnknownOperation(InvalidRequest):
    """The event names no operation of the ch07 lab."""


# --- the rules of a transfer -----------------------------------------------------------


class AccountNotFound(BankError):
    """An account named by the request does not exist."""


class InsufficientFunds(BankError):
    """The payer's balance would go below zero."""


class TransferIdReused(BankError):
    """A ``transfer_id`` that already names a different transfer (payer, payee or amount)."""


class TransferAlreadyRecorded(BankError):
    """The ledger already holds this ``transfer_id``: the request was sent before.

    Internal: the transfer service answers it with the first outcome (or
    ``TransferIdReused``); it never reaches a caller.
    """


# --- optimistic concurrency ------------------------------------------------------------


class TransactionConflict(BankError):
    """An optimistic-concurrency conflict (SQLSTATE 40001) that was not retried (ch04).

    Locally, a deadlock (40P01) and a lock wait that timed out (55P03) count as
    conflicts too: Aurora DSQL has neither, it reports the conflict at COMMIT instead.
    The transaction was rolled back: nothing was applied.
    """

    retryable = True

    def __init__(self, message: str, sqlstate: str = "40001"):
        super().__init__(message)
        self.sqlstate = sqlstate


class ConflictRetriesExhausted(BankError):
    """Every attempt of the transaction conflicted; nothing was applied, retry later."""

    retryable = True

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


# --- the database, as infrastructure ---------------------------------------------------


class DatabaseError(BankError):
    """The database refused or failed a statement for a reason that is not a business rule.

    The message names the SQLSTATE, never the SQL text or its parameters.
    """

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


class DatabaseUnavailable(DatabaseError):
    """No connection, or the connection was lost before COMMIT: nothing was applied."""

    retryable = True


class DatabaseTimeout(DatabaseError):
    """A connect, statement or lock wait ran out of time before COMMIT: nothing was applied."""

    retryable = True


class ValueOutOfRange(DatabaseError):
    """A value does not fit its column (SQLSTATE 22003): e.g. a balance beyond numeric(18,6)."""


class SchemaNotMigrated(DatabaseError):
    """The database has no such table yet: run ``alembic upgrade head`` (or ``bank tutorial``)."""


class CommitOutcomeUnknown(DatabaseError):
    """The connection failed during COMMIT: the transaction may or may not have committed.

    Services settle it by looking the work up (a transfer by its ``transfer_id``) instead
    of guessing. It reaches a caller only when even that lookup failed.
    """

    retryable = True
    applied = None


class TransferOutcomeUnknown(CommitOutcomeUnknown):
    """COMMIT's reply was lost and the ledger could not be read to settle it.

    Send the same request again with the same ``transfer_id``: the ledger makes that safe,
    it either returns the first outcome or applies the transfer once.
    """


# --- tools -----------------------------------------------------------------------------


class MigrationTimeout(BankError):
    """The deploy-time migration was not done before the function's time ran out.

    Alembic records each revision as it completes: the next deploy goes on from there.
    """

    applied = None


class LoadFailed(BankError):
    """A bulk load stopped on an error; the rows committed before it are kept, their ids written."""
