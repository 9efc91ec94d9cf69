"""The deploy-time migration: the function behind the ``DatabaseMigration`` custom resource.

CloudFormation calls it on every Create, Update and Delete of that resource (template.yaml),
asynchronously, through the alias ``live``, whose ``EventInvokeConfig`` allows no retry: a
crash or a timeout is not run again behind the stack's back.

- **Create, Update**, as ``admin``, each step idempotent:
  1. the Alembic migrations to head (``bank.adapters.migrations``: the ``alembic/`` folder
     shipped in this function's artifact, DSQL-safe as ``alembic/env.py`` is). A refused
     connection (``DatabaseAccessDenied``) is tried again for ``ACCESS_RETRY_S``: the
     function's IAM permission was created seconds ago and takes a while to apply;
  2. the application role, mapped to the chapter functions' IAM role and granted what
     ch03-ch06 need (``bank.adapters.roles``);
  3. the tutorial's accounts, when the ``Seed`` property is ``"true"``.
- **Delete**: SUCCESS, and nothing touched. The data stays, or goes with the cluster.
- Any other ``RequestType``, or an event without its ids: FAILED, naming what is wrong.

CloudFormation waits for the answer, a PUT to ``ResponseURL`` (at most 4,096 bytes), for
up to an hour (the template's ``ServiceTimeout`` shortens that). So every event with a
usable ``ResponseURL`` gets one; one without is refused (``InvalidRequest``), and a URL
that takes no answer is ``ResponseNotDelivered``. The work runs in the handler's own
thread, every wait on the database bounded by a deadline ``ANSWER_MARGIN_S`` before the
function's time is up: past it the running statement is cancelled and the answer is
FAILED (``MigrationTimeout``), and nothing of the migration goes on in the frozen
container. Reasons never carry SQL text or parameters: bank's errors do not, and a raw
SQLAlchemy error is reduced to the driver error's name and SQLSTATE.

The database code (SQLAlchemy, psycopg, Alembic) is imported inside the work, so that even
an import error there is answered.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from bank.domain.errors import BankError, InvalidRequest
from bank.handlers.common import logged


class MigrationTimeout(BankError):
    """The deploy-time migration was not done before the function's time ran out.

    Alembic records each revision as it completes: the next deploy goes on from there.
    """

    applied = None


T = TypeVar("T")


class ResponseNotDelivered(BankError):
    """CloudFormation's ``ResponseURL`` did not take the answer (three tries)."""


log = logging.getLogger(__name__)

#: The same for every Create and Update: a new id would make CloudFormation delete the old.
PHYSICAL_ID = "bank-database-schema"
#: Answer FAILED this long before the function's timeout if the work is still running.
ANSWER_MARGIN_S = 30.0
#: Without a Lambda context (a test, a local run): how long the work may take.
DEFAULT_TIME_S = 600.0
#: A refused connection is tried again this long (a new IAM permission spreading).
ACCESS_RETRY_S = 60.0
REQUEST_TYPES = ("Create", "Update", "Delete")
MAX_RESPONSE_BYTES = 4096  # CloudFormation's limit for a custom resource's answer
PUT_TIMEOUT_S = 5.0  # three tries and their pauses: 18 s at most, within the margin
PUT_ATTEMPTS = 3


def reason_of(exc: BaseException) -> str:
    """``Name: message``, without SQL: a SQLAlchemy error names only its driver error."""
    orig = getattr(exc, "orig", None)
    if orig is not None:  # sqlalchemy.exc.DBAPIError: its str() holds the SQL
        return (f"{type(exc).__name__}: {type(orig).__name__} "
                f"(SQLSTATE {getattr(orig, 'sqlstate', None) or 'unknown'})")
    message = str(exc).split("\n[SQL:", 1)[0]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def migrate(properties: dict[str, Any], deadline: float) -> dict[str, str]:
    """Migrations, role and grants, seed: the work of a Create or an Update, every wait on
    the database over by ``deadline`` (``time.monotonic()``)."""
    from bank.adapters import migrations, roles
    from bank.adapters.database import current_deadline, get_engine
    from bank.adapters.settings import get_settings
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.services.retry import RetryPolicy, run
    from bank.services.seed import seed

    token = current_deadline.set(deadline)  # a first use builds the engine, which connects
    try:
        revision = patiently(lambda: migrations.upgrade(get_engine(), deadline=deadline),
                             deadline)
    finally:
        current_deadline.reset(token)
    engine = get_engine()
    role = properties.get("AppRole") or roles.APP_ROLE
    ran = roles.apply(engine, roles.plan(role, properties.get("AppRoleArn") or None,
                                         get_settings().schema),
                      run_statement=lambda statement: run(statement, RetryPolicy(),
                                                          deadline=deadline)[0],
                      deadline=deadline)
    seeded = str(properties.get("Seed", "false")).lower() == "true"
    if seeded:
        seed(lambda **kw: SqlAlchemyUnitOfWork(deadline=deadline))
    return {"Revision": revision or "", "AppRole": role,
            "RoleStatementsRun": str(len(ran)), "Seeded": str(seeded).lower()}


