"""Who may call what: every management and device endpoint, every role."""

from __future__ import annotations

import re

import pytest

from upgrade_server.accounts.roles import Role

VENDOR = {"admin", "publisher", "support", "viewer"}
CUSTOMER = {"customer-admin", "customer-viewer"}
EVERYONE = VENDOR | CUSTOMER

# (method, URL rule) -> roles allowed. A test below fails if an API route is
# missing here, so a new endpoint cannot ship without a decision.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/organisations"): EVERYONE,
    ("POST", "/api/v1/organisations"): {"admin"},
    ("GET", "/api/v1/organisations/<int:organisation_id>"): EVERYONE,
    ("PATCH", "/api/v1/organisations/<int:organisation_id>"): {"admin"},
    ("GET", "/api/v1/organisations/<int:organisation_id>/sites"): EVERYONE,
    ("POST", "/api/v1/organisations/<int:organisation_id>/sites"): {"admin"},
    ("GET", "/api/v1/organisations/<int:organisation_id>/maintenance-windows"): EVERYONE,
    ("PUT", "/api/v1/organisations/<int:organisation_id>/maintenance-windows"): {
        "admin",
        "customer-admin",
    },
    ("GET", "/api/v1/organisations/<int:organisation_id>/update-approval"): EVERYONE,
    ("PUT", "/api/v1/organisations/<int:organisation_id>/update-approval"): {
        "admin",
        "customer-admin",
    },
    ("GET", "/api/v1/organisations/<int:organisation_id>/approvals"): EVERYONE,
    ("GET", "/api/v1/organisations/<int:organisation_id>/gateway-tokens"): {"admin"},
    ("POST", "/api/v1/organisations/<int:organisation_id>/gateway-tokens"): {"admin"},
    ("DELETE", "/api/v1/organisations/<int:organisation_id>/gateway-tokens/<int:token_id>"): {
        "admin"
    },
    ("POST", "/api/v1/organisations/<int:organisation_id>/approvals"): {"admin", "customer-admin"},
    ("GET", "/api/v1/sites/<int:site_id>"): EVERYONE,
    ("PATCH", "/api/v1/sites/<int:site_id>"): {"admin"},
    ("DELETE", "/api/v1/sites/<int:site_id>"): {"admin"},
    ("GET", "/api/v1/working-days"): EVERYONE,
    ("GET", "/api/v1/working-days/exceptions"): EVERYONE,
    ("POST", "/api/v1/working-days/exceptions"): {"admin", "support"},
    ("DELETE", "/api/v1/working-days/exceptions/<int:exception_id>"): {"admin", "support"},
    ("GET", "/api/v1/users"): VENDOR | {"customer-admin"},
    ("POST", "/api/v1/users"): {"admin", "customer-admin"},
    ("GET", "/api/v1/users/me"): EVERYONE,
    ("GET", "/api/v1/users/<int:user_id>"): VENDOR | {"customer-admin"},
    ("PATCH", "/api/v1/users/<int:user_id>"): {"admin", "customer-admin"},
    ("GET", "/api/v1/tokens"): EVERYONE,
    ("POST", "/api/v1/tokens"): EVERYONE,
    ("DELETE", "/api/v1/tokens/<int:token_id>"): EVERYONE,
    ("GET", "/api/v1/products"): EVERYONE,
    ("POST", "/api/v1/products"): {"admin", "publisher"},
    ("GET", "/api/v1/products/<int:product_id>"): EVERYONE,
    ("PATCH", "/api/v1/products/<int:product_id>"): {"admin", "publisher"},
    ("POST", "/api/v1/products/<int:product_id>/hardware-revisions"): {"admin", "publisher"},
    ("GET", "/api/v1/devices"): EVERYONE,
    ("POST", "/api/v1/devices"): {"admin", "support"},
    ("POST", "/api/v1/devices/import"): {"admin", "support"},
    ("GET", "/api/v1/devices/<int:device_id>"): EVERYONE,
    ("PATCH", "/api/v1/devices/<int:device_id>"): {"admin", "support"},
    ("POST", "/api/v1/devices/<int:device_id>/token"): {"admin", "support"},
    ("DELETE", "/api/v1/devices/<int:device_id>/token"): {"admin", "support"},
    ("POST", "/api/v1/products/<int:product_id>/releases"): {"admin", "publisher"},
    ("GET", "/api/v1/products/<int:product_id>/releases"): EVERYONE,
    ("GET", "/api/v1/releases/<int:release_id>"): EVERYONE,
    ("GET", "/api/v1/products/<int:product_id>/channels"): EVERYONE,
    ("PUT", "/api/v1/products/<int:product_id>/channels"): {"admin", "publisher"},
    ("POST", "/api/v1/releases/<int:release_id>/promote"): {"admin", "publisher"},
    ("POST", "/api/v1/releases/<int:release_id>/withdraw"): {"admin", "publisher"},
    ("GET", "/api/v1/products/<int:product_id>/repository"): EVERYONE,
    ("POST", "/api/v1/products/<int:product_id>/repository"): {"admin", "publisher"},
    ("POST", "/api/v1/products/<int:product_id>/repository/rotate"): {"admin", "publisher"},
    ("GET", "/api/v1/products/<int:product_id>/signing-requests"): {"admin", "publisher"},
    ("POST", "/api/v1/signing-requests/<int:request_id>/signatures"): {"admin", "publisher"},
    ("GET", "/api/v1/devices/<int:device_id>/installs"): EVERYONE,
    ("GET", "/api/v1/releases/<int:release_id>/installs"): EVERYONE,
    ("GET", "/api/v1/audit"): {"admin"},
    ("GET", "/api/v1/audit/verify"): {"admin"},
    ("GET", "/api/v1/devices/<int:device_id>/coverage"): EVERYONE,
    ("POST", "/api/v1/devices/<int:device_id>/coverage-overrides"): {"admin"},
    (
        "DELETE",
        "/api/v1/devices/<int:device_id>/coverage-overrides/<int:override_id>",
    ): {"admin"},
    ("GET", "/api/v1/contracts"): EVERYONE,
    ("POST", "/api/v1/contracts"): {"admin"},
    ("GET", "/api/v1/contracts/<int:contract_id>"): EVERYONE,
    ("DELETE", "/api/v1/contracts/<int:contract_id>"): {"admin"},
    ("GET", "/api/v1/coverage/expiring"): EVERYONE,
    ("GET", "/api/v1/organisations/<int:organisation_id>/coverage"): EVERYONE,
    ("GET", "/api/v1/service-sessions"): EVERYONE,
    ("POST", "/api/v1/service-sessions"): {"admin", "support"},
    ("GET", "/api/v1/service-sessions/<int:session_id>"): EVERYONE,
    ("PATCH", "/api/v1/service-sessions/<int:session_id>"): {"admin", "support"},
    ("POST", "/api/v1/service-sessions/<int:session_id>/corrections"): {"admin", "support"},
    ("POST", "/api/v1/service-sessions/<int:session_id>/cancel"): {"admin", "support"},
    ("POST", "/api/v1/service-sessions/<int:entry_id>/start"): {"admin", "support"},
    ("POST", "/api/v1/service-sessions/<int:entry_id>/confirm-start"): CUSTOMER,
    ("POST", "/api/v1/service-sessions/<int:entry_id>/end"): {"admin", "support"},
    ("POST", "/api/v1/service-sessions/<int:entry_id>/confirm-end"): CUSTOMER,
    ("POST", "/api/v1/service-sessions/<int:session_id>/attachments"): {"admin", "support"},
    ("GET", "/api/v1/service-sessions/<int:session_id>/attachments/<sha256>"): EVERYONE,
    ("GET", "/api/v1/service-requests"): EVERYONE,
    ("POST", "/api/v1/service-requests"): {"admin", "support"} | CUSTOMER,
    ("GET", "/api/v1/service-requests/<int:request_id>"): EVERYONE,
    ("POST", "/api/v1/service-requests/<int:entry_id>/start"): {"admin", "support"},
    ("POST", "/api/v1/service-requests/<int:entry_id>/confirm-start"): CUSTOMER,
    ("POST", "/api/v1/service-requests/<int:entry_id>/end"): {"admin", "support"},
    ("POST", "/api/v1/service-requests/<int:entry_id>/confirm-end"): CUSTOMER,
    ("GET", "/api/v1/devices/<int:device_id>/service-record"): EVERYONE,
    ("GET", "/api/v1/organisations/<int:organisation_id>/service-record"): EVERYONE,
    ("GET", "/api/v1/service/reminders/inspections"): EVERYONE,
    ("GET", "/api/v1/service/reminders/training"): EVERYONE,
    ("GET", "/api/v1/service/reminders/waiting"): EVERYONE,
    ("POST", "/api/v1/service-requests/<int:request_id>/respond"): {"admin", "support"},
    ("GET", "/api/v1/service-requests/deadline-report"): EVERYONE,
    ("GET", "/api/v1/service/reminders/pre-installation-notices"): EVERYONE,
    ("GET", "/api/v1/service/reminders/hotline"): EVERYONE,
    ("GET", "/api/v1/pre-installation-notices"): EVERYONE,
    ("POST", "/api/v1/pre-installation-notices"): {"admin", "support"},
    ("GET", "/api/v1/pre-installation-notices/<int:notice_id>"): EVERYONE,
    ("POST", "/api/v1/pre-installation-notices/<int:notice_id>/confirm-receipt"): CUSTOMER,
    ("POST", "/api/v1/pre-installation-notices/<int:notice_id>/attachments"): {"admin", "support"},
    ("GET", "/api/v1/pre-installation-notices/<int:notice_id>/attachments/<sha256>"): EVERYONE,
    ("GET", "/api/v1/organisations/<int:organisation_id>/representatives"): EVERYONE,
    ("POST", "/api/v1/organisations/<int:organisation_id>/representatives"): {
        "admin",
        "customer-admin",
    },
    (
        "PATCH",
        "/api/v1/organisations/<int:organisation_id>/representatives/<int:representative_id>",
    ): {"admin", "customer-admin"},
    (
        "DELETE",
        "/api/v1/organisations/<int:organisation_id>/representatives/<int:representative_id>",
    ): {"admin", "customer-admin"},
    ("GET", "/api/v1/hotline-changes"): EVERYONE,
    ("POST", "/api/v1/hotline-changes"): {"admin", "support"},
    ("GET", "/api/v1/hotline-changes/<int:change_id>"): EVERYONE,
    ("POST", "/api/v1/hotline-changes/<int:change_id>/notices"): {"admin", "support"},
    ("POST", "/api/v1/hotline-changes/<int:change_id>/send-email"): {"admin", "support"},
    ("GET", "/api/v1/tickets"): EVERYONE,
    ("POST", "/api/v1/tickets"): {"admin", "support"} | CUSTOMER,
    ("GET", "/api/v1/tickets/<int:ticket_id>"): EVERYONE,
    ("POST", "/api/v1/tickets/<int:ticket_id>/status"): {"admin", "support"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/level"): {"admin", "support"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/emergency"): {"admin", "support"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/repair-notice"): {"admin", "support"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/part-on-site"): {"admin", "support"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/pause"): {"admin", "support"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/pause/confirm"): CUSTOMER,
    ("POST", "/api/v1/tickets/<int:ticket_id>/pause/end"): {"admin", "support"},
    ("PUT", "/api/v1/tickets/<int:ticket_id>/report"): {"admin", "support"},
    ("POST", "/api/v1/tickets/<int:ticket_id>/report/deliver"): {"admin", "support"},
    ("GET", "/api/v1/tickets/<int:ticket_id>/report"): EVERYONE,
    ("GET", "/api/v1/tickets/deadline-report"): EVERYONE,
    # Rollouts are the vendor's: customers never see them.
    ("POST", "/api/v1/releases/<int:release_id>/rollouts"): {"admin", "publisher"},
    ("GET", "/api/v1/rollouts"): VENDOR,
    ("GET", "/api/v1/rollouts/<int:rollout_id>"): VENDOR,
    ("GET", "/api/v1/rollouts/<int:rollout_id>/progress.csv"): VENDOR,
    ("POST", "/api/v1/rollouts/<int:rollout_id>/pause"): {"admin", "publisher"},
    ("POST", "/api/v1/rollouts/<int:rollout_id>/resume"): {"admin", "publisher"},
    ("POST", "/api/v1/rollouts/<int:rollout_id>/abort"): {"admin", "publisher"},
    ("POST", "/api/v1/rollouts/<int:rollout_id>/advance"): {"admin", "publisher"},
    ("POST", "/api/v1/rollouts/<int:rollout_id>/devices/<int:device_id>"): {"admin", "publisher"},
    ("DELETE", "/api/v1/rollouts/<int:rollout_id>/devices/<int:device_id>"): {"admin", "publisher"},
    ("POST", "/api/v1/rollouts/<int:rollout_id>/excluded-hardware"): {"admin", "publisher"},
    ("DELETE", "/api/v1/rollouts/<int:rollout_id>/excluded-hardware/<code>"): {
        "admin",
        "publisher",
    },
}
DEVICE_ENDPOINTS = {
    ("GET", "/api/device/v1/device"),
    ("POST", "/api/device/v1/token"),
    ("POST", "/api/device/v1/update-check"),
    ("GET", "/api/device/v1/releases/<int:release_id>"),
    ("GET", "/api/device/v1/releases/<int:release_id>/artifact"),
    ("POST", "/api/device/v1/installs"),
    ("GET", "/api/device/v1/coverage"),
    ("POST", "/api/device/v1/alarms"),
}


