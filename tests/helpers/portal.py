"""Logging in to the customer portal from a test client."""

from __future__ import annotations

import re
from typing import Any

PASSWORD = "correct horse battery"
"""The password the tests give portal users."""

GUIDANCE = {
    "installation": {"zh-CN": "升级前请备份配置。", "en": "Back up the configuration first."},
    "operation": {"zh-CN": "在菜单中启用备份链路。", "en": "Enable the backup link in the menu."},
    "maintenance": {"zh-CN": "每月检查链路状态。", "en": "Check the link state monthly."},
}
"""A release's installation, operation and maintenance guidance in both languages."""


def csrf(page: str) -> str:
    """The CSRF token of the form in `page`."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: Any, email: str, password: str = PASSWORD) -> Any:
    """Log in through the portal's form; the answer to the POST."""
    token = csrf(client.get("/portal/login").get_data(as_text=True))
    return client.post(
        "/portal/login", data={"email": email, "password": password, "csrf_token": token}
    )
