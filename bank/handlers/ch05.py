"""ch05: ch04 plus automatic retry of optimistic-concurrency conflicts (SQLSTATE 40001)."""

from bank.domain.model import Account
from bank.handlers.common import transfer_handler

# The shared handler: parse the event, run the transfer service in a unit of work, answer
# (bank/handlers/common.py). What this chapter changes is in the arguments.
handler = transfer_handler("ch05", Account)
