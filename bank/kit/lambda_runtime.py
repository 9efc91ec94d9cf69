"""Run a built function the way Lambda runs it: ``bank invoke --runtime lambda``.

``sam local invoke`` needs Docker. Without it, this runs what ``make build`` wrote
(``.aws-sam/build/<Function>``) as Lambda's python3.13 runtime does:

- the interpreter is a Python 3.13, started with no site-packages (``-S``); on its path only
  the function's artifact, the layer (``DependenciesLayer/python``, Lambda's ``/opt/python``)
  and ``awslambdaric``, the runtime client of Lambda's Python images (what Lambda keeps in
  ``/var/runtime``), in that order;
- ``python -m awslambdaric <Handler>`` polls a **local Runtime API** (:class:`RuntimeApi`,
  the ``2018-06-01`` HTTP interface Lambda serves each sandbox) for events, and posts each
  answer or error back, with the request id, the deadline and the function ARN in the
  headers that Lambda sends;
- the environment is the template's (``Globals``, then the function's), intrinsics resolved
  against this machine (:func:`environment`), plus the variables Lambda sets
  (``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_LOG_FORMAT`` from ``LoggingConfig``, ...) and
  fake AWS credentials: DSQL tokens are minted offline;
- between invocations the process is **frozen** (``SIGSTOP``), as Lambda freezes a sandbox
  that waits for its next event: a thread left running after an answer does not run on;
- an invocation that outlasts the function's ``Timeout`` answers ``Sandbox.Timedout`` and
  the process is killed; the next invocation starts a new one (a cold start).

What it is not: no memory limit, no ``/tmp`` quota, no read-only file system, and the
process runs as this machine's user. The Runtime API is this module's; the runtime client
is Lambda's own.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bank.domain.errors import BankError

API = "/2018-06-01/runtime"
#: The fake credentials every sandbox gets: enough to sign a DSQL token offline.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
                    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "AWS_SESSION_TOKEN": "local-session-token"}
ACCOUNT_ID = "123456789012"


class RuntimeUnavailable(BankError):
    """What running a built function needs is missing: the build, a Python 3.13, the
    runtime client."""


@dataclass
class Reply:
    """One invocation's outcome, as Lambda's Invoke API would report it."""

    request_id: str
    ok: bool
    payload: Any  # the handler's answer, or Lambda's error object
    seconds: float  # from the event's delivery to the answer
    cold_start_s: float | None  # process start to this answer, on a cold start
    logs: list[str] = field(default_factory=list)  # what the process wrote meanwhile

    @property
    def error_type(self) -> str | None:
        return None if self.ok else self.payload.get("errorType")


@dataclass
class _Invocation:
    request_id: str
    event: bytes
    deadline_ms: int
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    payload: Any = None


class RuntimeApi:
    """Lambda's Runtime API for one sandbox, on 127.0.0.1: ``GET .../invocation/next``
    hands out one event at a time, ``POST .../invocation/<id>/response|error`` and
    ``POST .../init/error`` take the answers."""

    def __init__(self, function_arn: str, freeze: Callable[[], None] | None = None,
                 thaw: Callable[[], None] | None = None) -> None:
        self.function_arn = function_arn
        self._events: queue.Queue[_Invocation | None] = queue.Queue()
        self._running: dict[str, _Invocation] = {}
        self.init_error: dict | None = None
        self.init_failed = threading.Event()
        self.idle = threading.Event()  # the runtime waits in GET next
        # The runtime is frozen only while it waits with no event queued: the lock makes
        # that check and the freeze one step against submit's queueing and thaw.
        self._freeze, self._thaw = freeze, thaw
        self._frozen = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="lambda-runtime-api")
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_port}"

    def submit(self, event: bytes, timeout_s: float) -> _Invocation:
        invocation = _Invocation(str(uuid.uuid4()), event,
                                 int((time.time() + timeout_s) * 1000))
        self._running[invocation.request_id] = invocation
        with self._lock:
            self.idle.clear()
            self._events.put(invocation)
            if self._frozen and self._thaw:
                self._thaw()
            self._frozen = False
        return invocation

    def close(self) -> None:
        self._events.put(None)
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once: no 40 ms stall

            def log_message(self, *args: Any) -> None:  # no access log on stderr
                pass

            def _answer(self, status: int, body: bytes = b"{}",
                        headers: Mapping[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != f"{API}/invocation/next":
                    return self._answer(404, b'{"errorType": "NotFound"}')
                with api._lock:
                    api.idle.set()
                    if api._freeze and api._events.empty():
                        api._freeze()
                        api._frozen = True
                invocation = api._events.get()
                if invocation is None:  # closing: the process is gone or going
                    self.close_connection = True
                    return
                self._answer(200, invocation.event, {
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                    "Lambda-Runtime-Trace-Id":
                        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                })

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == f"{API}/init/error":
                    api.init_error = _error_object(body, self.headers)
                    api.init_failed.set()
                    return self._answer(202)
                parts = self.path.removeprefix(f"{API}/invocation/").split("/")
                invocation = api._running.pop(parts[0], None) if len(parts) == 2 else None
                if invocation is None or parts[1] not in ("response", "error"):
                    return self._answer(400, b'{"errorType": "InvalidRequestID"}')
                invocation.ok = parts[1] == "response"
                invocation.payload = (json.loads(body) if invocation.ok and body
                                      else _error_object(body, self.headers))
                invocation.done.set()
                self._answer(202)

        return Handler


def _error_object(body: bytes, headers: Any) -> dict:
    try:
        error = json.loads(body)
    except ValueError:
        error = {"errorMessage": body.decode(errors="replace")}
    if not isinstance(error, dict):
        error = {"errorMessage": str(error)}
    error.setdefault("errorType", headers.get("Lambda-Runtime-Function-Error-Type")
                     or "Runtime.Unknown")
    return error


@dataclass(frozen=True)
class Runtime:
    """Where the pieces of Lambda's python3.13 runtime are on this machine."""

    python: str  # a Python 3.13
    client: Path  # the folder holding awslambdaric

    @classmethod
    def find(cls) -> Runtime:
        """The Python 3.13 and runtime client that ``make sam-check`` installs (``PY313``,
        ``RIC_DIR`` name others)."""
        from bank.adapters.settings import project_root

        client = Path(os.environ.get("RIC_DIR")
                      or project_root() / ".venv-sam" / "lambda-runtime")
        for python in (os.environ.get("PY313"), shutil.which("python3.13"),
                       *sorted(map(str, (Path(os.environ.get("PYENV_ROOT") or
                                              Path.home() / ".pyenv") / "versions")
                                     .glob("3.13*/bin/python3.13")))):
            if python and subprocess.run(
                    [python, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 13))"],
                    capture_output=True, timeout=30).returncode == 0:  # a pyenv shim may fail
                return cls(python, client)
        raise RuntimeUnavailable("no Python 3.13 (the Lambda runtime's): install one, or "
                                 "name it with PY313=/path/to/python3.13")

    def check(self) -> Runtime:
        probe = subprocess.run(
            [self.python, "-S", "-c", "import sys, awslambdaric; print(sys.version_info[:2])"],
            env={"PYTHONPATH": str(self.client), "PATH": os.environ.get("PATH", "")},
            capture_output=True, text=True, timeout=60)
        if probe.returncode != 0 or probe.stdout.strip() != "(3, 13)":
            raise RuntimeUnavailable(
                f"{self.python} with {self.client} is not Python 3.13 with awslambdaric "
                f"({(probe.stderr or probe.stdout).strip().splitlines()[-1:]}); "
                "`make sam-check` installs it in .venv-sam/lambda-runtime/")
        return self


