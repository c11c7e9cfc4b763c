"""Which release a device is offered: the candidates and the coverage rule.

The candidates for a (product, hardware, channel, version) are every newer
published release that fits and is reachable, newest first; the device gets
the newest its coverage includes, and hears of a newer one it does not.
The device edge's update check (device_edge/update_check.py) keeps them in a
per-process cache keyed by the product's release generation (bumped on every
publish, promotion, withdrawal or channel change); the portal and the API ask
the same functions in their own session (service.available_update).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from upgrade_server.compiled_queries import compiled
from upgrade_server.database import escape_like
from upgrade_server.entitlements.coverage import release_allowed
from upgrade_server.releases import versions
from upgrade_server.releases.models import Channel, Release, ReleaseChannel, ReleaseStatus

_RANK = (
    select(Channel.rank)
    .where(Channel.product_id == bindparam("product_id"), Channel.name == bindparam("channel"))
    .scalar_subquery()
)
_IN_CHANNEL = (
    select(ReleaseChannel.release_id)
    .join(Channel, Channel.id == ReleaseChannel.channel_id)
    .where(ReleaseChannel.release_id == Release.id, Channel.rank >= _RANK)
    .exists()
)
_RELEASE = (
    select(
        Release.id,
        Release.version,
        Release.target_path,
        Release.artifact_size,
        Release.artifact_sha256,
        Release.security_fix,
        Release.parameters,
        Release.published_at,
    )
    .where(
        Release.product_id == bindparam("product_id"),
        Release.status == ReleaseStatus.PUBLISHED.value,
        Release.version_key > bindparam("current_key"),
        Release.min_from_key.is_(None) | (Release.min_from_key <= bindparam("current_key")),
        Release.hardware_key.like(bindparam("hardware_like"), escape="\\"),
        _IN_CHANNEL,
    )
    .order_by(Release.version_key.desc())
)


@dataclass(frozen=True)
class Answer:
    """What the check answers: a JSON body (None: nothing to install) and its ETag."""

    body: bytes | None
    etag: str


class AnswerCache:
    """An LRU of candidate lists, bounded by the number of candidates it holds;
    the product's generation makes stale keys unreachable."""

    def __init__(self, max_candidates: int = 100_000) -> None:
        self.max_candidates = max_candidates
        self._data: OrderedDict[tuple[Any, ...], tuple[Candidate, ...]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tuple[Candidate, ...] | None:
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], found: tuple[Candidate, ...]) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            self._held += len(found) + 1 - (len(old) + 1 if old is not None else 0)
            self._data[key] = found
            while self._held > self.max_candidates and len(self._data) > 1:
                _, dropped = self._data.popitem(last=False)
                self._held -= len(dropped) + 1


class Candidate:
    """A release a device of some hardware, channel and version could be
    offered; its offer is serialised when first chosen."""

    __slots__ = ("_answer", "offer", "published", "release_id", "security_fix", "version")

    def __init__(
        self, version: str, published: float, security_fix: bool, offer: dict[str, Any]
    ) -> None:
        self.version = version
        self.published = published  # POSIX seconds
        self.security_fix = security_fix
        self.offer = offer
        self.release_id: int = offer["release_id"]
        self._answer: Answer | None = None

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            body = json.dumps(self.offer, separators=(",", ":")).encode()
            self._answer = Answer(body, etag_of(body))
        return self._answer


def candidates(
    conn: Connection,
    device: Any,
    current_version: str,
    channel: str,
    poll_seconds: int,
    url_prefix: str,
) -> tuple[Candidate, ...]:
    """Every release newer than `current_version` that fits the device's
    hardware and channel and is reachable from that version, newest first.
    Which one the device gets depends on its coverage (choose())."""
    current_key = versions.sort_key(versions.parse(current_version, "current_version"))
    rows = compiled(_RELEASE, conn).rows(
        conn,
        {
            "product_id": device.product_id,
            "channel": channel,
            "current_key": current_key,
            "hardware_like": f"%,{escape_like(device.hardware)},%",
        },
    )
    found = []
    for row in rows:
        offer = {
            "release_id": row.id,
            "version": row.version,
            "target_path": row.target_path,
            "length": row.artifact_size,
            "hashes": {"sha256": row.artifact_sha256},
            "download_url": f"{url_prefix}/releases/{row.id}/artifact",
            "notes_url": f"{url_prefix}/releases/{row.id}",
            "security_fix": row.security_fix,
            "parameters": row.parameters,
            "operator_action_required": any(p.get("operator_action") for p in row.parameters),
            "poll_seconds": poll_seconds,
        }
        published = row.published_at.timestamp() if row.published_at else 0.0
        found.append(Candidate(row.version, published, row.security_fix, offer))
    return tuple(found)


def pick(found: tuple[Candidate, ...], device: Any) -> tuple[Candidate | None, Candidate | None]:
    """(the newest candidate the device's coverage includes, the newest
    candidate when that is a newer one it does not include)."""
    chosen = next(
        (
            c
            for c in found
            if release_allowed(
                device.upgrade_windows, c.published, c.security_fix, device.security_fixes_free
            )
        ),
        None,
    )
    missed = found[0] if found and chosen is not found[0] else None
    return chosen, missed


def choose(found: tuple[Candidate, ...], device: Any, poll_seconds: int) -> Answer:
    """The newest candidate the device's coverage includes; and, when a newer
    one exists that it does not, say so (the version and when coverage ended)."""
    if not found:
        return Answer(None, etag_of(f"none:{poll_seconds}".encode()))
    chosen, newest = pick(found, device)
    if newest is None:
        assert chosen is not None
        return chosen.answer
    coverage_state = device.upgrade_windows
    hint = {
        "version": newest.version,
        "notes_url": newest.offer["notes_url"],
        "published_at": datetime.fromtimestamp(newest.published, UTC).isoformat(),
        "coverage_ends_on": coverage_state["through"],
        "reason": "published after this device's upgrade coverage ended;"
        " a contract that covers it brings it",
    }
    document: dict[str, Any] = dict(chosen.offer) if chosen else {"poll_seconds": poll_seconds}
    document["newer_not_entitled"] = hint
    body = json.dumps(document, separators=(",", ":")).encode()
    return Answer(body, etag_of(body))


def etag_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]
