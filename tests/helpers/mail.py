"""A local SMTP server's mailbox (the `mailbox` fixture in tests/conftest.py)."""

from __future__ import annotations

from typing import Any


class Mailbox:
    """Keeps every envelope the SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"
