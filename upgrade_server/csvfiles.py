"""Reports as CSV downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from flask import Response


def spreadsheet_safe(text: str) -> str:
    """A text as a spreadsheet shows it, never as a formula it would run (a
    ticket titled "=HYPERLINK(...)" by a customer): a leading quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(rows: Iterable[dict[str, Any]], columns: list[str], filename: str) -> Response:
    """Rows as a CSV attachment, columns in the given order; texts made
    spreadsheet-safe (numbers stay numbers)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: spreadsheet_safe(v) if isinstance(v, str) else v for k, v in row.items()}
        )
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
