"""EXPLAIN ANALYZE plans, read: the index used, the scan type, the rows scanned, the time.

Pure text parsing, for PostgreSQL 15-18 plans and Aurora DSQL's, whose scans are named
``Full Scan (btree-table) on t`` or ``Index Scan using i on t`` with child
``Storage Scan`` / ``B-Tree Scan`` / ``Storage Lookup`` nodes and ``Rows Filtered:`` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A plan node: "Seq Scan on t  (cost=...", "  ->  Index Scan using i on t  (actual ...",
# DSQL's "Full Scan (btree-table) on t  (cost=..." and "-> Storage Scan on i (cost=...".
_NODE = re.compile(r"^\s*(?:->\s*)?(?P<name>[A-Z].*?)\s+\((?:cost=|actual |never executed)")
_ACTUAL = re.compile(r"\(actual (?:time=\S+ )?rows=(?P<rows>[\d.]+) loops=(?P<loops>\d+)\)")
_COUNTER = re.compile(
    r"^\s*(?P<label>Rows Removed by Filter|Rows Removed by Index Recheck|Rows Filtered):"
    r"\s*(?P<n>[\d.]+)"
)
_EXECUTION = re.compile(r"^\s*Execution Time:\s*(?P<ms>[\d.]+)\s*ms")
_ACCESS = re.compile(r"^(?P<type>.+?)(?: using (?P<index>\S+))? on (?P<relation>\S+)")
# Nodes that read a table (PostgreSQL 15-18 and DSQL's top-level scan nodes).
_TABLE_SCANS = (
    "Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Full Scan",
    "Tid Scan", "Tid Range Scan", "Sample Scan",
)
# DSQL's children of a scan node: the work done in storage.
_STORAGE_NODES = ("Storage Scan", "Storage Lookup", "B-Tree Scan", "B-Tree Lookup")


@dataclass
class _Node:
    kind: str  # "scan", "bitmap-index", "storage" or "other"
    scan_type: str
    index: str | None
    rows: float = 0.0
    loops: int = 1
    removed: float = 0.0  # Rows Removed by Filter / Index Recheck (PostgreSQL, per loop)
    filtered: float = 0.0  # Rows Filtered (DSQL storage filters)
    analyzed: bool = False  # has "(actual ...)": EXPLAIN ANALYZE, not plain EXPLAIN


@dataclass(frozen=True)
class PlanSummary:
    index_used: str | None
    scan_type: str | None
    rows_scanned: int | None
    execution_time_ms: float | None


def _node(name: str) -> _Node:
    match = _ACCESS.match(name)
    scan_type = match.group("type") if match else name
    index = match.group("index") if match else None
    bare = scan_type.removeprefix("Parallel ")
    if bare.startswith(_STORAGE_NODES):
        return _Node("storage", scan_type, None)
    if bare.startswith("Bitmap Index Scan"):
        return _Node("bitmap-index", scan_type, match.group("relation") if match else None)
    if bare.startswith(_TABLE_SCANS):
        return _Node("scan", scan_type, index)
    return _Node("other", scan_type, None)


def parse_plan(plan: str) -> PlanSummary:
    """Read an EXPLAIN ANALYZE text plan (PostgreSQL 15-18 or Aurora DSQL).

    ``rows_scanned`` is what the scan nodes produced plus what their filters removed:
    for PostgreSQL the rows plus ``Rows Removed by Filter`` / ``by Index Recheck``, for
    DSQL also the ``Rows Filtered`` of the scan's storage children. PostgreSQL prints
    per-loop averages, so these are multiplied by ``loops`` (parallel scans): the total is
    then exact to within the rounding of those averages.
    """
    nodes: list[_Node] = []
    execution_ms = None
    for line in plan.splitlines():
        if (node_match := _NODE.match(line)) is not None:
            nodes.append(_node(node_match.group("name")))
            if (actual := _ACTUAL.search(line)) is not None:
                nodes[-1].rows = float(actual.group("rows"))
                nodes[-1].loops = int(actual.group("loops"))
                nodes[-1].analyzed = True
            elif "never executed" in line:
                nodes[-1].loops, nodes[-1].analyzed = 0, True
        elif (counter := _COUNTER.match(line)) is not None and nodes:
            if counter.group("label") == "Rows Filtered":
                nodes[-1].filtered += float(counter.group("n"))
            else:
                nodes[-1].removed += float(counter.group("n"))
        elif (execution := _EXECUTION.match(line)) is not None:
            execution_ms = float(execution.group("ms"))
    scans = [n for n in nodes if n.kind == "scan"]
    indexes = [n.index for n in nodes if n.kind in ("scan", "bitmap-index") and n.index]
    rows_scanned = None
    if scans and all(n.analyzed for n in scans):
        total = sum((n.rows + n.removed) * n.loops for n in scans)
        total += sum(n.filtered * n.loops for n in nodes if n.kind in ("scan", "storage"))
        rows_scanned = round(total)
    return PlanSummary(
        index_used=indexes[0].strip('"') if indexes else None,
        scan_type=scans[0].scan_type if scans else None,
        rows_scanned=rows_scanned,
        execution_time_ms=execution_ms,
    )
