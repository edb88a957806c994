"""Building blocks of Table columns: the Column type, cells every kind shares
(name, age), upstream's duration formatting and schema-sourced descriptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bootstrap.api import meta as _meta
from bootstrap.api import schema

Cell = Callable[[dict, datetime], Any]


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return f"{minutes}m" if sec == 0 else f"{minutes}m{sec}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(ts: str | None, now: datetime) -> str:
    """translateTimestampSince."""
    if not ts:
        return "<unknown>"
    try:
        return human_duration((now - _meta.parse_time(ts)).total_seconds())
    except ValueError:
        return "<unknown>"


def age(obj: dict, now: datetime) -> str:
    return since((obj.get("metadata") or {}).get("creationTimestamp"), now)


def name(obj: dict, now: datetime) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _doc(definition: str, field: str) -> str:
    try:
        props = schema.definitions()[definition]["properties"]
        return props[field].get("description", "")
    except KeyError:
        return ""


def _meta_doc(field: str) -> str:
    return _doc("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", field)


class Column:
    __slots__ = ("name", "type", "format", "priority", "description", "cell")

    def __init__(self, name: str, cell: Cell, type: str = "string", priority: int = 0,
                 description: str = "", format: str = ""):
        self.name, self.cell, self.type = name, cell, type
        self.priority, self.description, self.format = priority, description, format

    def definition(self) -> dict:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


def name_column() -> Column:
    return Column("Name", name, format="name", description=_meta_doc("name"))


def age_column() -> Column:
    return Column("Age", age, description=_meta_doc("creationTimestamp"))


def default_columns() -> list[Column]:
    """rest.NewDefaultTableConvertor: Name and Created At."""
    return [name_column(),
            Column("Created At", lambda o, n: (o.get("metadata") or {}).get("creationTimestamp", ""),
                   type="date", description=_meta_doc("creationTimestamp"))]
