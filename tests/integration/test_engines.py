"""The engines keep what a URL says: its own libpq options come first, then the project's."""

from sqlalchemy import text

from bank.kit.local import setup_engine
from tests.conftest import engine_for, in_schema


def test_setup_and_application_engines_keep_the_urls_search_path(server_url, test_schema):
    url = in_schema(server_url, test_schema.name)
    for engine in (setup_engine(url), engine_for(url)):
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW search_path")).scalar() == test_schema.name
                assert conn.execute(text("SHOW lock_timeout")).scalar()
        finally:
            engine.dispose()
    with setup_engine(url).connect() as conn:  # set-up work: strict mode off
        assert conn.execute(text("SHOW dsql_strict.enabled")).scalar() in ("off", None)
