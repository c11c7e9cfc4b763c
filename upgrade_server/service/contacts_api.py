"""The customer's representatives and the hotline change notices in the
management API (/api/v1)."""

from __future__ import annotations

from functools import partial
from typing import Any

from apiflask import Schema
from apiflask.fields import DateTime, Email, Integer, List, Nested, String
from apiflask.validators import Length, OneOf

from upgrade_server.accounts.auth import current_principal, token_auth
from upgrade_server.accounts.roles import Permission, roles_for
from upgrade_server.errors import ConflictError
from upgrade_server.extensions import current_settings, session
from upgrade_server.schemas import Timestamp
from upgrade_server.service import contacts
from upgrade_server.service.blueprint import MANAGE, READ, bp

REPRESENTATIVES = roles_for(Permission.REPRESENTATIVES_MANAGE)


class RepresentativeOut(Schema):
    id = Integer()
    organisation_id = Integer()
    name = String()
    phone = String()
    email = String()
    training_session_id = Integer(allow_none=True)
    trained = String(
        allow_none=True,
        metadata={"description": "the training session's state (signed-off: trained)"},
        attribute="training_session.state",
    )
    created_at = DateTime()
    created_by = String()


class RepresentativeFields(Schema):
    name = String(validate=Length(1, 200))
    phone = String(validate=Length(1, 64))
    email = Email(validate=Length(0, 254))
    training_session_id = Integer(
        allow_none=True, metadata={"description": "the training session that trained them"}
    )


class RepresentativeIn(RepresentativeFields):
    name = String(required=True, validate=Length(1, 200))
    phone = String(required=True, validate=Length(1, 64))


class RepresentativeList(Schema):
    items = List(Nested(RepresentativeOut))


@bp.get("/organisations/<int:organisation_id>/representatives")
@bp.auth_required(token_auth, roles=READ)
@bp.output(RepresentativeList)
def list_representatives(organisation_id: int) -> dict[str, Any]:
    """The trained technicians the customer names as its representatives for
    phone consultation."""
    found = contacts.representatives(session(), current_principal(), organisation_id)
    return {"items": found}


@bp.post("/organisations/<int:organisation_id>/representatives")
@bp.auth_required(token_auth, roles=REPRESENTATIVES)
@bp.input(RepresentativeIn, arg_name="data")
@bp.output(RepresentativeOut, status_code=201)
def add_representative(organisation_id: int, data: dict[str, Any]) -> Any:
    """Name a representative (the customer's administrator, for its organisation)."""
    return contacts.add_representative(session(), current_principal(), organisation_id, data)


@bp.patch("/organisations/<int:organisation_id>/representatives/<int:representative_id>")
@bp.auth_required(token_auth, roles=REPRESENTATIVES)
@bp.input(RepresentativeFields, arg_name="data")
@bp.output(RepresentativeOut)
def update_representative(
    organisation_id: int, representative_id: int, data: dict[str, Any]
) -> Any:
    """Change a representative's name, phone, e-mail or training."""
    return contacts.update_representative(
        session(), current_principal(), organisation_id, representative_id, data
    )


@bp.delete("/organisations/<int:organisation_id>/representatives/<int:representative_id>")
@bp.auth_required(token_auth, roles=REPRESENTATIVES)
@bp.output({}, status_code=204)
def remove_representative(organisation_id: int, representative_id: int) -> Any:
    """Remove a representative from the list."""
    contacts.remove_representative(
        session(), current_principal(), organisation_id, representative_id
    )
    return ""


# --- the hotline ---------------------------------------------------------------------------------


class NoticeRowOut(Schema):
    organisation_id = Integer()
    organisation = String()
    contact_email = String(allow_none=True, metadata={"description": "vendor staff only"})
    due_at = DateTime(metadata={"description": "3 days after the change"})
    status = String(metadata={"description": "told, told-late, pending or overdue"})
    told_at = DateTime(allow_none=True)
    told_via = String(allow_none=True)
    recipient = String(allow_none=True)


