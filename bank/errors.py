"""One exception hierarchy. Lambda reports the class name as ``errorType``: the names are the API.

Classify by type or SQLSTATE, never by message text.
"""

from __future__ import annotations


class BankError(Exception):
    """Base class of every error this application raises on purpose."""


class ConfigurationError(BankError):
    """The environment does not describe a usable database or setting."""


class EmbeddedDatabaseError(BankError):
    """The embedded PostgreSQL could not be started, stopped or reached."""


class InvalidRequest(BankError):
    """The event is malformed: a field is missing, of the wrong type or out of range."""


class AccountNotFound(BankError):
    """An account named by the request does not exist."""


class InsufficientFunds(BankError):
    """The payer's balance would go below zero."""


class TransactionConflict(BankError):
    """An optimistic-concurrency conflict (SQLSTATE 40001) that was not retried (ch04)."""

    sqlstate = "40001"  # a conflict like any other: ch05's retry loop retries it


class ConflictRetriesExhausted(BankError):
    """Every attempt of the transaction conflicted; the caller may retry later."""

    retryable = True

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class BatchTooLarge(InvalidRequest):
    """A load batch above DSQL's limit of 3,000 rows modified per transaction."""


class LoadFailed(BankError):
    """A bulk load stopped on an error; the rows committed before it are kept, their ids written."""
