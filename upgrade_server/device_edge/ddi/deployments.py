"""A device's DDI actions, and the documents that describe them.

The action offered is the native update check's answer (the same candidates,
rollouts, approvals, coverage and windows: UpdateCheck.admitted and pick), so
a device speaks DDI or the native protocol to the same effect. An action the
device is part-way through (Device.installing_release_id) that is no longer
what it would be offered (the release was withdrawn, a rollout aborted, a
newer release superseded it) is cancelled first, as hawkBit cancels an
action before assigning another.

An action that ended in failure is a closed action in hawkBit's terms: it is
offered again only after a pause that doubles with each failed attempt (1 h,
2 h, 4 h, ... up to a day), so a device whose install fails for good does not
download the release at every poll, and one that failed by chance tries again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast
from urllib.parse import quote

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from upgrade_server.compiled_queries import compiled
from upgrade_server.device_edge.update_check import UpdateCheck
from upgrade_server.releases.models import Release
from upgrade_server.rollouts.gatekeeper import Gatekeeper
from upgrade_server.storage.base import ArtifactStore
from upgrade_server.updates.models import InstallEvent
from upgrade_server.updates.offers import Candidate, pick

# hawkBit's software module type for a whole image: one chunk per action.
PART = "os"


class Actions(NamedTuple):
    """What a device's base poll links: one of the offer or the cancel."""

    offered: Candidate | None  # the release to install (deploymentBase)
    cancel: int | None  # the open action to cancel first (cancelAction)
    forced: bool  # under an emergency rollout: download and update are "forced"
    # "available" / "unavailable" when the organisation has maintenance windows.
    window: str | None


NOTHING = Actions(None, None, False, None)

FIRST_RETRY = timedelta(hours=1)
LONGEST_RETRY = timedelta(days=1)
# (Two typed columns make a Select[int, datetime]; compiled() takes any select.)
_FAILURES = cast(
    "Select[Any]",
    select(func.count().label("failures"), func.max(InstallEvent.received_at).label("last")).where(
        InstallEvent.device_id == bindparam("device_id"),
        InstallEvent.release_id == bindparam("release_id"),
        # Not IN (...): a compiled query takes no expanding parameters.
        (InstallEvent.status == "failed") | (InstallEvent.status == "rolled_back"),
    ),
)


def retry_after(failures: int, last: datetime) -> datetime:
    """When an action that failed `failures` times, last at `last`, is offered again."""
    return last + min(FIRST_RETRY * 2 ** min(failures - 1, 10), LONGEST_RETRY)


def resting(conn: Connection, device_id: int, release_id: int, now: datetime) -> bool:
    """Has the device's last attempt at the release failed too recently to try again?"""
    row = compiled(_FAILURES, conn).first(conn, {"device_id": device_id, "release_id": release_id})
    return bool(row.failures) and now < retry_after(row.failures, row.last)


def actions(check: UpdateCheck, conn: Connection, row: Any, now: datetime) -> Actions:
    """What `row` (targets.COLUMNS) is offered or must cancel now."""
    open_id = row.installing_release_id
    version = row.current_version
    if version is None:
        return NOTHING  # nothing to compare against (configData brings a version)
    admitted = check.admitted(conn, row, version, row.channel, now)
    chosen, _ = pick(admitted.found, row)
    if chosen is None or (open_id is not None and chosen.release_id != open_id):
        return Actions(None, open_id, False, None) if open_id is not None else NOTHING
    if open_id is None and resting(conn, row.id, chosen.release_id, now):
        return NOTHING
    gate: Gatekeeper = check.extensions["gatekeeper"]
    forced = gate.emergency(admitted, chosen)
    window = None
    if admitted.closed is not None:
        window = "unavailable"
        if not forced and open_id is None:
            return Actions(None, None, False, window)  # a new action waits for the window
    elif gate.organisation(
        conn, row.organisation_id, row.update_settings_generation, row.timezone
    ).windows:
        window = "available"
    return Actions(chosen, None, forced, window)


def action_href_hash(release_id: int, mode: str) -> str:
    """hawkBit's `c` parameter: changes when the action does, so no cache
    between device and server answers an old deployment."""
    return hashlib.sha256(f"{release_id}:{mode}".encode()).hexdigest()[:12]


def mode(acts: Actions) -> tuple[str, str]:
    """(download, update) as hawkBit says them."""
    if acts.forced:
        return "forced", "forced"
    return "attempt", "skip" if acts.window == "unavailable" else "attempt"


def controller_base(scheme: str, host: str, root: str, tenant: str, controller_id: str) -> str:
    tenant, controller_id = quote(tenant, safe=""), quote(controller_id, safe="")
    return f"{scheme}://{host}{root}/{tenant}/controller/v1/{controller_id}"


def fill_digests(release: Release, store: ArtifactStore) -> None:
    """The sha1 and md5 of a release published before they were kept at
    upload: read once from the stored bytes, then kept."""
    if release.artifact_sha1 and release.artifact_md5:
        return
    sha1 = hashlib.sha1(usedforsecurity=False)
    md5 = hashlib.md5(usedforsecurity=False)
    with store.open(release.artifact_sha256) as stream:
        while chunk := stream.read(store.chunk_size):
            sha1.update(chunk)
            md5.update(chunk)
    release.artifact_sha1 = sha1.hexdigest()
    release.artifact_md5 = md5.hexdigest()


def artifact_href(base: str, release: Release) -> str:
    return f"{base}/softwaremodules/{release.id}/artifacts/{quote(release.filename, safe='')}"


def deployment_document(
    release: Release, acts: Actions | None, base: str, history: list[str] | None
) -> dict[str, Any]:
    """deploymentBase (with `acts`) or installedBase (without) of `release`."""
    href = artifact_href(base, release)
    artifact = {
        "filename": release.filename,
        "hashes": {
            "sha1": release.artifact_sha1,
            "md5": release.artifact_md5,
            "sha256": release.artifact_sha256,
        },
        "size": release.artifact_size,
        "_links": {
            "download": {"href": href},
            "download-http": {"href": href},
            "md5sum": {"href": href + ".MD5SUM"},
            "md5sum-http": {"href": href + ".MD5SUM"},
        },
    }
    chunk = {
        "part": PART,
        "version": release.version,
        "name": release.product.code,
        "artifacts": [artifact],
        "metadata": [
            {"key": "hardware_revisions", "value": ",".join(release.hardware_revisions)},
            {"key": "security_fix", "value": "true" if release.security_fix else "false"},
        ],
    }
    deployment: dict[str, Any] = {"chunks": [chunk]}
    if acts is not None:
        deployment["download"], deployment["update"] = mode(acts)
        if acts.window is not None:
            deployment["maintenanceWindow"] = acts.window
    document: dict[str, Any] = {"id": str(release.id), "deployment": deployment}
    if history is not None:
        document["actionHistory"] = {
            "status": history[0] if history else "none",
            "messages": history,
        }
    return document


def action_history(session: Session, device_id: int, release_id: int, count: int) -> list[str]:
    """The device's last `count` install steps of the release, newest first,
    as hawkBit's actionHistory messages."""
    rows = session.execute(
        select(InstallEvent.status, InstallEvent.error_code, InstallEvent.occurred_at)
        .where(InstallEvent.device_id == device_id, InstallEvent.release_id == release_id)
        .order_by(InstallEvent.id.desc())
        .limit(count)
    ).all()
    return [
        f"{at.isoformat()} {status}" + (f" ({code})" if code else "") for status, code, at in rows
    ]
