"""A connection the database refuses is a named, final error: the reason, what to check, no retry.

A wrong password stands in for an IAM refusal (DSQL answers a bad or unauthorized token at
connect, before any statement, as PostgreSQL answers a bad password), and a server that
speaks no TLS for a client that requires it stands in for a TLS failure. The real DSQL
answers are shown through the local DSQL endpoint (tests/integration/test_endpoint.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from bank.adapters.errors import DatabaseAccessDenied
from bank.domain.model import Account
from bank.domain.requests import parse_transfer
from bank.services.retry import RetryPolicy
from bank.services.transfers import transfer
from tests.conftest import settings_for


def attempts_until(error_type, server_url, schema, **url_changes):
    """A transfer on an engine whose connections ``url_changes`` spoil; (error, attempts)."""
    import dataclasses

    from bank.adapters.unit_of_work import SqlAlchemyUnitOfWork
    from bank.kit import local

    url = make_url(server_url).set(**url_changes).render_as_string(hide_password=False)
    kit = dataclasses.replace(local.get_kit_settings(), strict=False)  # no set-up connection
    engine = local.engine(settings=settings_for(url, schema), kit=kit, pool_size=1,
                          max_overflow=0)
    tried = []

    def uow(**kw):
        tried.append(1)
        return SqlAlchemyUnitOfWork(engine=engine, **kw)

    request = parse_transfer({"payer_id": 1, "payee_id": 2, "amount": "1"})
    try:
        with pytest.raises(error_type) as info:
            transfer(uow, Account, request, policy=RetryPolicy(max_attempts=5, base_delay_s=0))
    finally:
        engine.dispose()
    return info.value, len(tried)


def test_a_refused_login_is_database_access_denied_with_its_reason_and_not_retried(
        server_url, test_schema):
    # A role that does not exist: refused by a server that checks passwords (the embedded
    # one) and by one that trusts 127.0.0.1 alike (CI's PostgreSQL 15).
    error, attempts = attempts_until(DatabaseAccessDenied, server_url, test_schema.name,
                                     username="bank_no_such_role", password="not-the-password",
                                     query={})
    assert attempts == 1  # it cannot succeed: no second attempt
    assert ("password authentication failed" in str(error)  # the server's reason
            or 'role "bank_no_such_role" does not exist' in str(error))
    assert "IAM" in str(error) and "AWS IAM GRANT" in str(error)  # what to check
    assert "not-the-password" not in str(error)
    assert error.retryable is False and error.applied is False


def test_a_refused_tls_handshake_is_database_access_denied_naming_the_ca_bundle(
        server_url, test_schema):
    error, attempts = attempts_until(DatabaseAccessDenied, server_url, test_schema.name,
                                     query={**make_url(server_url).query,
                                            "sslmode": "verify-full"})
    assert attempts == 1
    assert "SSL" in str(error) and "CA bundle" in str(error)


def test_a_server_that_is_down_is_still_unavailable_and_retried(server_url, test_schema):
    from bank.adapters.errors import DatabaseUnavailable

    error, attempts = attempts_until(DatabaseUnavailable, server_url, test_schema.name, port=1)
    assert attempts == 5
    assert not isinstance(error, DatabaseAccessDenied)
