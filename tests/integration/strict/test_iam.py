"""DSQL's ``AWS IAM GRANT`` / ``REVOKE`` in strict mode: rewritten by the client, recorded in
``sys.iam_pg_role_mappings`` as DSQL lists them (``using-database-and-iam-roles`` in the
Aurora DSQL user guide)."""

import uuid

import pytest

from bank.kit.strict.client import StrictCursor, rewrite

ARN = "arn:aws:iam::111122223333:role/example"


def test_the_statements_are_rewritten_and_nothing_else_is():
    assert rewrite(f"AWS IAM GRANT example TO '{ARN}'") == (
        f"SELECT sys.aws_iam_grant('example', '{ARN}')")
    assert rewrite(f"aws iam revoke example from '{ARN}';") == (
        f"SELECT sys.aws_iam_revoke('example', '{ARN}')")
    assert rewrite("AWSOME TABLE") == "AWSOME TABLE"


def test_grant_and_revoke_map_a_role(target, db):
    role = f"r_{uuid.uuid4().hex[:10]}"
    conn = db(cursor_factory=StrictCursor)
    conn.execute(f"CREATE ROLE {role} WITH LOGIN")
    try:
        conn.execute(f"AWS IAM GRANT {role} TO '{ARN}'")
        conn.execute(f"AWS IAM GRANT {role} TO '{ARN}'")  # again: nothing more
        mapped = conn.execute("SELECT arn FROM sys.iam_pg_role_mappings WHERE pg_role_name = %s",
                              (role,)).fetchall()
        assert mapped == [(ARN,)]
        conn.execute(f"AWS IAM REVOKE {role} FROM '{ARN}'")
        assert conn.execute("SELECT count(*) FROM sys.iam_pg_role_mappings WHERE "
                            "pg_role_name = %s", (role,)).fetchone() == (0,)
        with pytest.raises(Exception, match="does not exist") as info:
            conn.execute(f"AWS IAM GRANT no_such_{role} TO '{ARN}'")
        assert info.value.sqlstate == "42704"
    finally:
        conn.execute(f"DROP ROLE {role}")
