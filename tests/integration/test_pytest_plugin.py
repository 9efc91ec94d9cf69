"""The kit's pytest plugin in process (``bank.kit.pytest_plugin``; enabled by tests/conftest.py):
the suite's own fixtures are its, and what ``LocalDsql`` gives a client works."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import struct

import psycopg
import pytest

from bank.kit.endpoint import wire


def test_the_suites_endpoint_is_the_plugins(dsql_endpoint, local_dsql):
    assert dsql_endpoint is local_dsql


def test_a_libpq_url_with_a_token_connects_through_the_endpoint(local_dsql):
    url = local_dsql.url()
    assert url.startswith("postgresql://admin:") and "sslmode=verify-full" in url
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.info.host == local_dsql.host and conn.info.dbname == "postgres"
        assert conn.execute("SELECT current_setting('dsql_strict.enabled')").fetchone() == ("on",)


def _tls_request(dsql) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", dsql.port), timeout=10)
    sock.sendall(struct.pack("!ii", 8, wire.SSL_REQUEST))
    assert sock.recv(1) == b"S"
    return sock


def test_the_ssl_context_verifies_and_sends_the_dsql_name_whatever_address_is_given(local_dsql):
    """asyncpg (tests/integration/strict/test_clients_endpoint.py) wraps through
    ``wrap_bio``; a blocking client through ``wrap_socket``, as here."""
    context = local_dsql.ssl_context()
    with context.wrap_socket(_tls_request(local_dsql), server_hostname="127.0.0.1") as tls:
        names = [value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"]
        assert local_dsql.host in names
    other = dataclasses.replace(local_dsql, host="b" * 26 + ".dsql.us-east-1.on.aws")
    with _tls_request(local_dsql) as sock, pytest.raises(ssl.SSLCertVerificationError,
                                                         match="Hostname mismatch"):
        other.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