def _api_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") and not rule.rule.startswith("/api/device"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, rule.rule))
    return routes


def test_every_api_route_has_a_decision(app):
    assert _api_routes(app) == set(MATRIX) | DEVICE_ENDPOINTS


@pytest.fixture
def world(factory):
    """One organisation with a device and a customer user, seen by every role."""
    org = factory.organisation()
    product = factory.product()
    device, device_token = factory.device(organisation=org, product=product)
    callers = {role.value: factory.caller(role, org) for role in Role}
    return {
        "org": org,
        "product": product,
        "device": device,
        "device_token": device_token,
        "callers": callers,
    }


def _body_for(rule: str) -> dict:
    """A body of the type the endpoint takes, so the media type check passes."""
    if rule.endswith("/import"):
        return {"data": "serial\n", "content_type": "text/csv"}
    if rule.endswith("/attachments"):
        return {"data": {}, "content_type": "multipart/form-data"}
    if rule.endswith("/releases"):
        return {"data": {"metadata": "{}"}, "content_type": "multipart/form-data"}
    return {"json": {}}


def _fill(rule: str, world) -> str:
    ids = {
        "organisation_id": world["org"].id,
        "user_id": world["callers"]["customer-viewer"].user.id,
        "token_id": 999_999,
        "product_id": world["product"].id,
        "device_id": world["device"].id,
        "release_id": 999_999,
        "request_id": 999_999,
        "contract_id": 999_999,
        "override_id": 999_999,
        "session_id": 999_999,
        "entry_id": 999_999,
        "ticket_id": 999_999,
        "site_id": 999_999,
        "exception_id": 999_999,
        "notice_id": 999_999,
        "representative_id": 999_999,
        "change_id": 999_999,
        "rollout_id": 999_999,
    }
    return re.sub(r"<int:(\w+)>", lambda m: str(ids[m.group(1)]), rule)


