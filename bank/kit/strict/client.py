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

Every other statement passes through untouched. The test costs a few string operations:
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


def _rewrite_one(sql: str) -> tuple[str, str | None]:
    """One statement, rewritten if it is one of DSQL's forms, and the command tag DSQL gives
    it (``None``: the server's own tag stands)."""
    m = _AWS_IAM.match(sql)
    if m:
        verb, role, arn = m.group(1).lower(), m.group(2), m.group(3)
        return f"SELECT sys.aws_iam_{verb}({_literal(role)}, {_literal(arn)})", None
    m = _CREATE_INDEX_ASYNC.match(sql)
    if m:
        statement = m.group(1) + m.group(2)
        return f"SELECT job_id FROM sys.create_index_async({_literal(statement)})", "CREATE INDEX"
    m = _ALTER_TABLE_ASYNC.match(sql)
    if m and re.search(r"\bVALIDATE\s+CONSTRAINT\b", m.group(2), re.IGNORECASE):
        statement = m.group(1) + m.group(2)
        return f"SELECT job_id FROM sys.alter_table_async({_literal(statement)})", "ALTER TABLE"
    return sql, None


# The lexical pieces a ';' can hide in: quoted strings and identifiers, dollar quotes, comments.
_LEXEME = re.compile(
    r"""(?:[Ee]'(?:[^'\\]|\\.|'')*'?)      # E'...' (backslash escapes)
      | (?:'(?:[^']|'')*'?)                  # '...'
      | (?:"(?:[^"]|"")*"?)                  # "identifier"
      | (?:(\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$).*?(?:\1|\Z))  # $tag$...$tag$
      | (?:--[^\n]*)                          # -- comment
      | (?:/\*.*?(?:\*/|\Z))                   # /* comment */ (not nested)
      | ;
    """,
    re.VERBOSE | re.DOTALL,
)


def _split(sql: str) -> list[str]:
    """``sql`` cut at its top-level semicolons (not those in strings or comments)."""
    pieces, start = [], 0
    for m in _LEXEME.finditer(sql):
        if m.group(0) == ";":
            pieces.append(sql[start:m.start()])
            start = m.end()
    pieces.append(sql[start:])
    return pieces


@lru_cache(maxsize=512)
def _rewrite(sql: str) -> tuple[str, tuple[str | None, ...]]:
    """``sql`` with DSQL's forms rewritten, and DSQL's command tag of each statement."""
    pieces = [p.strip() for p in _split(sql)] if ";" in sql else [sql]
    pieces = [p for p in pieces if p]
    if len(pieces) <= 1:
        statement, tag = _rewrite_one(sql)
        return statement, (tag,)
    rewritten = [_rewrite_one(p) for p in pieces]
    if all(new is p for (new, _), p in zip(rewritten, pieces, strict=True)):
        return sql, (None,) * len(pieces)  # nothing of DSQL's own: sent as written
    return "; ".join(new for new, _ in rewritten), tuple(tag for _, tag in rewritten)


def _is_candidate(query: str) -> bool:
    head = query[:32].lstrip()[:6].upper()
    return head == "CREATE" or head[:5] == "ALTER" or head[:3] == "AWS" or ";" in query


def rewrite(query: Any) -> Any:
    """``query`` with DSQL's ASYNC forms rewritten; anything else returned as is."""
    if not isinstance(query, str) or not _is_candidate(query):
        return query
    return _rewrite(query)[0]


class _DsqlTags:
    """Rewrites before sending, and reports DSQL's command tag for a rewritten statement."""

    _dsql_tags: tuple[str | None, ...] = ()
    _dsql_result = 0

    def _prepare(self, query: Any) -> Any:
        self._dsql_result = 0
        if not isinstance(query, str) or not _is_candidate(query):
            self._dsql_tags = ()
            return query
        query, self._dsql_tags = _rewrite(query)
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
