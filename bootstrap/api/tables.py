"""meta.k8s.io/v1 Table responses for `kubectl get`, with the columns of
upstream's printers (pkg/printers/internalversion/printers.go)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bootstrap.api.table_columns import Column, default_columns
from bootstrap.api.tables_kinds import COLUMNS


def _columns_for(plural: str) -> list[Column]:
    factory = COLUMNS.get(plural)
    return factory() if factory else default_columns()


def _row_object(obj: dict, include_object: str) -> dict | None:
    if include_object == "None":
        return None
    if include_object == "Metadata":
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {}}
    return obj


def to_table(objs: list[dict], resource, *, include_object: str = "Metadata",
             list_meta: dict | None = None, now: datetime | None = None) -> dict:
    """Build the Table for ``objs`` of ``resource`` (a bootstrap.api.resources.Resource)."""
    now = now or datetime.now(UTC)
    plural = resource.plural if hasattr(resource, "plural") else str(resource)
    custom = getattr(resource, "custom", None)
    cols = custom.columns() if custom is not None else _columns_for(plural)
    rows = []
    for o in objs:
        row: dict[str, Any] = {"cells": [c.cell(o, now) for c in cols]}
        ro = _row_object(o, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": [c.definition() for c in cols],
        "rows": rows,
    }
