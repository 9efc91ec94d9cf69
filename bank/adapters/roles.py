"""The application's database role: created, mapped to an IAM role, granted the least it needs.

Run at deploy time by the migration custom resource (``bank.handlers.migrate``), as
``admin``. The chapter functions ch03-ch06 connect as this role (``DB_USER``), with
``dsql:DbConnect`` only. What they do, and so what the role may do:

- ch03 reads a balance: SELECT on ``accounts``;
- ch04 and ch05 move money with ``UPDATE ... RETURNING`` on ``accounts`` (SELECT, UPDATE)
  and record each transfer in ``transfers``, read back by its id (SELECT, INSERT);
- ch06 does the same on ``accounts2``.

No DELETE, no TRUNCATE, no DDL. ch07 rebuilds its table and its indexes, which only the
table's owner may do: it connects as ``admin`` (see ``template.yaml``).

Aurora DSQL's rules: each statement runs on an AUTOCOMMIT connection, so each is a
transaction of its own (one DDL statement per transaction, never beside DML), and a
statement refused by a concurrent schema change (OC001, SQLSTATE 40001) runs again.
``AWS IAM GRANT`` exists only on DSQL (strict mode emulates it locally); on plain
PostgreSQL that step is left out. Idempotent: the
role and the IAM mapping are created only when missing (``pg_roles``,
``sys.iam_pg_role_mappings``); granting a privilege the role holds changes nothing.

Role and schema names and the ARN cannot be bound parameters in these statements: they are
checked against strict patterns instead, so no quote or separator reaches the SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from bank.adapters import orm
from bank.adapters.database import connection_until
from bank.adapters.ddl import DSQL_DIALECT
from bank.adapters.errors import ConfigurationError

#: The role the chapter functions connect as (``DB_USER`` in template.yaml).
APP_ROLE = "bank_app"

#: (privileges, tables): what ch03-ch06 need, and nothing else.
APP_GRANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SELECT, UPDATE", (orm.accounts.name, orm.accounts2.name)),
    ("SELECT, INSERT", (orm.transfers.name,)),
)

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# arn:<partition>:iam::<account>:role/<path/><name>, IAM's own character set.
_IAM_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")


@dataclass(frozen=True)
class Step:
    """One statement; skipped when ``done_if`` (a query, with ``params``) returns a row."""

    sql: str
    done_if: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    dsql_only: bool = False


def identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(f"{what} must be a lower-case SQL identifier, got {name!r}")
    return name


def iam_role_arn(arn: str) -> str:
    if not _IAM_ROLE_ARN.fullmatch(arn):
        raise ConfigurationError(f"not an IAM role ARN: {arn[:200]!r}")
    return arn


def plan(role: str, iam_arn: str | None, schema: str | None = None) -> list[Step]:
    """The statements that give ``role`` (mapped to ``iam_arn``, if any) its privileges.

    ``schema``: where the tables are, when not ``public`` (whose USAGE every role has).
    """
    role = identifier(role, "the application role")
    steps = [Step(f"CREATE ROLE {role} WITH LOGIN",
                  done_if="SELECT 1 FROM pg_roles WHERE rolname = :role",
                  params={"role": role})]
    if iam_arn is not None:
        arn = iam_role_arn(iam_arn)
        steps.append(Step(
            f"AWS IAM GRANT {role} TO '{arn}'",
            done_if="SELECT 1 FROM sys.iam_pg_role_mappings "
                    "WHERE pg_role_name = :role AND arn = :arn",
            params={"role": role, "arn": arn}, dsql_only=True,
        ))
    if schema is not None and schema != "public":
        steps.append(Step(f"GRANT USAGE ON SCHEMA {identifier(schema, 'the schema')} TO {role}"))
    for privileges, tables in APP_GRANTS:
        steps.append(Step(f"GRANT {privileges} ON {', '.join(tables)} TO {role}"))
    return steps


def apply(engine: Engine, steps: list[Step],
          run_statement: Callable[[Callable[[], bool]], bool] = lambda statement: statement(),
          deadline: float | None = None) -> list[str]:
    """Run the steps that are not done yet, each in its own transaction; their SQL.

    ``run_statement`` runs one step, retrying it as the caller decides (the migration
    handler passes the project's retry loop: OC001 after a concurrent schema change).
    Nothing runs past ``deadline`` (``time.monotonic()``).
    """
    dsql = engine.dialect.name == DSQL_DIALECT
    ran = []
    for step in steps:
        if step.dsql_only and not dsql:
            continue

        def attempt(step: Step = step) -> bool:
            with connection_until(engine, deadline, isolation_level="AUTOCOMMIT") as conn:
                if step.done_if and conn.execute(text(step.done_if), step.params).first():
                    return False
                conn.exec_driver_sql(step.sql)  # as written: no bind-parameter parsing
                return True

        if run_statement(attempt):
            ran.append(step.sql)
    return ran
