"""The console's service record: sessions listed, filtered and paged for every
organisation, planned and recorded through the forms, corrected once signed
off; service requests with their 24-hour response deadline; what a viewer may
not do, and the forms' token."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.helpers.console import Statements, as_staff, page
from tests.helpers.portal import csrf
from upgrade_server.accounts.principal import Principal
from upgrade_server.accounts.roles import Role
from upgrade_server.clock import utcnow
from upgrade_server.console.service_pages import STATES, state_clause
from upgrade_server.extensions import artifact_store, db
from upgrade_server.service import service as entries
from upgrade_server.service import service_requests
from upgrade_server.service import sessions as service_sessions
from upgrade_server.service.models import ServiceRequest, ServiceSession
from upgrade_server.tickets import service as tickets
from upgrade_server.web.labels import LABELS

ENGINEER = Principal(kind="user", id=None, label="eng@vendor.test", role=Role.SUPPORT)


def _customer(organisation_id: int) -> Principal:
    return Principal(
        kind="user",
        id=None,
        label="ops@customer.test",
        role=Role.CUSTOMER_ADMIN,
        organisation_id=organisation_id,
    )


def _session(organisation: Any, device: Any, kind: str = "installation", **kw: Any) -> Any:
    entry = service_sessions.create_session(
        db.session,
        ENGINEER,
        {
            "kind": kind,
            "organisation_id": organisation.id,
            "device_ids": [device.id],
            "engineers": ["王伟"],
            **kw,
        },
    )
    db.session.commit()
    return entry


def _post(client: Any, path: str, data: dict[str, Any], form_page: str) -> Any:
    return client.post(path, data={**data, "csrf_token": csrf(page(client, form_page))})


def _rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="session-(\d+)"', html)]


def test_sessions_are_filtered_and_paged_newest_first_in_as_many_statements_for_30_as_for_3(
    client, factory
):
    as_staff(client, factory, "viewer")
    acme, globex = factory.organisation(), factory.organisation()
    device, _ = factory.device(acme)
    other, _ = factory.device(globex)
    soon = utcnow() + timedelta(days=2)
    made = [_session(acme, device, planned_start=soon) for _ in range(3)]
    with Statements() as few:
        page(client, "/console/service")
    made += [_session(acme, device) for _ in range(26)]
    theirs = _session(globex, other, kind="inspection")
    with Statements() as many:
        html = page(client, "/console/service")
    assert many.count == few.count <= 12, many.seen
    newest = sorted([*(m.id for m in made), theirs.id], reverse=True)
    assert _rows(html) == newest[:25]
    older = re.search(r'href="([^"]*before=\d+[^"]*)" rel="next"', html)
    assert older
    assert _rows(page(client, older.group(1).replace("&amp;", "&"))) == newest[25:]
    html = page(client, f"/console/service?organisation_id={globex.id}")
    assert _rows(html) == [theirs.id]
    assert _rows(page(client, "/console/service?kind=inspection")) == [theirs.id]
    day = (soon + timedelta(hours=8)).date().isoformat()  # the day in Asia/Shanghai
    html = page(client, f"/console/service?planned_from={day}&planned_to={day}")
    assert _rows(html) == sorted((m.id for m in made[:3]), reverse=True)
    entries.advance(db.session, ENGINEER, ServiceSession, theirs.id, "start")
    db.session.commit()
    assert _rows(page(client, "/console/service?state=started")) == [theirs.id]


def test_the_state_filter_says_what_each_session_says_of_itself(factory):
    organisation = factory.organisation()
    device, _ = factory.device(organisation)
    customer = _customer(organisation.id)
    path = [("start", ENGINEER), ("confirm-start", customer), ("end", ENGINEER)]
    for n in range(5):
        entry = _session(organisation, device)
        for step, who in [*path, ("confirm-end", customer)][:n]:
            entries.advance(db.session, who, ServiceSession, entry.id, step)
    service_sessions.cancel_session(db.session, ENGINEER, _session(organisation, device).id, "雨")
    db.session.flush()
    found = list(db.session.scalars(select(ServiceSession)))
    assert {e.state for e in found} == set(STATES)
    for state in STATES:
        ids = set(db.session.scalars(select(ServiceSession.id).where(state_clause(state))))
        assert ids == {e.id for e in found if e.state == state}, state


def test_support_plans_a_session_through_the_form(client, factory):
    as_staff(client, factory, "support")
    organisation = factory.organisation(name="Acme")
    device, _ = factory.device(organisation)
    html = page(client, "/console/service/sessions/new")
    assert 'id="choose-organisation"' in html and "Acme" in html
    form = f"/console/service/sessions/new?organisation_id={organisation.id}"
    html = page(client, form)
    assert device.serial in html
    data = {
        "organisation_id": organisation.id,
        "kind": "upgrade",
        "mode": "remote",
        "device_ids": [str(device.id)],
        "engineers": "王伟, 李娜",
        "planned_start": "2030-01-02T09:00",
        "planned_end": "2030-01-02T12:00",
    }
    # An upgrade names its release: refused, the form kept, the field marked.
    r = _post(client, "/console/service/sessions/new", data, form)
    body = r.get_data(as_text=True)
    assert r.status_code == 422 and "Check the fields" in body
    assert 'id="release_id" name="release_id" aria-invalid="true"' in body
    assert 'value="王伟, 李娜"' in body and "checked" in body
    assert db.session.scalars(select(ServiceSession)).first() is None
    r = _post(client, "/console/service/sessions/new", {**data, "kind": "inspection"}, form)
    assert r.status_code == 302
    entry = db.session.scalars(select(ServiceSession)).one()
    assert r.headers["Location"] == f"/console/service/sessions/{entry.id}"
    assert (entry.kind, entry.mode, entry.engineers) == ("inspection", "remote", ["王伟", "李娜"])
    assert [d.id for d in entry.devices] == [device.id]
    assert entry.planned_start.isoformat() == "2030-01-02T01:00:00+00:00"  # 09:00 in Shanghai


def test_a_session_is_recorded_started_and_ended_then_corrected_once_signed_off(client, factory):
    as_staff(client, factory, "support")
    organisation = factory.organisation()
    device, _ = factory.device(organisation)
    entry = _session(organisation, device)
    path = f"/console/service/sessions/{entry.id}"
    r = _post(client, f"{path}/step/start", {"at": ""}, path)
    assert r.status_code == 302
    html = page(client, path)
    assert "Waiting for the customer to confirm the start." in html
    assert 'id="end"' not in html  # the end waits for the customer's confirmation
    entries.advance(
        db.session, _customer(organisation.id), ServiceSession, entry.id, "confirm-start"
    )
    db.session.commit()
    future = (utcnow() + timedelta(hours=8, minutes=30)).strftime("%Y-%m-%dT%H:%M")
    r = _post(client, f"{path}/step/end", {"at": future, "outcome": "完成"}, path)
    assert r.status_code == 422 and 'id="end-at" name="at" type="datetime-local"' in r.text
    r = _post(client, f"{path}/step/end", {"at": "", "outcome": "安装完成"}, path)
    assert r.status_code == 302
    db.session.expire_all()
    assert entry.state == "ended" and entry.outcome == "安装完成"
    entries.advance(db.session, _customer(organisation.id), ServiceSession, entry.id, "confirm-end")
    db.session.commit()
    html = page(client, path)
    assert 'id="correct"' in html and "end confirmed by the customer" in html
    changes = {"engineers": "王伟", "outcome": "安装完成，另换电源", "notes": "", "findings": ""}
    r = _post(client, f"{path}/correct", {**changes, "suggestions": ""}, path)
    correction = db.session.scalars(
        select(ServiceSession).where(ServiceSession.corrects_id == entry.id)
    ).one()
    assert r.headers["Location"] == f"/console/service/sessions/{correction.id}"
    assert correction.outcome == "安装完成，另换电源"
    db.session.expire_all()
    assert entry.outcome == "安装完成"
    assert f"#{correction.id}" in page(client, path)


def test_a_sessions_attachment_is_listed_and_downloaded(client, factory):
    organisation = factory.organisation()
    device, _ = factory.device(organisation)
    entry = _session(organisation, device)
    stored = artifact_store().put(io.BytesIO(b"signed form"))
    attachment = {"filename": "form.pdf", "sha256": stored.sha256, "size": stored.size}
    service_sessions.add_attachment(
        db.session, ENGINEER, entry, {**attachment, "content_type": "application/pdf"}
    )
    db.session.commit()
    as_staff(client, factory, "viewer")
    html = page(client, f"/console/service/sessions/{entry.id}")
    link = f"/console/service/sessions/{entry.id}/attachments/{stored.sha256}"
    assert f'<a href="{link}">form.pdf</a>' in html
    r = client.get(link)
    assert r.status_code == 200 and r.data == b"signed form" and r.mimetype == "application/pdf"
    page(client, f"/console/service/sessions/{entry.id}/attachments/{'0' * 64}", 404)


def _request(organisation: Any, received_hours_ago: float = 0) -> ServiceRequest:
    request = service_requests.open_request(
        db.session,
        ENGINEER,
        {
            "organisation_id": organisation.id,
            "title": "升级咨询",
            "received_at": utcnow() - timedelta(hours=received_hours_ago),
        },
        via="phone",
    )
    db.session.commit()
    return request


def test_requests_show_their_response_deadline_and_the_response_is_recorded(client, factory):
    as_staff(client, factory, "support")
    organisation = factory.organisation()
    fresh, late = _request(organisation, 1), _request(organisation, 30)
    html = page(client, "/console/service/requests")
    row = re.search(rf'<tr id="request-{fresh.id}".*?</tr>', html, re.S).group(0)
    assert re.search(r"data-deadline=\"[^\"]+\">22 h 59 min \d\d s left</time>", row)
    row = re.search(rf'<tr id="request-{late.id}".*?</tr>', html, re.S).group(0)
    assert "overdue by 6 h" in row
    html = page(client, "/console/service/requests?answer=overdue")
    assert f'id="request-{late.id}"' in html and f'id="request-{fresh.id}"' not in html
    path = f"/console/service/requests/{late.id}"
    assert f"/console/service/sessions/new?organisation_id={organisation.id}" in page(client, path)
    r = _post(client, f"{path}/respond", {"response": "已电话回复", "at": ""}, path)
    assert r.status_code == 302
    db.session.expire_all()
    assert late.response == "已电话回复" and late.responded_at is not None
    html = page(client, path)
    assert "missed" in html and "已电话回复" in html and 'id="respond"' not in html
    html = page(client, "/console/service/requests?answer=answered")
    assert f'id="request-{late.id}"' in html and f'id="request-{fresh.id}"' not in html


def test_a_viewer_sees_no_write_action_and_is_refused_the_posts(client, factory):
    organisation = factory.organisation()
    device, _ = factory.device(organisation)
    entry = _session(organisation, device)
    request = _request(organisation)
    as_staff(client, factory, "viewer")
    path = f"/console/service/sessions/{entry.id}"
    for url in (
        "/console/service",
        path,
        "/console/service/requests",
        f"/console/service/requests/{request.id}",
    ):
        html = page(client, url)
        assert html.count('method="post"') == 1, url  # logging out only
        assert "/console/service/sessions/new" not in html
    page(client, "/console/service/sessions/new", 403)
    token = csrf(page(client, path))
    for url, data in (
        (f"{path}/step/start", {}),
        (f"{path}/cancel", {"reason": "x"}),
        (f"{path}/update", {"notes": "x"}),
        ("/console/service/sessions/new", {"organisation_id": organisation.id, "kind": "phone"}),
        (f"/console/service/requests/{request.id}/respond", {"response": "x"}),
        (f"/console/service/requests/{request.id}/step/start", {}),
    ):
        assert client.post(url, data={**data, "csrf_token": token}).status_code == 403, url
    db.session.expire_all()
    assert entry.state == "planned" and request.responded_at is None


def test_a_form_without_its_token_is_refused(client, factory):
    as_staff(client, factory, "support")
    organisation = factory.organisation()
    device, _ = factory.device(organisation)
    entry = _session(organisation, device)
    assert client.post(f"/console/service/sessions/{entry.id}/step/start").status_code == 400
    db.session.expire_all()
    assert entry.state == "planned"


CODES = {
    c for domain in ("session-kind", "mode", "entry-state", "ticket-source") for c in LABELS[domain]
}


def test_chinese_pages_show_no_raw_code(client, factory):
    organisation = factory.organisation()
    device, _ = factory.device(organisation)
    entry = _session(organisation, device, kind="phone-consultation", mode="phone")
    entries.advance(db.session, ENGINEER, ServiceSession, entry.id, "start")
    request = _request(organisation)
    db.session.commit()
    as_staff(client, factory, "support", lang="zh-CN")
    for path in (
        "/console/service",
        f"/console/service/sessions/{entry.id}",
        f"/console/service/sessions/new?organisation_id={organisation.id}",
        "/console/service/requests",
        f"/console/service/requests/{request.id}",
    ):
        html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page(client, path), flags=re.S)
        text = re.sub(r"<[^>]+>", " ", html)
        raw = sorted(c for c in CODES if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text))
        assert raw == [], path


# --- whatever a form or a query holds: never a server error --------------------------------

TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["0001-01-01T00:00", "9999-12-31T23:59", "nan", "inf", "-1", "9" * 40, "²"]),
)
FIELDS = ["at", "status", "level", "emergency", "reason", "step", "response", "kind", "mode"]
FIELDS += ["organisation_id", "device_ids", "release_id", "request_id", "training_days"]
FIELDS += ["planned_start", "fault_started_at", "step_at", "outcome", "engineers", "symptoms"]


@pytest.fixture
def worked(client, factory) -> dict[str, Any]:
    """One of each thing the forms act on, and a support engineer logged in."""
    organisation = factory.organisation()
    device, _ = factory.device(organisation)
    entry = _session(organisation, device)
    request = _request(organisation)
    ticket = tickets.open_ticket(
        db.session,
        ENGINEER,
        {"title": "t", "level": 2, "organisation_id": organisation.id, "device_ids": [device.id]},
        via="phone",
    )
    db.session.commit()
    as_staff(client, factory, "support")
    s, r, t = entry.id, request.id, ticket.id
    return {
        "token": csrf(page(client, f"/console/tickets/{t}")),
        "posts": [
            f"/console/service/sessions/{s}/step/start",
            f"/console/service/sessions/{s}/step/end",
            f"/console/service/sessions/{s}/cancel",
            f"/console/service/sessions/{s}/update",
            f"/console/service/sessions/{s}/correct",
            "/console/service/sessions/new",
            f"/console/service/requests/{r}/respond",
            f"/console/service/requests/{r}/step/start",
            *(f"/console/tickets/{t}/{a}" for a in ("status", "level", "emergency", "repair")),
            *(f"/console/tickets/{t}/{a}" for a in ("pause", "report", "report/deliver")),
        ],
        "pages": ["/console/service", "/console/service/requests", "/console/tickets"],
    }


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(form=st.dictionaries(st.sampled_from(FIELDS), TEXTS, max_size=6), which=st.integers(0, 99))
def test_console_forms_and_filters_never_answer_a_server_error(client, worked, form, which):
    target = worked["posts"][which % len(worked["posts"])]
    r = client.post(target, data={**form, "csrf_token": worked["token"]})
    assert r.status_code < 500, (target, form, r.get_data(as_text=True)[:300])
    query = {**form, "planned_from": form.get("at", ""), "answer": form.get("step", "")}
    listing = worked["pages"][which % len(worked["pages"])]
    r = client.get(listing, query_string=query)
    assert r.status_code < 500, (listing, query)
