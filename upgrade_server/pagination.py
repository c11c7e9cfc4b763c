"""Keyset paging: stable under inserts and as fast on page 1,000 as on page 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: int | None


def paginate(
    session: Session, stmt: Select[Any], id_column: Any, limit: int, after: int | None
) -> Page[Any]:
    """Items with ids above `after`, in id order; next_cursor is None on the last page."""
    limit = max(1, min(limit, MAX_LIMIT))
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list(session.execute(stmt.order_by(id_column).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more and rows else None)
