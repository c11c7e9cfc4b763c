"""The device edge's WSGI layer: one HTTP contract for everything a device calls.

Every request under /api/device/v1 and /tuf passes through here, and so does
every answer to one: the same headers (X-Request-ID, nosniff, and on a 401 the
one `WWW-Authenticate`) and the same body limit, whether the answer comes from
Flask or from the update check served here without it.

hawkBit's DDI API (`/{tenant}/controller/v1/...`, ddi/) passes through here
too, with its own `WWW-Authenticate`; its base poll is answered here as the
update check is.

The update check (`POST /api/device/v1/update-check`) is answered before Flask
dispatches it: Flask's request machinery (context push, hooks, routing,
response objects) costs more than the check itself, and a fleet calls it
hundreds of times a second. Its Flask view (updates.py) only documents it.

A request is refused in one order on every device endpoint: first as a
message, which costs no database read (413 by its declared length, 415 by its
type, 400 when it is not JSON), then by who sends it (401), then by what it
says (422).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from random import getrandbits as _random_bits
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

from upgrade_server import metrics
from upgrade_server.device_edge.ddi import targets as ddi_targets
from upgrade_server.device_edge.ddi.poll import PATH as DDI_POLL
from upgrade_server.device_edge.ddi.poll import BasePoll
from upgrade_server.device_edge.update_check import UpdateCheck
from upgrade_server.errors import (
    AppError,
    BadRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    problem_document,
)
from upgrade_server.failures import answer_for

log = logging.getLogger(__name__)

DEVICE_PATHS = (UpdateCheck.URL_PREFIX + "/", "/tuf/")
DDI_PATHS = "/controller/v1/"  # after the tenant
PATH = UpdateCheck.URL_PREFIX + "/update-check"
# The largest request body any device endpoint takes (an alarm's details,
# an update check's inventory); larger ones are refused by their declared length.
MAX_BODY = 64 * 1024
WWW_AUTHENTICATE = 'Bearer realm="device API"'
_SET_HERE = frozenset({"x-request-id", "x-content-type-options", "www-authenticate"})

Headers = list[tuple[str, str]]


def edge_headers(
    status: int, headers: Headers, request_id: str, challenge: str = WWW_AUTHENTICATE
) -> Headers:
    """`headers` with the ones every device answer carries, whichever path made it."""
    kept = [(k, v) for k, v in headers if k.lower() not in _SET_HERE]
    kept.append(("X-Request-ID", request_id))
    kept.append(("X-Content-Type-Options", "nosniff"))
    if status == 401:
        kept.append(("WWW-Authenticate", challenge))
    return kept


def problem_answer(error: Exception, path: str) -> tuple[int, Headers, bytes]:
    """The problem answering `error`, by the mapping every app uses."""
    answer = answer_for(error, path)
    document = problem_document(answer.problem, answer.detail, answer.extra, path)
    return (
        answer.problem.status,
        [("Content-Type", "application/problem+json")],
        json.dumps(document).encode(),
    )


def declared_length(environ: dict[str, Any]) -> int:
    """The body's declared length; refuses one past MAX_BODY before it is read."""
    declared = environ.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit():
        raise BadRequestError("Content-Length is not a number of bytes")
    length = int(declared)
    if length > MAX_BODY:
        raise PayloadTooLargeError(f"a device request's body is at most {MAX_BODY} bytes")
    return length


class DeviceEdge:
    """The device edge, in front of the app."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], check: UpdateCheck, ddi_poll: BasePoll
    ) -> None:
        self.app = app
        self.check = check
        self.ddi_poll = ddi_poll

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        challenge = WWW_AUTHENTICATE
        if not path.startswith(DEVICE_PATHS):
            if DDI_PATHS not in path:
                return self.app(environ, start_response)
            challenge = ddi_targets.WWW_AUTHENTICATE
        # Flask's request id is this one (it reads the header), so both paths
        # log it. 32 random hex digits as uuid4().hex gives, without its system
        # call (random reseeds in each forked worker; an id needs no secrecy).
        request_id = environ.get("HTTP_X_REQUEST_ID") or _random_bits(128).to_bytes(16).hex()
        environ["HTTP_X_REQUEST_ID"] = request_id
        method = environ.get("REQUEST_METHOD")
        if path == PATH and method == "POST":
            status, headers, body = respond(self.check, environ)
            metrics.count_update_check(status, body)
        elif method == "GET" and (poll := DDI_POLL.match(path)) is not None:
            try:
                status, headers, body = self.ddi_poll(environ, poll[1], poll[2])
            except Exception as error:
                status, headers, body = problem_answer(error, path)
            metrics.count_ddi_poll(status, body)
        else:
            try:
                declared_length(environ)
            except AppError as error:
                status, headers, body = problem_answer(error, path)
            else:

                def edge_start(line: str, headers: Headers, exc_info: Any = None) -> Any:
                    headers = edge_headers(int(line[:3]), headers, request_id, challenge)
                    return start_response(line, headers, exc_info)

                return self.app(environ, edge_start)
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, '')}",
            edge_headers(status, headers, request_id, challenge),
        )
        return [body]


def respond(check: UpdateCheck, environ: dict[str, Any]) -> tuple[int, Headers, bytes]:
    """The update check's (status, headers, body), problems included."""
    try:
        return check(
            environ.get("HTTP_AUTHORIZATION", ""),
            _read_body(environ),
            environ.get("HTTP_IF_NONE_MATCH", ""),
        )
    except Exception as error:
        return problem_answer(error, PATH)


def _read_body(environ: dict[str, Any]) -> bytes:
    """The body, by Content-Length or chunked (the server decodes the chunks)."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    length = declared_length(environ)
    if not length and not chunked:
        return b""
    mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json":
        raise UnsupportedMediaTypeError(
            f"send the body as application/json, not {mimetype or 'untyped'}"
        )
    body = environ["wsgi.input"].read(MAX_BODY + 1 if chunked else length)
    if len(body) > MAX_BODY:
        raise PayloadTooLargeError(f"a device request's body is at most {MAX_BODY} bytes")
    return bytes(body)
