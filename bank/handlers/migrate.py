"""The deploy-time migration: the function behind the ``DatabaseMigration`` custom resource.

CloudFormation calls it on every Create, Update and Delete of that resource (template.yaml).

- **Create, Update**, as ``admin``, each step idempotent:
  1. the Alembic migrations to head (``bank.adapters.migrations``: the ``alembic/`` folder
     shipped in this function's artifact, DSQL-safe as ``alembic/env.py`` is);
  2. the application role, mapped to the chapter functions' IAM role and granted what
     ch03-ch06 need (``bank.adapters.roles``);
  3. the tutorial's accounts, when the ``Seed`` property is ``"true"``.
- **Delete**: SUCCESS, and nothing touched. The data stays, or goes with the cluster.

CloudFormation waits for the answer, a PUT to ``ResponseURL``, for up to an hour (the
template's ``ServiceTimeout`` shortens that). So the function always answers, and before
Lambda stops it: the work runs in a thread, and when it is not done ``ANSWER_MARGIN_S``
before the function's time is up, the answer is FAILED (``MigrationTimeout``). Any
exception is a FAILED answer too, its Reason the error's class name and message. bank's
errors never carry SQL text or parameters; a raw SQLAlchemy error (whose text does) is
reduced to the driver error's name and SQLSTATE.

The database code (SQLAlchemy, psycopg, Alembic) is imported inside the work, so that even
an import error there is answered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from typing import Any

from bank.domain.errors import BankError, InvalidRequest
from bank.handlers.common import logged


class MigrationTimeout(BankError):
    """The deploy-time migration was not done before the function's time ran out.

    Alembic records each revision as it completes: the next deploy goes on from there.
    """

    applied = None

log = logging.getLogger(__name__)

#: The same for every Create and Update: a new id would make CloudFormation delete the old.
PHYSICAL_ID = "bank-database-schema"
#: Answer FAILED this long before the function's timeout if the work is still running.
ANSWER_MARGIN_S = 30.0
#: Without a Lambda context (a test, a local run): how long the work may take.
DEFAULT_TIME_S = 600.0
MAX_REASON = 1000  # CloudFormation takes responses up to 4 KB
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


def migrate(properties: dict[str, Any]) -> dict[str, str]:
    """Migrations, role and grants, seed: the work of a Create or an Update."""
    from bank.adapters import migrations, roles
    from bank.adapters.database import get_engine
    from bank.adapters.settings import get_settings
    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.services.seed import seed

    engine = get_engine()
    revision = migrations.upgrade(engine)
    role = properties.get("AppRole") or roles.APP_ROLE
    from bank.services.retry import RetryPolicy, run

    ran = roles.apply(engine, roles.plan(role, properties.get("AppRoleArn") or None,
                                         get_settings().schema),
                      run_statement=lambda statement: run(statement, RetryPolicy())[0])
    seeded = str(properties.get("Seed", "false")).lower() == "true"
    if seeded:
        seed(SqlAlchemyUnitOfWork)
    return {"Revision": revision or "", "AppRole": role,
            "RoleStatementsRun": str(len(ran)), "Seeded": str(seeded).lower()}


def run_in_time(work: Any, seconds: float) -> dict[str, str]:
    """``work()`` in a thread; its result, its exception, or ``MigrationTimeout``."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["data"] = work()
        except BaseException as exc:  # noqa: BLE001 - every failure must be answered
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="migrate", daemon=True)
    worker.start()
    worker.join(max(0.0, seconds))
    if worker.is_alive():
        raise MigrationTimeout(
            f"not done {ANSWER_MARGIN_S:.0f} s before the function's timeout; the revisions "
            "applied so far are recorded, the next deploy goes on from there"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["data"]


def answer(event: dict, status: str, reason: str = "", data: dict | None = None) -> dict:
    """PUT the response CloudFormation waits for to the pre-signed ``ResponseURL``."""
    body = {
        "Status": status,
        "Reason": (reason or "see the function's log")[:MAX_REASON],
        "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": data or {},
    }
    payload = json.dumps(body).encode()
    # The URL is pre-signed for an empty Content-Type.
    request = urllib.request.Request(event["ResponseURL"], data=payload, method="PUT",
                                     headers={"Content-Type": ""})
    for attempt in range(1, PUT_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=PUT_TIMEOUT_S) as response:  # noqa: S310
                response.read()
            break
        except OSError as exc:
            log.warning("answering CloudFormation failed (attempt %d): %s",
                        attempt, type(exc).__name__)
            if attempt == PUT_ATTEMPTS:
                raise
            time.sleep(attempt)
    return body


@logged
def handler(event: Any, context: Any = None) -> dict:
    if not isinstance(event, dict) or not event.get("ResponseURL"):
        raise InvalidRequest("not a CloudFormation custom resource event (no ResponseURL)")
    try:
        if event.get("RequestType") == "Delete":
            answer(event, "SUCCESS", "Delete leaves the database as it is")
            return {"Status": "SUCCESS"}
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        seconds = remaining() / 1000.0 if remaining else DEFAULT_TIME_S
        data = run_in_time(lambda: migrate(event["ResourceProperties"]),
                           seconds - ANSWER_MARGIN_S)
    except Exception as exc:  # noqa: BLE001 - answered, never raised: see the docstring
        log.error("database migration failed: %s", reason_of(exc))
        answer(event, "FAILED", reason_of(exc))
        return {"Status": "FAILED", "errorType": type(exc).__name__}
    answer(event, "SUCCESS", f"migrated to {data['Revision']}", data)
    return {"Status": "SUCCESS"}
