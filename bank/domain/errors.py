"""The domain's errors: a request that cannot be served, a rule of a transfer broken.

Every error this application raises on purpose is a ``BankError``; each layer names its
own (``bank.adapters.errors``: what the database answers; ``bank.services.errors``: what
the services conclude; ``bank.kit.errors``: the developer kit's). Lambda reports the class
name as ``errorType``: the names are the API. Each says whether the request certainly
changed nothing (``applied = False``, so sending it again is safe) and whether trying again
later may succeed (``retryable``). Errors are classified by type or SQLSTATE, never by
message text, and no message carries SQL text or parameters.
"""

from __future__ import annotations


class BankError(Exception):
    """Base class of every error this application raises on purpose."""

    #: Trying the same request again later may succeed.
    retryable = False
    #: False: the request certainly changed nothing. None: unknown (see the subclass).
    applied: bool | None = False


# --- the request -----------------------------------------------------------------------


class InvalidRequest(BankError):
    """The event is malformed: a field is missing, of the wrong type or out of range."""


class UnknownOperation(InvalidRequest):
    """The event names no operation of the ch07 lab."""


# --- the rules of a transfer -----------------------------------------------------------


class AccountNotFound(BankError):
    """An account named by the request does not exist."""


class InsufficientFunds(BankError):
    """The payer's balance would go below zero."""


class TransferIdReused(BankError):
    """A ``transfer_id`` that already names a different transfer (payer, payee or amount)."""
