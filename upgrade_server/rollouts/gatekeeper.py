"""Rollouts, customer approval and maintenance windows, as the update check asks.

The check already has its candidates (every newer release that fits, cached
per product and release generation). What this adds is per device and must
cost almost nothing per check, so everything it reads is cached per process
under the generation that changes with it:

- the product's rollouts (offer.load_active) under its `release_generation`,
  which every rollout change bumps;
- an organisation's approvals and windows (approvals.load_approvals,
  maintenance.load_windows) under its `update_settings_generation`;
- whether its window is open, until the next opening or closing.

A check of a product with no rollout, for an organisation that needs no
approval and has no windows, costs two dictionary lookups. Loading runs on
the check's own connection, only when a generation moved (not per check).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from upgrade_server.rollouts.approvals import Approvals, load_approvals
from upgrade_server.rollouts.maintenance import load_windows
from upgrade_server.rollouts.offer import ActiveRollouts, load_active
from upgrade_server.rollouts.windows import MaintenanceWindow, WindowState, window_state
from upgrade_server.updates.offers import Answer, Candidate, etag_of


@dataclass
class _Organisation:
    generation: int
    approvals: Approvals
    windows: tuple[MaintenanceWindow, ...]
    zone: str
    state: WindowState | None = None
    state_until: datetime | None = None  # recomputed at the next opening or closing

    def window(self, now: datetime) -> WindowState | None:
        """The window's state now; None when the organisation has no windows."""
        if not self.windows:
            return None
        if self.state is None or (self.state_until is not None and now >= self.state_until):
            self.state = window_state(self.windows, self.zone, now)
            self.state_until = self.state.closes_at if self.state.open else self.state.opens_at
        return self.state


class Admitted(NamedTuple):
    """The candidates this device may be offered now, and whether it must wait.
    (A named tuple: made on every check, where a frozen dataclass costs more.)"""

    found: tuple[Candidate, ...]
    # Set when the organisation's window is closed: offer nothing but the wait
    # (unless the release chosen is under an emergency rollout).
    closed: WindowState | None
    active: ActiveRollouts


# Filtered candidate lists kept (a few per rollout and answer-cache key); past
# this many they are dropped and made again as devices ask.
MAX_FILTERED = 20_000


def wait_answer(poll_seconds: int, closed: WindowState) -> Answer:
    """Nothing to install before the organisation's window opens (and when)."""
    until = closed.opens_at.isoformat() if closed.opens_at else None
    wait = {"reason": "maintenance-window", "until": until}
    document = {"poll_seconds": poll_seconds, "wait": wait}
    body = json.dumps(document, separators=(",", ":")).encode()
    return Answer(body, etag_of(body))


class Gatekeeper:
    """Per-process caches of what the update check asks beyond coverage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rollouts: dict[int, tuple[int, ActiveRollouts]] = {}
        self._organisations: dict[int, _Organisation] = {}
        self._filtered: dict[tuple[Any, ...], tuple[Candidate, ...]] = {}

    def rollouts(self, conn: Connection, product_id: int, generation: int) -> ActiveRollouts:
        kept = self._rollouts.get(product_id)
        if kept is None or kept[0] != generation:
            kept = (generation, load_active(conn, product_id))
            with self._lock:
                self._rollouts[product_id] = kept
        return kept[1]

    def organisation(
        self, conn: Connection, organisation_id: int, generation: int, zone: str
    ) -> _Organisation:
        kept = self._organisations.get(organisation_id)
        if kept is None or kept.generation != generation or kept.zone != zone:
            kept = _Organisation(
                generation,
                load_approvals(conn, organisation_id),
                load_windows(conn, organisation_id),
                zone,
            )
            with self._lock:
                self._organisations[organisation_id] = kept
        return kept

    def admit(
        self,
        conn: Connection,
        found: tuple[Candidate, ...],
        device: Any,
        now: datetime,
        key: tuple[Any, ...],
    ) -> Admitted:
        """`found` (the candidates cached under `key`) less the releases a
        rollout or approval keeps from this device; and the closed window, if
        its organisation's window is closed."""
        active = self.rollouts(conn, device.product_id, device.release_generation)
        settings = self.organisation(
            conn, device.organisation_id, device.update_settings_generation, device.timezone
        )
        approvals = settings.approvals
        by_release = active.by_release
        if not (by_release or approvals.needed or settings.windows):
            return Admitted(found, None, active)  # most checks: nothing to ask
        if found and (by_release or approvals.needed):
            # A handful of rollouts and approvals, however many candidates:
            # devices that share them share the filtered candidates too.
            device_id, organisation, hardware = device.id, device.organisation_id, device.hardware
            blocked: tuple[int, ...] = ()  # in the rollouts' order: one key per set
            for release, view in by_release.items():
                if view.offers(device_id, organisation, hardware) is False:
                    blocked += (release,)
            allowed = approvals.allowed_for(device.id) if approvals.needed else None
            if blocked or allowed is not None:
                memo = (key, blocked, allowed)
                kept = self._filtered.get(memo)
                if kept is None:
                    kept = tuple(
                        c
                        for c in found
                        if c.release_id not in blocked
                        and (allowed is None or c.release_id in allowed)
                    )
                    with self._lock:
                        if len(self._filtered) >= MAX_FILTERED:
                            self._filtered.clear()
                        self._filtered[memo] = kept
                found = kept
        if not (found and settings.windows):
            return Admitted(found, None, active)
        state = settings.window(now)
        return Admitted(found, state if state is not None and not state.open else None, active)

    def emergency(self, admitted: Admitted, candidate: Candidate) -> bool:
        """Is `candidate` under an emergency rollout (which ignores windows)?"""
        view = admitted.active.by_release.get(candidate.release_id)
        return view is not None and view.emergency
