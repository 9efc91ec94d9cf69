"""Fixtures of the integration tests: the local DSQL endpoint (``bank.kit.endpoint``).

They are the kit's pytest plugin's (``bank.kit.pytest_plugin``, enabled in
``tests/conftest.py``), under the names this suite uses, and skipped on a cluster:

- ``dsql_endpoint`` is ``local_dsql``: one endpoint for the test session, in front of the
  embedded server (its CA is the kit's, in ``.bank/endpoint/``; it publishes its address in
  a folder of its own, so a developer's ``bank endpoint`` keeps its own). Its
  ``LocalDsql`` mints tokens with fake AWS credentials, as boto3 does for a real cluster,
  offline.
- ``dsql_environment`` is ``local_dsql_environment``: this process pointed at it.
"""

from __future__ import annotations

import pytest

from bank.kit.pytest_plugin import LocalDsql
from tests.conftest import ON_DSQL


def _local_only() -> None:
    if ON_DSQL:
        pytest.skip("local only on a cluster: the local DSQL endpoint")


@pytest.fixture(scope="session")
def dsql_endpoint(request) -> LocalDsql:
    _local_only()
    return request.getfixturevalue("local_dsql")


@pytest.fixture()
def dsql_environment(request) -> LocalDsql:
    """This process pointed at the endpoint as the application would be on a laptop:
    CLUSTER_ENDPOINT, BANK_DSQL_LOCAL, fake AWS credentials, no DATABASE_URL. The
    process-wide settings and engine are forgotten before and after."""
    _local_only()
    return request.getfixturevalue("local_dsql_environment")
