"""What the database answers, named: driver errors become these (``bank.adapters.dberrors``).

No raw driver error reaches a caller. The services retry on some of them
(``bank.services.retry``): a conflict, a connection lost before COMMIT, a COMMIT whose
outcome is unknown.
"""

from __future__ import annotations

from bank.domain.errors import BankError


class ConfigurationError(BankError):
    """The environment does not describe a usable database or setting."""


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


# --- the ledger ------------------------------------------------------------------------


class TransferAlreadyRecorded(BankError):
    """The ledger already holds this ``transfer_id``: the request was sent before.

    Internal: the transfer service answers it with the first outcome (or
    ``TransferIdReused``); it never reaches a caller.
    """


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


class DatabaseAccessDenied(DatabaseError):
    """The database refused the connection itself: authentication (on DSQL the IAM token:
    the function's IAM policy, the role's mapping) or TLS (the CA bundle, the host name).

    Sending the request again cannot help until what it names is fixed: it is never
    retried. The message carries the server's or the TLS library's reason, never a token.
    """


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


class IndexBuildFailed(BankError):
    """DSQL reported that an asynchronous index build job failed."""
