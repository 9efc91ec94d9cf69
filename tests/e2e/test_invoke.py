"""`bank invoke`: template resolution, environment, and the Lambda-style output."""

import json
import subprocess
import sys

import pytest

from bank.kit.cli.invoke import (
    UnknownFunction,
    apply_environment,
    is_intrinsic,
    load_template,
    resolve,
)
from bank.kit.cli.main import main
from tests.integration.test_handlers import EVENTS, EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_event_file_through_bank_invoke(seeded, capsys, name):
    function = name.split("-")[0].removesuffix(".json")
    code = main(["invoke", function, "--event", str(EVENTS / name)])
    out = json.loads(capsys.readouterr().out)
    if EXPECTED[name] is None:
        assert code == 0 and "errorType" not in out
    else:
        assert code == 1
        assert out["errorType"] == EXPECTED[name] and out["errorMessage"]


@pytest.mark.parametrize("name", ["Ch04Function", "ch04", "CH04", "4", "ch04function"])
def test_names_resolve(name):
    fn = resolve(name)
    assert (fn.logical_id, fn.handler) == ("Ch04Function", "bank.handlers.ch04.handler")


def test_unknown_function():
    with pytest.raises(UnknownFunction, match="Ch01Function"):
        resolve("ch99")


def test_environment_from_the_template_skips_intrinsics():
    fn = resolve("ch05")
    assert is_intrinsic(fn.environment["CLUSTER_ENDPOINT"])
    env = {}
    apply_environment(fn, env)
    assert "CLUSTER_ENDPOINT" not in env and "DATABASE_URL" not in env
    # The deployed function's database role is not this machine's: you connect as yourself.
    assert fn.environment["DB_USER"] == "bank_app" and "DB_USER" not in env


def test_every_template_function_loads_its_handler():
    template = load_template()
    names = [
        k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"
    ]
    assert {"Ch01Function", "Ch03Function", "Ch04Function", "Ch05Function", "Ch06Function"} <= set(
        names
    )
    for name in names:
        assert callable(resolve(name).load_handler())


def test_cli_end_to_end_in_a_subprocess(seeded, app_env):
    env = app_env
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "bank.kit.cli",
            "invoke",
            "Ch03Function",
            "--event",
            str(EVENTS / "ch03.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "balance" in json.loads(ok.stdout)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "bank.kit.cli",
            "invoke",
            "ch04",
            "--event",
            str(EVENTS / "ch04-same-account.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout) == {
        "errorType": "InvalidRequest",
        "errorMessage": "Payer and payee must be different accounts",
    }
    missing = subprocess.run(
        [sys.executable, "-m", "bank.kit.cli", "invoke", "ch04", "--event", "/nonexistent.json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 1 and "cannot read event file" in missing.stderr


def test_ch07_events_through_bank_invoke_in_order(engine, capsys):
    operations = ("setup", "query", "optimize", "query-optimized")
    responses = []
    for name in operations:
        assert main(["invoke", "ch07", "--event", str(EVENTS / f"ch07-{name}.json")]) == 0
        responses.append(json.loads(capsys.readouterr().out))
    assert [r["operation"] for r in responses] == ["setup", "query", "optimize", "query_optimized"]
    assert responses[1]["rows_returned"] == responses[3]["rows_returned"] > 0
    assert responses[3]["index_used"].startswith("idx_accounts7_metadata")
