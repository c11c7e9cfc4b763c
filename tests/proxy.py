"""A lying server or a malicious mirror: a proxy in front of the real server
that can answer anything itself."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import urllib3

from tests.helpers.serving import served

Answer = tuple[int, dict[str, str], Iterable[bytes]]
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "host"}


class Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.http = urllib3.PoolManager(retries=False)
        # (method, path) -> a function of the WSGI environ giving the answer
        self.overrides: dict[tuple[str, str], Callable[[dict[str, Any]], Answer]] = {}
        # GET path -> the bytes (or a function yielding chunks) served instead
        self.served: dict[str, bytes | Callable[[], Iterable[bytes]]] = {}
        self.url = ""

    def fetch_upstream(self, path: str) -> bytes:
        return self.http.request("GET", self.upstream + path).data

    def forward(self, environ: dict[str, Any]) -> Answer:
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].lower().replace("_", "-") not in _HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        query = environ.get("QUERY_STRING")
        url = self.upstream + environ["PATH_INFO"] + (f"?{query}" if query else "")
        response = self.http.request(
            environ["REQUEST_METHOD"], url, body=body, headers=headers, redirect=False
        )
        out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP}
        return response.status, out, [response.data]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        key = (environ["REQUEST_METHOD"], environ["PATH_INFO"])
        served = self.served.get(environ["PATH_INFO"]) if key[0] == "GET" else None
        if served is not None:
            body = served() if callable(served) else [served]
            status, headers = 200, {"Content-Type": "application/octet-stream"}
        else:
            status, headers, body = self.overrides.get(key, self.forward)(environ)
        start_response(f"{status} X", list(headers.items()))
        return body


@contextmanager
def proxy_of(upstream: str) -> Iterator[Proxy]:
    proxy = Proxy(upstream)
    with served(proxy) as proxy.url:
        yield proxy
