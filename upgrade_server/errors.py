"""Domain errors, the one table that maps them to HTTP, and problem+json handlers.

Services raise the errors below and know nothing of HTTP. Every error that
leaves the API is an RFC 9457 `application/problem+json` document whose `type`
is a stable URI reference (`/problems/<slug>`, served by the app with a short
description), so clients can branch on it. No stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, abort, json, request
from werkzeug.http import HTTP_STATUS_CODES

from upgrade_server.jsonbody import unstorable_text

if TYPE_CHECKING:
    from apiflask import APIFlask
    from apiflask.exceptions import HTTPError

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"


class AppError(Exception):
    """Base of every error the services raise on purpose."""

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or "")
        self.detail = detail
        self.extra = extra


class BadRequestError(AppError):
    pass


class InvalidInputError(AppError):
    """The request is well-formed but its content breaks a rule.

    `errors` lists each problem as {"field" or "row", "message"}.
    """

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])


class AuthenticationError(AppError):
    pass


class PermissionDeniedError(AppError):
    pass


class NotEntitledError(PermissionDeniedError):
    """The device's upgrade coverage does not include this release."""


class NotFoundError(AppError):
    pass


class ConflictError(AppError):
    pass


class PayloadTooLargeError(AppError):
    pass


class UnsupportedMediaTypeError(AppError):
    pass


class ServiceUnavailableError(AppError):
    pass


class StorageError(ServiceUnavailableError):
    """The artifact store failed; nothing was written under a final name."""


class SigningError(ServiceUnavailableError):
    """Metadata could not be signed (an online key is missing or unreadable)."""


class InvalidSignatureError(InvalidInputError):
    """A signature does not verify with any key of the role it claims to sign."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, [{"field": "signature", "message": detail}])


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str
    description: str


# The one table from error type to HTTP status and problem type.
PROBLEMS: dict[type[AppError], Problem] = {
    BadRequestError: Problem(400, "bad-request", "Bad request", "The request is malformed."),
    InvalidInputError: Problem(
        422,
        "invalid-input",
        "Invalid input",
        "The request was understood but its content breaks a rule; `errors` lists each one.",
    ),
    AuthenticationError: Problem(
        401,
        "unauthenticated",
        "Authentication required",
        "No valid, unexpired and unrevoked Bearer token was given for this API.",
    ),
    PermissionDeniedError: Problem(
        403, "forbidden", "Forbidden", "The caller's role does not allow this action."
    ),
    NotEntitledError: Problem(
        403,
        "not-entitled",
        "Not entitled",
        "The device's upgrade coverage does not include this release: it was published"
        " after the coverage ended. A contract that covers it brings it.",
    ),
    NotFoundError: Problem(
        404,
        "not-found",
        "Not found",
        "Nothing is there, or nothing the caller may see: existence is not revealed.",
    ),
    ConflictError: Problem(
        409, "conflict", "Conflict", "The request conflicts with the current state."
    ),
    PayloadTooLargeError: Problem(
        413, "payload-too-large", "Payload too large", "The request body exceeds the limit."
    ),
    UnsupportedMediaTypeError: Problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        "The request body's Content-Type is not one this endpoint accepts.",
    ),
    ServiceUnavailableError: Problem(
        503,
        "service-unavailable",
        "Service unavailable",
        "A backing service (database or storage) cannot be reached; retry later.",
    ),
    StorageError: Problem(
        503,
        "storage-unavailable",
        "Storage unavailable",
        "The artifact store failed; nothing was changed.",
    ),
    SigningError: Problem(
        503,
        "signing-unavailable",
        "Signing unavailable",
        "Metadata could not be signed with the online keys; nothing was changed.",
    ),
    InvalidSignatureError: Problem(
        422,
        "invalid-signature",
        "Invalid signature",
        "The signature does not verify with a key of the role it signs.",
    ),
}

# Problems raised by the HTTP layer itself (routing, body limits, auth), by status.
HTTP_PROBLEMS: dict[int, Problem] = {
    400: PROBLEMS[BadRequestError],
    401: PROBLEMS[AuthenticationError],
    403: PROBLEMS[PermissionDeniedError],
    404: PROBLEMS[NotFoundError],
    405: Problem(
        405, "method-not-allowed", "Method not allowed", "This URL does not accept the method."
    ),
    409: PROBLEMS[ConflictError],
    413: PROBLEMS[PayloadTooLargeError],
    415: PROBLEMS[UnsupportedMediaTypeError],
    422: PROBLEMS[InvalidInputError],
    500: Problem(
        500,
        "internal-error",
        "Internal server error",
        "The server failed; the error was logged with the request id.",
    ),
    503: PROBLEMS[ServiceUnavailableError],
}


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (application/problem+json)",
    "properties": {
        "type": {"type": "string", "description": "stable problem type, /problems/<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    **PROBLEM_SCHEMA,
    "properties": {
        **PROBLEM_SCHEMA["properties"],
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "row": {"type": "integer"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def accepts(*mimetypes: str) -> Any:
    """Declare the body types a view takes (default: application/json)."""

    def mark(view: Any) -> Any:
        view.accepted_mimetypes = frozenset(mimetypes)
        return view

    return mark


def check_request(app: Flask) -> None:
    """Before any view: text no store can hold in the query or a form is a 400; on the
    API, a body of a type the endpoint does not take is a 415, and a JSON body
    is parsed strictly (jsonbody.loads, through the app's JSON provider: NaN,
    unpaired surrogates, NUL, deep nesting are a 400) before a schema sees it."""
    fields = request.args.items(multi=True)
    if request.mimetype == "application/x-www-form-urlencoded":  # the pages' forms
        fields = chain(fields, request.form.items(multi=True))
    for name, value in fields:
        reason = unstorable_text(name) or unstorable_text(value)
        if reason:
            raise BadRequestError(f"parameter {name!r}: {reason}")
    if request.method not in _BODY_METHODS or not request.path.startswith("/api/"):
        return
    if not request.content_length and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        return
    view = app.view_functions.get(request.endpoint or "")
    accepted = getattr(view, "accepted_mimetypes", frozenset({"application/json"}))
    if request.mimetype not in accepted:
        raise UnsupportedMediaTypeError(
            f"send the body as {' or '.join(sorted(accepted))}, not {request.mimetype or 'untyped'}"
        )
    if request.is_json:
        request.get_json()  # cached; a body that is not strict JSON raises a 400


def problem_for(error: AppError) -> Problem:
    for cls in type(error).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return HTTP_PROBLEMS[500]


def all_problems() -> dict[str, Problem]:
    found = {p.slug: p for p in PROBLEMS.values()}
    found.update({p.slug: p for p in HTTP_PROBLEMS.values()})
    return found


def problem_document(
    problem: Problem, detail: str | None, extra: dict[str, Any] | None, instance: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": detail or problem.description,
        "instance": instance,
    }
    if extra:
        body.update(extra)
    return body


def problem_response(
    problem: Problem,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = problem_document(problem, detail, extra, request.path)
    response = Response(
        json.dumps(body), status=problem.status, mimetype=PROBLEM_MIMETYPE, headers=headers
    )
    return response


def _validation_errors(detail: Any) -> list[dict[str, Any]]:
    """Flatten webargs' {"json": {"field": ["msg"]}} into a list of field errors."""
    errors: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            for message in value:
                errors.append({"field": prefix, "message": message})
        else:
            errors.append({"field": prefix, "message": str(value)})

    if isinstance(detail, dict):
        for location, fields in detail.items():
            walk("" if location in ("json", "query", "form", "files") else location, fields)
    return errors


