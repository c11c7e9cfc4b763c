"""A thin WSGI layer that answers the update check before Flask dispatches it.

Flask's request machinery (context push, hooks, routing, response objects)
costs more than the check itself; a fleet calls it hundreds of times a second.
This layer handles exactly `POST /api/device/v1/update-check` with the same
UpdateCheck the Flask view uses, the same problem+json errors and the same
media-type and size rules, and hands every other request to the app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.exc import OperationalError
from werkzeug.http import HTTP_STATUS_CODES

from upgrade_server.errors import (
    HTTP_PROBLEMS,
    AppError,
    BadRequestError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    problem_document,
    problem_for,
)
from upgrade_server.updates.hot import UpdateCheck

log = logging.getLogger(__name__)

PATH = UpdateCheck.URL_PREFIX + "/update-check"
MAX_BODY = 64 * 1024


class UpdateCheckFastPath:
    def __init__(self, app: Callable[..., Iterable[bytes]], check: UpdateCheck) -> None:
        self.app = app
        self.check = check

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            status, headers, body = self._answer(environ)
        except AppError as error:
            status, headers, body = _problem(error, environ)
        except OperationalError:
            log.error("database unreachable during an update check")
            unavailable = ServiceUnavailableError("The database cannot be reached; retry later.")
            status, headers, body = _problem(unavailable, environ)
        except Exception:
            log.exception("unhandled error in the update check")
            problem = HTTP_PROBLEMS[500]
            body = json.dumps(problem_document(problem, None, None, PATH)).encode()
            status, headers = 500, [("Content-Type", "application/problem+json")]
        headers.append(("X-Content-Type-Options", "nosniff"))
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, '')}", headers)
        return [body]

    def _answer(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        body = _read_body(environ)
        return self.check(
            environ.get("HTTP_AUTHORIZATION", ""), body, environ.get("HTTP_IF_NONE_MATCH", "")
        )


def _read_body(environ: dict[str, Any]) -> bytes:
    """The body, by Content-Length or chunked (the server decodes the chunks)."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    declared = environ.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit():
        raise BadRequestError("Content-Length is not a number of bytes")
    length = int(declared)
    if length > MAX_BODY:
        raise PayloadTooLargeError(f"an update check is at most {MAX_BODY} bytes")
    if not length and not chunked:
        return b""
    mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if mimetype != "application/json":
        raise UnsupportedMediaTypeError(
            f"send the body as application/json, not {mimetype or 'untyped'}"
        )
    body = environ["wsgi.input"].read(MAX_BODY + 1 if chunked else length)
    if len(body) > MAX_BODY:
        raise PayloadTooLargeError(f"an update check is at most {MAX_BODY} bytes")
    return bytes(body)


def _problem(error: AppError, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    problem = problem_for(error)
    document = problem_document(problem, error.detail, error.extra, PATH)
    headers = [("Content-Type", "application/problem+json")]
    if problem.status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="device API"'))
    return problem.status, headers, json.dumps(document).encode()
