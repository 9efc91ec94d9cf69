"""The developer kit's errors: the embedded server, strict mode, the tools."""

from __future__ import annotations

from bank.domain.errors import BankError, InvalidRequest


class EmbeddedDatabaseError(BankError):
    """The embedded PostgreSQL could not be started, stopped or reached."""


class PortInUse(EmbeddedDatabaseError):
    """Another program holds the embedded server's port; the server does not move."""


class EndpointError(BankError):
    """The local DSQL endpoint could not be set up or reach the server behind it."""


class StrictModeUnavailable(BankError):
    """Strict mode cannot be built for this server: a compiler or the server headers lack."""


class BatchTooLarge(InvalidRequest):
    """A load batch above DSQL's limit of 3,000 rows modified per transaction."""


class LoadFailed(BankError):
    """A bulk load stopped on an error; the rows committed before it are kept, their ids written."""


class UnknownFunction(BankError):
    """The name matches no function of template.yaml."""


class TutorialStepFailed(BankError):
    """A step of ``bank tutorial`` did not do what it shows: the tutorial stops there."""
