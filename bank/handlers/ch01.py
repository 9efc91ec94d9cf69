"""ch01: hello Lambda. ``{"name": "reinvent"}`` -> ``{"greeting": "hello reinvent"}``."""

from bank.domain.errors import InvalidRequest
from bank.domain.requests import field, kind, require_object
from bank.handlers.common import logged


@logged
def handler(event, context=None):
    name = field(require_object(event), "name")
    if not isinstance(name, str):
        raise InvalidRequest(f"'name' must be a string, got {kind(name)}")
    return {"greeting": f"hello {name}"}
