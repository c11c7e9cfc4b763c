"""A round-robin load balancer in front of server nodes, as nginx's `upstream`
with `proxy_next_upstream error`: each request goes to the next node in turn,
a node that refuses the connection is passed over (nothing was sent to it, so
the next one may take the request), and bodies stream both ways, so an upload
reaches a node as it is sent. A node that fails once it has the request is a
502 for the client, who decides whether to send it again."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from tests.helpers.serving import served

_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
_CHUNK = 256 * 1024


class Balancer:
    def __init__(self, nodes: list[str]) -> None:
        self.nodes = nodes
        self.url = ""
        # The node each request was handed to, in order.
        self.served: list[str] = []
        # Called with the node once it has the whole request, before its answer
        # is read: where a test makes the node fail at that moment.
        self.before_answer: Callable[[str], None] | None = None
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            first = next(self._turn) % len(self.nodes)
        for node in self.nodes[first:] + self.nodes[:first]:
            address = urlsplit(node)
            upstream = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
            try:
                upstream.connect()
            except ConnectionRefusedError:
                continue
            with self._lock:
                self.served.append(node)
            try:
                _send_request(upstream, environ)
                if self.before_answer is not None:
                    self.before_answer(node)
                answer = upstream.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                upstream.close()
                return _bad_gateway(start_response, f"{node} failed: {exc!r}")
            headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP]
            start_response(f"{answer.status} {answer.reason}", headers)
            return _relay(answer, upstream)
        return _bad_gateway(start_response, "no node accepts connections")


def _send_request(upstream: http.client.HTTPConnection, environ: dict[str, Any]) -> None:
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
    upstream.putrequest(environ["REQUEST_METHOD"], target, skip_host=True)
    for key, value in environ.items():
        name = key[5:].replace("_", "-").lower()
        if key.startswith("HTTP_") and name not in _HOP and name != "content-length":
            upstream.putheader(name, value)
    if environ.get("CONTENT_TYPE"):
        upstream.putheader("Content-Type", environ["CONTENT_TYPE"])
    body = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        upstream.putheader("Content-Length", length)
        upstream.endheaders()
        left = int(length)
        while left > 0 and (chunk := body.read(min(left, _CHUNK))):
            upstream.send(chunk)
            left -= len(chunk)
    elif environ.get("wsgi.input_terminated"):  # a chunked body, dechunked by the server
        upstream.putheader("Transfer-Encoding", "chunked")
        upstream.endheaders()
        while chunk := body.read(_CHUNK):
            upstream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        upstream.send(b"0\r\n\r\n")
    else:
        upstream.endheaders()


def _relay(
    answer: http.client.HTTPResponse, upstream: http.client.HTTPConnection
) -> Iterator[bytes]:
    try:
        while chunk := answer.read1(_CHUNK):
            yield chunk
    finally:
        upstream.close()


def _bad_gateway(start_response: Callable[..., Any], detail: str) -> Iterable[bytes]:
    body = json.dumps({"title": "Bad Gateway", "status": 502, "detail": detail}).encode()
    start_response("502 Bad Gateway", [("Content-Type", "application/problem+json")])
    return [body]


@contextmanager
def balancer_of(nodes: list[str]) -> Iterator[Balancer]:
    balancer = Balancer(nodes)
    with served(balancer) as balancer.url:
        yield balancer
