"""The console's releases in Chromium: a publisher, with the keyboard only,
publishes a release with notes in both languages (seeing them previewed and
the upload's progress reach 100 %) and starts a rollout through its
confirmation; every page passes axe-core."""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any

import pytest

from tests.helpers.browser import assert_accessible, browser_page, console_login, screenshot
from tests.helpers.portal import PASSWORD
from tests.live import Live, add_product, live_server
from upgrade_server.accounts import service as accounts
from upgrade_server.accounts.principal import Principal
from upgrade_server.devices import provisioning
from upgrade_server.extensions import db
from upgrade_server.organisations import service as organisations

pytestmark = [pytest.mark.own_app, pytest.mark.slow]

PUBLISHER = "publisher@vendor.test"
NOTES = {
    "zh-CN": "## 新功能\n\n支持**双链路备份**。",
    "en": "## New\n\nSupports **dual-link backup**.",
}


def _publish(live: Live, product_id: int, version: str, **metadata: Any) -> int:
    r = live.app.test_client().post(
        f"/api/v1/products/{product_id}/releases",
        data={
            "metadata": json.dumps({"version": version, **metadata}),
            "artifact": (io.BytesIO(version.encode() * 100), f"gw-{version}.bin"),
        },
        headers=live.headers,
        content_type="multipart/form-data",
    )
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])


def _seed(live: Live) -> None:
    """A product with two releases and eight devices on 1.0.0 (stable), and a publisher."""
    product_id = add_product(live, "gw", ("rev-a", "rev-b"))
    add_product(live, "meter", ("m1",))
    _publish(live, product_id, "0.9.0", channels=["stable"], security_fix=True)
    _publish(live, product_id, "1.0.0", channels=["beta", "stable"], notes=NOTES)
    withdrawn = _publish(live, product_id, "0.9.1", channels=["stable"])
    r = live.app.test_client().post(
        f"/api/v1/releases/{withdrawn}/withdraw", json={"reason": "reboots"}, headers=live.headers
    )
    assert r.status_code == 200, r.get_json()
    with live.app.app_context():
        cli = Principal.cli()
        organisations.create_organisation(db.session, cli, slug="acme", name="Acme")
        for n in range(8):
            provisioning.create_device(
                db.session,
                cli,
                {
                    "serial": f"GW-{n}",
                    "product": "gw",
                    "hardware_revision": "rev-a" if n < 6 else "rev-b",
                    "organisation": "acme",
                    "channel": "stable",
                    "current_version": "1.0.0",
                },
            )
        accounts.create_user(
            db.session, cli, email=PUBLISHER, name="Pub", role="publisher", password=PASSWORD
        )
        db.session.commit()


def _type_into(page: Any, selector: str, text: str) -> None:
    page.locator(selector).focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


def _press(page: Any, selector: str, key: str = "Enter") -> None:
    page.locator(selector).focus()
    page.keyboard.press(key)


def test_a_publisher_publishes_with_notes_and_starts_a_rollout_by_keyboard(scratch_url, tmp_path):
    firmware = tmp_path / "gw-1.1.0.bin"
    firmware.write_bytes(os.urandom(3 * 1024 * 1024))
    with live_server(scratch_url, tmp_path / "instance") as live:
        _seed(live)
        with browser_page("en") as page:
            progress: list[int] = []
            announced: list[str] = []
            page.expose_function(
                "reportProgress", lambda v, t: (progress.append(v), announced.append(t))
            )
            console_login(page, live.url, PUBLISHER)
            page.goto(f"{live.url}/console/releases?lang=en")
            assert page.locator("tbody tr").count() == 3
            assert_accessible(page)

            _press(page, "a:text('Publish a release')")
            page.wait_for_url(re.compile(r"/console/releases/new$"))
            assert_accessible(page)  # which product?
            page.locator("#product").focus()
            page.keyboard.type("gw")
            _press(page, "button:text('Continue')")
            page.wait_for_url(re.compile(r"/console/releases/new\?product=\d+"))
            assert_accessible(page)
            _type_into(page, "#version", "1.1.0")
            _type_into(page, "#notes-zh-CN", NOTES["zh-CN"])
            _type_into(page, "#notes-en", NOTES["en"])
            _type_into(page, "#guidance-installation-en", "Back up **first**.")
            _press(page, "#preview-button")
            page.locator("#preview strong", has_text="dual-link backup").wait_for()
            assert page.locator("#preview strong", has_text="双链路备份").count() == 1
            assert page.locator("#preview strong", has_text="first").count() == 1
            assert_accessible(page)

            page.evaluate(
                """() => {
                  const bar = document.getElementById('upload-progress');
                  const text = document.getElementById('upload-percent');
                  const report = () => window.reportProgress(
                    Number(bar.getAttribute('value')), text.textContent);
                  new MutationObserver(report).observe(bar, {attributes: true});
                  new MutationObserver(report).observe(text, {childList: true});
                }"""
            )
            with page.expect_file_chooser() as chooser:
                _press(page, "#artifact", "Space")
            chooser.value.set_files(str(firmware))
            _press(page, "#publish-button")
            page.wait_for_url(re.compile(r"/console/releases/\d+$"))
            assert max(progress) == 100
            assert any("100 %" in t for t in announced)
            assert page.locator("h1").inner_text().startswith("gw 1.1.0")
            assert page.locator(".notes strong", has_text="dual-link backup").count() == 1
            assert_accessible(page)
            release_url = page.url

            _press(page, "a:text('Start a rollout')")
            page.wait_for_url(re.compile(r"/rollout$"))
            assert_accessible(page)
            page.locator("#channel").focus()
            page.keyboard.type("stable")
            _type_into(page, "#waves", "50, 100")
            _press(page, "button:text('Review the rollout')")
            confirm = page.locator(".confirm-count")
            confirm.wait_for()
            assert "The first wave (50 %) offers it to about 4 devices" in confirm.inner_text()
            assert "of 8 devices that could take it" in confirm.inner_text()
            assert_accessible(page)
            _press(page, "button:text('Start the rollout')")
            page.wait_for_url(release_url)
            rollouts = page.locator("section[aria-labelledby='rollouts-h']").inner_text()
            assert "stable" in rollouts and "running" in rollouts and "1 of 2 (50 %)" in rollouts
            assert_accessible(page)  # with the rollout's controls
            # Paused from the keyboard, then the abort's confirmation (not sent).
            with page.expect_navigation():
                _press(page, "button:text('Pause the rollout')")
            assert "paused" in page.locator("section[aria-labelledby='rollouts-h']").inner_text()
            _press(page, "a:text('Abort…')")
            page.wait_for_url(re.compile(r"/abort$"))
            assert "withdraws the offer for good" in page.inner_text("main")
            assert_accessible(page)

            # The other pages of the section pass axe too, in both languages.
            for path in ("promote?channel=beta", "withdraw"):
                page.goto(f"{release_url}/{path}")
                assert page.locator(".confirm-count").count() == 1
                assert_accessible(page)
            page.goto(f"{live.url}/console/releases/signatures")
            assert_accessible(page)
            page.goto(f"{live.url}/console/releases?lang=en")
            screenshot(page, "releases", tmp_path)
            for path in ("/console/releases", release_url.split(live.url, 1)[1]):
                page.goto(f"{live.url}{path}?lang=zh-CN")
                assert page.locator("html").get_attribute("lang") == "zh-CN"
                assert_accessible(page)
