"""Errors as HTTP responses: the request checks and problem+json handlers.

The errors and their table (`upgrade_server.errors`) know nothing of Flask;
this module renders them for the app factory and the web layers.
"""

from __future__ import annotations

import logging
from itertools import chain
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, abort, json, request
from werkzeug.http import HTTP_STATUS_CODES

from upgrade_server.device_edge.wsgi import DEVICE_PATHS
from upgrade_server.device_edge.wsgi import MAX_BODY as DEVICE_MAX_BODY
from upgrade_server.errors import (
    HTTP_PROBLEMS,
    PROBLEM_MIMETYPE,
    BadRequestError,
    PayloadTooLargeError,
    Problem,
    UnsupportedMediaTypeError,
    all_problems,
    problem_document,
)
from upgrade_server.failures import answer_for
from upgrade_server.jsonbody import unstorable_text

if TYPE_CHECKING:
    from apiflask import APIFlask
    from apiflask.exceptions import HTTPError

log = logging.getLogger(__name__)

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
    # hawkBit's DDI (/{tenant}/controller/v1/...) is a device API too.
    ddi = request.blueprint == "ddi"
    if request.method not in _BODY_METHODS or not (request.path.startswith("/api/") or ddi):
        return
    device = ddi or request.path.startswith(DEVICE_PATHS)
    if device:
        # The device edge's limit holds for a chunked body too (a declared
        # length past it was refused before the app). One byte more is read:
        # werkzeug's stream stops at its limit without saying so.
        request.max_content_length = DEVICE_MAX_BODY + 1
    if not request.content_length and "chunked" not in request.headers.get("Transfer-Encoding", ""):
        return
    view = app.view_functions.get(request.endpoint or "")
    accepted = getattr(view, "accepted_mimetypes", frozenset({"application/json"}))
    if request.mimetype not in accepted:
        raise UnsupportedMediaTypeError(
            f"send the body as {' or '.join(sorted(accepted))}, not {request.mimetype or 'untyped'}"
        )
    if device and len(request.get_data()) > DEVICE_MAX_BODY:
        raise PayloadTooLargeError(f"a device request's body is at most {DEVICE_MAX_BODY} bytes")
    if request.is_json:
        request.get_json()  # cached; a body that is not strict JSON raises a 400


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

    @app.errorhandler(Exception)
    def _error(error: Exception) -> Response:
        # HTTPExceptions have their own, more specific handler (APIFlask's).
        answer = answer_for(error, f"{request.method} {request.path}")
        return problem_response(answer.problem, answer.detail, answer.extra)

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