@pytest.mark.parametrize(("method", "rule"), sorted(MATRIX))
def test_no_token_is_401(client, world, method, rule):
    r = client.open(_fill(rule, world), method=method)
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["type"] == "/problems/unauthenticated"


@pytest.mark.parametrize(("method", "rule"), sorted(MATRIX))
def test_device_token_is_refused_on_management_api(client, world, method, rule):
    headers = {"Authorization": f"Bearer {world['device_token']}"}
    assert client.open(_fill(rule, world), method=method, headers=headers).status_code == 401


@pytest.mark.parametrize(("method", "rule"), sorted(MATRIX))
@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_role_matrix(client, world, method, rule, role):
    caller = world["callers"][role]
    body = _body_for(rule)
    r = client.open(_fill(rule, world), method=method, headers=caller.headers, **body)
    if role in MATRIX[(method, rule)]:
        assert r.status_code not in (401, 403), r.get_json()
    else:
        assert r.status_code == 403, r.get_json()
        assert r.get_json()["type"] == "/problems/forbidden"


@pytest.mark.parametrize(("method", "rule"), sorted(DEVICE_ENDPOINTS))
def test_device_api_refuses_user_tokens(client, world, method, rule):
    admin = world["callers"]["admin"]
    url = _fill(rule, world)
    assert client.open(url, method=method, headers=admin.headers, json={}).status_code == 401
    assert client.open(url, method=method, json={}).status_code == 401


