"""The portal's service record: sessions and requests confirmed by both sides,
pre-installation notices, the customer's representatives, opening a request,
the staff's session form, a device's record. Routes of the portal blueprint
(views.bp)."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    abort,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.devices import service as devices
from upgrade_server.devices.models import Device
from upgrade_server.extensions import session as db_session
from upgrade_server.notes.markdown import render
from upgrade_server.organisations.models import Organisation
from upgrade_server.routing import MAX_ID
from upgrade_server.service import contacts, service_requests
from upgrade_server.service import notices as service_notices
from upgrade_server.service import record as service_record
from upgrade_server.service import responses as service_responses
from upgrade_server.service import service as service_entries
from upgrade_server.service import sessions as service_sessions
from upgrade_server.service.models import Mode, ServiceRequest, ServiceSession, SessionKind
from upgrade_server.web.record import present as record_rows
from upgrade_server.web.views import (
    bp,
    current_user,
    document_response,
    local_time,
    picked_device_ids,
    require_login,
)


@bp.get("/service")
def service_page() -> str:
    actor = require_login()
    sessions = service_entries.listing(db_session(), actor, ServiceSession)
    requests = service_entries.listing(db_session(), actor, ServiceRequest)
    now = utcnow()
    own = actor.organisation_id
    return render_template(
        "portal/service.html",
        sessions=sessions,
        requests=requests,
        response_due={r.id: service_responses.response_deadline(r, now) for r in requests},
        notices=service_notices.list_notices(db_session(), actor),
        representatives=contacts.representatives(db_session(), actor, own) if own else [],
        trainings=[s for s in sessions if s.kind == SessionKind.TRAINING],
        hotline=contacts.current_hotline(db_session()),
        local=local_time,
        may_confirm=actor.may(Permission.SERVICE_CONFIRM),
        may_manage=actor.may(Permission.SERVICE_MANAGE),
        may_name=bool(own) and actor.may(Permission.REPRESENTATIVES_MANAGE),
        user=current_user(),
    )


@bp.get("/service/notices/<int:notice_id>")
def notice_page(notice_id: int) -> str:
    """A pre-installation notice as the customer reads it, with its receipt button."""
    actor = require_login()
    notice = service_notices.get_notice(db_session(), actor, notice_id)
    return render_template(
        "portal/notice.html",
        notice=notice,
        body=render(notice.document),
        late=service_notices.late_devices(notice),
        may_confirm=actor.may(Permission.SERVICE_CONFIRM),
        user=current_user(),
    )


@bp.get("/service/notices/<int:notice_id>/notice.pdf")
def notice_document(notice_id: int) -> Response:
    """The notice as a PDF, as the vendor sent it."""
    from upgrade_server.service.notices_api import notice_pdf

    return notice_pdf(service_notices.get_notice(db_session(), require_login(), notice_id))


@bp.post("/service/notices/<int:notice_id>/confirm-receipt")
def notice_receipt(notice_id: int) -> BaseResponse:
    service_notices.confirm_receipt(db_session(), require_login(), notice_id)
    return redirect(url_for("portal.notice_page", notice_id=notice_id))


@bp.post("/service/representatives")
def add_representative() -> BaseResponse:
    """The customer's administrator names a trained representative."""
    actor = require_login()
    if actor.organisation_id is None:
        abort(404)
    name, phone = request.form.get("name", "").strip(), request.form.get("phone", "").strip()
    if not name or not phone:
        abort(400, _("A name and a phone number are required."))
    training = request.form.get("training_session_id", "")
    data = {
        "name": name[:200],
        "phone": phone[:64],
        "email": request.form.get("email", "").strip()[:254],
        "training_session_id": int(training)
        if training.isascii()
        and training.isdigit()
        and len(training) <= 10
        and int(training) <= MAX_ID
        else None,
    }
    contacts.add_representative(db_session(), actor, actor.organisation_id, data)
    return redirect(url_for("portal.service_page") + "#representatives")


