"""The console (and portal) in a real browser: Playwright driving Debian's
Chromium headless, and axe-core (vendored in tests/vendor) judging each page's
accessibility."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from tests.helpers.portal import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).resolve().parent.parent / "vendor" / "axe-core" / "axe.min.js"
# What axe's impact levels a page may not have.
BLOCKING = ("serious", "critical")


@contextmanager
def browser_page(locale: str = "en", **context: Any) -> Iterator[Any]:
    """A page in a fresh headless Chromium context (downloads accepted)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        ctx = browser.new_context(accept_downloads=True, locale=locale, **context)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            ctx.close()
            browser.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated, not a <script> tag: the console's CSP allows no foreign script.
        page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document)")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


def assert_accessible(page: Any) -> None:
    found = axe_violations(page)
    assert found == [], f"{page.url}: {found}"


def console_login(page: Any, base: str, email: str, lang: str = "en") -> None:
    """Log in through the console's form, with the keyboard only."""
    page.goto(f"{base}/console/login?lang={lang}")
    page.keyboard.press("Tab")  # the skip link
    page.locator("#email").focus()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/console/login" not in url)


SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "docs" / "console"


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """A full-page PNG of the page as the test sees it: into docs/console/
    (the README's pictures) when CONSOLE_SCREENSHOTS=1, else into tmp_path."""
    import os

    folder = SCREENSHOTS if os.environ.get("CONSOLE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