class Sandbox:
    """One execution environment of a built function: a process of the runtime client,
    started at the first invocation, reused by the next ones (warm), frozen in between."""

    def __init__(self, runtime: Runtime, artifact: Path, layer: Path, handler: str, *,
                 name: str, timeout_s: float, memory_mb: int = 512,
                 environment: Mapping[str, str] = {}, freeze: bool = True) -> None:
        for folder in (artifact, layer):
            if not folder.is_dir():
                raise RuntimeUnavailable(f"no {folder}: build first (make build)")
        self.runtime, self.artifact, self.layer, self.handler = runtime, artifact, layer, handler
        self.name, self.timeout_s, self.memory_mb = name, timeout_s, memory_mb
        self.environment = dict(environment)
        self.freeze = freeze
        self.region = self.environment.get("AWS_REGION", "us-east-1")
        self.arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
        self.process: subprocess.Popen | None = None
        self.api: RuntimeApi | None = None
        self.started_at = 0.0
        self.cold_starts = 0
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def logs(self) -> list[str]:
        with self._lines_lock:
            return list(self._lines)

    def _env(self, api: RuntimeApi) -> dict[str, str]:
        path = os.pathsep.join(map(str, (self.artifact, self.layer, self.runtime.client)))
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "HOME": str(self.artifact),
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **FAKE_CREDENTIALS,
            **self.environment,
            # Lambda's own, which the template cannot override.
            "_HANDLER": self.handler,
            "LAMBDA_TASK_ROOT": str(self.artifact),
            "LAMBDA_RUNTIME_DIR": str(self.runtime.client),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
            "PYTHONPATH": path,
            # Lambda's /var/task is read-only: nothing is written into the artifact.
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def _start(self) -> None:
        self.api = RuntimeApi(self.arn, *((self._stop_process, self._continue_process)
                                          if self.freeze else ()))
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            [self.runtime.python, "-S", "-m", "awslambdaric", self.handler],
            cwd=self.artifact, env=self._env(self.api), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.cold_starts += 1
        threading.Thread(target=self._read, args=(self.process,), daemon=True,
                         name=f"{self.name}-output").start()

    def _read(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            with self._lines_lock:
                self._lines.append(raw.decode(errors="replace").rstrip("\n"))

    def _stop_process(self) -> None:
        """Freeze the sandbox, as Lambda does while it waits for an event."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def _continue_process(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def invoke(self, event: Any) -> Reply:
        """One synchronous invocation (``RequestResponse``)."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        cold = self.process is None or self.process.poll() is not None
        if cold:
            self.close()
            self._start()
        assert self.api is not None and self.process is not None
        first_line = len(self.logs)
        began = time.perf_counter()
        invocation = self.api.submit(body, self.timeout_s)
        answered = self._wait(invocation)
        seconds = time.perf_counter() - began
        if answered:
            ok, payload = invocation.ok, invocation.payload
            self.api.idle.wait(2)  # the runtime asks for the next event: its output is out
            time.sleep(0.05)  # and read by _read
        elif self.api.init_failed.is_set():
            ok, payload = False, self.api.init_error
            self.close()
        elif self.process.poll() is not None:
            ok, payload = False, {"errorType": "Runtime.ExitError",
                                  "errorMessage": "RequestId: "
                                  f"{invocation.request_id} Error: Runtime exited with "
                                  f"error: exit status {self.process.returncode}"}
            self.close()
        else:
            ok, payload = False, {"errorType": "Sandbox.Timedout",
                                  "errorMessage": f"RequestId: {invocation.request_id} "
                                  f"Error: Task timed out after {self.timeout_s:.2f} seconds"}
            self.close()
        return Reply(invocation.request_id, ok, payload, seconds,
                     time.perf_counter() - self.started_at if cold else None,
                     self.logs[first_line:])

    def _wait(self, invocation: _Invocation) -> bool:
        deadline = time.monotonic() + self.timeout_s
        assert self.api is not None and self.process is not None
        while time.monotonic() < deadline:
            if invocation.done.wait(0.05):
                return True
            if self.api.init_failed.is_set() or self.process.poll() is not None:
                return invocation.done.is_set()
        return invocation.done.is_set()

    def close(self) -> None:
        """End the sandbox: the process killed (as Lambda does), the Runtime API closed."""
        if self.process is not None:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None
        if self.api is not None:
            self.api.close()
            self.api = None


# -- The template: which handler, which environment -------------------------------------


@dataclass(frozen=True)
class Place:
    """What the template's intrinsics name, on this machine: the cluster's endpoint, the
    region, the roles' ARNs."""

    cluster_endpoint: str
    region: str = "us-east-1"
    stack: str = "bank"

    def role_arn(self, logical_id: str) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:role/{self.stack}-{logical_id}"

    def value(self, intrinsic: dict, parameters: Mapping[str, Any]) -> str:
        (kind, arg), = intrinsic.items()
        if kind == "Ref":
            builtins = {"AWS::Region": self.region, "AWS::StackName": self.stack,
                        "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"}
            if arg in builtins:
                return builtins[arg]
            if arg in parameters:
                return str((parameters[arg] or {}).get("Default", ""))
        if kind == "Fn::GetAtt" and list(arg) == ["DsqlCluster", "Endpoint"]:
            return self.cluster_endpoint
        if kind == "Fn::GetAtt" and len(arg) == 2 and arg[1] == "Arn":
            return self.role_arn(arg[0])
        raise RuntimeUnavailable(f"cannot resolve {intrinsic} of the template locally")


def environment(template: dict, logical_id: str, place: Place) -> dict[str, str]:
    """The function's variables (``Globals``, then its own), intrinsics resolved, and
    ``AWS_LAMBDA_LOG_FORMAT``/``AWS_LAMBDA_LOG_LEVEL`` from its ``LoggingConfig``."""
    from bank.kit.cli.invoke import is_intrinsic

    globals_ = (template.get("Globals") or {}).get("Function") or {}
    props = (template["Resources"][logical_id].get("Properties")) or {}
    parameters = template.get("Parameters") or {}
    variables = {**((globals_.get("Environment") or {}).get("Variables") or {}),
                 **((props.get("Environment") or {}).get("Variables") or {})}
    env = {}
    for key, value in variables.items():
        env[key] = place.value(value, parameters) if is_intrinsic(value) else str(value)
    logging_config = {**(globals_.get("LoggingConfig") or {}),
                      **(props.get("LoggingConfig") or {})}
    if logging_config.get("LogFormat") == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        level = logging_config.get("ApplicationLogLevel", "INFO")
        env["AWS_LAMBDA_LOG_LEVEL"] = (place.value(level, parameters) if is_intrinsic(level)
                                       else str(level))
    env["AWS_REGION"] = place.region
    return env


def sandbox(build_dir: Path, logical_id: str, runtime: Runtime, place: Place,
            extra_env: Mapping[str, str] = {}, **options: Any) -> Sandbox:
    """A sandbox of the built function ``logical_id`` (``Ch05Function``) of ``build_dir``
    (``.aws-sam/build``), with the built template's handler, timeout, memory and
    environment, and ``extra_env`` over it."""
    from bank.kit.cli.invoke import functions, load_template

    build_dir = build_dir.resolve()  # the process runs in the artifact: absolute paths
    template_file = build_dir / "template.yaml"
    if not template_file.is_file():
        raise RuntimeUnavailable(f"no {template_file}: build first (make build)")
    template = load_template(template_file)
    fn = functions(template).get(logical_id)
    if fn is None:
        raise RuntimeUnavailable(f"no function {logical_id} in {template_file}")
    env = {**environment(template, logical_id, place), **extra_env}
    return Sandbox(runtime, build_dir / logical_id,
                   build_dir / "DependenciesLayer" / "python", fn.handler, name=logical_id,
                   timeout_s=options.pop("timeout_s", fn.timeout_s),
                   memory_mb=fn.memory_mb, environment=env, **options)


# -- CloudFormation's side of a custom resource ------------------------------------------


class ResponseCatcher:
    """A local stand-in for the pre-signed S3 URL a custom resource answers to: it keeps
    each ``PUT`` body, as CloudFormation would read it."""

    def __init__(self) -> None:
        self.responses: queue.Queue[dict] = queue.Queue()
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    catcher.responses.put({"path": self.path, "bytes": len(body),
                                           **json.loads(body)})
                except ValueError:
                    catcher.responses.put({"path": self.path, "bytes": len(body),
                                           "unparsable": body.decode(errors="replace")})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="cfn-response").start()

    def url(self, name: str = "response") -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{name}?X-Amz-Signature=local"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
