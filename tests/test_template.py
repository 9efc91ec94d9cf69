"""Contract of the AWS SAM template (template.yaml) and its build files.

Offline and without the SAM CLI: the template is read with PyYAML and a loader
that turns CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) into their
long form. `.ci/sam-check` runs `sam validate --lint` and `sam build`.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bank.cli.invoke import load_template as _load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"

FUNCTIONS = {
    "Ch01Function": "bank.handlers.ch01.handler",
    "Ch03Function": "bank.handlers.ch03.handler",
    "Ch04Function": "bank.handlers.ch04.handler",
    "Ch05Function": "bank.handlers.ch05.handler",
    "Ch06Function": "bank.handlers.ch06.handler",
    "Ch07Function": "bank.handlers.ch07.handler",
}
DB_FUNCTIONS = [name for name in FUNCTIONS if name != "Ch01Function"]
ENDPOINT_SUB = "${DsqlCluster.Identifier}.dsql.${AWS::Region}.on.aws"


def load_template() -> dict[str, Any]:
    return _load_template(TEMPLATE)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id].get("Properties", {})


def _statements(props: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in props.get("Policies", []):
        assert isinstance(policy, dict), f"managed/SAM policy {policy!r}: use a scoped statement"
        statements.extend(policy["Statement"])
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_serverless_transform(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_globals(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.11"
    assert glob["Timeout"] == 30
    assert glob["MemorySize"] == 512
    assert glob["Architectures"] == ["x86_64"]
    assert glob["Layers"] == [{"Ref": "DependenciesLayer"}]


def test_cluster(template: dict[str, Any]) -> None:
    cluster = template["Resources"]["DsqlCluster"]
    assert cluster["Type"] == "AWS::DSQL::Cluster"
    props = cluster["Properties"]
    assert props["DeletionProtectionEnabled"] is False
    assert [tag["Key"] for tag in props["Tags"]] == ["Name"]


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["ClusterId"]["Value"] == {"Fn::GetAtt": ["DsqlCluster", "Identifier"]}
    assert outputs["ClusterEndpoint"]["Value"] == {"Fn::Sub": ENDPOINT_SUB}
    assert outputs["ClusterArn"]["Value"] == {"Fn::GetAtt": ["DsqlCluster", "ResourceArn"]}


def test_exactly_the_expected_functions(template: dict[str, Any]) -> None:
    functions = {
        name
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    assert functions == set(FUNCTIONS)


@pytest.mark.parametrize(("logical_id", "handler"), FUNCTIONS.items())
def test_handler_and_build(template: dict[str, Any], logical_id: str, handler: str) -> None:
    resource = template["Resources"][logical_id]
    assert resource["Properties"]["Handler"] == handler
    # The artifact is built by `make build-<LogicalId>` (bank/ only).
    assert resource["Metadata"]["BuildMethod"] == "makefile"
    code_uri = resource["Properties"].get("CodeUri", template["Globals"]["Function"]["CodeUri"])
    assert code_uri == "."


@pytest.mark.parametrize("handler", FUNCTIONS.values())
def test_handler_module_defines_handler(handler: str) -> None:
    module, _, func = handler.rpartition(".")
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert path.is_file(), f"{handler}: {path.relative_to(ROOT)} is missing"
    tree = ast.parse(path.read_text(), filename=str(path))
    names = (
        {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        | {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        | {
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
    )
    assert func in names, f"{path.relative_to(ROOT)} defines no top-level {func!r}"


def test_ch01_has_no_database_access(template: dict[str, Any]) -> None:
    props = _props(template, "Ch01Function")
    assert "Environment" not in props
    assert "Policies" not in props


@pytest.mark.parametrize("logical_id", DB_FUNCTIONS)
def test_db_function_environment(template: dict[str, Any], logical_id: str) -> None:
    variables = _props(template, logical_id)["Environment"]["Variables"]
    assert variables["CLUSTER_ENDPOINT"] == {"Fn::Sub": ENDPOINT_SUB}
    assert variables["REGION"] == {"Ref": "AWS::Region"}
    # Declared empty so that `sam local invoke --env-vars` can set it: SAM local
    # only overrides variables that the template declares.
    assert variables["DATABASE_URL"] == ""


@pytest.mark.parametrize("logical_id", DB_FUNCTIONS)
def test_db_function_policy_is_scoped_to_the_cluster(
    template: dict[str, Any], logical_id: str
) -> None:
    statements = _statements(_props(template, logical_id))
    granting = [
        s
        for s in statements
        if s["Effect"] == "Allow" and "dsql:DbConnectAdmin" in _as_list(s["Action"])
    ]
    assert granting, f"{logical_id}: no statement allows dsql:DbConnectAdmin"
    for statement in granting:
        for resource in _as_list(statement["Resource"]):
            assert resource == {"Fn::GetAtt": ["DsqlCluster", "ResourceArn"]}


def test_no_wildcard_resource_anywhere(template: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        for statement in _statements(_props(template, name)):
            resources = _as_list(statement["Resource"])
            assert "*" not in resources, f"{name}: Resource '*'"
            assert not any(isinstance(r, str) and r.endswith(":*") for r in resources)


def test_ch07_timeout_and_memory(template: dict[str, Any]) -> None:
    props = _props(template, "Ch07Function")
    assert props["Timeout"] == 300
    assert props["MemorySize"] == 1024
    for name in FUNCTIONS:
        if name != "Ch07Function":
            assert "Timeout" not in _props(template, name)
            assert "MemorySize" not in _props(template, name)


def test_dependencies_layer(template: dict[str, Any]) -> None:
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    content = ROOT / layer["Properties"]["ContentUri"]
    assert re.search(r"^build-DependenciesLayer:", (content / "Makefile").read_text(), re.M)


def test_layer_requirements() -> None:
    names = set()
    for line in (ROOT / "layer" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    assert {"sqlalchemy", "psycopg", "aurora-dsql-sqlalchemy", "psycopg-pool"} <= names
    # boto3/botocore come from the Lambda runtime; alembic is a dev-time tool.
    assert not names & {"boto3", "botocore", "alembic"}


def test_makefile_builds_every_function() -> None:
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^SAM_FUNCTIONS\s*:?=\s*(.*)$", text, re.M)
    assert match, "Makefile: SAM_FUNCTIONS not found"
    assert set(match.group(1).split()) == set(FUNCTIONS)
    assert "$(addprefix build-,$(SAM_FUNCTIONS)):" in text


def test_samconfig_builds_in_source() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["default"]["build"]["parameters"]["build_in_source"] is True


def test_env_json_example(template: dict[str, Any]) -> None:
    env = json.loads((ROOT / "env.json.example").read_text())
    assert set(env) == set(DB_FUNCTIONS)
    for name, variables in env.items():
        declared = _props(template, name)["Environment"]["Variables"]
        assert set(variables) <= set(declared), f"{name}: SAM local ignores undeclared variables"
        assert variables["DATABASE_URL"].startswith("postgresql+psycopg://")


def test_layer_prune_removes_listed_distributions(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("layer_prune", ROOT / "layer" / "prune.py")
    assert spec and spec.loader
    prune = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prune)

    def install(dist: str, files: list[str]) -> None:
        info = tmp_path / f"{dist}-1.0.dist-info"
        info.mkdir()
        record = [*files, f"{info.name}/RECORD,,"]
        for rel in files:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text("x")
        (info / "RECORD").write_text("".join(f"{r},,\n" for r in record))

    install("botocore", ["botocore/__init__.py", "botocore/data/s3/2006-03-01/service.json"])
    install("python_dateutil", ["dateutil/__init__.py"])
    install("six", ["six.py"])
    install("sqlalchemy", ["sqlalchemy/__init__.py"])

    removed = prune.prune(tmp_path, ["botocore", "python-dateutil", "six"])

    assert sorted(removed) == [
        "botocore-1.0.dist-info",
        "python_dateutil-1.0.dist-info",
        "six-1.0.dist-info",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sqlalchemy", "sqlalchemy-1.0.dist-info"]
