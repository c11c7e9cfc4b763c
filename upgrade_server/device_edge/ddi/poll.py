"""The DDI base poll, `GET /{tenant}/controller/v1/{controllerId}`, answered
by the device edge (wsgi.py) without Flask, as the native update check is:
every device of a hawkBit fleet calls it every polling period, and most find
nothing to do. One query finds the device from its credentials; the offer
comes from the update check's caches (deployments.actions); last-seen is
written behind in batches with the native check's reports.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy.exc import DBAPIError

from upgrade_server.clock import utcnow
from upgrade_server.device_edge.ddi.deployments import (
    NOTHING,
    Actions,
    action_href_hash,
    actions,
    controller_base,
    mode,
)
from upgrade_server.device_edge.ddi.targets import find_target
from upgrade_server.device_edge.update_check import UpdateCheck

PATH = re.compile(r"/([^/]+)/controller/v1/([^/]+)\Z")
# hawkBit's sleep is a time of day (clients parse it as %H:%M:%S).
LONGEST_SLEEP = 24 * 3600 - 1


def sleep_text(seconds: int) -> str:
    seconds = max(1, min(seconds, LONGEST_SLEEP))
    return f"{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}"


def poll_document(base: str, acts: Actions, sleep: str, ask_config: bool) -> dict[str, Any]:
    links: dict[str, Any] = {}
    if acts.cancel is not None:
        links["cancelAction"] = {"href": f"{base}/cancelAction/{acts.cancel}"}
    elif acts.offered is not None:
        release_id = acts.offered.release_id
        c = action_href_hash(release_id, ":".join(mode(acts)))
        links["deploymentBase"] = {"href": f"{base}/deploymentBase/{release_id}?c={c}"}
    if ask_config:
        links["configData"] = {"href": f"{base}/configData"}
    return {"config": {"polling": {"sleep": sleep}}, "_links": links}


class BasePoll:
    """The base poll, free of Flask (the update check's state and caches)."""

    def __init__(self, check: UpdateCheck) -> None:
        self.check = check
        self.sleep = sleep_text(check.poll_seconds)
        idle = poll_document("", NOTHING, self.sleep, ask_config=False)
        self.idle = json.dumps(idle, separators=(",", ":")).encode()

    def __call__(
        self, environ: dict[str, Any], tenant: str, controller_id: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """(status, headers, body). Raises AuthenticationError or OperationalError."""
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        try:
            row, acts = self._actions(tenant, controller_id, authorization)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            row, acts = self._actions(tenant, controller_id, authorization)  # a new connection
        if acts is NOTHING and row.inventory:
            body = self.idle  # most polls: nothing to do, nothing asked
        else:
            base = controller_base(
                environ.get("wsgi.url_scheme", "http"),
                environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
                environ.get("SCRIPT_NAME", ""),
                tenant,
                controller_id,
            )
            # Attributes are asked for until the device has sent some.
            document = poll_document(base, acts, self.sleep, ask_config=not row.inventory)
            body = json.dumps(document, separators=(",", ":")).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "private, no-cache"),
        ]
        return 200, headers, body

    def _actions(self, tenant: str, controller_id: str, authorization: str) -> tuple[Any, Actions]:
        with self.check.extensions["hot_connection"]() as conn:
            now = utcnow()
            row = find_target(conn, tenant, controller_id, authorization)
            acts = actions(self.check, conn, row, now)
            self.check.seen(conn, row.id, {"last_seen_at": now})
        return row, acts
