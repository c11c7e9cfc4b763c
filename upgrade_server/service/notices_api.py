"""Written pre-installation notices in the management API (/api/v1)."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Date, DateTime, Integer, List, Nested, String
from apiflask.validators import Length, OneOf
from flask import Response, render_template

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.errors import accepts
from upgrade_server.extensions import session
from upgrade_server.schemas import Timestamp
from upgrade_server.service import notices
from upgrade_server.service.blueprint import (
    CONFIRM,
    MANAGE,
    READ,
    AttachmentOut,
    bp,
    received_file,
    send_attachment,
)
from upgrade_server.service.models import PreInstallationNotice


class NoticeOut(Schema):
    id = Integer()
    organisation_id = Integer()
    device_ids = List(Integer())
    site = String()
    expected_on = Date(
        allow_none=True, metadata={"description": "the equipment's expected arrival"}
    )
    document = String(metadata={"description": "Markdown: what the site must prepare"})
    attachments = List(Nested(AttachmentOut))
    state = String(metadata={"description": "sent, or received (confirmed by the customer)"})
    sent_at = DateTime()
    sent_via = String()
    sent_by = String()
    received_at = DateTime(allow_none=True)
    received_by = String(allow_none=True)
    late_device_ids = List(
        Integer(), metadata={"description": "its devices that had arrived when it was sent"}
    )
    timezone = String(attribute="organisation.timezone")


class NoticeIn(Schema):
    organisation_id = Integer(required=True)
    device_ids = List(Integer(), required=True, validate=Length(1, 1000))
    site = String(load_default="", validate=Length(0, 200))
    expected_on = Date(load_default=None)
    document = String(
        load_default=None,
        validate=Length(1, 20_000),
        metadata={"description": "Markdown; default: the standard notice in `language`"},
    )
    language = String(load_default="zh-CN", validate=OneOf(list(notices.LANGUAGES)))
    sent_at = Timestamp(
        not_future=True, load_default=None, metadata={"description": "when; default now"}
    )
    sent_via = String(load_default="email", validate=OneOf([v.value for v in notices.Via]))


class NoticeList(Schema):
    items = List(Nested(NoticeOut))


class NoticeQuery(Schema):
    organisation_id = Integer(load_default=None)


class NoticeFormat(Schema):
    format = String(load_default="json", validate=OneOf(["json", "pdf"]))


def _view(notice: PreInstallationNotice) -> PreInstallationNotice:
    notice.device_ids = [d.id for d in notice.devices]  # type: ignore[attr-defined]
    notice.late_device_ids = [d.id for d in notices.late_devices(notice)]  # type: ignore[attr-defined]
    return notice


@bp.get("/pre-installation-notices")
@bp.auth_required(token_auth, roles=READ)
@bp.input(NoticeQuery, location="query", arg_name="query")
@bp.output(NoticeList)
def list_notices(query: dict[str, Any]) -> dict[str, Any]:
    """Written pre-installation notices the caller may see, newest first."""
    found = notices.list_notices(session(), current_principal(), query["organisation_id"])
    return {"items": [_view(n) for n in found]}


@bp.post("/pre-installation-notices")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(NoticeIn, arg_name="data")
@bp.output(NoticeOut, status_code=201)
def create_notice(data: dict[str, Any]) -> Any:
    """Record the written notice sent before the equipment arrives: its
    devices, the expected arrival, the document (what the site must prepare;
    the standard one unless given) and when and how it was sent."""
    return _view(notices.create_notice(session(), current_principal(), data))


@bp.get("/pre-installation-notices/<int:notice_id>")
@bp.auth_required(token_auth, roles=READ)
@bp.input(NoticeFormat, location="query", arg_name="query")
@bp.output(NoticeOut)
@bp.doc(description="`format=pdf`: the notice as the customer reads it.")
def get_notice(notice_id: int, query: dict[str, Any]) -> Any:
    """One notice; another organisation's is a 404."""
    notice = notices.get_notice(session(), current_principal(), notice_id)
    if query["format"] == "pdf":
        return notice_pdf(notice)
    return _view(notice)


def notice_pdf(notice: PreInstallationNotice) -> Response:
    from upgrade_server.notes.documents import render_pdf
    from upgrade_server.notes.markdown import render

    html = render_template(
        "portal/notice_document.html", notice=_view(notice), body=render(notice.document)
    )
    return Response(
        render_pdf(html),
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="pre-installation-notice-{notice.id}.pdf"'
        },
    )


@bp.post("/pre-installation-notices/<int:notice_id>/confirm-receipt")
@bp.auth_required(token_auth, roles=CONFIRM)
@bp.output(NoticeOut)
def confirm_receipt(notice_id: int) -> Any:
    """A customer user of the organisation confirms the notice was received;
    then it never changes."""
    return _view(notices.confirm_receipt(session(), current_principal(), notice_id))


@bp.post("/pre-installation-notices/<int:notice_id>/attachments")
@accepts("multipart/form-data")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(NoticeOut, status_code=201)
@bp.doc(description="multipart/form-data with one `file` part (at most 50 MiB).")
def add_notice_attachment(notice_id: int) -> Any:
    """Attach a file (the letter as sent, a site plan) until receipt is confirmed."""
    actor = current_principal()
    notice = notices.get_notice(session(), actor, notice_id)
    notices.check_open(notice)
    notices.add_attachment(session(), actor, notice, received_file())
    return _view(notice)


@bp.get("/pre-installation-notices/<int:notice_id>/attachments/<sha256>")
@bp.auth_required(token_auth, roles=READ)
def get_notice_attachment(notice_id: int, sha256: str) -> Response:
    """Download an attachment of a notice the caller may see."""
    notice = notices.get_notice(session(), current_principal(), notice_id)
    return send_attachment(notice.attachments, sha256, f"notice {notice_id}")
