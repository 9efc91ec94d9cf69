"""ch07: the query-optimization lab, on the real test database (these tests own accounts7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.schema import CreateTable

from bank.adapters.lab import LabDatabase
from bank.adapters.orm import OPTIMIZING_INDEXES, accounts7
from bank.domain.errors import InvalidRequest, UnknownOperation
from bank.handlers.ch07 import handler
from bank.kit.cli.main import main
from bank.services import querylab
from bank.services.plans import PlanSummary, parse_plan
from bank.services.retry import RetryPolicy

ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "tests" / "data" / "plans"
NEW_INDEXES = {index.name for index in OPTIMIZING_INDEXES}


def event(name: str) -> dict:
    return json.loads((ROOT / "events" / f"ch07-{name}.json").read_text())


def snapshot(engine) -> tuple:
    """Row count, a checksum of every row, and the indexes: proof that nothing changed."""
    with engine.connect() as conn:
        count, checksum = conn.execute(text(
            "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY id, created_at), ''))"
            " FROM accounts7 AS t"
        )).one()
        return count, checksum, LabDatabase(engine).indexes()


def scalar(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


@pytest.fixture
def small_table(engine):
    querylab.setup(LabDatabase(engine), 100, RetryPolicy())
    return engine


# --- the four operations, through the handler and the event files ------------------------


def test_four_operations_in_order(engine):
    setup = handler(event("setup"))
    assert setup["message"] == "Database setup completed with 5000 rows and suboptimal index"
    assert setup["indexes"] == ["idx_accounts7_type"]
    assert scalar(engine, "SELECT count(*) FROM accounts7") == 5000

    before = handler(event("query"))
    optimize = handler(event("optimize"))
    after = handler(event("query-optimized"))

    assert NEW_INDEXES <= set(optimize["indexes"])
    # Every row lies within the last year, so the query returns what the filters select.
    expected = scalar(engine, "SELECT count(*) FROM accounts7 WHERE account_type = 'savings' "
                      "AND region_code = 'US' AND status = 'active' "
                      "AND metadata_key = 'account_tier_1'")
    assert before["rows_returned"] == after["rows_returned"] == expected > 0
    for response in (before, after):
        assert json.loads(json.dumps(response)) == response  # plain JSON: no Decimal
        assert "Execution Time" in response["query_plan"]
        assert response["plan_execution_time_ms"] > 0 and response["execution_time_ms"] > 0
    assert (before["operation"], after["operation"]) == ("query", "query_optimized")

    # At 5,000 rows PostgreSQL 15 and 18 already take the new composite index (a bitmap
    # scan; an index-only scan of the covering one once autovacuum has run).
    assert before["index_used"] not in NEW_INDEXES
    assert after["index_used"] in NEW_INDEXES
    assert after["rows_scanned"] < before["rows_scanned"]
    # Rows scanned, read from the live plans: the whole table (sequential scan) or the
    # savings rows (idx_accounts7_type) before; the (metadata_key, account_type) range after.
    total, savings, in_range = (
        scalar(engine, f"SELECT count(*) FROM accounts7 {where}")
        for where in ("", "WHERE account_type = 'savings'",
                      "WHERE account_type = 'savings' AND metadata_key = 'account_tier_1'")
    )
    assert before["rows_scanned"] in (total, savings)
    assert after["rows_scanned"] == in_range


def test_setup_loads_batches_of_2500_rows_with_the_original_distributions(engine):
    response = handler({"operation": "setup", "rows": 6001})
    assert response["rows_loaded"] == 6001 and response["indexes"] == ["idx_accounts7_type"]
    with engine.connect() as conn:
        # Rows written by one transaction share its xmin: three transactions of at most
        # 2,500 rows, the tutorial's own batch into an indexed table.
        per_transaction = sorted(conn.execute(text(
            "SELECT count(*) FROM accounts7 GROUP BY xmin::text")).scalars())
        assert per_transaction == [1001, 2500, 2500]
        stats = conn.execute(text("""
            SELECT count(*), min(id), max(id),
                   avg((account_type = 'savings')::int), avg((status = 'active')::int),
                   array_agg(DISTINCT account_type ORDER BY account_type),
                   array_agg(DISTINCT region_code ORDER BY region_code),
                   array_agg(DISTINCT status ORDER BY status),
                   array_agg(DISTINCT metadata_key ORDER BY metadata_key),
                   min(balance), max(balance),
                   bool_and(created_at > localtimestamp - INTERVAL '365 days'),
                   bool_and(created_at <= localtimestamp),
                   max(created_at) - min(created_at) > INTERVAL '300 days'
            FROM accounts7""")).one()
        regions = dict(conn.execute(text(
            "SELECT region_code, avg(1.0) * count(*) / 6001 FROM accounts7 GROUP BY 1")).all())
    (count, first, last, savings, active, types, region_codes, statuses, keys,
     low, high, within_year, not_future, spread) = stats
    assert (count, first, last) == (6001, 1, 6001)
    assert 0.77 < savings < 0.83 and 0.88 < active < 0.92
    assert types == ["checking", "savings"] and statuses == ["active", "inactive"]
    assert region_codes == ["DE", "FR", "UK", "US"]
    assert all(0.22 < share < 0.28 for share in regions.values())
    assert keys == [f"account_tier_{n}" for n in range(1, 6)]
    assert 0 <= low and high <= 10000 and high.as_tuple().exponent == -2
    assert within_year and not_future and spread


def test_rerunning_every_operation_is_safe(engine):
    for _ in range(2):
        assert handler({"operation": "setup", "rows": 50})["indexes"] == ["idx_accounts7_type"]
        first = handler(event("optimize"))["indexes"]
        assert handler(event("optimize"))["indexes"] == first  # IF NOT EXISTS
        assert set(first) == NEW_INDEXES | {"idx_accounts7_type"}
        assert handler(event("query"))["rows_returned"] == handler(
            event("query"))["rows_returned"]
    # setup after optimize: back to the suboptimal state, table emptied and reloaded.
    assert handler(event("setup"))["indexes"] == ["idx_accounts7_type"]
    assert scalar(engine, "SELECT count(*) FROM accounts7") == 5000


def test_ddl_runs_in_autocommit(engine):
    with LabDatabase(engine).ddl() as conn:
        assert conn.connection.driver_connection.autocommit is True


# --- refusals: named errors, nothing changed ------------------------------------------------


@pytest.mark.parametrize("operation", ["drop_table", "SETUP", "", None, 7])
def test_unknown_operation_is_a_named_error_and_changes_nothing(small_table, operation):
    before = snapshot(small_table)
    with pytest.raises(UnknownOperation, match=f"^Unknown operation: {operation}$"):
        handler({"operation": operation})
    assert isinstance(UnknownOperation("x"), InvalidRequest)
    assert snapshot(small_table) == before


@pytest.mark.parametrize(
    ("bad_event", "field"),
    [
        ({"operation": "query", "metadata_key": 5}, "metadata_key"),
        ({"operation": "query", "metadata_key": "k" * 51}, "metadata_key"),
        ({"operation": "query_optimized", "account_type": "s" * 21}, "account_type"),
        ({"operation": "query", "region_code": "USA"}, "region_code"),
        ({"operation": "query", "region_code": "U"}, "region_code"),
        ({"operation": "query", "status": ["active"]}, "status"),
        ({"operation": "query", "status": ""}, "status"),
        ({"operation": "setup", "rows": "5000"}, "rows"),
        ({"operation": "setup", "rows": True}, "rows"),
        ({"operation": "setup", "rows": 0}, "rows"),
        ({"operation": "setup", "rows": querylab.MAX_ROWS + 1}, "rows"),
        (["operation", "setup"], "JSON object"),
    ],
)
def test_bad_values_are_named_errors_and_change_nothing(small_table, bad_event, field):
    before = snapshot(small_table)
    with pytest.raises(InvalidRequest, match=field):
        handler(bad_event)
    assert snapshot(small_table) == before


def test_filter_values_are_bound_not_spliced(small_table):
    before = snapshot(small_table)
    response = handler({"operation": "query", "metadata_key": "x' OR '1'='1"})
    assert response["rows_returned"] == 0
    assert snapshot(small_table) == before


def test_database_failures_carry_the_originals_messages(engine):
    with LabDatabase(engine).ddl() as ddl:
        ddl.execute(text("DROP TABLE accounts7"))
    try:
        with pytest.raises(querylab.OptimizationFailed, match="^Optimization failed: "):
            handler(event("optimize"))
        with pytest.raises(querylab.QueryFailed, match="^Query failed: "):
            handler(event("query"))
        with LabDatabase(engine).ddl() as ddl:
            ddl.execute(text("CREATE VIEW accounts7 AS SELECT 1 AS id"))
        with pytest.raises(querylab.SetupFailed, match="^Setup failed: .*SQLSTATE 42809"):
            handler(event("setup"))
    finally:
        with LabDatabase(engine).ddl() as ddl:
            ddl.execute(text("DROP VIEW IF EXISTS accounts7"))
        with LabDatabase(engine).ddl() as ddl:  # accounts7 again, as migrated, for what follows
            ddl.execute(CreateTable(accounts7))
        querylab.setup(LabDatabase(engine), 100, RetryPolicy())


# --- the plan parser ----------------------------------------------------------------------

# file: (scan type, index used, rows scanned, EXPLAIN ANALYZE execution time in ms)
EXPECTED_PLANS = {
    # Real plans: 5,000 rows before optimize (all read), the new index's range after it
    # (the Bitmap Index Scan's rows in the same capture), 200,000 rows in parallel.
    "pg15_seq_scan.txt": ("Seq Scan", None, 5000, 0.552),
    "pg15_bitmap_heap_scan.txt": ("Bitmap Heap Scan", "idx_accounts7_metadata", 825, 0.298),
    "pg15_index_scan.txt": ("Index Scan", "idx_accounts7_metadata", 825, 0.303),
    "pg15_index_only_scan.txt":
        ("Index Only Scan", "idx_accounts7_metadata_covering", 825, 0.191),
    # Per-loop averages times loops: exact to within their rounding.
    "pg15_parallel_seq_scan.txt":
        ("Parallel Seq Scan", None, pytest.approx(200_000, abs=2), 31.714),
    "pg18_seq_scan.txt": ("Seq Scan", None, 5000, 0.678),
    "pg18_bitmap_heap_scan.txt": ("Bitmap Heap Scan", "idx_accounts7_metadata", 755, 0.388),
    "pg18_index_scan.txt": ("Index Scan", "idx_accounts7_metadata", 755, 0.307),
    "pg18_index_only_scan.txt":
        ("Index Only Scan", "idx_accounts7_metadata_covering", 8178, 2.427),
    "pg18_parallel_seq_scan.txt":
        ("Parallel Seq Scan", None, pytest.approx(200_000, abs=2), 22.704),
    # Synthetic DSQL plans: scan rows + query-processor filter + storage Rows Filtered.
    "dsql_full_scan.txt": ("Full Scan (btree-table)", None, 5000, 61.503),
    "dsql_index_scan_type.txt": ("Index Scan", "idx_accounts7_type", 4045, 70.979),
    "dsql_index_scan_metadata.txt": ("Index Scan", "idx_accounts7_metadata", 778, 18.21),
    "dsql_index_only_scan.txt":
        ("Index Only Scan", "idx_accounts7_metadata_covering", 778, 13.283),
    # Plain EXPLAIN (no ANALYZE): nothing was scanned yet, and no execution time.
    "dsql_doc_explain_full_scan.txt": ("Full Scan (btree-table)", None, None, None),
}


def test_every_stored_plan_has_an_expectation():
    assert {p.name for p in PLANS.glob("*.txt")} == set(EXPECTED_PLANS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PLANS))
def test_parse_stored_plan(name):
    plan = parse_plan((PLANS / name).read_text())
    scan_type, index_used, rows_scanned, execution_ms = EXPECTED_PLANS[name]
    assert plan.scan_type == scan_type
    assert plan.index_used == index_used
    assert plan.rows_scanned == rows_scanned
    assert plan.execution_time_ms == execution_ms


def test_parse_plan_without_scan_nodes():
    plan = parse_plan("Result  (cost=0.00..0.01 rows=1 width=4)\n")
    assert plan == PlanSummary(None, None, None, None)


def test_insert_batches_stay_within_the_dsql_row_limit():
    assert querylab.batches(6001, 2500) == [(1, 2500), (2501, 5000), (5001, 6001)]
    lab_batch = LabDatabase.batch_rows
    assert all(last - first < lab_batch for first, last in querylab.batches(querylab.MAX_ROWS,
                                                                             lab_batch))
    assert lab_batch <= 3000


def test_setup_before_the_migrations_is_refused_and_creates_nothing(server_url):
    """The lab never creates accounts7 itself: `alembic upgrade head` would then fail."""
    from tests.conftest import Schema, engine_for

    schema = Schema(server_url, prefix="bank_lab").create(migrate=False)
    empty = engine_for(schema.url)
    try:
        with pytest.raises(querylab.SetupFailed, match="not migrated.*alembic upgrade head"):
            querylab.setup(LabDatabase(empty), 10, RetryPolicy())
        with empty.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('accounts7')")).scalar() is None
    finally:
        empty.dispose()
        schema.drop()


# --- bank query-lab ------------------------------------------------------------------------


def test_query_lab_command_prints_the_comparison_and_writes_a_report(engine, tmp_path, capsys):
    report = tmp_path / "results.md"
    assert main(["query-lab", "--rows", "3000", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "accounts7 with 3,000 rows" in out
    for label in ("Rows returned", "Rows scanned", "Index used", "Scan type"):
        assert label in out
    markdown = report.read_text()
    assert markdown.startswith("# Query optimization lab (ch07)")
    assert "## 3,000 rows" in markdown and "| Rows scanned | 3,000 |" in markdown
    assert "idx_accounts7_metadata" in markdown and "What differs from Aurora DSQL" in markdown
    assert scalar(engine, "SELECT version()") in markdown


@pytest.mark.parametrize("bad", ["\x00", "savings\x00", "\ud800", "a\udfffb"])
@pytest.mark.parametrize("field", ["account_type", "status", "metadata_key", "region_code"])
def test_a_filter_that_cannot_reach_the_database_is_an_invalid_request(small_table, field, bad):
    """A NUL or a lone surrogate cannot be sent to PostgreSQL (nor encoded as UTF-8): the
    request is refused before any database work, as any other malformed field is."""
    before = snapshot(small_table)
    value = bad if field != "region_code" else ("U" + bad)[-2:]  # exactly 2 characters
    with pytest.raises(InvalidRequest, match=field):
        handler({"operation": "query", field: value})
    assert snapshot(small_table) == before
