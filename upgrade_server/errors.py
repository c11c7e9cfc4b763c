"""Domain errors and the one table that maps them to problem types.

Services raise the errors below and know nothing of HTTP. Every error that
leaves the API is an RFC 9457 `application/problem+json` document whose `type`
is a stable URI reference (`/problems/<slug>`, served by the app with a short
description), so clients can branch on it. No stack trace ever reaches a client.

This module imports no web framework, so services and storage backends that
raise these errors stay free of Flask; rendering them as responses is
`upgrade_server.http_errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def accepts(*mimetypes: str) -> Any:
    """Declare the body types a view takes (default: application/json); the
    check itself is http_errors.check_request."""

    def mark(view: Any) -> Any:
        view.accepted_mimetypes = frozenset(mimetypes)
        return view

    return mark


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
