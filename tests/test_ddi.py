"""The hawkBit DDI API, through the app: who may poll, what an action holds,
how feedback becomes the install log, cancels, attributes, gateway tokens,
coverage and maintenance windows. (The real clients: test_ddi_swupdate.py,
test_ddi_rauc.py.)"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.clock import NOW, today
from tests.helpers.problems import assert_problem
from tests.helpers.publishing import publish
from upgrade_server.accounts.principal import Principal
from upgrade_server.devices import gateway_tokens
from upgrade_server.devices.models import Device
from upgrade_server.extensions import db
from upgrade_server.releases.models import Release
from upgrade_server.updates.models import InstallEvent

FIRMWARE = b"firmware 1.1.0 " * 300
SHA1 = hashlib.sha1(FIRMWARE, usedforsecurity=False).hexdigest()
MD5 = hashlib.md5(FIRMWARE, usedforsecurity=False).hexdigest()


class Controller:
    """One device speaking DDI, as a hawkBit client does."""

    def __init__(self, client, device: Device, token: str, scheme: str = "TargetToken"):
        self.client = client
        self.device_id = device.id
        self.base = f"/{device.organisation.slug}/controller/v1/{device.serial}"
        self.headers = {"Authorization": f"{scheme} {token}"}

    def get(self, path: str = "", **kw):
        return self.client.get(self.base + path, headers=self.headers, **kw)

    def poll(self) -> dict:
        r = self.get()
        assert r.status_code == 200, r.get_data(as_text=True)
        return r.get_json()

    def links(self) -> dict:
        return self.poll()["_links"]

    def feedback(self, action: int, execution: str, finished: str = "none", **status):
        r = self.client.post(
            f"{self.base}/deploymentBase/{action}/feedback",
            json={
                "id": str(action),
                "status": {"execution": execution, "result": {"finished": finished}, **status},
            },
            headers=self.headers,
        )
        assert r.status_code == 200, r.get_data(as_text=True)
        return r

    def steps(self) -> list[tuple[str, str | None]]:
        db.session.expire_all()
        return [
            (e.status, e.error_code)
            for e in db.session.execute(
                select(InstallEvent)
                .where(InstallEvent.device_id == self.device_id)
                .order_by(InstallEvent.id)
            ).scalars()
        ]

    def version(self) -> str | None:
        db.session.expire_all()
        return db.session.get(Device, self.device_id).current_version


@pytest.fixture
def world(client, factory):
    publisher = factory.caller("publisher")
    org = factory.organisation()
    product = factory.product()
    db.session.commit()
    publish(client, publisher.headers, product.id, "1.0.0", b"one")
    device, token = factory.device(organisation=org, product=product, current_version="1.0.0")
    return {
        "publisher": publisher,
        "org": org,
        "product": product,
        "device": device,
        "token": token,
        "ddi": Controller(client, device, token),
    }


def _publish(client, world, version="1.1.0", data=FIRMWARE):
    return publish(
        client, world["publisher"].headers, world["product"].id, version, data
    ).get_json()


def _action(links: dict) -> int:
    href = links["deploymentBase"]["href"]
    return int(href.split("/deploymentBase/")[1].split("?c=")[0])


def test_polling_needs_the_controllers_token_and_its_tenant(client, world, factory):
    ddi = world["ddi"]
    device = world["device"]
    anonymous = client.get(ddi.base)
    assert_problem(anonymous, 401, "unauthenticated")
    assert anonymous.headers["WWW-Authenticate"].startswith("TargetToken")
    for wrong in (
        f"Bearer {world['token']}",
        "TargetToken usd_not-a-token",
        f"GatewayToken {world['token']}",
    ):
        assert client.get(ddi.base, headers={"Authorization": wrong}).status_code == 401
    other_org = factory.organisation()
    db.session.commit()
    for path in (
        f"/{other_org.slug}/controller/v1/{device.serial}",
        f"/{device.organisation.slug}/controller/v1/SOMEONE-ELSE",
    ):
        r = client.get(path, headers=ddi.headers)
        assert_problem(r, 401, "unauthenticated")
    # hawkBit tenants are case-insensitive (SWUpdate's default is DEFAULT).
    upper = f"/{device.organisation.slug.upper()}/controller/v1/{device.serial}"
    assert client.get(upper, headers=ddi.headers).status_code == 200


def test_an_up_to_date_device_is_told_when_to_ask_again(client, world):
    body = world["ddi"].poll()
    assert body["config"] == {"polling": {"sleep": "00:30:00"}}
    # It has sent no attributes yet: they are asked for, and nothing else.
    assert set(body["_links"]) == {"configData"}
    db.session.expire_all()
    assert db.session.get(Device, world["device"].id).last_seen_at is not None


def test_an_offered_release_is_an_action_with_its_artifact_and_every_hash(client, world):
    release = _publish(client, world)
    ddi = world["ddi"]
    links = ddi.links()
    assert _action(links) == release["id"]
    assert "?c=" in links["deploymentBase"]["href"]
    assert links["deploymentBase"]["href"].startswith("http://localhost/")
    r = client.get(links["deploymentBase"]["href"], headers=ddi.headers)
    assert r.status_code == 200
    document = r.get_json()
    assert document["id"] == str(release["id"])
    deployment = document["deployment"]
    assert (deployment["download"], deployment["update"]) == ("attempt", "attempt")
    assert "maintenanceWindow" not in deployment  # the organisation has no windows
    (chunk,) = deployment["chunks"]
    assert (chunk["part"], chunk["version"]) == ("os", "1.1.0")
    (artifact,) = chunk["artifacts"]
    assert artifact["size"] == len(FIRMWARE)
    assert artifact["hashes"] == {
        "sha1": SHA1,
        "md5": MD5,
        "sha256": hashlib.sha256(FIRMWARE).hexdigest(),
    }
    href = artifact["_links"]["download-http"]["href"]
    assert href == artifact["_links"]["download"]["href"]
    assert href.endswith(f"/softwaremodules/{release['id']}/artifacts/fw.bin")
    whole = client.get(href, headers=ddi.headers)
    assert whole.status_code == 200 and whole.data == FIRMWARE
    part = client.get(href, headers={**ddi.headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == FIRMWARE[100:200]
    assert client.head(href, headers=ddi.headers).status_code == 200
    md5sum = client.get(artifact["_links"]["md5sum-http"]["href"], headers=ddi.headers)
    assert md5sum.data.decode() == f"{MD5}  fw.bin\n"
    # Another device's token does not reach it; nor does no token.
    assert client.get(href).status_code == 401
    assert client.get(ddi.base + "/deploymentBase/999999", headers=ddi.headers).status_code == 404


def test_feedback_walks_the_install_log_once_and_ends_on_the_new_version(client, world):
    release = _publish(client, world)
    ddi = world["ddi"]
    action = _action(ddi.links())
    ddi.feedback(action, "proceeding")
    ddi.feedback(action, "proceeding")  # told again: the same step
    ddi.feedback(action, "proceeding", progress={"cnt": 1, "of": 2})
    ddi.feedback(action, "proceeding", details=["Installed Chunk."])
    assert ddi.steps() == [("downloading", None), ("installing", None)]
    assert ddi.version() == "1.0.0"
    # Part-way, the action stays offered (SWUpdate waits for a reboot here).
    assert _action(ddi.links()) == action
    ddi.feedback(action, "closed", "success", details=["Update successful"])
    ddi.feedback(action, "closed", "success")  # a retried last feedback
    assert ddi.steps() == [("downloading", None), ("installing", None), ("installed", None)]
    assert ddi.version() == "1.1.0"
    assert "deploymentBase" not in ddi.links()
    installed = ddi.get(f"/installedBase/{release['id']}")
    assert installed.status_code == 200
    assert installed.get_json()["deployment"]["chunks"][0]["version"] == "1.1.0"
    history = ddi.get(f"/installedBase/{release['id']}?actionHistory=2").get_json()
    assert history["actionHistory"]["messages"][0].endswith("installed")


def test_a_failed_attempt_is_logged_with_its_reason_and_a_new_one_counts_anew(client, world):
    _publish(client, world)
    ddi = world["ddi"]
    action = _action(ddi.links())
    ddi.feedback(action, "proceeding")
    ddi.feedback(action, "closed", "failure", code=7, details=["Signature check failed"])
    ddi.feedback(action, "closed", "failure", code=7)  # told again
    assert ddi.steps() == [("downloading", None), ("failed", "E_DDI_7")]
    db.session.expire_all()
    event = db.session.execute(
        select(InstallEvent).where(InstallEvent.status == "failed")
    ).scalar_one()
    assert event.error_text == "Signature check failed"
    assert ddi.version() == "1.0.0"
    ddi.feedback(action, "proceeding")
    ddi.feedback(action, "rejected")
    assert ddi.steps()[2:] == [("downloading", None), ("failed", "E_REJECTED")]


def test_a_withdrawn_release_cancels_the_action_a_device_is_part_way_through(client, world):
    release = _publish(client, world)
    ddi = world["ddi"]
    action = _action(ddi.links())
    ddi.feedback(action, "proceeding")
    client.post(
        f"/api/v1/releases/{release['id']}/withdraw",
        json={"reason": "bricks rev-a"},
        headers=world["publisher"].headers,
    )
    links = ddi.links()
    assert "deploymentBase" not in links
    cancel = client.get(links["cancelAction"]["href"], headers=ddi.headers)
    assert cancel.get_json() == {"id": str(action), "cancelAction": {"stopId": str(action)}}
    # A rejected cancel changes nothing: the cancel stays until it is done.
    rejected = client.post(
        f"{ddi.base}/cancelAction/{action}/feedback",
        json={
            "id": str(action),
            "status": {"execution": "rejected", "result": {"finished": "none"}},
        },
        headers=ddi.headers,
    )
    assert rejected.status_code == 200
    assert "cancelAction" in ddi.links()
    for _ in range(2):  # the second is a retry
        done = client.post(
            f"{ddi.base}/cancelAction/{action}/feedback",
            json={
                "id": str(action),
                "status": {"execution": "closed", "result": {"finished": "success"}},
            },
            headers=ddi.headers,
        )
        assert done.status_code == 200
    assert ddi.steps() == [("downloading", None), ("failed", "E_CANCELLED")]
    assert set(ddi.links()) <= {"configData"}
    assert ddi.get(f"/cancelAction/{action}").status_code == 404
    assert ddi.get(f"/deploymentBase/{action}").status_code == 404
    artifact = ddi.get(f"/softwaremodules/{action}/artifacts/fw.bin")
    assert artifact.status_code == 403


def test_a_newer_release_first_cancels_the_open_action(client, world):
    _publish(client, world)
    ddi = world["ddi"]
    first = _action(ddi.links())
    ddi.feedback(first, "proceeding")
    newer = _publish(client, world, "1.2.0", b"one-two")
    assert ddi.links()["cancelAction"]["href"].endswith(f"/cancelAction/{first}")
    client.post(
        f"{ddi.base}/cancelAction/{first}/feedback",
        json={"status": {"execution": "closed", "result": {"finished": "success"}}},
        headers=ddi.headers,
    )
    assert _action(ddi.links()) == newer["id"]


def test_attributes_go_into_the_inventory_and_an_outside_install_is_taken(client, world):
    ddi = world["ddi"]
    r = client.put(
        ddi.base + "/configData",
        json={
            "mode": "merge",
            "data": {"MAC": "00:11:22:33:44:55", "sw_version": "1.0.0"},
            "status": {"execution": "closed", "result": {"finished": "success"}},
        },
        headers=ddi.headers,
    )
    assert r.status_code == 200
    assert "configData" not in ddi.links()
    assert ddi.steps() == []  # the version it already had
    client.put(
        ddi.base + "/configData",
        json={"data": {"sw_version": "1.0.5"}},
        headers=ddi.headers,
    )
    db.session.expire_all()
    device = db.session.get(Device, world["device"].id)
    assert device.inventory == {"MAC": "00:11:22:33:44:55", "sw_version": "1.0.5"}
    assert device.current_version == "1.0.5"
    assert ddi.steps() == [("installed", None)]
    bad = client.put(ddi.base + "/configData", json={"data": {"k": "v" * 200}}, headers=ddi.headers)
    assert bad.status_code == 422


def test_a_gateway_token_speaks_for_the_devices_of_its_organisation_only(client, world, factory):
    issued = gateway_tokens.issue_gateway_token(
        db.session, Principal.cli(), world["org"], "site gateway"
    )
    db.session.commit()
    assert issued.secret.startswith("usg_")
    assert issued.token.token_hash != issued.secret
    gateway = Controller(client, world["device"], issued.secret, scheme="GatewayToken")
    assert gateway.get().status_code == 200
    stranger, _ = factory.device(product=world["product"])
    other = Controller(client, stranger, issued.secret, scheme="GatewayToken")
    assert other.get().status_code == 401
    other.base = f"/{world['org'].slug}/controller/v1/{stranger.serial}"
    assert other.get().status_code == 401
    gateway_tokens.revoke_gateway_token(db.session, Principal.cli(), issued.token.id)
    db.session.commit()
    assert gateway.get().status_code == 401


def test_a_device_not_covered_is_offered_nothing(client, world, factory):
    old = today() - timedelta(days=4 * 366)
    device, token = factory.device(
        organisation=world["org"],
        product=world["product"],
        current_version="1.0.0",
        delivered_on=old.isoformat(),
        accepted_on=old.isoformat(),
    )
    release = _publish(client, world)
    ddi = Controller(client, device, token)
    assert "deploymentBase" not in ddi.links()
    assert ddi.get(f"/deploymentBase/{release['id']}").status_code == 404
    r = ddi.get(f"/softwaremodules/{release['id']}/artifacts/fw.bin")
    assert_problem(r, 403, "not-entitled")
    # The covered device of the same organisation is offered it.
    assert _action(world["ddi"].links()) == release["id"]


def test_a_closed_window_holds_a_new_action_and_marks_one_under_way(client, world, factory):
    zone = ZoneInfo(world["org"].timezone)
    ddi = world["ddi"]
    release = _publish(client, world)
    action = _action(ddi.links())
    ddi.feedback(action, "proceeding")  # under way before the window is set
    later, later_token = factory.device(
        organisation=world["org"], product=world["product"], current_version="1.0.0"
    )
    opens = (NOW + timedelta(hours=3)).astimezone(zone)
    r = client.put(
        f"/api/v1/organisations/{world['org'].id}/maintenance-windows",
        json={
            "windows": [
                {
                    "kind": "weekly",
                    "days": [1, 2, 3, 4, 5, 6, 7],
                    "start": opens.strftime("%H:%M"),
                    "duration_minutes": 60,
                }
            ]
        },
        headers=factory.caller("admin").headers,
    )
    assert r.status_code == 200, r.get_json()
    # A device that had not started waits for the window: nothing to run.
    assert "deploymentBase" not in Controller(client, later, later_token).links()
    # The one under way keeps its action, told not to install now.
    links = ddi.links()
    assert _action(links) == release["id"]
    deployment = client.get(links["deploymentBase"]["href"], headers=ddi.headers).get_json()
    assert deployment["deployment"]["maintenanceWindow"] == "unavailable"
    assert (deployment["deployment"]["download"], deployment["deployment"]["update"]) == (
        "attempt",
        "skip",
    )


def test_feedback_that_is_not_ddi_is_refused_clearly(client, world):
    release = _publish(client, world)
    ddi = world["ddi"]
    url = f"{ddi.base}/deploymentBase/{release['id']}/feedback"
    for body in (
        {},
        {"status": {}},
        {"status": {"execution": "exploded"}},
        {"status": {"execution": "closed", "result": {"finished": "maybe"}}},
    ):
        r = client.post(url, json=body, headers=ddi.headers)
        assert r.status_code == 422, body
        assert r.content_type == "application/problem+json"
    assert (
        client.post(
            url, data="{", headers={**ddi.headers, "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert ddi.steps() == []


def test_an_older_release_gets_its_sha1_and_md5_from_the_stored_bytes(client, world):
    release = _publish(client, world)
    db.session.execute(
        Release.__table__.update()
        .where(Release.id == release["id"])
        .values(artifact_sha1=None, artifact_md5=None)
    )
    db.session.commit()
    ddi = world["ddi"]
    document = client.get(ddi.links()["deploymentBase"]["href"], headers=ddi.headers).get_json()
    hashes = document["deployment"]["chunks"][0]["artifacts"][0]["hashes"]
    assert hashes["md5"] == MD5
    db.session.expire_all()
    assert db.session.get(Release, release["id"]).artifact_sha1 == SHA1


def test_a_failed_action_rests_before_it_is_offered_again_longer_each_time(client, world, clock):
    _publish(client, world)
    ddi = world["ddi"]
    action = _action(ddi.links())
    ddi.feedback(action, "proceeding")
    ddi.feedback(action, "closed", "failure", details=["no space left"])
    # Not downloaded again at every poll...
    assert "deploymentBase" not in ddi.links()
    clock.shift(timedelta(minutes=59))
    assert "deploymentBase" not in ddi.links()
    # ...but tried again an hour later, then two hours after a second failure.
    clock.shift(timedelta(minutes=2))
    assert _action(ddi.links()) == action
    ddi.feedback(action, "proceeding")
    ddi.feedback(action, "closed", "failure")
    clock.shift(timedelta(hours=1, minutes=1))
    assert "deploymentBase" not in ddi.links()
    clock.shift(timedelta(hours=1))
    assert _action(ddi.links()) == action


def test_an_aborted_rollout_cancels_the_action_and_a_running_one_offers_it(client, factory):
    from tests.helpers.rollouts import fleet

    staged = fleet(client, factory, rev_a=1, rev_b=0)
    device, token = factory.device(
        staged.organisation, staged.product, hardware_revision="rev-a", current_version="1.0.0"
    )
    ddi = Controller(client, device, token)
    rollout = staged.start(client, waves=[{"share": 10000}])
    assert _action(ddi.links()) == staged.release_id
    ddi.feedback(staged.release_id, "proceeding")
    r = client.post(
        f"/api/v1/rollouts/{rollout['id']}/abort",
        json={"reason": "bad build"},
        headers=staged.publisher.headers,
    )
    assert r.status_code == 200, r.get_json()
    assert ddi.links()["cancelAction"]["href"].endswith(f"/cancelAction/{staged.release_id}")


def test_gateway_tokens_through_the_api_admins_only_shown_once(client, world, factory):
    admin = factory.caller("admin")
    url = f"/api/v1/organisations/{world['org'].id}/gateway-tokens"
    customer = factory.caller("customer-admin", world["org"])
    assert client.post(url, json={"name": "x"}, headers=customer.headers).status_code == 403
    r = client.post(url, json={"name": "site gateway"}, headers=admin.headers)
    assert r.status_code == 201, r.get_json()
    secret, token = r.get_json()["token"], r.get_json()["gateway_token"]
    assert secret.startswith("usg_") and token["prefix"] == secret[:12]
    listed = client.get(url, headers=admin.headers)
    assert secret not in listed.get_data(as_text=True)
    assert [t["name"] for t in listed.get_json()] == ["site gateway"]
    gateway = Controller(client, world["device"], secret, scheme="GatewayToken")
    assert gateway.get().status_code == 200
    other = f"/api/v1/organisations/{factory.organisation().id}/gateway-tokens/{token['id']}"
    db.session.commit()
    assert client.delete(other, headers=admin.headers).status_code == 404
    revoked = client.delete(f"{url}/{token['id']}", headers=admin.headers)
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    assert gateway.get().status_code == 401


def test_feedback_as_swupdate_sends_it_a_numeric_id_and_a_long_log(client, world):
    release = _publish(client, world)
    ddi = world["ddi"]
    url = f"{ddi.base}/deploymentBase/{release['id']}/feedback"
    log = ["[TRACE] " + "x" * 1000] * 45 + ["Installing Update Chunk Artifacts."]
    for details in (["Installing Update Chunk Artifacts."], log):
        r = client.post(
            url,
            json={
                "id": release["id"],
                "time": "20261203T133609",
                "status": {
                    "result": {"progress": {"cnt": 0, "of": 1}, "finished": "none"},
                    "execution": "proceeding",
                    "details": details,
                },
            },
            headers=ddi.headers,
        )
        assert r.status_code == 200, r.get_data(as_text=True)
    failed = client.post(
        url,
        json={
            "id": release["id"],
            "status": {"execution": "closed", "result": {"finished": "failure"}, "details": log},
        },
        headers=ddi.headers,
    )
    assert failed.status_code == 200
    assert ddi.steps() == [("downloading", None), ("installing", None), ("failed", "E_DDI_FAILURE")]
    db.session.expire_all()
    text = db.session.execute(
        select(InstallEvent.error_text).where(InstallEvent.status == "failed")
    ).scalar_one()
    assert len(text) == 2000 and text.startswith("[TRACE]")


def test_a_request_is_refused_as_a_message_then_by_who_sends_it_then_by_what_it_says(client, world):
    release = _publish(client, world)
    url = f"{world['ddi'].base}/deploymentBase/{release['id']}/feedback"
    nobody = {"Authorization": "TargetToken usd_nobody"}
    as_text = client.post(url, data="{}", headers={**nobody, "Content-Type": "text/plain"})
    assert_problem(as_text, 415, "unsupported-media-type")
    not_json = client.post(url, data="{", headers={**nobody, "Content-Type": "application/json"})
    assert not_json.status_code == 400
    nan = client.post(
        url, data='{"status": NaN}', headers={**nobody, "Content-Type": "application/json"}
    )
    assert nan.status_code == 400
    too_big = client.post(url, json={"status": {"details": ["x" * 70_000]}}, headers=nobody)
    assert too_big.status_code == 413
    assert_problem(client.post(url, json={"status": {}}, headers=nobody), 401, "unauthenticated")
    invalid = client.post(url, json={"status": {}}, headers=world["ddi"].headers)
    assert_problem(invalid, 422, "invalid-input")


def test_every_ddi_answer_keeps_the_device_edges_headers(client, world):
    release = _publish(client, world)
    ddi = world["ddi"]
    answers = [
        ddi.get(),
        ddi.get(f"/deploymentBase/{release['id']}"),
        client.get(ddi.base),
        ddi.get("/deploymentBase/0"),
    ]
    for r in answers:
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert len(r.headers["X-Request-ID"]) == 32
    assert answers[2].status_code == 401 and "Bearer" not in answers[2].headers["WWW-Authenticate"]
    mine = client.get(ddi.base, headers={**ddi.headers, "X-Request-ID": "trace-1"})
    assert mine.headers["X-Request-ID"] == "trace-1"


def test_the_base_polls_flask_view_answers_as_the_device_edge_does(app, client, world):
    """The edge answers every base poll; were the view reached, the same answer."""
    _publish(client, world)
    ddi = world["ddi"]
    with app.test_request_context(ddi.base, headers=ddi.headers):
        view = app.view_functions["ddi.base_poll"]
        tenant, serial = ddi.base.split("/")[1], ddi.base.split("/")[-1]
        answer = view(tenant=tenant, controller_id=serial)
    assert answer.status_code == 200
    assert answer.get_json()["_links"].keys() == ddi.links().keys()
    with app.test_request_context(ddi.base):
        assert view(tenant=tenant, controller_id=serial).status_code == 401
