"""ch06: ch05 on ``accounts2``, whose keys are UUIDs (strings in the event)."""

from bank.domain.model import UuidAccount
from bank.handlers.common import transfer_handler

# The shared handler: parse the event, run the transfer service in a unit of work, answer
# (bank/handlers/common.py). What this chapter changes is in the arguments.
handler = transfer_handler("ch06", UuidAccount, uuid_ids=True)