def init_app(app: APIFlask) -> None:
    from sqlalchemy.exc import DataError, DBAPIError, OperationalError

    from upgrade_server.database import refuses_writes

    @app.error_processor
    def _http_error(error: HTTPError) -> Response:
        # APIFlask routes its own errors (validation, auth, abort) and every
        # werkzeug HTTPException through here.
        problem = HTTP_PROBLEMS.get(error.status_code) or Problem(
            error.status_code, "http-error", error.message or "HTTP error", ""
        )
        headers = {k: str(v) for k, v in dict(error.headers or {}).items() if k != "Content-Type"}
        if error.status_code == 422 and error.detail:
            return problem_response(
                problem,
                "The request body or query does not match the schema.",
                {"errors": _validation_errors(error.detail)},
                headers,
            )
        # A bare status name ("Not Found") says less than the problem's description.
        generic = {problem.title.lower(), HTTP_STATUS_CODES.get(error.status_code, "").lower()}
        detail = error.message if error.message and error.message.lower() not in generic else None
        return problem_response(problem, detail, None, headers)

    @app.errorhandler(AppError)
    def _app_error(error: AppError) -> Response:
        problem = problem_for(error)
        return problem_response(problem, error.detail, error.extra)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # HTTPExceptions have their own, more specific handler (APIFlask's).
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(HTTP_PROBLEMS[500])

    @app.errorhandler(DBAPIError)
    def _database_error(error: DBAPIError) -> Response:
        # Read-only is SQLite's OperationalError but PostgreSQL's InternalError.
        if refuses_writes(error):
            log.error("database refuses writes: %s", error.orig)
            detail = "The database does not take writes now; retry later."
        elif isinstance(error, OperationalError):
            log.error("database error: %s", error.orig)
            detail = "The database cannot be reached; retry later."
        else:
            return _unexpected(error)
        return problem_response(PROBLEMS[ServiceUnavailableError], detail)

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    @app.errorhandler(UnicodeEncodeError)
    def _unstorable_value(error: Exception) -> Response:
        # What check_request and the schemas let through but a store refuses:
        # a number past a column's range (PostgreSQL's DataError, SQLite's
        # OverflowError at bind), a date past year 9999, text no codec writes.
        log.info("value out of range on %s %s: %s", request.method, request.path, error)
        return problem_response(
            PROBLEMS[InvalidInputError],
            "A value is out of the range this server can store.",
            {"errors": []},
        )

    @app.get("/problems/<slug>")
    def problem_doc(slug: str) -> Response:
        """Describe one problem type; the `type` of every API error links here."""
        problem = all_problems().get(slug)
        if problem is None:
            abort(404)
        return Response(
            json.dumps(
                {
                    "type": f"/problems/{problem.slug}",
                    "title": problem.title,
                    "status": problem.status,
                    "description": problem.description,
                }
            ),
            mimetype="application/json",
        )
