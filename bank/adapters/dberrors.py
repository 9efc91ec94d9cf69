"""Driver errors, translated into the named errors of ``bank.adapters.errors``.

One function, ``translate``, decides by exception type and SQLSTATE what a psycopg error
means for the caller. Every engine installs it as its ``handle_error`` hook
(``bank.adapters.database``), so no raw driver error, and no SQL text or parameters,
reaches a caller.

One exception to "never by message text": a connection the server (or TLS) refuses
during start-up. libpq reports those only as text, without a SQLSTATE (psycopg's error has
none), so ``refusal`` reads libpq's message for a few fixed markers, in this one place.
"""

from __future__ import annotations

import psycopg
from sqlalchemy.exc import DBAPIError

from bank.adapters.errors import (
    CommitOutcomeUnknown,
    DatabaseAccessDenied,
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
    SchemaNotMigrated,
    TransactionConflict,
    TransferAlreadyRecorded,
    ValueOutOfRange,
)
from bank.domain.errors import BankError

#: Conflicts: DSQL's OC000/OC001 (40001, at COMMIT; strict mode answers alike). Without strict
#: mode local PostgreSQL raises 40001 at the statement, and may report a deadlock (40P01) or
#: give up a lock wait (55P03); in strict mode only what still waits there (a key another open
#: transaction inserted, DDL against a table in use) can end in 55P03.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: The server is going away or refusing new work (admin shutdown, crash, too many clients).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "53400"})


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, bare or wrapped by SQLAlchemy (``.orig``)."""
    for candidate in (exc, getattr(exc, "orig", None)):
        state = getattr(candidate, "sqlstate", None)
        if state:
            return str(state)
    return None


#: What libpq says when the server refused the login (the markers of PostgreSQL's and
#: DSQL's authentication refusals), and when TLS refused the server (or the server, TLS).
_AUTHENTICATION_REFUSED = ("password authentication failed", "access denied",
                           "authentication failed", "no pg_hba.conf entry",
                           "does not exist", "permission denied", "token")
_TLS_REFUSED = ("SSL", "certificate", "TLS")
_AUTHENTICATION_HINT = ("check the function's IAM policy (dsql:DbConnectAdmin for admin, "
                        "dsql:DbConnect for another role, on this cluster) and, for a role "
                        "other than admin, its mapping (AWS IAM GRANT <role> TO '<role arn>')")
_TLS_HINT = ("check the CA bundle (sslrootcert: the Amazon roots shipped with the "
             "application) and that the endpoint's host name is the cluster's")


def refusal(error: psycopg.Error) -> DatabaseAccessDenied | None:
    """The named refusal, if ``error`` is a connection the server or TLS refused."""
    if error.sqlstate is not None or not isinstance(error, psycopg.OperationalError):
        return None
    message = str(error).strip()
    fatal = message.partition("FATAL:")[2].strip()
    if fatal and any(marker in fatal for marker in _AUTHENTICATION_REFUSED):
        return DatabaseAccessDenied(
            f"the database refused the connection: {fatal.splitlines()[0]}; "
            f"{_AUTHENTICATION_HINT}", "28000")
    if not fatal and any(marker in message for marker in _TLS_REFUSED):
        reason = message.rpartition(" failed: ")[2].splitlines()[0] or message
        return DatabaseAccessDenied(
            f"the TLS connection to the database was refused: {reason}; {_TLS_HINT}")
    return None


def is_connection_failure(error: psycopg.Error) -> bool:
    """The connection failed, rather than the statement: no answer from the server."""
    state = error.sqlstate
    if state is None:
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith("08") or state in _UNAVAILABLE_SQLSTATES


def translate(exc: BaseException, *, during_commit: bool = False) -> BankError | None:
    """The named error for a driver error; None if ``exc`` is not a database error.

    ``during_commit``: the error interrupted COMMIT. A lost connection then leaves the
    outcome unknown (``CommitOutcomeUnknown``), where before COMMIT it certainly rolled
    back (``DatabaseUnavailable``). An error the server itself reported is never unknown:
    the transaction did not commit.
    """
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, BankError):
        return error
    if not isinstance(error, psycopg.Error):
        return None
    state = error.sqlstate
    primary = error.diag.message_primary if state else None
    if state in CONFLICT_SQLSTATES:
        return TransactionConflict(
            f"change conflicts with another transaction, please retry "
            f"(SQLSTATE {state}{': ' + primary if primary else ''})",
            state,
        )
    refused = refusal(error)
    if refused is not None:
        return refused
    if is_connection_failure(error):
        what = f"SQLSTATE {state}" if state else type(error).__name__
        if during_commit:
            return CommitOutcomeUnknown(
                f"the connection failed during COMMIT ({what}): the outcome is unknown", state
            )
        return DatabaseUnavailable(
            f"the database connection failed ({what}); nothing was committed", state
        )
    if state == "57014":  # query_canceled: statement_timeout, or the deadline watchdog
        return DatabaseTimeout("the statement ran out of time; nothing was committed", state)
    if state in ("42P01", "3F000"):  # undefined_table, invalid_schema_name
        return SchemaNotMigrated(
            f"the database is not migrated ({primary}): run `alembic upgrade head` "
            "(or `bank tutorial`, which also does it)", state,
        )
    if state == "23505" and error.diag.constraint_name == "transfers_pkey":
        return TransferAlreadyRecorded("this transfer_id is already in the ledger")
    if state == "22003":
        return ValueOutOfRange("a value does not fit its column (SQLSTATE 22003)", state)
    return DatabaseError(
        f"the database refused the statement ({type(error).__name__}, SQLSTATE {state})", state
    )
