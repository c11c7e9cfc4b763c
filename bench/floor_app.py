"""The floor of the update-check bench: a minimal Flask endpoint, same-sized JSON."""

import hashlib
import os

from flask import Flask, Response, request

app = Flask(__name__)
SIZE = int(os.environ.get("FLOOR_BODY_BYTES", "420"))
BODY = ('{"padding":"' + "x" * max(0, SIZE - 14) + '"}').encode()
ETAG = hashlib.sha256(BODY).hexdigest()[:32]


@app.post("/api/device/v1/update-check")
def check() -> Response:
    if request.headers.get("If-None-Match", "").strip('"') == ETAG:
        return Response(status=304, headers={"ETag": f'"{ETAG}"'})
    return Response(BODY, mimetype="application/json", headers={"ETag": f'"{ETAG}"'})
