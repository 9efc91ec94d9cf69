"""``bank loadtest --remote``: invoke the deployed functions through Lambda's ``Invoke`` API.

Each request is one synchronous invocation (``RequestResponse``) with the same event the
in-process run passes to the handler. What comes back is counted the same way:

- a response: a success;
- ``FunctionError`` set: the function raised; counted by the ``errorType`` of its payload
  (``InsufficientFunds``, ``ConflictRetriesExhausted``, ...), as Lambda reports it;
- an AWS error (throttling is ``TooManyRequestsException``) or a transport error
  (``EndpointConnectionError``, ``ReadTimeoutError``): counted by its name. The client
  does not retry, so that throttling shows in the report instead of as latency.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bank.domain.errors import BankError


class RemoteSetupError(BankError):
    """The deployed function cannot be found or named (stack, function name, region)."""


class RemoteInvokeError(Exception):
    """A remote invocation that failed; ``error_type`` is what the load test counts."""

    def __init__(self, error_type: str, message: str = ""):
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type


def clients(region: str | None, threads: int) -> tuple[Any, Any]:
    """Lambda and CloudFormation clients: no SDK retries, a connection per thread."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                    max_pool_connections=max(10, threads), connect_timeout=5, read_timeout=70)
    session = boto3.Session(region_name=region)
    return session.client("lambda", config=config), session.client("cloudformation")


def function_name(cloudformation: Any, stack: str, logical_id: str) -> str:
    """The physical name of a template function (``Ch05Function``) in a deployed stack."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        detail = cloudformation.describe_stack_resource(
            StackName=stack, LogicalResourceId=logical_id)["StackResourceDetail"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise RemoteSetupError(
            f"stack {stack!r}, resource {logical_id}: {error.get('Code')}: {error.get('Message')}"
        ) from None
    except BotoCoreError as exc:
        raise RemoteSetupError(f"stack {stack!r}: {type(exc).__name__}: {exc}") from None
    return str(detail["PhysicalResourceId"])


def invoker(lambda_client: Any, name: str) -> Callable[[dict], Any]:
    """``invoke(event)`` for ``bank.kit.loadtest.run``: the function's response, or
    ``RemoteInvokeError`` named as above."""
    from botocore.exceptions import ClientError

    def invoke(event: dict) -> Any:
        try:
            reply = lambda_client.invoke(FunctionName=name, InvocationType="RequestResponse",
                                         Payload=json.dumps(event).encode())
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise RemoteInvokeError(error.get("Code") or "ClientError",
                                    error.get("Message", "")) from None
        payload = json.loads(reply["Payload"].read() or b"null")
        if reply.get("FunctionError"):
            details = payload if isinstance(payload, dict) else {}
            raise RemoteInvokeError(details.get("errorType") or reply["FunctionError"],
                                    details.get("errorMessage", ""))
        return payload

    return invoke
