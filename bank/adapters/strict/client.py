"""psycopg 3 cursors that speak DSQL's ``CREATE INDEX ASYNC`` to a local PostgreSQL.

PostgreSQL cannot parse ``ASYNC``, so these cursors rewrite, before sending:

- ``CREATE [UNIQUE] INDEX ASYNC [IF NOT EXISTS] name ON t (...) [INCLUDE (...)] ...`` into
  ``SELECT job_id FROM sys.create_index_async('CREATE [UNIQUE] INDEX ...')``, which builds
  the index and answers one row with a ``job_id`` column, as DSQL does (``sys.sql``);
- ``ALTER TABLE ASYNC t VALIDATE CONSTRAINT c`` into
  ``SELECT job_id FROM sys.alter_table_async('ALTER TABLE t VALIDATE CONSTRAINT c')``;
- ``AWS IAM GRANT role TO 'arn'`` / ``AWS IAM REVOKE role FROM 'arn'`` into
  ``SELECT sys.aws_iam_grant('role', 'arn')`` / ``sys.aws_iam_revoke``.

Every other statement passes through untouched. The test costs a few string operations:
only a statement that starts with ``CREATE`` or ``ALTER`` is looked at further, and those
answers are cached per SQL string.

Use::

    psycopg.connect(url, cursor_factory=StrictCursor)
    create_engine(url, connect_args={"cursor_factory": StrictCursor})  # SQLAlchemy

(``StrictClientCursor`` for client-side binding.) With SQLAlchemy's plain
``postgresql+psycopg`` dialect also pass ``use_native_hstore=False``: its hstore probe
opens a SAVEPOINT, which strict mode refuses as DSQL does.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import psycopg

_CREATE_INDEX_ASYNC = re.compile(
    r"\A\s*(CREATE\s+(?:UNIQUE\s+)?INDEX)\s+ASYNC\b(.*?)[\s;]*\Z", re.IGNORECASE | re.DOTALL
)
_AWS_IAM = re.compile(
    r"\A\s*AWS\s+IAM\s+(GRANT|REVOKE)\s+(\w+)\s+(?:TO|FROM)\s+'([^']*)'[\s;]*\Z", re.IGNORECASE
)
_ALTER_TABLE_ASYNC = re.compile(
    r"\A\s*(ALTER\s+TABLE)\s+ASYNC\b(.*?)[\s;]*\Z", re.IGNORECASE | re.DOTALL
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@lru_cache(maxsize=512)
def _rewrite_ddl(sql: str) -> str:
    m = _AWS_IAM.match(sql)
    if m:
        verb, role, arn = m.group(1).lower(), m.group(2), m.group(3)
        return f"SELECT sys.aws_iam_{verb}({_literal(role)}, {_literal(arn)})"
    m = _CREATE_INDEX_ASYNC.match(sql)
    if m:
        statement = m.group(1) + m.group(2)
        return f"SELECT job_id FROM sys.create_index_async({_literal(statement)})"
    m = _ALTER_TABLE_ASYNC.match(sql)
    if m and re.search(r"\bVALIDATE\s+CONSTRAINT\b", m.group(2), re.IGNORECASE):
        statement = m.group(1) + m.group(2)
        return f"SELECT job_id FROM sys.alter_table_async({_literal(statement)})"
    return sql


def rewrite(query: Any) -> Any:
    """``query`` with DSQL's ASYNC forms rewritten; anything else returned as is."""
    if not isinstance(query, str):
        return query
    head = query[:32].lstrip()[:6].upper()
    if head != "CREATE" and head[:5] != "ALTER" and head[:3] != "AWS":
        return query
    return _rewrite_ddl(query)


class StrictCursor(psycopg.Cursor):
    """A psycopg ``Cursor`` that rewrites DSQL's ``CREATE INDEX ASYNC`` (see module doc)."""

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        return super().execute(rewrite(query), params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):  # type: ignore[override]
        return super().executemany(rewrite(query), params_seq, **kwargs)


class StrictClientCursor(psycopg.ClientCursor):
    """The same for psycopg's ``ClientCursor`` (client-side parameter binding)."""

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        return super().execute(rewrite(query), params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):  # type: ignore[override]
        return super().executemany(rewrite(query), params_seq, **kwargs)
