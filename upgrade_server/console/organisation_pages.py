"""The console's organisations: the list (searched, paged), an organisation's
page (its facts, devices, coverage with its contracts and overrides, sites,
maintenance windows with their state now, the approval setting, its users
and, for admins, its hawkBit gateway tokens: gateway_token_pages), and the
forms that change them. Every change goes through the
service the JSON API calls, with the staff member as the actor."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response as BaseResponse

from upgrade_server.accounts.models import User
from upgrade_server.accounts.roles import Permission
from upgrade_server.clock import utcnow
from upgrade_server.console.form_errors import FormError, form_error, parse_date, parse_int
from upgrade_server.console.views import bp, require, staff
from upgrade_server.devices import gateway_tokens
from upgrade_server.devices.models import Device
from upgrade_server.entitlements import contracts as coverage_contracts
from upgrade_server.entitlements import service as coverage
from upgrade_server.entitlements.coverage import Kind
from upgrade_server.entitlements.models import CoverageOverride
from upgrade_server.errors import AppError, InvalidInputError
from upgrade_server.extensions import session as db_session
from upgrade_server.organisations import service as organisation_service
from upgrade_server.organisations.models import Organisation, Region
from upgrade_server.products.models import Product
from upgrade_server.rollouts import approvals, maintenance
from upgrade_server.rollouts.settings_models import MaintenanceWindowSetting, WindowKind
from upgrade_server.sites.models import Site

PAGE_SIZE = 50
LISTED = 200  # contracts, overrides, sites and users shown on an organisation's page
# Blank window rows the edit form offers below the organisation's windows.
BLANK_WINDOWS = 2
KINDS = [k.value for k in Kind]
REGIONS = [r.value for r in Region]


@bp.get("/organisations")
def organisations() -> str:
    """Organisations by id, searched by name or short name, a page at a time."""
    actor = staff()
    q = request.args.get("q", "").strip()[:200]
    after = request.args.get("after", type=int)
    stmt = organisation_service.visible_organisations(actor)
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(func.lower(Organisation.name).like(pattern), Organisation.slug.like(pattern))
        )
    if after is not None:
        stmt = stmt.where(Organisation.id > after)
    rows = list(db_session().scalars(stmt.order_by(Organisation.id).limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    counts = _device_counts([o.id for o in rows])
    return render_template(
        "console/organisations/list.html",
        organisations=rows,
        counts=counts,
        q=q,
        next_after=rows[-1].id if more else None,
        regions=REGIONS,
        form=request.args,
    )


def _device_counts(ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    found = db_session().execute(
        select(Device.organisation_id, func.count())
        .where(Device.organisation_id.in_(ids))
        .group_by(Device.organisation_id)
    )
    return {organisation_id: count for organisation_id, count in found.all()}


@bp.post("/organisations")
def organisations_create() -> Any:
    """A new customer organisation (admins)."""
    actor = require(Permission.ORGANISATION_WRITE)
    form = request.form
    try:
        organisation = organisation_service.create_organisation(
            db_session(),
            actor,
            slug=form.get("slug", "").strip(),
            name=form.get("name", "").strip(),
            timezone=form.get("timezone", "").strip() or "Asia/Shanghai",
            region=_region(form.get("region", Region.OTHER.value)),
            contact_email=_email(form.get("contact_email", "")),
        )
    except AppError as error:
        failed = form_error(error)
        db_session().rollback()
        return render_template(
            "console/organisations/list.html",
            organisations=[],
            counts={},
            q="",
            next_after=None,
            regions=REGIONS,
            form=form,
            error=failed,
        ), failed.status
    db_session().commit()
    return redirect(url_for("console.organisations_detail", organisation_id=organisation.id))


def _email(value: str) -> str | None:
    """A contact address as the API takes it (its schema checks the form); empty: none."""
    value = value.strip()
    if not value:
        return None
    if len(value) > 254 or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise InvalidInputError("bad e-mail", [{"field": "contact_email", "message": "an address"}])
    return value


def _region(value: str) -> str:
    if value not in REGIONS:
        raise InvalidInputError("bad region", [{"field": "region", "message": "a region"}])
    return value


@bp.get("/organisations/<int:organisation_id>")
def organisations_detail(organisation_id: int) -> str:
    return _detail_page(organisation_id)


def _detail_page(organisation_id: int, error: FormError | None = None, **forms: Any) -> Any:
    """The organisation's page; after a refused form, with its error and
    what was entered."""
    actor = staff()
    session = db_session()
    organisation = organisation_service.get_organisation(session, actor, organisation_id)
    windows = _windows(organisation)
    contracts = coverage_contracts.contracts_of(session, actor, organisation_id=organisation.id)
    contracts = contracts[:LISTED]
    device_ids = {c.device_id for c in contracts if c.device_id is not None}
    serials = dict(
        session.execute(select(Device.id, Device.serial).where(Device.id.in_(device_ids))).all()
        if device_ids
        else {}
    )
    page = render_template(
        "console/organisations/detail.html",
        organisation=organisation,
        devices=_device_counts([organisation.id]).get(organisation.id, 0),
        summary=coverage.summary(session, actor, organisation.id),
        contracts=contracts,
        serials=serials,
        overrides=session.execute(
            select(CoverageOverride, Device.serial)
            .join(Device, Device.id == CoverageOverride.device_id)
            .where(Device.organisation_id == organisation.id)
            .order_by(CoverageOverride.id.desc())
            .limit(LISTED)
        ).all(),
        products={p.id: p for p in session.scalars(select(Product).order_by(Product.code))},
        sites=list(
            session.scalars(
                select(Site)
                .where(Site.organisation_id == organisation.id)
                .order_by(Site.name)
                .limit(LISTED)
            )
        ),
        users=list(
            session.scalars(
                select(User)
                .where(User.organisation_id == organisation.id)
                .order_by(User.id)
                .limit(LISTED)
            )
        ),
        gateway_tokens=(
            gateway_tokens.list_gateway_tokens(session, actor, organisation)
            if actor.may(Permission.ORGANISATION_WRITE)
            else []
        ),
        window_rows=windows[0],
        window_state=windows[1],
        kinds=KINDS,
        regions=REGIONS,
        error=error,
        forms=forms,
    )
    return (page, error.status) if error is not None else page


def _windows(organisation: Organisation) -> tuple[list[MaintenanceWindowSetting], Any]:
    _, rows = maintenance.list_windows(db_session(), staff(), organisation.id)
    return rows, maintenance.state_of(organisation, rows, utcnow())


def refused(organisation_id: int, error: AppError, name: str) -> Any:
    """The page again, the refused form `name` open with what was entered."""
    failed = form_error(error)
    db_session().rollback()
    return _detail_page(organisation_id, failed, **{name: request.form})


@bp.post("/organisations/<int:organisation_id>")
def organisations_update(organisation_id: int) -> Any:
    """Change the organisation's name, time zone, region or contact (admins)."""
    actor = require(Permission.ORGANISATION_WRITE)
    form = request.form
    try:
        organisation_service.update_organisation(
            db_session(),
            actor,
            organisation_id,
            {
                "name": form.get("name", "").strip(),
                "timezone": form.get("timezone", "").strip(),
                "region": _region(form.get("region", "")),
                "contact_email": _email(form.get("contact_email", "")),
            },
        )
    except AppError as error:
        return refused(organisation_id, error, "facts")
    db_session().commit()
    return _back(organisation_id, "facts")


