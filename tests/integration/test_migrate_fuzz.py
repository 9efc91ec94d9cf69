"""The migration custom resource under 5,000 random events: always a named outcome, and an
answer whenever the event says where to send one.

CloudFormation's side is a local HTTP server taking the PUTs; the database is a port
nobody listens on, so that a Create or an Update fails at once (its answer is FAILED).
What must hold for every event: no exception but a ``BankError``; with a usable
``ResponseURL``, exactly one answer, well-formed (the fields CloudFormation reads, a
known Status) and at most 4,096 bytes; without one, ``InvalidRequest`` and no answer.
"""

from __future__ import annotations

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bank.adapters import database
from bank.adapters import settings as app_settings
from bank.domain.errors import BankError, InvalidRequest
from bank.handlers import migrate
from tests.integration.test_migrate import CloudFormation, Context, point_at

GOOD = "good"
FIELDS = ("Status", "Reason", "PhysicalResourceId", "StackId", "RequestId",
          "LogicalResourceId", "Data")

values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=300),
                   st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
bad_url = st.one_of(values, st.sampled_from(["", "not a url", "ftp://host/x", "http://",
                                             "https:///x", "file:///etc/passwd", "http://[::1"]))
url = st.tuples(st.integers(0, 3), bad_url).map(lambda t: GOOD if t[0] else t[1])  # 3 in 4
request_type = st.one_of(st.sampled_from(["Create", "Update", "Delete"]), values)
event = st.fixed_dictionaries({"ResponseURL": url}, optional={
    "RequestType": request_type, "StackId": values, "RequestId": values,
    "LogicalResourceId": values, "PhysicalResourceId": values, "ResourceType": values,
    "ResourceProperties": st.one_of(values, st.dictionaries(
        st.sampled_from(["AppRole", "AppRoleArn", "Seed", "CodeVersion", "x"]),
        values, max_size=4)),
})


def test_every_event_gets_a_named_outcome_and_an_answer_if_it_can(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: the database is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_at(monkeypatch, f"postgresql://postgres@127.0.0.1:{port}/x",
             BANK_CONNECT_TIMEOUT_S="1")
    cfn = CloudFormation()
    seen = {"answered": 0, "refused": 0}
    try:
        @settings(max_examples=5000, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(body=st.one_of(event, event, event, values))
        def check(body):
            if isinstance(body, dict) and body.get("ResponseURL") == GOOD:
                body = {**body, "ResponseURL": cfn.url}
            usable = isinstance(body, dict) and body.get("ResponseURL") == cfn.url
            before = len(cfn.responses)
            try:
                result = migrate.handler(body, Context())
            except InvalidRequest:
                assert not usable, body
                assert len(cfn.responses) == before
                seen["refused"] += 1
                return
            except BankError as exc:
                raise AssertionError(f"{type(exc).__name__} for {body!r}") from exc
            assert usable, body
            assert len(cfn.responses) == before + 1
            response = cfn.responses[-1]
            assert set(FIELDS) <= set(response), response
            assert response["Status"] in ("SUCCESS", "FAILED")
            assert response["Status"] == result["Status"]
            assert response["_bytes"] <= migrate.MAX_RESPONSE_BYTES
            assert all(isinstance(response[k], str) for k in FIELDS[:-1])
            if body.get("RequestType") not in migrate.REQUEST_TYPES:
                assert response["Status"] == "FAILED"
            seen["answered"] += 1

        check()
    finally:
        cfn.close()
        app_settings.get_settings.cache_clear()
        database.install_engine(None)
    print(f"\n{seen['answered']} events answered, {seen['refused']} refused without a URL")
    assert seen["answered"] > 1000 and seen["refused"] > 500  # the strategy reached both