class TestOrganisationScope:
    """A customer of organisation A never sees B's data, nor learns it exists."""

    @pytest.fixture
    def other(self, factory):
        org_b = factory.organisation()
        device_b, _ = factory.device(organisation=org_b)
        user_b = factory.user("customer-viewer", org_b)
        factory.session.commit()
        return {"org": org_b, "device": device_b, "user": user_b}

    @pytest.mark.parametrize("role", sorted(CUSTOMER))
    def test_other_organisations_device_is_404(self, client, world, other, role):
        caller = world["callers"][role]
        r = client.get(f"/api/v1/devices/{other['device'].id}", headers=caller.headers)
        assert r.status_code == 404
        assert r.get_json()["type"] == "/problems/not-found"
        # Same answer as for a device that does not exist at all.
        missing = client.get("/api/v1/devices/987654321", headers=caller.headers)
        assert missing.status_code == 404
        assert missing.get_json()["detail"].replace("987654321", "X") == r.get_json()[
            "detail"
        ].replace(str(other["device"].id), "X")

    def test_lists_hold_only_own_organisation(self, client, world, other):
        caller = world["callers"]["customer-admin"]
        devices = client.get("/api/v1/devices", headers=caller.headers).get_json()["items"]
        assert [d["id"] for d in devices] == [world["device"].id]
        orgs = client.get("/api/v1/organisations", headers=caller.headers).get_json()["items"]
        assert [o["id"] for o in orgs] == [world["org"].id]
        users = client.get("/api/v1/users", headers=caller.headers).get_json()["items"]
        assert {u["organisation_id"] for u in users} == {world["org"].id}
        # Filtering for B's devices finds nothing rather than B's devices.
        r = client.get(f"/api/v1/devices?organisation_id={other['org'].id}", headers=caller.headers)
        assert r.get_json()["items"] == []

    def test_other_organisation_and_user_are_404(self, client, world, other):
        caller = world["callers"]["customer-admin"]
        assert (
            client.get(
                f"/api/v1/organisations/{other['org'].id}", headers=caller.headers
            ).status_code
            == 404
        )
        assert (
            client.get(f"/api/v1/users/{other['user'].id}", headers=caller.headers).status_code
            == 404
        )
        r = client.patch(
            f"/api/v1/users/{other['user'].id}", headers=caller.headers, json={"name": "x"}
        )
        assert r.status_code == 404

    def test_customer_admin_cannot_create_users_elsewhere_or_vendor_roles(
        self, client, world, other
    ):
        caller = world["callers"]["customer-admin"]
        r = client.post(
            "/api/v1/users",
            headers=caller.headers,
            json={
                "email": "x@example.test",
                "name": "X",
                "role": "customer-viewer",
                "organisation_id": other["org"].id,
            },
        )
        assert r.status_code == 422
        r = client.post(
            "/api/v1/users",
            headers=caller.headers,
            json={"email": "y@example.test", "name": "Y", "role": "admin"},
        )
        assert r.status_code in (403, 422)
        r = client.post(
            "/api/v1/users",
            headers=caller.headers,
            json={"email": "z@example.test", "name": "Z", "role": "customer-viewer"},
        )
        assert r.status_code == 201
        assert r.get_json()["organisation_id"] == world["org"].id

    def test_device_token_reads_only_its_own_device(self, client, world, other, factory):
        _, token_b = factory.device(organisation=other["org"])
        r = client.get("/api/device/v1/device", headers={"Authorization": f"Bearer {token_b}"})
        assert r.status_code == 200
        assert r.get_json()["organisation_id"] == other["org"].id
        assert r.get_json()["id"] != world["device"].id
