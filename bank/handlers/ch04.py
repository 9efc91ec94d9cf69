"""ch04: a transfer in one transaction over a reused connection, without retry.

Under contention a conflict surfaces as ``TransactionConflict``: the point of ch05.
(A pooled connection found dead is still replaced, and a lost COMMIT reply settled by
the ledger: those are not conflicts.)
"""

from bank.domain.model import Account
from bank.handlers.common import transfer_handler

# The shared handler: parse the event, run the transfer service in a unit of work, answer
# (bank/handlers/common.py). What this chapter changes is in the arguments.
handler = transfer_handler("ch04", Account, retry_conflicts=False)
