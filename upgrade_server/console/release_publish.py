"""Publishing a release from the browser.

The form is a plain multipart POST: the artifact streams into the artifact
store's staging area as the body is parsed (uploads.py, as the API's publish
does), in constant memory, and the release service makes the release, its
signed metadata and the stored file appear together or not at all. The
console's guard parses the form (for its CSRF token) before any view runs,
so the streaming is armed earlier still, as the URL is matched; an upload
the view does not turn into a release is dropped when the response is made.

With JavaScript (static/console/upload.js) the same POST is sent by
XMLHttpRequest with a progress bar, and answered in JSON. The notes preview
renders with the portal's sanitising renderer: without JavaScript the form
comes back with the preview under it, with it (preview.js) the preview
endpoint answers the rendered HTML alone.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission, allows
from upgrade_server.console.release_form import Entered, problems, rendered_texts, safe_filename
from upgrade_server.console.views import bp, require, staff
from upgrade_server.database import writes
from upgrade_server.errors import AppError, BadRequestError, ConflictError, InvalidInputError
from upgrade_server.extensions import artifact_store, current_settings
from upgrade_server.extensions import session as db_session
from upgrade_server.jsonbody import unstorable_text
from upgrade_server.notes.documents import GUIDANCE_KINDS
from upgrade_server.products import service as products
from upgrade_server.products.models import Product
from upgrade_server.releases import service as releases
from upgrade_server.signing.service import repository_for
from upgrade_server.storage.base import StagingWriter
from upgrade_server.transaction import on_failure
from upgrade_server.uploads import stream_files_into, upload_was_cut_short
from upgrade_server.web import problems as sentences
from upgrade_server.web.views import viewer

_PUBLISH = "console.releases_new"
# On the request, not `g`: an app context (and so `g`) can outlive a request.
_KEPT = "upgrade_server.console.upload_kept"
# Notes and guidance in two languages can be long; the parser's buffer is 1 MiB.
_FORM_MEMORY = 4 * 1024 * 1024


@bp.url_value_preprocessor
def _arm_streaming(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Runs before the guard parses the form (for its token): a publisher's
    # artifact streams into staging; anyone else's body stays within the
    # app's usual limit and is refused. A file the view does not make a
    # release of is removed (the unit of work, _drop_unused_upload).
    if endpoint != _PUBLISH or request.method != "POST":
        return
    principal = viewer()
    if principal is None or principal.role is None or not principal.role.is_vendor:
        return
    if not allows(principal.role, Permission.RELEASE_PUBLISH):
        return
    settings = current_settings()
    request.max_content_length = settings.max_artifact_bytes + settings.max_request_bytes
    request.max_form_memory_size = _FORM_MEMORY
    stream_files_into(artifact_store(), settings.max_artifact_bytes)


@bp.after_request
def _drop_unused_upload(response: BaseResponse) -> BaseResponse:
    if request.endpoint == _PUBLISH and not request.environ.get(_KEPT):
        for writer in request.__dict__.get("artifact_writers", []):
            writer.abort()
    return response


def _wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def _product() -> Product | None:
    value = request.args.get("product", "")
    if value.isascii() and value.isdigit() and len(value) <= 10:
        return products.get_product(db_session(), int(value))
    every = products_all()
    return every[0] if len(every) == 1 else None


def products_all() -> list[Product]:
    return list(db_session().scalars(select(Product).order_by(Product.code)))


def _page(product: Product, entered: Entered, status: int = 200, **context: Any) -> Any:
    channels = [c.name for c in releases.channels(db_session(), product)]
    return render_template(
        "console/releases/new.html",
        product=product,
        channels=channels,
        hardware=[h.code for h in product.hardware_revisions],
        entered=entered,
        guidance_kinds=GUIDANCE_KINDS,
        **context,
    ), status


@bp.route("/releases/new", methods=["GET", "POST"])
@writes  # a product's first form makes its default channels
def releases_new() -> Any:
    require(Permission.RELEASE_PUBLISH)
    product = _product()
    if product is None:
        return render_template("console/releases/choose_product.html", products=products_all())
    if request.method == "GET":
        channels = [c.name for c in releases.channels(db_session(), product)]
        hardware = [h.code for h in product.hardware_revisions]
        return _page(product, Entered.blank(channels, hardware))
    action = request.form.get("action", "publish")
    entered = Entered.from_form(request.form, more_rows=action == "more-rows")
    if action in ("preview", "more-rows"):
        return _page(
            product,
            entered,
            preview=_preview(entered) if action == "preview" else None,
            file_dropped=bool(request.form.get("artifact") or request.files.get("artifact")),
        )
    try:
        release, created = _publish(product, entered)
    except AppError as error:
        return _refused(product, entered, error)
    request.environ[_KEPT] = True
    notice: dict[str, Any] = {} if created else {"notice": "exists"}
    target = url_for("console.releases_detail", release_id=release.id, **notice)
    if _wants_json():
        return jsonify({"location": target, "id": release.id}), 201 if created else 200
    return redirect(target, 303)


def _publish(product: Product, entered: Entered) -> tuple[Any, bool]:
    """The release service's publish, as the API calls it."""
    artifact = request.files.get("artifact")
    if upload_was_cut_short():
        raise InvalidInputError("the upload ended early", [{"field": "artifact"}])
    if (
        artifact is None
        or not artifact.filename
        or not isinstance(artifact.stream, StagingWriter)
        or artifact.stream.size == 0
    ):
        raise InvalidInputError("no artifact", [{"field": "artifact", "message": "required"}])
    for name, value in request.form.items(multi=True):
        if unstorable_text(name) or unstorable_text(value):
            raise BadRequestError(f"field {name!r}: text that cannot be stored")
    writer: StagingWriter = artifact.stream
    metadata = entered.metadata(safe_filename(artifact.filename))
    staged = writer.finish()
    repository = repository_for(db_session(), product, current_settings(), create=True)
    return releases.publish_release(
        db_session(), staff(), product, metadata, staged, artifact_store(), repository, on_failure
    )


def _refused(product: Product, entered: Entered, error: AppError) -> Any:
    """The form again, with what was wrong and what was entered (the
    response's error status rolls the request's work back)."""
    status, sentence = sentences.for_error(error, f"{request.method} {request.path}")
    db_session().rollback()  # the page below reads what is, not the refused half
    if isinstance(error, ConflictError):
        sentence = _(
            "This version of the product exists already with other bytes. A published "
            "artifact never changes: publish a new version."
        )
    fields = problems(error.extra.get("errors", [])) if isinstance(error, InvalidInputError) else []
    if _wants_json():
        return jsonify(
            {
                "message": sentence,
                "fields": [{"id": f.element, "name": f.name, "hint": f.hint} for f in fields],
            }
        ), status
    return _page(product, entered, status, error=sentence, fields=fields, file_dropped=True)


def _preview(entered: Entered) -> dict[str, Any]:
    return {
        "notes": rendered_texts(entered.notes),
        "guidance": [
            (kind, rendered_texts(entered.guidance.get(kind)))
            for kind in GUIDANCE_KINDS
            if any(entered.guidance.get(kind, {}).values())
        ],
    }


@bp.post("/releases/preview")
def releases_preview() -> str:
    """The notes and guidance of the form, rendered as they will be shown."""
    require(Permission.RELEASE_PUBLISH)
    entered = Entered.from_form(request.form)
    return render_template("console/releases/_preview.html", preview=_preview(entered))
