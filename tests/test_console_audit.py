"""The console's audit log, in process: administrators only, newest first,
filtered and paged with a bounded number of statements, an entry's before and
after escaped, and the chain check that names a tampered entry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from tests.clock import NOW
from tests.helpers.console import Statements, page
from tests.helpers.portal import csrf
from tests.helpers.staff_session import as_staff
from upgrade_server.audit.models import AuditEntry
from upgrade_server.extensions import db
from upgrade_server.web.labels import LABELS


def _disable_append_only(is_postgres: bool) -> None:
    """What an attacker with the database owner's rights could do (rolled back after)."""
    if is_postgres:
        db.session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
    else:
        db.session.execute(text("DROP TRIGGER audit_log_no_update"))
        db.session.execute(text("DROP TRIGGER audit_log_no_delete"))


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/console/audit/(\d+)"', html)]


@pytest.mark.parametrize("role", ["publisher", "support", "viewer"])
def test_only_administrators_read_the_log(client, factory, role):
    as_staff(client, factory, role)
    assert 'href="/console/audit"' not in page(client, "/console/")
    page(client, "/console/audit", 403)
    page(client, "/console/audit/1", 403)
    html = page(client, "/console/")
    assert client.post("/console/audit/verify", data={"csrf_token": csrf(html)}).status_code == 403


def test_newest_first_filtered_and_paged_with_bounded_statements(client, factory, clock):
    admin = as_staff(client, factory, "admin")
    factory.organisation(name="Early")
    db.session.commit()
    clock.shift(timedelta(days=3))
    for n in range(3):
        factory.organisation(name=f"Late {n}")
    db.session.commit()
    html = page(client, "/console/audit?action=organisation.create")
    ids = _ids(html)
    assert ids == sorted(ids, reverse=True) and len(ids) == 4
    assert "organisation created" in html and "cli:" in html
    day = (NOW + timedelta(days=3)).date().isoformat()
    assert len(_ids(page(client, f"/console/audit?action=organisation.create&since={day}"))) == 3
    before = (NOW + timedelta(days=1)).date().isoformat()
    assert len(_ids(page(client, f"/console/audit?action=organisation.&until={before}"))) == 1
    assert _ids(page(client, f"/console/audit?actor={admin.email}")) == []
    one = ids[0]
    html = page(client, f"/console/audit?object_type=organisations&object_id={ids[0]}")
    assert set(_ids(html)) <= {one} or "No entry matches." in html

    with Statements() as few:
        page(client, "/console/audit")
    for n in range(60):
        factory.organisation(name=f"Bulk {n}")
    db.session.commit()
    with Statements() as many:
        html = page(client, "/console/audit")
    assert many.count <= few.count
    first = _ids(html)
    assert len(first) == 50
    older = re.search(r'before=(\d+)" rel="next"', html).group(1)
    rest = _ids(page(client, f"/console/audit?before={older}"))
    assert rest and max(rest) < min(first) and not set(rest) & set(first)


def test_an_entry_shows_before_and_after_escaped(client, factory):
    as_staff(client, factory, "admin")
    org = factory.organisation(name="<script>alert(1)</script>")
    db.session.commit()
    entry = db.session.query(AuditEntry).filter_by(action="organisation.create").all()[-1]
    html = page(client, f"/console/audit/{entry.id}")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "nothing (created)" in html and f'"slug": "{org.slug}"' in html.replace("&#34;", '"')
    assert entry.entry_hash in html
    page(client, "/console/audit/999999", 404)


def test_the_chain_check_runs_on_request_and_names_a_tampered_entry(client, factory, is_postgres):
    as_staff(client, factory, "admin")
    for n in range(3):
        factory.organisation(name=f"Chain {n}")
    db.session.commit()
    html = page(client, "/console/audit")
    assert "Check the chain now" in html and "Last checkpoint" in html
    assert client.post("/console/audit/verify").status_code == 400
    r = client.post("/console/audit/verify", data={"csrf_token": csrf(html)})
    whole = r.get_data(as_text=True)
    assert r.status_code == 200 and "The chain is whole." in whole
    checked = int(re.search(r"Entries checked</dt><dd>(\d+)", whole).group(1))
    assert checked >= 3
    victim = db.session.query(AuditEntry).filter_by(action="organisation.create").all()[-2]
    _disable_append_only(is_postgres)  # as an attacker with the owner's rights could
    db.session.execute(
        update(AuditEntry).where(AuditEntry.id == victim.id).values(actor_label="someone else")
    )
    db.session.commit()
    r = client.post("/console/audit/verify", data={"csrf_token": csrf(html)})
    broken = r.get_data(as_text=True)
    assert "The entry&#39;s content does not match its hash" in broken
    assert f'href="/console/audit/{victim.id}"' in broken and "broken" in broken


def test_zh_cn_shows_words_not_codes(client, factory):
    as_staff(client, factory, "admin", lang="zh-CN")
    org = factory.organisation(name="Acme")
    factory.user("customer-viewer", org)
    db.session.commit()
    html = page(client, "/console/audit")
    shown = re.sub(r"<[^>]+>", " ", html.split("<main", 1)[1])
    assert "组织已创建" in shown and "用户已创建" in shown and "审计日志" in shown
    for code in [*LABELS["audit-action"], *LABELS["audit-object"]]:
        assert not re.search(rf"(?<![\w.-]){re.escape(code)}(?![\w-])", shown), code