class HotlineChangeOut(Schema):
    id = Integer()
    number = String()
    previous_number = String()
    changed_at = DateTime()
    note = String()
    recorded_at = DateTime()
    recorded_by = String()
    notices = List(Nested(NoticeRowOut), metadata={"description": "each customer's notice"})


class HotlineChangeIn(Schema):
    number = String(required=True, validate=Length(1, 64))
    previous_number = String(
        load_default=None, validate=Length(0, 64), metadata={"description": "default: the last one"}
    )
    changed_at = Timestamp(
        load_default=None, metadata={"description": "when the new number takes effect; default now"}
    )
    note = String(load_default="", validate=Length(0, 2000))


class HotlineChangeList(Schema):
    items = List(Nested(HotlineChangeOut))


class ToldIn(Schema):
    organisation_id = Integer(required=True)
    via = String(required=True, validate=OneOf([t.value for t in contacts.Told]))
    at = Timestamp(
        not_future=True,
        load_default=None,
        metadata={"description": "when it was sent; default now"},
    )
    recipient = String(load_default="", validate=Length(0, 254))


class SendOut(Schema):
    sent = List(String())
    skipped = List(String(), metadata={"description": "organisations without a contact e-mail"})
    failed = List(String())


def _change_view(change: Any) -> dict[str, Any]:
    data = {name: getattr(change, name) for name in HotlineChangeOut._declared_fields}
    data["notices"] = contacts.notice_rows(session(), current_principal(), change)
    return data


@bp.get("/hotline-changes")
@bp.auth_required(token_auth, roles=READ)
@bp.output(HotlineChangeList)
def list_hotline_changes() -> dict[str, Any]:
    """Changes of the vendor's hotline number, newest first, each with the
    customers' notices (customers: their own)."""
    return {"items": [_change_view(c) for c in contacts.hotline_changes(session())]}


@bp.post("/hotline-changes")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(HotlineChangeIn, arg_name="data")
@bp.output(HotlineChangeOut, status_code=201)
def record_hotline_change(data: dict[str, Any]) -> Any:
    """Record a new hotline number: every customer must be told in writing
    within 3 days of `changed_at`."""
    change = contacts.record_change_of_hotline(session(), current_principal(), data)
    return _change_view(change)


@bp.get("/hotline-changes/<int:change_id>")
@bp.auth_required(token_auth, roles=READ)
@bp.output(HotlineChangeOut)
def get_hotline_change(change_id: int) -> Any:
    """One change and when each customer was told."""
    return _change_view(contacts.get_change(session(), change_id))


@bp.post("/hotline-changes/<int:change_id>/notices")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.input(ToldIn, arg_name="data")
@bp.output(HotlineChangeOut, status_code=201)
def record_hotline_notice(change_id: int, data: dict[str, Any]) -> Any:
    """Record that a customer was told in writing (a letter, a fax, an e-mail
    sent elsewhere); once per customer (409)."""
    contacts.record_told(
        session(),
        current_principal(),
        change_id,
        data["organisation_id"],
        data["via"],
        data["at"],
        data["recipient"],
    )
    return _change_view(contacts.get_change(session(), change_id))


@bp.post("/hotline-changes/<int:change_id>/send-email")
@bp.auth_required(token_auth, roles=MANAGE)
@bp.output(SendOut)
def send_hotline_email(change_id: int) -> Any:
    """E-mail the change to every customer not yet told, at its contact
    address, through the server's mail settings (UPGRADE_SERVER_SMTP_*); each
    one sent is recorded as told. 409 when no mail server is configured."""
    from upgrade_server.tickets.notify import send_mail

    settings = current_settings()
    if not settings.smtp_host:
        raise ConflictError("no mail server is configured (UPGRADE_SERVER_SMTP_HOST)")
    return contacts.send_by_email(
        session(), current_principal(), change_id, partial(send_mail, settings)
    )
