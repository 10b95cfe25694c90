"""The machine-room layout: node -> rack -> room (and optionally the node's partition).

File columns (CSV or Parquet): ``node``, ``rack``, ``room``, optional ``partition``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from warehouse.reports.quality import QualityIssue, show

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a node sits."""

    rack: str
    room: str
    partition: str | None = None


@dataclass(frozen=True, slots=True)
class NodeMap:
    """Nodes by name, with the findings from reading the mapping."""

    nodes: dict[str, Location]
    issues: tuple[QualityIssue, ...] = ()

    def racks(self) -> dict[str, str]:
        """rack -> room."""
        return {loc.rack: loc.room for loc in self.nodes.values()}

    def rooms(self) -> list[str]:
        """Room ids, sorted."""
        return sorted({loc.room for loc in self.nodes.values()})


def read_mapping_table(path: str | Path) -> pd.DataFrame:
    """Read a mapping file (Parquet by suffix, else CSV) as strings."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path, engine="pyarrow").astype("string")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def parse_mapping(table: pd.DataFrame) -> NodeMap:
    """Validate mapping rows: empty fields and a node mapped twice differently are findings
    (the first row wins)."""
    missing = [c for c in ("node", "rack", "room") if c not in table.columns]
    if missing:
        raise ValueError(f"mapping lacks column(s) {', '.join(missing)}")
    nodes: dict[str, Location] = {}
    issues: list[QualityIssue] = []
    has_partition = "partition" in table.columns
    for i, row in enumerate(table.itertuples(index=False)):
        node, rack, room = (str(getattr(row, c) or "").strip() for c in ("node", "rack", "room"))
        partition = str(row.partition or "").strip() if has_partition else ""
        if not node or not rack or not room:
            issues.append(
                QualityIssue(
                    kind="mapping",
                    subject=f"row {i + 1}",
                    detail=f"node, rack and room are required; got {show((node, rack, room))}",
                )
            )
            continue
        loc = Location(rack, room, partition or None)
        if node in nodes and nodes[node] != loc:
            issues.append(
                QualityIssue(
                    kind="mapping",
                    subject=node,
                    detail=f"mapped twice: {nodes[node]} and {loc} (row {i + 1}); first kept",
                )
            )
            continue
        nodes[node] = loc
    return NodeMap(nodes=nodes, issues=tuple(issues))


def mapping_from_rows(rows: Iterable[tuple[str, str, str]]) -> NodeMap:
    """A mapping from ``(node, rack, room)`` tuples (tests, synthetic rooms)."""
    return NodeMap({node: Location(rack, room) for node, rack, room in rows})
