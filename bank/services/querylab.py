"""ch07: the query-optimization lab on ``accounts7``.

Four steps, as in the original: ``setup`` (a fresh table with only the suboptimal
``idx_accounts7_type``), ``query``, ``optimize`` (the composite and the covering index),
``query_optimized``. Each query runs the seed's SQL once for the round-trip time and the
rows, and once under ``EXPLAIN (ANALYZE)`` for the plan, which ``bank.services.plans``
reads: the index used, the scan type, the rows scanned, and the execution time.

The database work is ``bank.adapters.lab.LabDatabase``'s; this module orders it, retries
it where DSQL may refuse a statement right after DDL (OC001, SQLSTATE 40001), and shapes
the answers.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from bank.domain.errors import BankError, InvalidRequest
from bank.domain.model import LAB_TEXT_LENGTHS
from bank.domain.requests import sendable
from bank.services.plans import parse_plan
from bank.services.retry import RetryPolicy, run

DEFAULT_ROWS = 5000
MAX_ROWS = 1_000_000  # 400 transactions of 2,500 rows: minutes on DSQL, within Lambda's 5
DEFAULT_FILTERS = {
    "metadata_key": "account_tier_1",
    "account_type": "savings",
    "region_code": "US",
    "status": "active",
}
OPERATIONS = ("setup", "query", "optimize", "query_optimized")


class Lab(Protocol):
    """The lab's database work (``bank.adapters.lab.LabDatabase``)."""

    batch_rows: int  # rows per transaction of the load

    def rebuild_table(self) -> None: ...
    def load(self, first: int, last: int) -> None: ...
    def build_optimizing_indexes(self) -> list[str]: ...
    def analyze(self) -> None: ...
    def indexes(self) -> list[str]: ...
    def query(self, params: dict[str, Any]) -> tuple[Any, float, str]: ...


class SetupFailed(BankError):
    """``setup`` could not rebuild or load accounts7."""


class OptimizationFailed(BankError):
    """``optimize`` could not build the indexes or refresh the statistics."""


class QueryFailed(BankError):
    """The lab's query or its EXPLAIN ANALYZE failed."""


# --- the event -------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    metadata_key: str
    account_type: str
    region_code: str
    status: str


def parse_filters(event: dict) -> Filters:
    """The four filters, defaulted as in the original and checked against the columns."""
    values = {}
    for name, default in DEFAULT_FILTERS.items():
        value = event.get(name)
        if value is None:
            value = default
        if not isinstance(value, str):
            raise InvalidRequest(f"'{name}' must be a string, got {type(value).__name__}")
        sendable(value, name)
        length = LAB_TEXT_LENGTHS[name]
        if name == "region_code" and len(value) != length:
            raise InvalidRequest(f"'{name}' must be exactly {length} characters, got {value!r}")
        if not 1 <= len(value) <= length:
            raise InvalidRequest(f"'{name}' must be 1 to {length} characters, got {len(value)}")
        values[name] = value
    return Filters(**values)


def parse_rows(event: dict) -> int:
    value = event.get("rows")
    if value is None:
        return DEFAULT_ROWS
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'rows' must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_ROWS:
        raise InvalidRequest(f"'rows' must be between 1 and {MAX_ROWS:,}, got {value}")
    return value


# --- the four operations ---------------------------------------------------------------


def batches(rows: int, size: int) -> list[tuple[int, int]]:
    """(first id, last id) of each batch of at most ``size`` rows."""
    return [(first, min(first + size - 1, rows)) for first in range(1, rows + 1, size)]


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def setup(lab: Lab, rows: int, policy: RetryPolicy) -> dict:
    start = time.perf_counter()
    try:
        lab.rebuild_table()
        for first, last in batches(rows, lab.batch_rows):
            # Safe to retry: a failed batch rolled back whole. On DSQL the first use of a
            # pooled connection after DDL may see a schema conflict (OC001, 40001).
            run(functools.partial(lab.load, first, last), policy)
        run(lab.analyze, policy)
        indexes = lab.indexes()
    except BankError as exc:
        raise SetupFailed(f"Setup failed: {exc}") from exc
    return {
        "operation": "setup",
        "message": f"Database setup completed with {rows} rows and suboptimal index",
        "rows_loaded": rows,
        "indexes": indexes,
        "execution_time_ms": _elapsed_ms(start),
    }


def optimize(lab: Lab, policy: RetryPolicy) -> dict:
    start = time.perf_counter()
    try:
        # IF NOT EXISTS makes a retry safe; DSQL may answer OC001 right after setup's DDL.
        built, _ = run(lab.build_optimizing_indexes, policy)
        run(lab.analyze, policy)
        indexes = lab.indexes()
    except BankError as exc:
        raise OptimizationFailed(f"Optimization failed: {exc}") from exc
    return {
        "operation": "optimize",
        "message": f"Created {' and '.join(built)}; statistics refreshed",
        "indexes": indexes,
        "execution_time_ms": _elapsed_ms(start),
    }


def run_query(lab: Lab, filters: Filters, policy: RetryPolicy,
              operation: str = "query") -> dict:
    params = asdict(filters)
    try:
        # Right after optimize's DDL, a pooled DSQL connection may see OC001 (40001) once.
        (rows, execution_time_ms, query_plan), _ = run(lambda: lab.query(params), policy)
    except BankError as exc:
        raise QueryFailed(f"Query failed: {exc}") from exc
    plan = parse_plan(query_plan)
    access = f"{plan.scan_type} using {plan.index_used}" if plan.index_used else plan.scan_type
    return {
        "operation": operation,
        "execution_time_ms": execution_time_ms,
        "rows_returned": len(rows),
        "query_plan": query_plan,
        "message": f"Query returned {len(rows)} rows: {access}, {plan.rows_scanned} rows scanned",
        "index_used": plan.index_used,
        "scan_type": plan.scan_type,
        "rows_scanned": plan.rows_scanned,
        "plan_execution_time_ms": plan.execution_time_ms,
        "filters": params,
    }


@dataclass(frozen=True)
class LabRun:
    rows: int
    setup: dict
    before: dict
    optimize: dict
    after: dict


def run_lab(lab: Lab, rows: int, policy: RetryPolicy, filters: Filters | None = None) -> LabRun:
    """The four steps in order, as the tutorial runs them."""
    filters = filters or parse_filters({})
    return LabRun(
        rows=rows,
        setup=setup(lab, rows, policy),
        before=run_query(lab, filters, policy, "query"),
        optimize=optimize(lab, policy),
        after=run_query(lab, filters, policy, "query_optimized"),
    )
