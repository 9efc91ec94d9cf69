from pathlib import Path

import pytest

from bank.adapters.errors import ConfigurationError
from bank.adapters.settings import Settings, Target, region_from_endpoint
from bank.kit.settings import KitSettings

ENDPOINT = "abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws"


def test_no_target_is_none_for_the_application_and_the_embedded_server_for_the_kit():
    assert Settings.from_env({}).target is Target.NONE
    kit = KitSettings.from_env({})
    assert kit.data_dir == Path(__file__).resolve().parents[2] / ".bank"
    assert kit.strict is None  # the default: on for the embedded server only


def test_the_application_without_a_database_says_so():
    from bank.adapters.database import make_engine

    with pytest.raises(ConfigurationError, match="CLUSTER_ENDPOINT .* or DATABASE_URL"):
        make_engine(Settings.from_env({}))


def test_database_url_wins_over_cluster_endpoint():
    s = Settings.from_env({"DATABASE_URL": "postgresql://x@h/db", "CLUSTER_ENDPOINT": ENDPOINT})
    assert s.target is Target.URL
    assert s.database_url == "postgresql://x@h/db"


def test_empty_database_url_is_unset():
    # template.yaml declares DATABASE_URL "" so sam local can override it.
    s = Settings.from_env({"DATABASE_URL": "", "CLUSTER_ENDPOINT": ENDPOINT})
    assert s.target is Target.DSQL


def test_cluster_endpoint_selects_dsql_with_region_from_endpoint():
    s = Settings.from_env({"CLUSTER_ENDPOINT": ENDPOINT})
    assert (s.target, s.region, s.db_user) == (Target.DSQL, "eu-west-1", "admin")


def test_region_variables_win_aws_region_first():
    env = {"CLUSTER_ENDPOINT": ENDPOINT, "REGION": "us-east-2", "AWS_REGION": "us-west-2"}
    assert Settings.from_env(env).region == "us-west-2"
    del env["AWS_REGION"]
    assert Settings.from_env(env).region == "us-east-2"


def test_db_user():
    assert Settings.from_env({"CLUSTER_ENDPOINT": ENDPOINT, "DB_USER": "app"}).db_user == "app"


def test_endpoint_without_region_needs_one():
    with pytest.raises(ConfigurationError, match="REGION"):
        Settings.from_env({"CLUSTER_ENDPOINT": "my-cluster-id"})
    assert Settings.from_env({"CLUSTER_ENDPOINT": "my-cluster-id", "REGION": "us-east-1"}).is_dsql


def test_region_from_endpoint():
    assert region_from_endpoint(ENDPOINT) == "eu-west-1"
    assert region_from_endpoint("localhost") is None


@pytest.mark.parametrize(
    "name, value",
    [("BANK_OCC_MAX_ATTEMPTS", "0"), ("BANK_OCC_MAX_ATTEMPTS", "x"), ("BANK_POOL_SIZE", "-1"),
     ("BANK_OCC_BASE_DELAY_S", "fast"), ("BANK_OCC_MAX_DELAY_S", "-2"), ("BANK_DB_PORT", "0"),
     ("BANK_DB_PORT", "65536"), ("BANK_DB_PORT", "5432x")],
)
def test_bad_numbers_are_configuration_errors(name, value):
    with pytest.raises(ConfigurationError, match=name):
        (KitSettings if name == "BANK_DB_PORT" else Settings).from_env({name: value})


def test_retry_settings_are_read():
    s = Settings.from_env({"BANK_OCC_MAX_ATTEMPTS": "3", "BANK_OCC_BASE_DELAY_S": "0.1",
                           "BANK_OCC_MAX_DELAY_S": "2"})
    assert (s.occ_max_attempts, s.occ_base_delay_s, s.occ_max_delay_s) == (3, 0.1, 2.0)


def test_db_port():
    assert KitSettings.from_env({}).db_port is None  # the port recorded in .bank/port
    assert KitSettings.from_env({"BANK_DB_PORT": "55432"}).db_port == 55432
