"""psycopg 3 cursors that speak DSQL's ``CREATE INDEX ASYNC`` to a local PostgreSQL.

PostgreSQL cannot parse ``ASYNC``, so these cursors rewrite, before sending:

- ``CREATE [UNIQUE] INDEX ASYNC [IF NOT EXISTS] name ON t (...) [INCLUDE (...)] ...`` into
  ``SELECT job_id FROM sys.create_index_async('CREATE [UNIQUE] INDEX ...')``, which builds
  the index and answers one row with a ``job_id`` column, as DSQL does (``sys.sql``);
- ``ALTER TABLE ASYNC t VALIDATE CONSTRAINT c`` into
  ``SELECT job_id FROM sys.alter_table_async('ALTER TABLE t VALIDATE CONSTRAINT c')``;
- ``AWS IAM GRANT role TO 'arn'`` / ``AWS IAM REVOKE role FROM 'arn'`` into
  ``SELECT sys.aws_iam_grant('role', 'arn')`` / ``sys.aws_iam_revoke``.

The same forms are rewritten inside a multi-statement query (``psql -c 'a; b'``, or one
``execute()`` of several statements without parameters), statement by statement, so that
``CREATE TABLE t (...); CREATE INDEX ASYNC i ON t (...)`` reaches the server whole and is
refused as DSQL refuses it (two DDL in one transaction), and ``BEGIN; CREATE INDEX ASYNC
...; COMMIT`` runs. A rewritten statement reports DSQL's command tag (``CREATE INDEX``,
``ALTER TABLE``) in ``cursor.statusmessage``, not the ``SELECT 1`` of the call it became.

The rewriting itself is ``bank.kit.strict.rewrite``'s, shared with the local DSQL
endpoint (``bank.kit.endpoint``), which applies it to every client. What is left for these
cursors: direct connections, where no endpoint is in between, of bank's own psycopg 3
engines on a local server (``bank.kit.strict.engine``) and of psycopg 3 code that opts in.
No server module can do it instead: PostgreSQL's raw parser refuses ``ASYNC`` (42601)
before any hook sees the statement (docs/strict-mode.md). Every other statement
passes through untouched. The test costs a few string operations:
only a statement that starts with ``CREATE``, ``ALTER`` or ``AWS``, or that holds a ``;``,
is looked at further, and those answers are cached per SQL string.

Use::

    psycopg.connect(url, cursor_factory=StrictCursor)
    create_engine(url, connect_args={"cursor_factory": StrictCursor})  # SQLAlchemy

(``StrictClientCursor`` for client-side binding.) With SQLAlchemy's plain
``postgresql+psycopg`` dialect also pass ``use_native_hstore=False``: its hstore probe
opens a SAVEPOINT, which strict mode refuses as DSQL does.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bank.kit.strict.rewrite import is_candidate, rewrite, rewrite_with_tags

__all__ = ["StrictClientCursor", "StrictCursor", "rewrite"]


class _DsqlTags:
    """Rewrites before sending, and reports DSQL's command tag for a rewritten statement."""

    _dsql_tags: tuple[str | None, ...] = ()
    _dsql_result = 0

    def _prepare(self, query: Any) -> Any:
        self._dsql_result = 0
        if not isinstance(query, str) or not is_candidate(query):
            self._dsql_tags = ()
            return query
        query, self._dsql_tags = rewrite_with_tags(query)
        return query

    def nextset(self):  # type: ignore[no-untyped-def]
        more = super().nextset()  # type: ignore[misc]
        if more:
            self._dsql_result += 1
        return more

    @property
    def statusmessage(self) -> str | None:
        tags, i = self._dsql_tags, self._dsql_result
        if i < len(tags) and tags[i] is not None and super().statusmessage is not None:  # type: ignore[misc]
            return tags[i]
        return super().statusmessage  # type: ignore[misc]


class StrictCursor(_DsqlTags, psycopg.Cursor):
    """A psycopg ``Cursor`` that rewrites DSQL's ``CREATE INDEX ASYNC`` (see module doc)."""

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        return super().execute(self._prepare(query), params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):  # type: ignore[override]
        return super().executemany(self._prepare(query), params_seq, **kwargs)


class StrictClientCursor(_DsqlTags, psycopg.ClientCursor):
    """The same for psycopg's ``ClientCursor`` (client-side parameter binding)."""

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        return super().execute(self._prepare(query), params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):  # type: ignore[override]
        return super().executemany(self._prepare(query), params_seq, **kwargs)
