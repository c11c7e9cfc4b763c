"""Schema pieces shared by every API: paging and the problem document."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Range

from upgrade_server.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page


class PageQuery(Schema):
    limit = Integer(load_default=DEFAULT_LIMIT, validate=Range(1, MAX_LIMIT))
    after = Integer(load_default=None, metadata={"description": "next_cursor of the page before"})


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """A {items, next_cursor} envelope around one item schema."""
    return type(
        name,
        (Schema,),
        {
            "items": List(Nested(item), required=True),
            "next_cursor": Integer(
                allow_none=True, metadata={"description": "pass as `after` for the next page"}
            ),
        },
    )


def page_body(page: Page[Any]) -> dict[str, Any]:
    return {"items": page.items, "next_cursor": page.next_cursor}


class ProblemSchema(Schema):
    type = String(required=True)
    title = String(required=True)
    status = Integer(required=True)
    detail = String()
    instance = String()
