"""The floor of the update-check bench: a minimal Flask endpoint, same-sized JSON.

With FLOOR_DATABASE_URL set (PostgreSQL) each request also makes one `SELECT 1`
round trip on a connection the worker keeps, through libpq's cheapest call:
the ceiling of any check that must ask the database once (the update check
looks its token up on every call, so that a revoked token is refused at once).
"""

import hashlib
import os

from flask import Flask, Response, request

app = Flask(__name__)
SIZE = int(os.environ.get("FLOOR_BODY_BYTES", "420"))
BODY = ('{"padding":"' + "x" * max(0, SIZE - 14) + '"}').encode()
ETAG = hashlib.sha256(BODY).hexdigest()[:32]
DATABASE_URL = os.environ.get("FLOOR_DATABASE_URL")
_kept: dict[int, object] = {}


def _round_trip() -> None:
    import psycopg

    conn = _kept.get(os.getpid())
    if conn is None:  # one per worker, made after gunicorn forked
        conn = _kept[os.getpid()] = psycopg.connect(DATABASE_URL, autocommit=True)
    conn.pgconn.exec_(b"SELECT 1")  # type: ignore[attr-defined]


@app.post("/api/device/v1/update-check")
def check() -> Response:
    if DATABASE_URL:
        _round_trip()
    if request.headers.get("If-None-Match", "").strip('"') == ETAG:
        return Response(status=304, headers={"ETag": f'"{ETAG}"'})
    return Response(BODY, mimetype="application/json", headers={"ETag": f'"{ETAG}"'})


@app.get("/<tenant>/controller/v1/<controller_id>")
def ddi_poll(tenant: str, controller_id: str) -> Response:
    """The floor of a DDI base poll: the same JSON, asked with GET."""
    if DATABASE_URL:
        _round_trip()
    return Response(BODY, mimetype="application/json")
