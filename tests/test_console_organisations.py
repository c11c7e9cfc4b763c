"""The console's organisations and accounts, in process: each page, each form
(with its CSRF token, refused without it or for a role that may not), the
bounded statements of the lists, and a token's secret shown exactly once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.clock import today
from tests.helpers.console import Statements, page
from tests.helpers.portal import csrf
from tests.helpers.staff_session import as_staff
from upgrade_server.accounts.models import ApiToken, User
from upgrade_server.entitlements.models import Contract, CoverageOverride
from upgrade_server.extensions import db
from upgrade_server.organisations.models import Organisation
from upgrade_server.rollouts.settings_models import MaintenanceWindowSetting
from upgrade_server.tokens import hash_secret
from upgrade_server.web.labels import LABELS


def _post(client, path, data, token_from=None):
    """POST a console form with the CSRF token of the page `token_from` (or `path`)."""
    token = csrf(page(client, token_from or path))
    return client.post(path, data={**data, "csrf_token": token})


@pytest.fixture
def organisation(factory):
    org = factory.organisation(name="Acme Power", timezone="Asia/Shanghai")
    product = factory.product(name="Gateway")
    factory.device(org, product, serial="ACME-0001")
    factory.customer = factory.user("customer-admin", org, name="Ada Acme")
    db.session.commit()
    return org


def test_the_list_searches_and_pages_by_id_with_bounded_statements(client, factory):
    as_staff(client, factory, "viewer")
    for n in range(3):
        factory.organisation(name=f"Zephyr {n}", slug=f"zephyr-{n}")
    db.session.commit()
    with Statements() as few:
        html = page(client, "/console/organisations?q=zephyr")
    assert html.count("Zephyr ") == 3 and "Organisation 1<" not in html
    for n in range(3, 60):
        factory.organisation(name=f"Zephyr {n}", slug=f"zephyr-{n}")
    db.session.commit()
    with Statements() as many:
        html = page(client, "/console/organisations?q=ZEPHYR")
    assert many.count <= few.count
    assert html.count(">Zephyr ") == 50
    after = re.search(r'after=(\d+)" rel="next"', html)
    assert after is not None
    rest = page(client, f"/console/organisations?q=zephyr&after={after.group(1)}")
    assert rest.count(">Zephyr ") == 10 and 'rel="next"' not in rest


def test_an_organisation_page_shows_its_facts_devices_coverage_and_users(
    client, factory, organisation
):
    as_staff(client, factory, "support")
    html = page(client, f"/console/organisations/{organisation.id}")
    assert "Acme Power" in html and "Asia/Shanghai" in html and "other regions" in html
    assert f"/console/devices?organisation={organisation.id}" in html and "1 (see the list)" in html
    assert "Ada Acme" in html and "customer administrator" in html
    assert "No window: devices may install at any time." in html
    assert "Software upgrades" in html
    # Support may not change an organisation, its coverage or its settings.
    assert 'method="post"' not in html.replace('method="post" action="/console/logout"', "")


def test_an_admin_adds_a_contract_and_an_override(client, factory, organisation):
    as_staff(client, factory, "admin")
    path = f"/console/organisations/{organisation.id}"
    starts, ends = today(), today() + timedelta(days=365)
    r = _post(
        client,
        f"{path}/contracts",
        {
            "reference": "C-2026-17",
            "kind": "support",
            "starts_on": starts.isoformat(),
            "ends_on": ends.isoformat(),
            "product_id": "",
            "serial": "",
            "note": "five years",
        },
        token_from=path,
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("#contracts")
    contract = db.session.scalars(select(Contract).filter_by(reference="C-2026-17")).one()
    assert contract.organisation_id == organisation.id and contract.device_id is None
    html = page(client, path)
    assert "C-2026-17" in html and "every device" in html and "Technical support" in html

    r = _post(
        client,
        f"{path}/overrides",
        {
            "serial": "ACME-0001",
            "kind": "warranty",
            "effect": "grant",
            "starts_on": starts.isoformat(),
            "ends_on": "",
            "reason": "goodwill after the flood",
        },
        token_from=path,
    )
    assert r.status_code == 302
    override = db.session.scalars(select(CoverageOverride)).one()
    assert override.reason == "goodwill after the flood" and override.ends_on is None
    assert "goodwill after the flood" in page(client, path)


def test_a_refused_form_says_which_field_and_keeps_what_was_entered(client, factory, organisation):
    as_staff(client, factory, "admin", lang="zh-CN")
    path = f"/console/organisations/{organisation.id}"
    r = _post(
        client,
        f"{path}/contracts",
        {
            "reference": "C-BACKWARDS",
            "kind": "upgrades",
            "starts_on": today().isoformat(),
            "ends_on": (today() - timedelta(days=1)).isoformat(),
            "serial": "",
        },
        token_from=path,
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    shown = re.sub(r"<[^>]+>", " ", html.split("<main", 1)[1])
    assert "请检查：" in shown and "截止" in shown and 'value="C-BACKWARDS"' in html
    assert "ends_on" not in shown and "starts_on" not in shown
    assert db.session.scalars(select(Contract)).first() is None
    r = _post(
        client,
        f"{path}/overrides",
        {"serial": "NOPE", "kind": "upgrades", "effect": "deny", "starts_on": "x", "reason": "r"},
        token_from=path,
    )
    assert r.status_code == 422


def test_maintenance_windows_are_edited_and_their_state_shown_in_the_zone(
    client, factory, organisation
):
    as_staff(client, factory, "admin")
    path = f"/console/organisations/{organisation.id}/windows"
    form = page(client, path)
    assert 'name="rows" value="2"' in form
    r = _post(
        client,
        path,
        {
            "rows": "2",
            "kind-0": "weekly",
            "days-0": ["6", "7"],
            "start-0": "02:00",
            "duration-0": "120",
            "label-0": "weekend",
            "kind-1": "cron",
            "cron-1": "0 1 * * 3",
            "duration-1": "60",
        },
    )
    assert r.status_code == 302, r.get_data(as_text=True)
    rows = db.session.scalars(select(MaintenanceWindowSetting)).all()
    assert sorted(row.kind for row in rows) == ["cron", "weekly"]
    html = page(client, f"/console/organisations/{organisation.id}")
    assert "Saturday, Sunday from 02:00" in html and "weekend" in html
    assert "Opens at" in html or "Open until" in html
    assert "(Asia/Shanghai)" in html
    # A bad row is refused, named, and nothing changes.
    bad = {"rows": "1", "kind-0": "weekly", "start-0": "25:00", "duration-0": "5"}
    r = _post(client, path, bad)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "Window 1: Start (HH:MM)" in html and "Window 1: Duration (minutes)" in html
    assert len(db.session.scalars(select(MaintenanceWindowSetting)).all()) == 2
    # The form's rows left without a kind remove the windows.
    r = _post(client, path, {"rows": "2", "kind-0": "", "kind-1": ""})
    assert r.status_code == 302
    assert db.session.scalars(select(MaintenanceWindowSetting)).first() is None


def test_the_approval_setting_toggles(client, factory, organisation):
    as_staff(client, factory, "admin")
    path = f"/console/organisations/{organisation.id}"
    r = _post(client, f"{path}/approval", {"updates_need_approval": "yes"}, token_from=path)
    assert r.status_code == 302
    db.session.refresh(organisation)
    assert organisation.updates_need_approval
    assert "Stop requiring approval" in page(client, path)


@pytest.mark.parametrize(
    ("suffix", "data"),
    [
        ("", {"name": "x", "timezone": "UTC", "region": "other"}),
        ("/contracts", {"reference": "r", "kind": "upgrades"}),
        ("/overrides", {"serial": "ACME-0001"}),
        ("/approval", {"updates_need_approval": "yes"}),
        ("/windows", {"rows": "0"}),
        ("/gateway-tokens", {"name": "site gateway"}),
    ],
)
def test_forms_need_the_token_and_a_role_that_may(client, factory, organisation, suffix, data):
    path = f"/console/organisations/{organisation.id}"
    as_staff(client, factory, "admin")
    assert client.post(path + suffix, data=data).status_code == 400
    as_staff(client, factory, "viewer")
    r = _post(client, path + suffix, data, token_from=path)
    assert r.status_code == 403
    db.session.refresh(organisation)
    assert organisation.name == "Acme Power" and not organisation.updates_need_approval


def test_an_admin_creates_an_organisation_and_a_bad_slug_is_named(client, factory):
    as_staff(client, factory, "admin")
    r = _post(
        client,
        "/console/organisations",
        {"name": "Bad", "slug": "Not OK", "timezone": "UTC", "region": "other"},
    )
    assert r.status_code == 422 and "Short name" in r.get_data(as_text=True)
    r = _post(
        client,
        "/console/organisations",
        {"name": "Globex", "slug": "globex", "timezone": "Europe/Berlin", "region": "other"},
    )
    assert r.status_code == 302
    org = db.session.scalars(select(Organisation).filter_by(slug="globex")).one()
    assert org.timezone == "Europe/Berlin"


# --- accounts --------------------------------------------------------------------------


def test_users_are_listed_with_bounded_statements_and_created(client, factory, organisation):
    as_staff(client, factory, "admin")
    listing = f"/console/accounts?organisation={organisation.id}"
    page(client, listing)
    with Statements() as few:
        page(client, listing)
    for _ in range(30):
        factory.user("customer-viewer", organisation)
    db.session.commit()
    with Statements() as many:
        html = page(client, listing)
    assert many.count <= few.count and html.count("customer viewer") >= 30
    r = _post(
        client,
        "/console/accounts/users",
        {
            "name": "Bo",
            "email": "bo@acme.test",
            "role": "customer-admin",
            "organisation_id": str(organisation.id),
            "password": "a long enough password",
        },
        token_from="/console/accounts",
    )
    assert r.status_code == 302
    bo = db.session.scalars(select(User).filter_by(email="bo@acme.test")).one()
    assert bo.organisation_id == organisation.id and bo.password_hash.startswith("$argon2")
    # A short password is refused, and never sent back to the page.
    r = _post(
        client,
        "/console/accounts/users",
        {"name": "Cy", "email": "cy@v.test", "role": "support", "password": "short"},
        token_from="/console/accounts",
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "Password" in html and "short" not in html.split("<main", 1)[1]


def test_a_user_is_deactivated_after_a_confirmation_that_says_what_happens(
    client, factory, organisation
):
    as_staff(client, factory, "admin")
    ada = factory.customer
    html = page(client, f"/console/accounts/users/{ada.id}/active")
    assert "every session ends" in html
    r = _post(client, f"/console/accounts/users/{ada.id}/active", {"active": "no"})
    assert r.status_code == 302
    db.session.refresh(ada)
    assert not ada.active
    assert "deactivated" in page(client, f"/console/accounts/users/{ada.id}")


def test_a_tokens_secret_is_shown_once_and_only_its_hash_is_kept(client, factory, organisation):
    admin = as_staff(client, factory, "admin")
    r = _post(
        client,
        "/console/accounts/tokens",
        {"name": "ci-deploy", "email": factory.customer.email, "expires_in_days": "30"},
    )
    assert r.status_code == 201
    html = r.get_data(as_text=True)
    secret = re.search(r'id="secret"[^>]*value="(usk_[^"]+)"', html).group(1)
    assert "shown this once and never again" in html
    token = db.session.scalars(select(ApiToken).filter_by(name="ci-deploy")).one()
    assert token.token_hash == hash_secret(secret) and secret not in token.prefix
    for later in (
        "/console/accounts/tokens",
        f"/console/accounts/users/{factory.customer.id}",
        f"/console/accounts/tokens/{token.id}/revoke",
    ):
        later_html = page(client, later)
        assert secret not in later_html and token.prefix in later_html
    # The secret works, and is refused once revoked.
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/users/me", headers=bearer).status_code == 200
    r = _post(client, f"/console/accounts/tokens/{token.id}/revoke", {})
    assert r.status_code == 302
    assert client.get("/api/v1/users/me", headers=bearer).status_code == 401
    assert admin.id != factory.customer.id


def test_account_forms_need_the_token_and_an_admin(client, factory, organisation):
    ada = factory.customer
    token = factory.caller("customer-viewer", organisation)
    forms = [
        ("/console/accounts/users", {"name": "x", "email": "x@x.test", "role": "viewer"}),
        ("/console/accounts/tokens", {"name": "x", "email": ada.email}),
        (f"/console/accounts/users/{ada.id}", {"name": "Renamed", "role": "customer-viewer"}),
        (f"/console/accounts/users/{ada.id}/active", {"active": "no"}),
    ]
    as_staff(client, factory, "admin")
    for path, data in forms:
        assert client.post(path, data=data).status_code == 400, path
    revoke = f"/console/accounts/tokens/{db.session.scalars(select(ApiToken)).first().id}/revoke"
    assert client.post(revoke).status_code == 400
    viewer = as_staff(client, factory, "viewer")
    for path, data in [*forms, (revoke, {})]:
        assert _post(client, path, data, token_from="/console/accounts").status_code == 403, path
    # Nor may a viewer open the confirmation steps.
    page(client, f"/console/accounts/users/{ada.id}/active", 403)
    page(client, revoke, 403)
    page(client, f"/console/organisations/{organisation.id}/windows", 403)
    assert db.session.scalars(select(User).filter_by(email="x@x.test")).first() is None
    db.session.refresh(ada)
    assert ada.active and ada.name == "Ada Acme" and ada.role == "customer-admin"
    assert db.session.scalars(select(ApiToken).where(ApiToken.revoked_at.is_not(None))).all() == []
    assert viewer.active and token.user.active


def test_zh_cn_pages_show_no_raw_codes(client, factory, organisation):
    as_staff(client, factory, "admin", lang="zh-CN")
    db.session.add(
        Contract(
            organisation_id=organisation.id,
            kind="warranty",
            starts_on=today(),
            ends_on=today(),
            reference="C-1",
        )
    )
    db.session.commit()
    for path in (
        "/console/organisations",
        f"/console/organisations/{organisation.id}",
        f"/console/organisations/{organisation.id}/windows",
        "/console/accounts",
        "/console/accounts/tokens",
    ):
        main = page(client, path).split("<main", 1)[1]
        text = re.sub(r"<[^>]+>", " ", main)
        for domain in ("coverage-kind", "coverage-status", "role", "region"):
            for code in LABELS[domain]:
                assert not re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text), (path, code)


def test_an_organisations_page_runs_as_many_statements_for_30_devices_as_for_3(
    client, factory, organisation
):
    as_staff(client, factory, "viewer")
    product = factory.product()
    path = f"/console/organisations/{organisation.id}"
    page(client, path)
    with Statements() as few:
        page(client, path)
    for _ in range(27):
        factory.device(organisation, product)
    with Statements() as many:
        html = page(client, path)
    assert "28 (see the list)" in html
    assert many.count <= few.count, many.seen[few.count :]


def test_an_admin_changes_the_facts_and_bad_ones_are_named(client, factory, organisation):
    as_staff(client, factory, "admin")
    path = f"/console/organisations/{organisation.id}"
    facts = {"name": "Acme Grid", "timezone": "Asia/Urumqi", "region": "beijing"}
    r = _post(client, path, {**facts, "contact_email": "not an address"})
    assert r.status_code == 422 and "Contact e-mail" in r.get_data(as_text=True)
    r = _post(client, path, {**facts, "timezone": "Mars/Olympus", "contact_email": ""})
    assert r.status_code == 422 and 'value="Mars/Olympus"' in r.get_data(as_text=True)
    r = _post(client, path, {**facts, "contact_email": "ops@acme.test"})
    assert r.status_code == 302
    db.session.refresh(organisation)
    assert (organisation.name, organisation.timezone, organisation.region) == (
        "Acme Grid",
        "Asia/Urumqi",
        "beijing",
    )
    assert organisation.contact_email == "ops@acme.test"
    # A forged window form is refused, and the windows stay.
    r = _post(client, f"{path}/windows", {"rows": "many"}, token_from=path)
    assert r.status_code == 400


def test_a_gateway_tokens_secret_is_shown_once_and_it_lets_a_hawkbit_client_poll(
    client, factory, organisation
):
    path = f"/console/organisations/{organisation.id}"
    as_staff(client, factory, "admin")
    refused = _post(client, f"{path}/gateway-tokens", {"name": " "}, token_from=path)
    assert refused.status_code == 422 and 'id="gateway-name"' in refused.get_data(as_text=True)
    r = _post(client, f"{path}/gateway-tokens", {"name": "site gateway"}, token_from=path)
    assert r.status_code == 201
    html = r.get_data(as_text=True)
    secret = re.search(r'id="secret"[^>]*value="(usg_[^"]+)"', html).group(1)
    assert f"/{organisation.slug}/controller/v1/&lt;serial&gt;" in html
    listed = page(client, path)
    assert secret not in listed and secret[:12] in listed and "site gateway" in listed
    ddi = {"Authorization": f"GatewayToken {secret}"}
    poll = f"/{organisation.slug}/controller/v1/ACME-0001"
    assert client.get(poll, headers=ddi).status_code == 200
    token_id = re.search(r"/gateway-tokens/(\d+)/revoke", listed).group(1)
    revoked = _post(client, f"{path}/gateway-tokens/{token_id}/revoke", {}, token_from=path)
    assert revoked.status_code == 302 and revoked.location.endswith("#gateway")
    assert client.get(poll, headers=ddi).status_code == 401
    assert "revoked" in page(client, path)
    # A viewer sees no gateway token at all.
    as_staff(client, factory, "viewer")
    assert "site gateway" not in page(client, path)
