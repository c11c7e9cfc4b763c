"""What the update check asks of rollouts: is this release offered to this
device now?

`load_active` reads everything the hot path needs for one product in one
query (cache it per product and release generation: every rollout change
bumps the generation); `offered` answers from that plain data, with no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from upgrade_server.rollouts.models import Rollout, RolloutDevice, RolloutState
from upgrade_server.rollouts.plan import Target, Wave, bucket_of

_OFFERING = (RolloutState.RUNNING, RolloutState.PAUSED)
# Buckets a view keeps (about 100 bytes each): a fleet of a million devices'
# worth; past it the rest are hashed at each check.
MAX_BUCKETS_KEPT = 1_000_000


@dataclass(frozen=True)
class RolloutView:
    """One release's latest rollout, as the update check needs it."""

    rollout_id: int
    state: str
    salt: str
    # The waves up to the current one (those not yet reached play no part).
    waves: tuple[Wave, ...]
    pinned: frozenset[int] = frozenset()
    excluded_devices: frozenset[int] = frozenset()
    excluded_hardware: frozenset[str] = frozenset()
    emergency: bool = False
    # A halted rollout's devices part-way through the install (they keep the offer).
    in_progress: frozenset[int] = frozenset()
    # The waves reached, folded once (the update check asks per device): the
    # largest share, the named sets' union, and the salt as the hash's prefix.
    share: int = field(init=False, default=0)
    devices: frozenset[int] = field(init=False, default=frozenset())
    organisations: frozenset[int] = field(init=False, default=frozenset())
    hardware: frozenset[str] = field(init=False, default=frozenset())
    prefix: bytes = field(init=False, default=b"")
    # Each device's bucket, hashed once per view (a view lives until the
    # product's release generation moves): the check of a device seen before
    # costs a dictionary lookup, not a SHA-256.
    buckets: dict[int, int] = field(init=False, default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        fold = object.__setattr__  # frozen: set once, here
        fold(self, "share", max((w.share for w in self.waves), default=0))
        fold(self, "devices", frozenset().union(*(w.devices for w in self.waves)))
        fold(self, "organisations", frozenset().union(*(w.organisations for w in self.waves)))
        fold(self, "hardware", frozenset().union(*(w.hardware for w in self.waves)))
        fold(self, "prefix", f"{self.salt}:".encode())

    def offers(self, device_id: int, organisation_id: int, hardware: str) -> bool | None:
        """`offered` for this release's rollout, from plain values (the hot path):
        plan.in_wave over the waves reached, with the folded sets."""
        # What the rollout left out is never offered the release under it, in
        # any state: once it completes, the revision it was halted for would
        # otherwise be offered the release that fails on it.
        if device_id in self.excluded_devices or hardware in self.excluded_hardware:
            return False
        state = self.state
        if state == RolloutState.COMPLETED:
            return None
        if state == RolloutState.HALTED:
            return device_id in self.in_progress
        if state not in _OFFERING or not self.waves:
            return False
        if device_id in self.pinned:
            return True
        share = self.share
        if share:
            found = self.buckets.get(device_id)
            if found is None:
                found = bucket_of(self.prefix, device_id)
                if len(self.buckets) < MAX_BUCKETS_KEPT:
                    self.buckets[device_id] = found
            if found < share:
                return True
        return (
            device_id in self.devices
            or organisation_id in self.organisations
            or hardware in self.hardware
        )


@dataclass(frozen=True)
class ActiveRollouts:
    """{release_id: its latest rollout} for one product."""

    by_release: Mapping[int, RolloutView] = field(default_factory=dict)


def offered(active: ActiveRollouts, release_id: int, target: Target) -> bool | None:
    """None: the release is under no rollout (or its rollout completed), it is
    offered as any release is. Else whether the device is offered it now: never
    to the devices and hardware revisions the rollout excludes (even once it
    completed); a running or paused rollout offers it to the devices of the
    waves reached; a halted one only to those that were part-way through the
    install when it halted; an aborted one to no one."""
    view = active.by_release.get(release_id)
    if view is None:
        return None
    return view.offers(target.device_id, target.organisation_id, target.hardware)


_LOAD = (
    select(
        Rollout.id,
        Rollout.release_id,
        Rollout.state,
        Rollout.salt,
        Rollout.waves,
        Rollout.current_wave,
        Rollout.excluded_hardware,
        Rollout.emergency,
        Rollout.in_progress,
        RolloutDevice.device_id,
        RolloutDevice.kind,
    )
    .outerjoin(RolloutDevice, RolloutDevice.rollout_id == Rollout.id)
    .order_by(Rollout.id)
)


def load_active(conn: Connection, product_id: int) -> ActiveRollouts:
    """The latest rollout of each of the product's releases, in one query.
    Completed rollouts are kept as such (a newer completed rollout lifts an
    older aborted one's withdrawal)."""
    rows = conn.execute(_LOAD.where(Rollout.product_id == product_id)).all()
    return build(rows)


def build(rows: Iterable[Any]) -> ActiveRollouts:
    """ActiveRollouts from _LOAD's rows (in rollout id order)."""
    latest: dict[int, Any] = {}
    members: dict[int, dict[str, set[int]]] = {}
    for row in rows:
        latest[row.release_id] = row  # a later rollout replaces an earlier one
        kinds = members.setdefault(row.id, {"pin": set(), "exclude": set()})
        if row.device_id is not None:
            kinds[row.kind].add(row.device_id)
    views = {}
    for release_id, row in latest.items():
        kinds = members[row.id]
        waves = tuple(Wave.from_json(w) for w in (row.waves or ())[: row.current_wave + 1])
        views[release_id] = RolloutView(
            rollout_id=row.id,
            state=row.state,
            salt=row.salt,
            waves=waves,
            pinned=frozenset(kinds["pin"]),
            excluded_devices=frozenset(kinds["exclude"]),
            excluded_hardware=frozenset(row.excluded_hardware or ()),
            emergency=bool(row.emergency),
            in_progress=frozenset(row.in_progress or ()),
        )
    return ActiveRollouts(views)
