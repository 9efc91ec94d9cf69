"""``bank invoke``: run a function of ``template.yaml`` in-process, as Lambda would.

The handler and the environment come from the template (``Globals`` then the
function). Template variables whose values are CloudFormation intrinsics
(``!Sub``/``!Ref``/``!GetAtt``: the cluster endpoint, the region) only make sense in
AWS and are skipped; the database is then the one this machine's settings name
(``DATABASE_URL``, ``CLUSTER_ENDPOINT`` or the embedded PostgreSQL). ``DB_USER`` is
skipped too: it names the database role the deployed function connects as (``bank_app``,
mapped to the function's IAM role), while here you connect as yourself (``DB_USER``,
default ``admin``). Variables already set in the environment win over the template's.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bank.adapters.settings import project_root
from bank.domain.errors import BankError, InvalidRequest
from bank.kit.errors import UnknownFunction

#: Lambda's limit for a synchronous invocation's payload.
MAX_EVENT_BYTES = 6 * 1024 * 1024
MAX_EVENT_DEPTH = 64
#: Template variables that describe the deployment, not this machine.
DEPLOYED_ONLY = frozenset({"DB_USER"})



class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short tags (!Sub, !Ref, ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def is_intrinsic(value: Any) -> bool:
    """A CloudFormation function (``{"Ref": ...}``, ``{"Fn::Sub": ...}``): AWS-only values."""
    return isinstance(value, dict) and len(value) == 1 and (
        "Ref" in value or next(iter(value)).startswith("Fn::")
    )


def load_template(path: Path | None = None) -> dict:
    path = path or project_root() / "template.yaml"
    with open(path) as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class Function:
    logical_id: str
    handler: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, Any] = field(default_factory=dict)

    def load_handler(self) -> Callable[..., Any]:
        module, _, name = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), name)


def functions(template: dict) -> dict[str, Function]:
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    found = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**globals_, **(resource.get("Properties") or {})}
        env = dict(((globals_.get("Environment") or {}).get("Variables")) or {})
        env.update(((resource["Properties"].get("Environment") or {}).get("Variables")) or {})
        found[logical_id] = Function(
            logical_id, props["Handler"], int(props.get("Timeout", 3)),
            int(props.get("MemorySize", 128)), env,
        )
    return found


def resolve(name: str, template: dict | None = None) -> Function:
    """``Ch04Function``, ``ch04`` or ``4`` (``migrate``: MigrateFunction) -> the function of
    the template."""
    table = functions(template if template is not None else load_template())
    wanted = name.strip()
    if wanted.lower() == "migrate":
        wanted = "MigrateFunction"
    match = re.fullmatch(r"(?i)(?:ch)?0?(\d)(?:function)?", wanted)
    if match:
        wanted = f"Ch0{match.group(1)}Function"
    for logical_id, fn in table.items():
        if logical_id.lower() == wanted.lower():
            return fn
    raise UnknownFunction(f"no function {name!r} in template.yaml; have {', '.join(table)}")


class LocalContext:
    """The parts of the Lambda context object handlers use."""

    def __init__(self, fn: Function):
        self.function_name = fn.logical_id
        self.memory_limit_in_mb = fn.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + fn.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def apply_environment(fn: Function, environ: dict | os._Environ = os.environ) -> list[str]:
    """Set the template's literal variables not already set; return the names set."""
    applied = []
    for key, value in fn.environment.items():
        if is_intrinsic(value) or key in environ or key in DEPLOYED_ONLY:
            continue
        if value in ("", None):
            continue
        environ[key] = str(value)
        applied.append(key)
    return applied


def error_response(exc: BaseException) -> dict:
    """The shape Lambda gives an unhandled error."""
    return {"errorType": type(exc).__name__, "errorMessage": str(exc)}


def invoke(name: str, event: Any) -> tuple[bool, dict]:
    """Run one invocation in-process; (ok, response or Lambda-style error)."""
    fn = resolve(name)
    apply_environment(fn)
    handler = fn.load_handler()
    try:
        return True, handler(event, LocalContext(fn))
    except Exception as exc:  # noqa: BLE001 - reported the way Lambda reports it
        return False, error_response(exc)


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion (a deep file cannot blow the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_EVENT_DEPTH:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                      else item))
    return deepest


def parse_event(data: bytes, where: str = "the event") -> Any:
    """A JSON event as Lambda would accept it: UTF-8, at most 6 MB, nested at most 64 deep."""
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidRequest(f"{where} is larger than Lambda's {MAX_EVENT_BYTES:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{where} is not UTF-8 (byte {exc.start})") from None
    try:
        event = json.loads(text)
    except RecursionError:
        raise InvalidRequest(f"{where} is nested more than {MAX_EVENT_DEPTH} deep") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{where} is not JSON: {exc}") from None
    if _depth(event) > MAX_EVENT_DEPTH:
        raise InvalidRequest(f"{where} is nested more than {MAX_EVENT_DEPTH} deep")
    return event


def read_event(path: str) -> Any:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_EVENT_BYTES + 1)
    except OSError as exc:
        raise BankError(f"cannot read event file {path}: {exc.strerror}") from None
    return parse_event(data, f"event file {path}")
