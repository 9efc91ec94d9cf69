"""DSQL's statements that PostgreSQL's parser cannot read, rewritten into calls of ``sys``.

- ``CREATE [UNIQUE] INDEX ASYNC [IF NOT EXISTS] name ON t (...) ...`` into
  ``SELECT job_id FROM sys.create_index_async('CREATE [UNIQUE] INDEX ...')`` (DSQL's tag:
  ``CREATE INDEX``);
- ``ALTER TABLE ASYNC t VALIDATE CONSTRAINT c`` into
  ``SELECT job_id FROM sys.alter_table_async('ALTER TABLE t VALIDATE CONSTRAINT c')``
  (``ALTER TABLE``);
- ``AWS IAM GRANT role TO 'arn'`` / ``AWS IAM REVOKE role FROM 'arn'`` into
  ``SELECT sys.aws_iam_grant('role', 'arn')`` / ``sys.aws_iam_revoke``.

A query of several statements is cut at its top-level semicolons and each statement is
rewritten on its own. Every other statement is left as it is; only a statement that starts
with ``CREATE``, ``ALTER`` or ``AWS``, or that holds a ``;``, is looked at further, and those
answers are cached per SQL string.

Two users: the psycopg cursors of ``bank.kit.strict.client`` (bank's own connections) and
the local DSQL endpoint (``bank.kit.endpoint``: every client's ``Query`` and ``Parse``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["is_candidate", "rewrite", "rewrite_with_tags"]

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


def is_candidate(query: str) -> bool:
    head = query[:32].lstrip()[:6].upper()
    return head == "CREATE" or head[:5] == "ALTER" or head[:3] == "AWS" or ";" in query


def rewrite(query: Any) -> Any:
    """``query`` with DSQL's ASYNC forms rewritten; anything else returned as is."""
    if not isinstance(query, str) or not is_candidate(query):
        return query
    return _rewrite(query)[0]


def rewrite_with_tags(query: str) -> tuple[str, tuple[str | None, ...]]:
    """``query`` rewritten, and for each of its statements the command tag DSQL gives it
    (``None``: the server's own tag stands). A query with nothing of DSQL's own comes back
    as it is, with no tags."""
    if not is_candidate(query):
        return query, ()
    return _rewrite(query)
