"""The shape of an API error every test expects."""

from __future__ import annotations

from typing import Any


def assert_problem(r: Any, status: int, slug: str) -> Any:
    """`r` is an application/problem+json answer of `status` with type
    /problems/`slug`, a title and a detail, and no traceback; its body."""
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    text = r.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text
    return body