def patiently(work: Callable[[], T], deadline: float) -> T:
    """``work()``, tried again while the database refuses the connection, for
    ``ACCESS_RETRY_S`` at most and never past ``deadline``."""
    from bank.adapters.errors import DatabaseAccessDenied

    give_up = min(deadline, time.monotonic() + ACCESS_RETRY_S)
    pause = 1.0
    while True:
        try:
            return work()
        except DatabaseAccessDenied as exc:
            if time.monotonic() + pause >= give_up:
                raise
            log.warning("the database refused the connection, trying again in %.0f s: %s",
                        pause, exc)
            time.sleep(pause)
            pause = min(2 * pause, 8.0)


def response_url(event: Any) -> str:
    """The event's ``ResponseURL``: without a usable one, no answer can be sent."""
    url = event.get("ResponseURL") if isinstance(event, dict) else None
    try:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequest("not a CloudFormation custom resource event (no usable ResponseURL)")
    return url  # type: ignore[return-value]


def check(event: dict) -> tuple[str, dict]:
    """(RequestType, ResourceProperties) of a well-formed custom resource event."""
    request_type = event.get("RequestType")
    if request_type not in REQUEST_TYPES:
        raise InvalidRequest(f"unknown RequestType {str(request_type)[:40]!r}: "
                             "Create, Update or Delete")
    missing = [key for key in ("StackId", "RequestId", "LogicalResourceId")
               if not isinstance(event.get(key), str) or not event[key]]
    if missing:
        raise InvalidRequest(f"malformed event: no {', '.join(missing)}")
    properties = event.get("ResourceProperties", {})
    if not isinstance(properties, dict):
        raise InvalidRequest("malformed event: ResourceProperties is not an object")
    return str(request_type), properties


def answer(event: dict, url: str, status: str, reason: str = "",
           data: dict | None = None) -> dict:
    """PUT the response CloudFormation waits for to the pre-signed ``url``: well-formed
    whatever the event held, and at most ``MAX_RESPONSE_BYTES``."""
    def text(key: str, limit: int = 256) -> str:
        value = event.get(key)
        return value[:limit] if isinstance(value, str) else ""

    body = {
        "Status": status,
        "Reason": "",
        "PhysicalResourceId": text("PhysicalResourceId") or PHYSICAL_ID,
        "StackId": text("StackId", 512),
        "RequestId": text("RequestId"),
        "LogicalResourceId": text("LogicalResourceId"),
        "NoEcho": False,
        "Data": data or {},
    }
    text_of_reason = (reason or "see the function's log")[:MAX_RESPONSE_BYTES]
    body["Reason"] = text_of_reason
    payload = json.dumps(body).encode()
    while len(payload) > MAX_RESPONSE_BYTES and text_of_reason:  # the Reason gives way
        text_of_reason = text_of_reason[:-(len(payload) - MAX_RESPONSE_BYTES)]
        body["Reason"] = text_of_reason
        payload = json.dumps(body).encode()
    # The URL is pre-signed for an empty Content-Type.
    request = urllib.request.Request(url, data=payload, method="PUT",
                                     headers={"Content-Type": ""})
    for attempt in range(1, PUT_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=PUT_TIMEOUT_S) as response:  # noqa: S310
                response.read()
            break
        except (OSError, ValueError) as exc:
            log.warning("answering CloudFormation failed (attempt %d): %s",
                        attempt, type(exc).__name__)
            if attempt == PUT_ATTEMPTS:
                raise ResponseNotDelivered(
                    f"the ResponseURL took no answer after {PUT_ATTEMPTS} tries "
                    f"({type(exc).__name__})") from None
            time.sleep(attempt)
    return body


@logged
def handler(event: Any, context: Any = None) -> dict:
    url = response_url(event)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining() / 1000.0 if remaining else DEFAULT_TIME_S
    deadline = time.monotonic() + seconds - ANSWER_MARGIN_S
    try:
        request_type, properties = check(event)
        if request_type == "Delete":
            answer(event, url, "SUCCESS", "Delete leaves the database as it is")
            return {"Status": "SUCCESS"}
        try:
            data = migrate(properties, deadline)
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise MigrationTimeout(
                    f"not done {ANSWER_MARGIN_S:.0f} s before the function's timeout "
                    f"({reason_of(exc)}); the revisions applied so far are recorded, the next "
                    "deploy goes on from there") from exc
            raise
    except Exception as exc:  # noqa: BLE001 - answered, never raised: see the docstring
        log.error("database migration failed: %s", reason_of(exc))
        answer(event, url, "FAILED", reason_of(exc))
        return {"Status": "FAILED", "errorType": type(exc).__name__}
    answer(event, url, "SUCCESS", f"migrated to {data['Revision']}", data)
    return {"Status": "SUCCESS"}