@bp.post("/service/representatives/<int:representative_id>/remove")
def remove_representative(representative_id: int) -> BaseResponse:
    actor = require_login()
    if actor.organisation_id is None:
        abort(404)
    contacts.remove_representative(db_session(), actor, actor.organisation_id, representative_id)
    return redirect(url_for("portal.service_page") + "#representatives")


@bp.post("/service/<noun>/<int:entry_id>/<step>")
def service_step(noun: str, entry_id: int, step: str) -> BaseResponse:
    """A confirmation button (customers) or a start/end button (engineers)."""
    actor = require_login()
    outcome = request.form.get("outcome") or None
    if noun == "sessions":
        service_entries.advance(
            db_session(), actor, ServiceSession, entry_id, step, outcome=outcome
        )
    elif noun == "requests" and step == "respond":
        answer = request.form.get("response", "").strip()[:2000]
        if not answer:
            abort(400, _("Say what the response was."))
        service_responses.respond(db_session(), actor, entry_id, answer)
    elif noun == "requests":
        service_entries.advance(db_session(), actor, ServiceRequest, entry_id, step)
    else:
        abort(404)
    return redirect(url_for("portal.service_page"))


@bp.route("/service/requests/new", methods=["GET", "POST"])
def new_request() -> Any:
    actor = require_login()
    own = list(db_session().scalars(devices.visible_devices(actor).order_by(Device.serial)))
    error = None
    if request.method == "POST":
        data = {
            "title": request.form.get("title", "").strip(),
            "description": request.form.get("description", ""),
            "contact": request.form.get("contact", ""),
            "device_ids": picked_device_ids(),
            "organisation_id": own[0].organisation_id if own and actor.is_vendor else None,
        }
        if data["title"]:
            service_requests.open_request(db_session(), actor, data, via="portal")
            return redirect(url_for("portal.service_page"))
        error = _("A title is required.")
    return render_template("portal/new_request.html", devices=own, error=error, user=current_user())


@bp.route("/staff/sessions", methods=["GET", "POST"])
def staff_sessions() -> Any:
    """Minimal staff page: plan a session; start and end buttons are on /service."""
    actor = require_login()
    if not actor.may(Permission.SERVICE_MANAGE):
        abort(403)
    error = None
    if request.method == "POST":
        form = request.form
        try:
            data = {
                "kind": form["kind"],
                "mode": form.get("mode") or "on-site",
                "organisation_id": int(form["organisation_id"]),
                "device_ids": [int(i) for i in form.get("device_ids", "").split(",") if i.strip()],
                "release_id": int(form["release_id"]) if form.get("release_id") else None,
                "engineers": [e.strip() for e in form.get("engineers", "").split(",") if e.strip()],
                "customer_representative": form.get("customer_representative", ""),
                "training_days": float(form["training_days"])
                if form.get("training_days")
                else None,
                "notes": form.get("notes", ""),
            }
        except (KeyError, ValueError):
            error = _("Check the fields: numbers where numbers are asked for.")
        else:
            service_sessions.create_session(db_session(), actor, data)
            return redirect(url_for("portal.service_page"))
    organisations = list(db_session().scalars(select(Organisation).order_by(Organisation.slug)))
    return render_template(
        "portal/staff_sessions.html",
        kinds=[k.value for k in SessionKind],
        modes=[m.value for m in Mode],
        organisations=organisations,
        error=error,
        user=current_user(),
    )


@bp.get("/devices/<int:device_id>/record")
def device_record(device_id: int) -> Any:
    actor = require_login()
    organisation, entries = service_record.service_record(db_session(), actor, device_id=device_id)
    fmt = request.args.get("format", "")
    name = f"device-{device_id}-record"
    if fmt == "csv":
        from upgrade_server.service.record_api import record_response

        return record_response(organisation, entries, fmt, name)
    # The page and its PDF in the reader's words; the CSV keeps the codes.
    rows = record_rows(db_session(), entries, organisation.timezone)
    if fmt == "pdf":
        html = render_template(
            "portal/record_document.html", organisation=organisation, rows=rows, title=name
        )
        return document_response(html, fmt, name)
    return render_template(
        "portal/record.html",
        organisation=organisation,
        rows=rows,
        device_id=device_id,
        user=current_user(),
    )
