"""What the services conclude, beyond what the database answered (``bank.adapters.errors``)."""

from __future__ import annotations

from bank.adapters.errors import CommitOutcomeUnknown
from bank.domain.errors import BankError


class ConflictRetriesExhausted(BankError):
    """Every attempt of the transaction conflicted; nothing was applied, retry later."""

    retryable = True

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class TransferOutcomeUnknown(CommitOutcomeUnknown):
    """COMMIT's reply was lost and the ledger could not be read to settle it.

    Send the same request again with the same ``transfer_id``: the ledger makes that safe,
    it either returns the first outcome or applies the transfer once.
    """
