def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_device_list_as_admin(client, factory):
    admin = factory.caller("admin")
    device, _ = factory.device()
    r = client.get("/api/v1/devices", headers=admin.headers)
    assert r.status_code == 200
    assert [d["serial"] for d in r.get_json()["items"]] == [device.serial]
