"""A malicious mirror: passes requests to the real server, except what a test replaces."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server


class Mirror:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        # path -> bytes, or a callable returning an iterable of bytes
        self.overrides: dict[str, bytes | Callable[[], Any]] = {}
        self.url = ""

    def fetch_upstream(self, path: str) -> bytes:
        with urllib.request.urlopen(self.upstream + path) as response:
            return response.read()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ["PATH_INFO"]
        if path in self.overrides:
            body = self.overrides[path]
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return body() if callable(body) else [body]
        try:
            data = self.fetch_upstream(path)
        except urllib.error.HTTPError as error:
            start_response(f"{error.code} Error", [("Content-Type", "text/plain")])
            return [b""]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]


@contextmanager
def mirror_of(upstream: str) -> Iterator[Mirror]:
    mirror = Mirror(upstream)
    server = make_server("127.0.0.1", 0, mirror, threaded=True)
    mirror.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        thread.join(timeout=10)
