"""Device provisioning, reading, paging, filtering and bulk CSV import."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.helpers.problems import assert_problem
from upgrade_server.devices.models import Device, DeviceToken
from upgrade_server.extensions import db


def _count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _csv(*rows: str, header: str = "serial,product,hardware_revision,organisation,site") -> str:
    return "\n".join([header, *rows]) + "\n"


def _post_csv(client, headers, text: str):
    return client.post(
        "/api/v1/devices/import", data=text.encode(), content_type="text/csv", headers=headers
    )


def test_provision_one_device(client, factory):
    support = factory.caller("support")
    org = factory.organisation()
    product = factory.product()
    db.session.commit()
    r = client.post(
        "/api/v1/devices",
        json={
            "serial": "SN-API-1",
            "product": product.code,
            "hardware_revision": "rev-b",
            "organisation": org.slug,
            "site": "Haidian",
            "delivered_on": "2025-03-01",
            "accepted_on": "2025-04-01",
            "current_version": "1.2.3",
        },
        headers=support.headers,
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["token"].startswith("usd_")
    assert body["device"]["hardware_revision"] == "rev-b"
    assert body["device"]["accepted_on"] == "2025-04-01"
    device_headers = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/device/v1/device", headers=device_headers).get_json()["serial"] == (
        "SN-API-1"
    )


def test_provision_rejects_bad_references(client, factory):
    support = factory.caller("support")
    product = factory.product()
    db.session.commit()
    r = client.post(
        "/api/v1/devices",
        json={
            "serial": "SN-X",
            "product": product.code,
            "hardware_revision": "rev-z",
            "organisation": "nobody",
            "accepted_on": "yesterday",
            "current_version": "one",
        },
        headers=support.headers,
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.get_json()["errors"]}
    assert fields == {"hardware_revision", "organisation", "accepted_on", "current_version"}


def test_paging_walks_every_device_once(client, factory):
    admin = factory.caller("admin")
    org = factory.organisation()
    product = factory.product()
    made = [factory.device(organisation=org, product=product)[0].id for _ in range(7)]
    seen: list[int] = []
    after = None
    while True:
        url = f"/api/v1/devices?limit=3&organisation_id={org.id}"
        if after:
            url += f"&after={after}"
        page = client.get(url, headers=admin.headers).get_json()
        seen += [d["id"] for d in page["items"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == made


def test_filters(client, factory):
    admin = factory.caller("admin")
    org = factory.organisation()
    product = factory.product()
    a, _ = factory.device(organisation=org, product=product, serial="FLT-A-1", channel="beta")
    b, _ = factory.device(
        organisation=org, product=product, serial="FLT-B-1", hardware_revision="rev-b"
    )

    def ids(query: str) -> list[int]:
        r = client.get(f"/api/v1/devices?organisation_id={org.id}&{query}", headers=admin.headers)
        return [d["id"] for d in r.get_json()["items"]]

    assert ids("channel=beta") == [a.id]
    assert ids("hardware_revision=rev-b") == [b.id]
    assert ids("serial_prefix=FLT-B") == [b.id]
    assert ids("serial_prefix=FLT_") == []  # '_' is literal, not a wildcard
    assert ids(f"product_id={product.id}") == [a.id, b.id]
    r = client.get("/api/v1/devices?limit=0", headers=admin.headers)
    assert r.status_code == 422


def test_update_device(client, factory):
    support = factory.caller("support")
    device, _ = factory.device()
    r = client.patch(
        f"/api/v1/devices/{device.id}",
        json={"site": "Chaoyang", "hardware_revision": "rev-b", "channel": "beta"},
        headers=support.headers,
    )
    assert r.status_code == 200
    assert r.get_json()["hardware_revision"] == "rev-b"
    r = client.patch(
        f"/api/v1/devices/{device.id}", json={"hardware_revision": "rev-q"}, headers=support.headers
    )
    assert r.status_code == 422


class TestCsvImport:
    def test_good_file_imports_every_row_with_tokens(self, client, factory):
        support = factory.caller("support")
        org = factory.organisation()
        product = factory.product()
        db.session.commit()
        rows = [f"CSV-{i},{product.code},rev-a,{org.slug},Site {i}" for i in range(25)]
        r = _post_csv(client, support.headers, _csv(*rows))
        assert r.status_code == 201, r.get_json()
        body = r.get_json()
        assert body["count"] == 25
        tokens = {d["serial"]: d["token"] for d in body["devices"]}
        headers = {"Authorization": f"Bearer {tokens['CSV-7']}"}
        me = client.get("/api/device/v1/device", headers=headers).get_json()
        assert me["serial"] == "CSV-7" and me["site"] == "Site 7"

    def test_one_bad_row_rejects_the_whole_file(self, client, factory):
        support = factory.caller("support")
        org = factory.organisation()
        product = factory.product()
        db.session.commit()
        devices_before, tokens_before = _count(Device), _count(DeviceToken)
        rows = [f"BAD-{i},{product.code},rev-a,{org.slug}," for i in range(10)]
        rows[6] = f"BAD-6,{product.code},rev-nope,{org.slug},"
        r = _post_csv(client, support.headers, _csv(*rows))
        assert r.status_code == 422
        body = r.get_json()
        assert body["type"] == "/problems/invalid-input"
        assert body["errors"] == [
            {
                "row": 8,  # header is line 1; the 7th data row is line 8
                "field": "hardware_revision",
                "message": f"product {product.code} has no revision 'rev-nope'",
            }
        ]
        assert "nothing was imported" in body["detail"]
        assert (_count(Device), _count(DeviceToken)) == (devices_before, tokens_before)

    def test_serial_repeated_in_file_or_existing(self, client, factory):
        support = factory.caller("support")
        existing, _ = factory.device()
        org = factory.organisation()
        db.session.commit()
        code = existing.product.code
        text = _csv(
            f"DUP-1,{code},rev-a,{org.slug},",
            f"DUP-1,{code},rev-a,{org.slug},",
        )
        r = _post_csv(client, support.headers, text)
        assert r.status_code == 422
        assert r.get_json()["errors"][0]["row"] == 3
        r = _post_csv(client, support.headers, _csv(f"{existing.serial},{code},rev-a,{org.slug},"))
        assert r.status_code == 422
        assert r.get_json()["errors"] == [
            {"row": 2, "field": "serial", "message": f"device {existing.serial!r} exists"}
        ]

    def test_bad_header_and_empty_file(self, client, factory):
        support = factory.caller("support")
        r = _post_csv(client, support.headers, "serial,product,colour\nA,B,red\n")
        assert r.status_code == 422
        problems = {(e["field"], e["message"]) for e in r.get_json()["errors"]}
        assert ("colour", "unknown column") in problems
        assert ("organisation", "missing column") in problems
        r = _post_csv(client, support.headers, _csv())
        assert r.status_code == 422

    def test_not_utf8_names_the_line(self, client, factory):
        support = factory.caller("support")
        org = factory.organisation()
        product = factory.product()
        db.session.commit()
        text = _csv(
            f"GB-1,{product.code},rev-a,{org.slug},", f"GB-2,{product.code},rev-a,{org.slug},设备"
        )
        r = client.post(
            "/api/v1/devices/import",
            data=text.encode("gb18030"),
            content_type="text/csv",
            headers=support.headers,
        )
        body = assert_problem(r, 422, "invalid-input")
        assert body["errors"] == [{"row": 3, "message": "not UTF-8 text"}]

    def test_malformed_files_are_invalid_input_naming_the_line(self, client, factory):
        support = factory.caller("support")
        org = factory.organisation()
        product = factory.product()
        db.session.commit()
        header = "serial,product,hardware_revision,organisation,site,current_version"
        first = f"OK-1,{product.code},rev-a,{org.slug},,"
        start = f"OK-2,{product.code},rev-a"
        for second, field in [
            # A field beyond the csv module's limit (131072 characters).
            (f"{start},{org.slug},{'x' * 200_000},", None),
            (f'{start},{org.slug},"unterminated,', None),
            # A bare CR ends a line, as in old Mac files: this row lacks fields.
            (f"{start}\r,{org.slug},,", "organisation"),
            (f"{start},{org.slug},{'x' * 201},", "site"),
            (f"{start},{org.slug},a\x00b,", "site"),
            (f"{start},{org.slug},,1.0.0-{'a' * 70}", "current_version"),
            (f"{start},{'9' * 30},,", "organisation"),
            (f"{start},{'9' * 5000},,", "organisation"),
        ]:
            r = _post_csv(client, support.headers, _csv(first, second, header=header))
            body = assert_problem(r, 422, "invalid-input")
            assert body["errors"][0]["row"] == 3, body
            if field:
                assert body["errors"][0]["field"] == field, body
            assert len(r.data) < 2000  # a long value is not echoed back whole
        assert _count(Device) == 0

    def test_a_channel_the_product_lacks_is_refused(self, client, factory):
        support = factory.caller("support")
        org = factory.organisation()
        product = factory.product()
        db.session.commit()
        header = "serial,product,hardware_revision,organisation,channel"
        text = _csv(
            f"CH-1,{product.code},rev-a,{org.slug},beta",
            f"CH-2,{product.code},rev-a,{org.slug},nightly",
            header=header,
        )
        body = assert_problem(_post_csv(client, support.headers, text), 422, "invalid-input")
        assert body["errors"] == [
            {
                "row": 3,
                "field": "channel",
                "message": f"product {product.code} has no channel 'nightly' (dev, beta, stable)",
            }
        ]
        r = client.post(
            "/api/v1/devices",
            json={
                "serial": "CH-3",
                "product": product.code,
                "hardware_revision": "rev-a",
                "organisation": org.slug,
                "channel": "nightly",
            },
            headers=support.headers,
        )
        assert_problem(r, 422, "invalid-input")
        device, _ = factory.device(organisation=org, product=product)
        r = client.patch(
            f"/api/v1/devices/{device.id}", json={"channel": "nightly"}, headers=support.headers
        )
        assert_problem(r, 422, "invalid-input")
        assert db.session.get(Device, device.id).channel == "stable"

    def test_customer_cannot_import(self, client, factory):
        customer = factory.caller("customer-admin")
        assert _post_csv(client, customer.headers, _csv()).status_code == 403