def _back(organisation_id: int, anchor: str) -> BaseResponse:
    target = url_for("console.organisations_detail", organisation_id=organisation_id)
    return redirect(f"{target}#{anchor}")


@bp.post("/organisations/<int:organisation_id>/contracts")
def organisations_contract_add(organisation_id: int) -> Any:
    """Record a contract for the organisation's devices (optionally of one
    product) or for one of its devices, named by serial (admins)."""
    actor = require(Permission.COVERAGE_MANAGE)
    form = request.form
    session = db_session()
    try:
        organisation = organisation_service.get_organisation(session, actor, organisation_id)
        device = _device(organisation, form.get("serial", ""), required=False)
        coverage_contracts.create_contract(
            session,
            actor,
            {
                "kind": form.get("kind", ""),
                "device_id": device.id if device else None,
                "organisation_id": organisation.id,
                "product_id": parse_int(form, "product_id", required=False),
                "starts_on": parse_date(form, "starts_on"),
                "ends_on": parse_date(form, "ends_on"),
                "reference": _required(form, "reference", 100),
                "note": form.get("note", "").strip()[:2000],
            },
        )
    except AppError as error:
        return refused(organisation_id, error, "contract")
    session.commit()
    return _back(organisation_id, "contracts")


def _required(form: Any, name: str, longest: int) -> str:
    value = str(form.get(name, "")).strip()
    if not value or len(value) > longest:
        raise InvalidInputError(f"bad {name}", [{"field": name, "message": f"1 to {longest}"}])
    return value


def _device(organisation: Organisation, serial: str, *, required: bool) -> Device | None:
    """The organisation's device of this serial (none entered: None, unless required)."""
    serial = serial.strip()
    if not serial and not required:
        return None
    found = (
        db_session()
        .scalars(
            select(Device).where(Device.organisation_id == organisation.id, Device.serial == serial)
        )
        .first()
    )
    if found is None:
        raise InvalidInputError("no such device", [{"field": "device_id", "message": "unknown"}])
    return found


@bp.post("/organisations/<int:organisation_id>/overrides")
def organisations_override_add(organisation_id: int) -> Any:
    """Grant or deny one device coverage the rules decide otherwise, with the
    reason (admins)."""
    actor = require(Permission.COVERAGE_MANAGE)
    form = request.form
    session = db_session()
    try:
        organisation = organisation_service.get_organisation(session, actor, organisation_id)
        device = _device(organisation, form.get("serial", ""), required=True)
        assert device is not None
        coverage_contracts.create_override(
            session,
            actor,
            device.id,
            {
                "kind": form.get("kind", ""),
                "effect": form.get("effect", ""),
                "starts_on": parse_date(form, "starts_on"),
                "ends_on": parse_date(form, "ends_on", required=False),
                "reason": _required(form, "reason", 2000),
            },
        )
    except AppError as error:
        return refused(organisation_id, error, "override")
    session.commit()
    return _back(organisation_id, "overrides")


@bp.post("/organisations/<int:organisation_id>/approval")
def organisations_approval(organisation_id: int) -> Any:
    """Turn the customer's approval of updates on or off."""
    actor = require(Permission.UPDATES_APPROVE)
    required = request.form.get("updates_need_approval") == "yes"
    try:
        approvals.set_required(db_session(), actor, organisation_id, required)
    except AppError as error:
        return refused(organisation_id, error, "approval")
    db_session().commit()
    return _back(organisation_id, "approval")


@bp.get("/organisations/<int:organisation_id>/windows")
def organisations_windows(organisation_id: int) -> str:
    """The form that edits the maintenance windows (their approvers)."""
    actor = require(Permission.UPDATES_APPROVE)
    organisation = organisation_service.get_organisation(db_session(), actor, organisation_id)
    rows = [row.audit_view() for row in _windows(organisation)[0]]
    return _windows_form(organisation, rows + [{}] * BLANK_WINDOWS)


def _windows_form(
    organisation: Organisation, rows: list[dict[str, Any]], error: FormError | None = None
) -> Any:
    page = render_template(
        "console/organisations/windows.html",
        organisation=organisation,
        rows=rows,
        error=error,
        weekdays=range(1, 8),
    )
    return (page, error.status) if error is not None else page


def _posted_windows(form: Any) -> list[dict[str, Any]]:
    """The rows of the form as the service takes them; a row whose kind is
    empty is none (left blank, or removed)."""
    windows = []
    given = str(form.get("rows", ""))
    if not given.isdigit():
        abort(400)  # not the console's form
    for i in range(min(int(given), maintenance.MAX_WINDOWS + BLANK_WINDOWS)):
        kind = form.get(f"kind-{i}", "")
        if kind not in (WindowKind.WEEKLY, WindowKind.CRON):
            continue
        weekly = kind == WindowKind.WEEKLY
        days = [int(d) for d in form.getlist(f"days-{i}") if d.isdigit()]
        duration = str(form.get(f"duration-{i}", "")).strip()
        windows.append(
            {
                "kind": kind,
                "days": days if weekly else [],
                "start": form.get(f"start-{i}", "").strip() or None if weekly else None,
                "cron": None if weekly else form.get(f"cron-{i}", "").strip(),
                "duration_minutes": int(duration) if duration.isdigit() else None,
                "label": form.get(f"label-{i}", "").strip()[:100],
            }
        )
    return windows


@bp.post("/organisations/<int:organisation_id>/windows")
def organisations_windows_save(organisation_id: int) -> Any:
    actor = require(Permission.UPDATES_APPROVE)
    session = db_session()
    windows = _posted_windows(request.form)
    try:
        maintenance.set_windows(session, actor, organisation_id, windows)
    except AppError as error:
        failed = form_error(error)
        session.rollback()
        organisation = organisation_service.get_organisation(session, actor, organisation_id)
        return _windows_form(organisation, [*windows, {}], failed)
    session.commit()
    return _back(organisation_id, "windows")
